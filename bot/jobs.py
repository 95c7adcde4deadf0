"""The job service: from "a user asked" to "the result is in the channel and charged once".

`submit` does everything that can refuse a request (policy, validation, price, confirmation,
quota hold) before it returns, so refusals reach the user at once; the rest runs in tasks this
service owns (`lifecycle.JobRunner`). Every state change is written to the jobs table before the
next step, which is what lets `resume()` carry on after a restart instead of losing or repeating
work. README ("How the money stays right") says what this guarantees.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bot import pricing
from bot.archive import Archive
from bot.catalog import Catalog, Model
from bot.config import Settings
from bot.db import Database
from bot.delivery import ChannelRef, Confirmation, Delivery, DeliveryFactory
from bot.errors import BotError, InvalidRequest, PolicyDenied
from bot.jobstore import JobRecord, JobStore, new_copies
from bot.ledger import SqliteLedger
from bot.lifecycle import JobRunner
from bot.outputs import Downloader
from bot.policy import Policy, Where
from bot.quota import Identity
from bot.requests import COMMANDS, Request, request_type_for
from bot.runpod import JobState, RunpodClient
from bot.show import api_call

log = logging.getLogger(__name__)

CONFIRMATION_TTL_S = 15 * 60
MAX_SEED = 2**31 - 1
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
        db: Database,
        ledger: SqliteLedger,
        runpod: RunpodClient,
        catalog: Catalog,
        settings: Settings,
        downloader: Downloader,
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self._db = db
        self._store = JobStore(db)
        self._settings = settings
        self._policy = Policy(settings.policy)
        self._archive = Archive(settings.storage.media_dir) if settings.storage.media_dir else None
        self._factories: dict[str, DeliveryFactory] = {}
        self._started_at = time.time()  # jobs created since then are this process's own
        self._runner = JobRunner(
            store=self._store,
            db=db,
            ledger=ledger,
            runpod=runpod,
            catalog=catalog,
            settings=settings,
            downloader=downloader,
            archive=self._archive,
        )

    # --- wiring -------------------------------------------------------------------------

    def register_platform(self, platform: str, factory: DeliveryFactory) -> None:
        """How to rebuild a Delivery for this platform's jobs after a restart."""
        self._factories[platform] = factory

    @property
    def policy(self) -> Policy:
        return self._policy

    def model_of(self, request: Request) -> Model:
        return self.catalog.get(request.model)

    def default_model(self, command: str) -> str:
        return self._settings.jobs.default_models[command]

    # --- asking -------------------------------------------------------------------------

    def estimate(self, request: Request) -> Decimal:
        return pricing.estimate(self.model_of(request), request.input) * request.count

    async def submit(self, invocation: Invocation, *, confirmed: bool = False) -> Submitted:
        """Check, price, hold and start a job; raises a BotError the user should see."""
        request = invocation.request
        model = self.model_of(request)
        self._policy.check(request.command, model, request.prompt, invocation.where)
        estimate = self.estimate(request)
        seeds = _seeds(model, request)
        job = JobRecord(
            id=uuid.uuid4().hex[:12],
            identity=(
                invocation.identity.platform,
                invocation.identity.workspace,
                invocation.identity.user,
            ),
            channel=invocation.channel,
            command=_command_of(request, model),
            model=model.id,
            request={
                "input": dict(request.input),
                "count": request.count,
                "media": list(request.media),
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
            async with self._db.transaction() as tx:
                await self._store.insert(replace(job, state="awaiting_confirmation"), tx=tx)
            log.info("job %s awaiting confirmation (%s)", job.id, estimate)
            await invocation.delivery.confirm(
                Confirmation(job.id, model.name, estimate, threshold, _summary(model, request))
            )
            return Submitted(job.id, estimate, awaiting_confirmation=True)
        async with self._db.transaction() as tx:
            await self.ledger.hold(job.id, invocation.identity, estimate, model=model.id, tx=tx)
            await self._store.insert(job, tx=tx)
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
        """The requester said yes to an expensive job: hold its quota and run it."""
        job = await self._owned(job_id, community, user, is_admin=False)
        if job.state != "awaiting_confirmation":
            raise InvalidRequest("This job is no longer waiting for confirmation.")
        if time.time() - job.created_at > CONFIRMATION_TTL_S:
            await self._store.save(
                job, state="cancelled", error="confirmation expired", notified=True
            )
            raise InvalidRequest("This confirmation expired; run the command again.")
        identity = Identity(*job.identity, roles=roles)
        async with self._db.transaction() as tx:
            await self.ledger.hold(job.id, identity, job.estimate, model=job.model, tx=tx)
            job = await self._store.save(job, tx=tx, state="held")
        log.info("job %s confirmed; held %s", job.id, job.estimate)
        self._runner.start(job, delivery or self._delivery(job))
        return Submitted(job.id, job.estimate)

    async def cancel(
        self, job_id: str, community: Community, *, user: str, is_admin: bool = False
    ) -> str:
        """Cancel a job; returns what to tell the user. Only its requester or an admin may."""
        job = await self._owned(job_id, community, user, is_admin=is_admin)
        if job.state == "awaiting_confirmation":
            await self._store.save(job, state="cancelled", error="cancelled", notified=True)
            return "Cancelled. Nothing was charged."
        if job.state not in ("held", "submitting", "submitted"):
            return f"This job has already ended ({job.state.replace('_', ' ')})."
        await self._runner.cancel(job)
        return "Cancelling. Anything not finished will not be charged."

    async def rerun(
        self,
        job_id: str,
        community: Community,
        *,
        mode: str,
        invocation_of: Callable[[Request], Invocation],
    ) -> Submitted:
        """Reroll (same options, new seed) or variations (same options, new seeds, up to 4).

        `invocation_of(request)` builds the Invocation for whoever clicked, where they clicked.
        """
        job = await self._known(job_id, community)
        request = self.request_of(job)
        model = self.catalog.get(job.model)
        if "seed" in model.params:
            request = request.with_input(seed=-1)
        if mode == "variations":
            request = type(request)(
                model=request.model, input=request.input, count=4, media=request.media
            )
        return await self.submit(invocation_of(request))

    def request_of(self, job: JobRecord) -> Request:
        model = self.catalog.get(job.model)
        request_type = request_type_for(model.kind)
        return request_type(
            model=job.model,
            input=job.request["input"],
            count=job.count,
            media=tuple(job.request.get("media") or ()),
        )

    async def job(self, job_id: str, community: Community) -> JobRecord | None:
        """The job with this id, if it belongs to `community`."""
        job = await self._store.get(job_id)
        return job if job is not None and community.holds(job) else None

    async def show_request(self, job_id: str, community: Community) -> str:
        job = await self._known(job_id, community)
        model = self.catalog.get(job.model)
        return api_call(self._settings.runpod.base_url, model.endpoint, job.input)

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
        """Carry on every job a previous run left unfinished (of one platform); returns how many.

        Jobs this process created are left to the tasks already driving them: an adapter may
        accept commands before it resumes, and a row read here can be stale by the time it is
        used (a job that finished meanwhile would be driven again from its old state).
        """
        jobs = await self._store.unfinished()
        resumed = 0
        for job in jobs:
            if platform is not None and job.channel.platform != platform:
                continue
            if job.created_at >= self._started_at:
                continue
            if job.state == "awaiting_confirmation":
                if time.time() - job.created_at > CONFIRMATION_TTL_S:
                    await self._store.save(
                        job, state="cancelled", error="confirmation expired", notified=True
                    )
                continue
            try:
                delivery = self._delivery(job)
            except BotError as exc:
                log.error("job %s cannot be resumed: %s", job.id, exc.message)
                continue
            log.info("job %s resumed in state %s", job.id, job.state)
            self._runner.start(job, delivery, resumed=True)
            resumed += 1
        return resumed

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

    def _cache_key(self, model: Model, request: Request) -> str | None:
        explicit_seed = request.seed is not None
        if not (
            self._archive and self._settings.jobs.cache and explicit_seed and request.count == 1
        ):
            return None
        text = json.dumps({"model": model.id, "input": request.input}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _seeds(model: Model, request: Request) -> list[int | None]:
    """One seed per copy, so every result can be reproduced; random unless the user chose one."""
    if "seed" not in model.params:
        return [None] * request.count
    base = request.seed
    if base is None:
        return [random.randrange(MAX_SEED) for _ in range(request.count)]
    return [(base + i) % MAX_SEED for i in range(request.count)]


def _command_of(request: Request, model: Model) -> str:
    for name, (request_type, kinds) in COMMANDS.items():
        if isinstance(request, request_type) and model.kind in kinds:
            return name
    return request.command


def _summary(model: Model, request: Request) -> str:
    copies = f"{request.count} x " if request.count > 1 else ""
    prompt = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
    return f"{copies}{model.name}: {prompt}" if prompt else f"{copies}{model.name}"
