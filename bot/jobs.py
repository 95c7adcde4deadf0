"""The job service: from "a user asked" to "the result is in the channel and charged once".

`submit` does everything that can refuse a request (policy, validation, price, confirmation,
quota hold) before it returns, so refusals reach the user at once; the rest runs in tasks this
service owns (`lifecycle.JobRunner`). Every state change is written to the jobs table before the
next step, which is what lets `resume()` carry on after a restart instead of losing or repeating
work. README ("How the money stays right") says what this guarantees. Several processes may
share the database: each drives only the jobs its worker owns (bot/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import pricing, recording
from bot.archive import Archive
from bot.availability import Availability, not_available, visible
from bot.catalog import SEED_MAX, Catalog, Model
from bot.config import Settings
from bot.conversations import COMMAND as CONVERSING
from bot.conversations import Conversations, Thread
from bot.courier import Courier
from bot.delivery import ChannelRef, Confirmation, Delivery, DeliveryFactory, MediaFile
from bot.errors import BotError, InvalidRequest, PolicyDenied
from bot.inputs import Inputs
from bot.jobstore import JobRecord, JobStore, new_copies
from bot.ledger import SqliteLedger
from bot.lifecycle import JobRunner
from bot.links import ResultLinks
from bot.metrics import Metrics
from bot.outputs import Downloader, OutputError
from bot.policy import Policy, Where
from bot.quota import Identity, QuotaExceeded
from bot.quote import Quote, quote
from bot.requests import Request
from bot.runpod import JobState, RunpodClient
from bot.show import api_call
from bot.spool import Spool
from bot.sql import Store
from bot.workers import Worker

log = logging.getLogger(__name__)

CONFIRMATION_TTL_S = 15 * 60
WAITING = ("awaiting_confirmation",)
RUNNING_STATES = ("held", "submitting", "submitted")
UNKNOWN_JOB = "That job is not known to this bot."


@dataclass(frozen=True)
class Community:
    """A Discord server, a Slack workspace or the terminal: where a job can be seen.

    Every lookup by job id names the community asking, and a job of another one answers
    exactly like an id never issued, so ids cannot be probed across communities.
    """

    platform: str
    workspace: str

    def holds(self, job: JobRecord) -> bool:
        return job.identity[:2] == (self.platform, self.workspace)


@dataclass(frozen=True)
class Invocation:
    """A request plus who asked, where, and how to answer them."""

    request: Request
    identity: Identity
    channel: ChannelRef
    delivery: Delivery
    where: Where
    # An `ask` continuing a conversation, or starting one that replies at `place` continue.
    thread: Thread | None = None


@dataclass(frozen=True)
class Submitted:
    job_id: str
    estimate: Decimal
    awaiting_confirmation: bool = False
    cached: bool = False


class JobService:
    def __init__(
        self,
        *,
        db: Store,
        ledger: SqliteLedger,
        runpod: RunpodClient,
        catalog: Catalog,
        settings: Settings,
        downloader: Downloader,
        worker: Worker,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
        self.metrics = metrics or Metrics()
        self.ledger = ledger
        self._db = db
        self._worker = worker
        self._store = JobStore(db, worker)
        self._settings = settings
        self._downloader = downloader
        self._policy = Policy(settings.policy, personal_use=settings.quotas.personal.enabled)
        self.availability = Availability(db)
        self._archive = Archive(settings.storage.media_dir) if settings.storage.media_dir else None
        storage = settings.storage
        self.spool = Spool(storage.spool_dir, max_bytes=int(storage.spool_max_mb * 1024 * 1024))
        self.inputs = Inputs(
            storage.inputs_dir,
            keep_days=storage.inputs_keep_days,
            max_bytes=int(storage.inputs_max_mb * 1024 * 1024),
        )
        self.links = ResultLinks(
            settings.http.public_url or settings.runpod.webhook_url,
            storage.spool_dir / ".link-key",
        )
        self.conversations = Conversations(db, catalog, settings.jobs)
        self._factories: dict[str, DeliveryFactory] = {}
        self._resumed: set[str] = set()  # platforms whose jobs this process may take over
        self._runner = JobRunner(
            store=self._store,
            db=db,
            ledger=ledger,
            runpod=runpod,
            catalog=catalog,
            settings=settings,
            downloader=downloader,
            archive=self._archive,
            spool=self.spool,
            courier=Courier(settings.delivery, self.links),
            worker=worker,
            availability=self.availability,
            metrics=self.metrics,
        )

    # --- wiring -------------------------------------------------------------------------

    def register_platform(self, platform: str, factory: DeliveryFactory) -> None:
        """How to rebuild a Delivery for this platform's jobs after a restart."""
        self._factories[platform] = factory

    @property
    def policy(self) -> Policy:
        return self._policy

    async def quote(self, request: Request, identity: Identity, where: Where) -> Quote:
        """`/cost`: what `request` would cost `identity` here, and whether it could run."""
        usage = await self.ledger.usage(identity)
        found = quote(
            request,
            usage,
            where,
            catalog=self.catalog,
            policy=self._policy,
            jobs=self._settings.jobs,
        )
        if found.refusal is None and found.model.id in await self.availability.hidden():
            return replace(found, refusal=f"{not_available(found.model)}.")
        return found

    async def offered_models(self, where: Where, *kinds: str) -> list[Model]:
        """The models to list and autocomplete here (of `kinds`, else all): allowed in this
        channel and not hidden because Runpod no longer has them (bot/availability.py)."""
        models = self.catalog.of_kind(*kinds) if kinds else list(self.catalog)
        hidden = await self.availability.hidden()
        return self._policy.allowed_models(visible(models, hidden), where)

    def model_of(self, request: Request) -> Model:
        return self.catalog.get(request.model)

    def default_model(self, command: str) -> str:
        return self._settings.jobs.default_models[command]

    # --- asking -------------------------------------------------------------------------

    async def submit(self, invocation: Invocation, *, confirmed: bool = False) -> Submitted:
        """Check, price, hold and start a job; raises a BotError the user should see.

        The hold is the most Runpod can bill for the request (`pricing.bound`), so a request
        that could not fit the quota is refused here, before any confirmation is offered.
        """
        request = invocation.request
        model = self.model_of(request)
        # A conversation's turn is judged by what the member said, not the history sent along.
        said = invocation.thread.said if invocation.thread else request.prompt
        self._policy.check(request.command, model, said, invocation.where)
        if model.id in await self.availability.hidden():
            raise InvalidRequest(f"{not_available(model)}. Try another model (`/models`).")
        kept = await self._fetch_inputs(model, request)
        seconds = await self._recording_seconds(model, kept)
        bound = pricing.bound(model, request.input, self._settings.jobs, audio_seconds=seconds)
        estimate = bound.amount * request.count
        hold_note = None if bound.known else _capped(model, estimate)
        seeds = _seeds(model, request)
        job = JobRecord(
            id=uuid.uuid4().hex[:12],
            identity=(
                invocation.identity.platform,
                invocation.identity.workspace,
                invocation.identity.user,
            ),
            channel=invocation.channel,
            command=request.command,
            model=model.id,
            request={
                "input": dict(request.input),
                "count": request.count,
                "media": list(request.media),
                **({"hold_note": hold_note} if hold_note else {}),
                **({"kept_inputs": {url: f.filename for url, f in kept.items()}} if kept else {}),
            },
            state="held",
            estimate=estimate,
            created_at=time.time(),
            copies=new_copies(request.count, seeds),
            webhook_token=secrets.token_urlsafe(24) if self._settings.runpod.webhook_url else None,
            cache_key=self._cache_key(model, request),
        )
        if job.cache_key:
            hit = await self._runner.cached(job, invocation.delivery)
            if hit:
                return Submitted(job.id, Decimal(0), cached=True)
        threshold = self._settings.jobs.confirm_above_usd
        if estimate > threshold and not confirmed:
            with self._counting_refusal(job):
                await self.ledger.check(invocation.identity, estimate)
            async with self._db.transaction() as tx:
                await self._store.insert(replace(job, state="awaiting_confirmation"), tx=tx)
                await self._turn(job, invocation, tx)
            await self._keep_inputs(job.id, kept)
            self._count(job, "awaiting_confirmation")
            log.info("job %s awaiting confirmation (%s)", job.id, estimate)
            summary = _summary(model, request) + (f" ({hold_note})" if hold_note else "")
            await invocation.delivery.confirm(
                Confirmation(job.id, model.name, estimate, threshold, summary)
            )
            return Submitted(job.id, estimate, awaiting_confirmation=True)
        with self._counting_refusal(job):
            async with self._db.transaction() as tx:
                await self.ledger.hold(job.id, invocation.identity, estimate, model=model.id, tx=tx)
                await self._store.insert(job, tx=tx)
                await self._turn(job, invocation, tx)
        await self._keep_inputs(job.id, kept)
        log.info("job %s held %s for %s", job.id, estimate, model.id)
        self._runner.start(job, invocation.delivery)
        return Submitted(job.id, estimate)

    async def confirm(
        self,
        job_id: str,
        community: Community,
        *,
        user: str,
        roles: frozenset[str] = frozenset(),
        delivery: Delivery | None = None,
    ) -> Submitted:
        """The requester said yes to an expensive job: hold its quota and run it.

        The move out of `awaiting_confirmation` and the hold are one transaction that only
        happens if the job is still waiting, so a Cancel racing this click cannot also win.
        """
        job = await self._owned(job_id, community, user, is_admin=False)
        if time.time() - job.created_at > CONFIRMATION_TTL_S:
            expired = await self._store.transition(
                job.id, WAITING, "cancelled", error="confirmation expired", notified=True
            )
            if expired is not None:
                raise InvalidRequest("This confirmation expired; run the command again.")
        identity = Identity(*job.identity, roles=roles)
        async with self._db.transaction() as tx:
            confirmed = await self._store.transition(job.id, WAITING, "held", tx=tx, take=True)
            if confirmed is not None:
                await self.ledger.hold(job.id, identity, job.estimate, model=job.model, tx=tx)
        if confirmed is None:
            raise InvalidRequest(await self._standing(job.id))
        log.info("job %s confirmed; held %s", job.id, job.estimate)
        self._runner.start(confirmed, delivery or self._delivery(confirmed))
        return Submitted(job.id, job.estimate)

    async def decline(
        self, job_id: str, community: Community, *, user: str, is_admin: bool = False
    ) -> str | None:
        """Drop a job still waiting for confirmation; what to tell the user, or None when it
        no longer waits (a Confirm won the race, or it ended): then nothing was changed."""
        job = await self._owned(job_id, community, user, is_admin=is_admin)
        declined = await self._store.transition(
            job_id, WAITING, "cancelled", error="cancelled", notified=True
        )
        if declined is None:
            return None
        self._count(job, "cancelled")
        return "Cancelled. Nothing was charged."

    async def cancel(
        self, job_id: str, community: Community, *, user: str, is_admin: bool = False
    ) -> str:
        """Cancel a job; returns what to tell the user. Only its requester or an admin may."""
        declined = await self.decline(job_id, community, user=user, is_admin=is_admin)
        if declined is not None:
            return declined
        job = await self._store.get(job_id)  # as committed after the decline did not apply
        if job is None or job.state not in RUNNING_STATES:
            return await self._standing(job_id)
        await self._runner.cancel(job)
        return "Cancelling. Anything not finished will not be charged."

    async def rerun_request(self, job_id: str, community: Community, *, mode: str) -> Request:
        """A past job's request again: "reroll" (a new seed) or "variations" (four new seeds).

        The adapter submits it for whoever clicked, where they clicked.
        """
        if mode not in ("reroll", "variations"):
            raise InvalidRequest(f"unknown rerun mode {mode!r}")
        job = await self._known(job_id, community)
        request = await self._with_kept_inputs(job, self.request_of(job))
        if "seed" in self.catalog.get(request.model).params:
            request = request.with_input(seed=-1)
        return replace(request, count=4) if mode == "variations" else request

    def request_of(self, job: JobRecord) -> Request:
        return Request(
            job.command,
            job.model,
            job.request["input"],
            job.count,
            tuple(job.request.get("media") or ()),
        )

    async def job(self, job_id: str, community: Community) -> JobRecord | None:
        """The job with this id, if it belongs to `community`."""
        job = await self._store.get(job_id)
        return job if job is not None and community.holds(job) else None

    async def result_files(self, job_id: str) -> tuple[MediaFile, ...] | None:
        """A past result's files: from the archive, else from the spool (not yet cleaned).

        The caller has found the job in its community first (`job`)."""
        for folder in (self._archive, self.spool):
            files = await asyncio.to_thread(folder.load, job_id) if folder else None
            if files:
                return files
        return None

    async def result_names(self, job_id: str) -> tuple[tuple[str, str], ...]:
        """(file name, content type) of a past result's kept files, as `result_files` finds
        them, without reading them: for listings of many results (the web gallery)."""
        for folder in (self._archive, self.spool):
            names = await asyncio.to_thread(folder.names, job_id) if folder else None
            if names:
                return names
        return ()

    def result_path(self, job_id: str, filename: str) -> Path | None:
        """Where one kept file of a job is (archive, else spool, else its kept inputs), for the
        bot's signed links."""
        for folder in (self._archive, self.spool, self.inputs):
            path = folder.path(job_id, filename) if folder else None
            if path is not None:
                return path
        return None

    def result_links(self, job_id: str, files: tuple[MediaFile, ...]) -> dict[str, str]:
        """The bot's own signed link to each kept file, by name; empty without a public address."""
        links = {f.filename: self.links.url(job_id, f.filename) for f in files}
        return {name: link for name, link in links.items() if link}

    async def show_request(self, job_id: str, community: Community) -> str:
        job = await self._known(job_id, community)
        model = self.catalog.get(job.model)
        other_seeds = [copy.seed for copy in job.copies[1:] if copy.seed is not None]
        return api_call(self._settings.runpod.base_url, model.endpoint, job.payload(0), other_seeds)

    # --- webhooks and restarts ------------------------------------------------------------

    async def on_webhook(self, job_id: str, index: int, token: str, body: Any) -> bool:
        """A Runpod webhook: True when it advanced a job we are waiting on."""
        try:
            state = JobState.parse(body)
        except Exception:
            log.warning("job %s: unreadable webhook body ignored", job_id)
            return False
        return self._runner.webhook(job_id, index, token, state)

    async def resume(self, platform: str | None = None) -> int:
        """Carry on the unfinished jobs (of one platform) no live worker drives; how many.

        A job is taken only once its owner's lease has lapsed (or its owner handed it back at
        shutdown), in one atomic claim (`JobStore.claim`), so jobs other running processes
        drive, and this process's own, are left alone. Afterwards `recover` keeps taking over
        this platform's orphaned jobs.
        """
        if platform is not None:
            self._resumed.add(platform)
        await self._expire_confirmations(platform)
        return await self._take_over(platform)

    async def recover(self) -> int:
        """Take over jobs of dead workers on the platforms resumed so far (every heartbeat)."""
        taken = 0
        for platform in sorted(self._resumed):
            taken += await self._take_over(platform)
        return taken

    async def driven_elsewhere(self, platform: str) -> int:
        """Unfinished jobs of `platform` that other workers own (alive, or not yet known dead)."""
        return await self._store.driven_elsewhere(platform)

    async def lease_lost(self) -> None:
        """This worker's lease lapsed: stop its jobs (others may own them now), join anew."""
        log.error(
            "worker %s lost its lease; its jobs are left to whoever takes them", self._worker.id
        )
        await self._runner.stop_all()
        await self._worker.join()

    async def _take_over(self, platform: str | None) -> int:
        taken = 0
        for job in await self._store.claim(platform):
            try:
                delivery = self._delivery(job)
            except BotError as exc:
                log.error("job %s cannot be resumed: %s", job.id, exc.message)
                continue
            log.info("job %s taken over in state %s", job.id, job.state)
            self._runner.start(job, delivery, resumed=True)
            taken += 1
        return taken

    async def _expire_confirmations(self, platform: str | None) -> None:
        for job in await self._store.unfinished():
            if platform is not None and job.channel.platform != platform:
                continue
            if job.state in WAITING and time.time() - job.created_at > CONFIRMATION_TTL_S:
                await self._store.transition(
                    job.id, WAITING, "cancelled", error="confirmation expired", notified=True
                )

    async def sweep(self) -> list[str]:
        """Release holds whose job is gone: not running here and not waiting to be resumed."""
        live = self._runner.running_ids() | await self._store.active_ids()
        return await self.ledger.sweep(running_job_ids=live)

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Until no job task is running (tests, `try`, shutdown)."""
        await asyncio.wait_for(self._runner.idle(), timeout_s)

    async def aclose(self) -> None:
        await self._runner.aclose()

    # --- helpers --------------------------------------------------------------------------

    async def _turn(self, job: JobRecord, invocation: Invocation, tx: Any) -> None:
        """Every `ask` is a turn of a conversation: the one it continues, or its own."""
        if job.command != CONVERSING:
            return
        thread = invocation.thread or Thread(None, None, invocation.request.prompt)
        platform, workspace, _ = job.identity
        await self.conversations.record(
            tx, job_id=job.id, platform=platform, workspace=workspace, thread=thread
        )

    async def _fetch_inputs(self, model: Model, request: Request) -> dict[str, MediaFile]:
        """The files a request gives Runpod by URL, fetched once (with the caps of results) to
        be kept with the job; a file that cannot be fetched is left to Runpod, as before."""
        kept: dict[str, MediaFile] = {}
        for url in _input_urls(model, request.input):
            if url in kept:
                continue
            name = f"input-{len(kept) + 1}"
            own = await self._own_copy(url, name)
            if own is not None:
                kept[url] = own
                continue
            try:
                kept[url] = await self._downloader.fetch(url, kind="input", name=name)
            except OutputError as exc:
                log.info("input of a %s job not kept: %s", model.id, exc.message)
        return kept

    async def _own_copy(self, url: str, name: str) -> MediaFile | None:
        """A rerun's input, when `url` is this bot's own link: the kept copy, read from disk."""
        own = self.links.target(url)
        path = self.result_path(*own) if own else None
        if path is None:
            return None
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:  # removed by a trim meanwhile: fetched over HTTP instead
            log.info("kept input %s unreadable: %s", path, exc)
            return None
        return MediaFile(f"{name}{path.suffix}", "", data, source_url=url)

    async def _keep_inputs(self, job_id: str, kept: dict[str, MediaFile]) -> None:
        if kept:
            await asyncio.to_thread(self.inputs.save, job_id, tuple(kept.values()))

    async def _with_kept_inputs(self, job: JobRecord, request: Request) -> Request:
        """A rerun's request whose inputs point at the copies this bot kept (the platform's
        links expire); refused with the reason when an input is gone and no copy can be served."""
        model = self.catalog.get(job.model)
        kept: dict[str, str] = job.request.get("kept_inputs") or {}
        links: dict[str, str] = {}
        for url in _input_urls(model, request.input):
            name = kept.get(url)
            stored = name is not None and self.inputs.path(job.id, name) is not None
            link = self.links.url(job.id, name) if stored and name else None
            if link is not None:
                links[url] = link
                continue
            try:
                await self._downloader.fetch(url, kind="input", name="input")
            except OutputError:
                raise InvalidRequest(
                    "This job can't be run again: the original attachment expired and "
                    + (
                        "this bot has no public address to serve its copy (http.public_url)."
                        if stored
                        else "no copy of it is kept any more."
                    )
                ) from None
        return _replace_urls(model, request, links) if links else request

    async def _recording_seconds(self, model: Model, kept: dict[str, MediaFile]) -> float | None:
        """The length of the recording a transcription sends; None if it cannot be read.

        Read from the kept input (fetched with the same caps as results): a file too big,
        unreachable or in a format `recording` cannot read leaves the length unknown, and the
        hold a cap.
        """
        if model.kind != "transcription" or not kept:
            return None
        recording_file = next(iter(kept.values()))
        return await asyncio.to_thread(recording.seconds_of, recording_file.data)

    def _count(self, job: JobRecord, state: str) -> None:
        self.metrics.job_state(
            state, command=job.command, model=job.model, platform=job.identity[0]
        )

    @contextlib.contextmanager
    def _counting_refusal(self, job: JobRecord) -> Iterator[None]:
        """Count a quota refusal (state "refused": the job is never stored) and let it rise."""
        try:
            yield
        except QuotaExceeded:
            self._count(job, "refused")
            raise

    def _delivery(self, job: JobRecord) -> Delivery:
        factory = self._factories.get(job.channel.platform)
        if factory is None:
            raise BotError(f"no adapter for platform {job.channel.platform!r} is running")
        return factory(job.channel)

    async def _known(self, job_id: str, community: Community) -> JobRecord:
        job = await self.job(job_id, community)
        if job is None:
            raise InvalidRequest(UNKNOWN_JOB)
        return job

    async def _owned(
        self, job_id: str, community: Community, user: str, *, is_admin: bool
    ) -> JobRecord:
        job = await self._known(job_id, community)
        if job.identity[2] != user and not is_admin:
            raise PolicyDenied("Only the person who asked (or an admin) can do that.")
        return job

    async def _standing(self, job_id: str) -> str:
        """Where a job stands, from its committed row: the answer to a click that came late."""
        job = await self._store.get(job_id)
        if job is None:
            return "That job is not known to this bot."
        if job.state in RUNNING_STATES:
            return "This job is already running; it is charged only if it completes."
        if job.state in ("completed", "delivered"):
            charged = pricing.exact_usd(job.cost or Decimal(0))
            return f"This job has already finished; it was charged {charged}."
        return f"This job has already ended ({job.state.replace('_', ' ')}). Nothing was charged."

    def _cache_key(self, model: Model, request: Request) -> str | None:
        explicit_seed = request.seed is not None
        if not (
            self._archive and self._settings.jobs.cache and explicit_seed and request.count == 1
        ):
            return None
        text = json.dumps({"model": model.id, "input": request.input}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _input_urls(model: Model, params: Mapping[str, Any]) -> list[str]:
    """The URLs of files an input gives Runpod, in parameter order."""
    urls: list[str] = []
    for name in model.media_inputs:
        value = params.get(name)
        values = value if isinstance(value, list) else [value]
        urls += [v for v in values if isinstance(v, str) and v]
    return urls


def _replace_urls(model: Model, request: Request, links: dict[str, str]) -> Request:
    """The request with each input URL in `links` replaced by its new address."""
    params = dict(request.input)
    for name in model.media_inputs:
        value = params.get(name)
        if isinstance(value, list):
            params[name] = [links.get(v, v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            params[name] = links.get(value, value)
    media = tuple(links.get(url, url) for url in request.media)
    return replace(request, input=params, media=media)


def _seeds(model: Model, request: Request) -> list[int | None]:
    """One seed per copy, so every result can be reproduced; random unless the user chose one.

    A chosen seed's copies take the next seeds up; `build_request` has checked they fit.
    """
    spec = model.seed_param
    if spec is None:
        return [None] * request.count
    base = request.seed
    if base is None:
        low = max(int(spec.min or 0), 0)
        high = SEED_MAX if spec.max is None else int(spec.max)
        return [random.randint(low, high) for _ in range(request.count)]
    return [base + i for i in range(request.count)]


def _capped(model: Model, amount: Decimal) -> str:
    """What to tell a member whose job holds a cap, not a bound: Runpod may bill more."""
    why = (
        "the recording's length could not be read"
        if model.kind == "transcription"
        else "its length is known only after it runs"
    )
    return f"Held up to {pricing.exact_usd(amount)} because {why}."


def _summary(model: Model, request: Request) -> str:
    copies = f"{request.count} x " if request.count > 1 else ""
    prompt = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
    return f"{copies}{model.name}: {prompt}" if prompt else f"{copies}{model.name}"
