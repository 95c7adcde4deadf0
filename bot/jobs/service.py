"""The job service: from "a user asked" to "the result is in the channel and charged once".

`submit` does everything that can refuse a request (policy, validation, price, confirmation,
quota hold) before it returns, so refusals reach the user at once; the rest runs in tasks this
service owns (`lifecycle.JobRunner`). Every state change is written to the jobs table before the
next step, which is what lets `resume()` carry on after a restart instead of losing or repeating
work. README ("How the money stays right") says what this guarantees. Several processes may
share the database: each drives only the jobs its worker owns (bot/jobs/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bot.delivery import Confirmation, Delivery, DeliveryFactory, MediaFile
from bot.errors import InvalidRequest, PolicyDenied
from bot.jobs import admission
from bot.jobs.conversations import COMMAND as CONVERSING
from bot.jobs.conversations import Conversations, Thread
from bot.jobs.courier import Courier
from bot.jobs.invocation import UNKNOWN_JOB, Community, Invocation, Submitted
from bot.jobs.kept import KeptFiles
from bot.jobs.lifecycle import JobRunner
from bot.jobs.settings import EngineSettings
from bot.jobs.states import CONFIRMATION_TTL_S, RUNNING, WAITING, WITH_RESULT, JobState
from bot.jobs.store import JobRecord, JobStore
from bot.jobs.takeover import Takeover
from bot.jobs.workers import Worker
from bot.ledger.quota import Identity, QuotaExceeded
from bot.ledger.service import SqliteLedger
from bot.metrics import Metrics
from bot.policy import Policy, Where
from bot.quote import Quote, quote
from bot.requests import Request
from bot.runpod import pricing
from bot.runpod.availability import Availability, not_available, visible
from bot.runpod.catalog import Catalog, Model
from bot.runpod.client import RunpodClient, RunpodStatus
from bot.runpod.outputs import Downloader
from bot.runpod.show import api_call
from bot.storage.sql import Connection, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class JobParts:
    """What the job service and its runner share, built once by the composition root."""

    db: Store
    ledger: SqliteLedger
    runpod: RunpodClient
    catalog: Catalog
    settings: EngineSettings
    downloader: Downloader
    worker: Worker
    metrics: Metrics


class JobService:
    def __init__(self, parts: JobParts) -> None:
        settings = parts.settings
        self.catalog = parts.catalog
        self.metrics = parts.metrics
        self.ledger = parts.ledger
        self._db = parts.db
        self._worker = parts.worker
        self._store = JobStore(parts.db, parts.worker)
        self._settings = settings
        self._policy = Policy(settings.policy, personal_use=settings.personal_use)
        self.availability = Availability(parts.db)
        self.kept = KeptFiles.configured(settings.storage, settings.links_url, parts.downloader)
        self.conversations = Conversations(parts.db, parts.catalog, settings.jobs)
        self._runner = JobRunner(
            store=self._store,
            db=parts.db,
            ledger=parts.ledger,
            runpod=parts.runpod,
            catalog=parts.catalog,
            jobs=settings.jobs,
            webhook_url=settings.webhook_url,
            outage_s=settings.storage.outage_s,
            downloader=parts.downloader,
            archive=self.kept.archive,
            spool=self.kept.spool,
            courier=Courier(settings.delivery, self.kept.links),
            worker=parts.worker,
            availability=self.availability,
            metrics=parts.metrics,
        )
        self._takeover = Takeover(store=self._store, runner=self._runner, worker=parts.worker)

    # --- wiring -------------------------------------------------------------------------

    def register_platform(self, platform: str, factory: DeliveryFactory) -> None:
        """How to rebuild a Delivery for this platform's jobs after a restart."""
        self._takeover.register(platform, factory)

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
        channel and not hidden because Runpod no longer has them (bot/runpod/availability.py)."""
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

        The hold is the most Runpod can bill for the request (bot/jobs/admission.py), so a request
        that could not fit the quota is refused here, before any confirmation is offered.
        """
        request = invocation.request
        model = self.model_of(request)
        await self._admit(invocation, model)
        kept = await self.kept.fetch_inputs(model, request)
        estimate, hold_note = await admission.hold_for(model, request, kept, self._settings.jobs)
        caching = self.kept.archive is not None and self._settings.jobs.cache
        job = admission.new_job(
            invocation,
            model,
            kept=kept,
            estimate=estimate,
            hold_note=hold_note,
            webhooks=bool(self._settings.webhook_url),
            cache_key=admission.cache_key(model, request) if caching else None,
        )
        if job.cache_key and await self._runner.cached(job, invocation.delivery):
            return Submitted(job.id, Decimal(0), cached=True)
        if estimate > self._settings.jobs.confirm_above_usd and not confirmed:
            return await self._ask_confirmation(job, invocation, model, kept)
        with self._counting_refusal(job):
            await self.ledger.hold(
                job.id,
                invocation.identity,
                estimate,
                model=model.id,
                then=self._rows(job, invocation),
            )
        await self.kept.keep_inputs(job.id, kept)
        log.info("job %s held %s for %s (%s)", job.id, estimate, job.member.user_key, model.id)
        self._runner.start(job, invocation.delivery)
        return Submitted(job.id, estimate)

    async def _admit(self, invocation: Invocation, model: Model) -> None:
        """Refuse what policy forbids here, or a model Runpod no longer offers."""
        request = invocation.request
        # A conversation's turn is judged by what the member said, not the history sent along.
        said = invocation.thread.said if invocation.thread else request.prompt
        self._policy.check(request.command, model, said, invocation.where)
        if model.id in await self.availability.hidden():
            raise InvalidRequest(f"{not_available(model)}. Try another model (`/models`).")

    async def _ask_confirmation(
        self, job: JobRecord, invocation: Invocation, model: Model, kept: dict[str, MediaFile]
    ) -> Submitted:
        """Store an expensive job unheld and ask its requester; refused if it could not fit."""
        with self._counting_refusal(job):
            await self.ledger.check(invocation.identity, job.estimate)
        await self._db.run(
            self._rows(replace(job, state=JobState.AWAITING_CONFIRMATION), invocation)
        )
        await self.kept.keep_inputs(job.id, kept)
        self._count(job, JobState.AWAITING_CONFIRMATION)
        log.info("job %s awaiting confirmation (%s)", job.id, job.estimate)
        hold_note = job.request.get("hold_note")
        summary = admission.summary(model, invocation.request) + (
            f" ({hold_note})" if hold_note else ""
        )
        threshold = self._settings.jobs.confirm_above_usd
        await invocation.delivery.confirm(
            Confirmation(job.id, model.name, job.estimate, threshold, summary)
        )
        return Submitted(job.id, job.estimate, awaiting_confirmation=True)

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
                job.id, WAITING, JobState.CANCELLED, error="confirmation expired", notified=True
            )
            if expired is not None:
                raise InvalidRequest("This confirmation expired; run the command again.")
        identity = replace(job.member, roles=roles)
        async with self._db.transaction() as tx:
            confirmed = await self._store.transition(
                job.id, WAITING, JobState.HELD, tx=tx, take=True
            )
            if confirmed is not None:
                await self.ledger.hold(job.id, identity, job.estimate, model=job.model, tx=tx)
        if confirmed is None:
            raise InvalidRequest(await self._standing(job.id))
        log.info("job %s confirmed; held %s for %s", job.id, job.estimate, identity.user_key)
        self._runner.start(confirmed, delivery or self._takeover.delivery(confirmed))
        return Submitted(job.id, job.estimate)

    async def decline(
        self, job_id: str, community: Community, *, user: str, is_admin: bool = False
    ) -> str | None:
        """Drop a job still waiting for confirmation; what to tell the user, or None when it
        no longer waits (a Confirm won the race, or it ended): then nothing was changed."""
        job = await self._owned(job_id, community, user, is_admin=is_admin)
        declined = await self._store.transition(
            job_id, WAITING, JobState.CANCELLED, error="cancelled", notified=True
        )
        if declined is None:
            return None
        self._count(job, JobState.CANCELLED)
        return "Cancelled. Nothing was charged."

    async def cancel(
        self, job_id: str, community: Community, *, user: str, is_admin: bool = False
    ) -> str:
        """Cancel a job; returns what to tell the user. Only its requester or an admin may."""
        declined = await self.decline(job_id, community, user=user, is_admin=is_admin)
        if declined is not None:
            return declined
        job = await self._store.get(job_id)  # as committed after the decline did not apply
        if job is None or job.state not in RUNNING:
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
        model = self.catalog.get(job.model)
        request = await self.kept.with_kept_inputs(job, model, self.request_of(job))
        if "seed" in model.params:
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

    async def show_request(self, job_id: str, community: Community) -> str:
        job = await self._known(job_id, community)
        model = self.catalog.get(job.model)
        other_seeds = [copy.seed for copy in job.copies[1:] if copy.seed is not None]
        return api_call(self._settings.runpod_url, model.endpoint, job.payload(0), other_seeds)

    # --- webhooks and restarts ------------------------------------------------------------

    async def on_webhook(self, job_id: str, index: int, token: str, body: Any) -> bool:
        """A Runpod webhook: True when it advanced a job we are waiting on."""
        try:
            state = RunpodStatus.parse(body)
        except Exception:
            log.warning("job %s: unreadable webhook body ignored", job_id)
            return False
        return self._runner.webhook(job_id, index, token, state)

    async def resume(self, platform: str | None = None) -> int:
        """Carry on the unfinished jobs (of one platform) no live worker drives; how many.
        Afterwards `recover` keeps taking over this platform's orphaned jobs (bot/jobs/takeover.py)."""
        return await self._takeover.resume(platform)

    async def recover(self) -> int:
        """Take over jobs of dead workers on the platforms resumed so far (every heartbeat)."""
        return await self._takeover.recover()

    async def driven_elsewhere(self, platform: str) -> int:
        """Unfinished jobs of `platform` that other workers own (alive, or not yet known dead)."""
        return await self._store.driven_elsewhere(platform)

    async def lease_lost(self) -> None:
        """This worker's lease lapsed: stop its jobs (others may own them now), join anew."""
        await self._takeover.lease_lost()

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

    def _rows(self, job: JobRecord, invocation: Invocation) -> Callable[[Connection], object]:
        """The new job's row and, for an `ask`, its turn of a conversation (the one it
        continues, or its own): written in one transaction, with the hold if there is one."""
        insert = self._store.inserting(job)
        if job.command != CONVERSING:
            return insert
        turn = self.conversations.recording(
            job, invocation.thread or Thread(None, None, invocation.request.prompt)
        )

        def insert_and_turn(raw: Connection) -> None:
            insert(raw)
            turn(raw)

        return insert_and_turn

    def _count(self, job: JobRecord, state: str) -> None:
        self.metrics.job_state(
            state, command=job.command, model=job.model, platform=job.member.platform
        )

    @contextlib.contextmanager
    def _counting_refusal(self, job: JobRecord) -> Iterator[None]:
        """Count a quota refusal (state "refused": the job is never stored) and let it rise."""
        try:
            yield
        except QuotaExceeded:
            self._count(job, "refused")
            raise

    async def _known(self, job_id: str, community: Community) -> JobRecord:
        job = await self.job(job_id, community)
        if job is None:
            raise InvalidRequest(UNKNOWN_JOB)
        return job

    async def _owned(
        self, job_id: str, community: Community, user: str, *, is_admin: bool
    ) -> JobRecord:
        job = await self._known(job_id, community)
        if job.member.user != user and not is_admin:
            raise PolicyDenied("Only the person who asked (or an admin) can do that.")
        return job

    async def _standing(self, job_id: str) -> str:
        """Where a job stands, from its committed row: the answer to a click that came late."""
        job = await self._store.get(job_id)
        if job is None:
            return UNKNOWN_JOB
        if job.state in RUNNING:
            return "This job is already running; it is charged only if it completes."
        if job.state in WITH_RESULT:
            charged = pricing.exact_usd(job.cost or Decimal(0))
            return f"This job has already finished; it was charged {charged}."
        return f"This job has already ended ({job.state.replace('_', ' ')}). Nothing was charged."
