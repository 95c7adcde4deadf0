"""Telling the member: a job's result (or why it failed), offered until the platform takes it.

`delivered` is written after the platform accepted the result; a crash in between re-sends it
with the same job id, which adapters use to deduplicate. A result the platform refuses is
offered again on every route with backoff (`bot.jobs.courier`), across restarts; past
`delivery.horizon_s` the job is `undeliverable` (still charged: Runpod billed it; kept for
/show) and is still offered, becoming `delivered` once shown. Nothing leaves before
`still_mine` says this worker owns the job, so a job taken over is told by its new owner only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

from bot.delivery import Delivery, Failure, MediaFile, Result, Route
from bot.jobs.archive import Archive
from bot.jobs.context import JobContext, logged
from bot.jobs.courier import Courier, Undelivered
from bot.jobs.settling import Settled, Settler, flat_files
from bot.jobs.spool import Spool
from bot.jobs.states import JobState
from bot.jobs.store import JobRecord
from bot.ledger.quota import Scope
from bot.ledger.records import describe_remaining
from bot.ledger.service import Settlement
from bot.requests import prompt_of
from bot.runpod.catalog import Model
from bot.runpod.outputs import OutputError, extract
from bot.runpod.pricing import exact_usd

log = logging.getLogger(__name__)

LATE_NOTE = "Posted late: the platform refused this result when it was ready."

Files = Callable[[], Awaitable[tuple[MediaFile, ...]]]


class Handover:
    def __init__(
        self,
        ctx: JobContext,
        *,
        settler: Settler,
        archive: Archive | None,
        spool: Spool,
        courier: Courier,
    ) -> None:
        self._ctx = ctx
        self._settler = settler
        self._archive = archive
        self._spool = spool
        self._courier = courier

    async def deliver(self, settled: Settled, model: Model, delivery: Delivery) -> None:
        ctx = self._ctx
        job, settlement, loan = settled.job, settled.settlement, settled.loan
        in_memory = settled.files

        async def files() -> tuple[MediaFile, ...]:
            """Read again for each offer, so a result waiting to be retried is not in memory;
            the first may be made from the downloaded bytes (under `loan`, allowance.py)."""
            nonlocal in_memory
            if in_memory is None:
                return flat_files(await self._stored_files(job, model))
            now = in_memory
            if loan is not None:  # kept for the first offer only
                in_memory = None
                loan.repay()
            return flat_files(now)

        result = await self.result(job, model, {}, settlement)
        if self._archive:
            async with ctx.in_memory:
                kept = await files()
                if kept:
                    await asyncio.to_thread(self._archive.save, job.id, kept)
                del kept
        charged_at = job.updated_at
        job = await self._hand_over(job, result, delivery, files)
        await ctx.save(job, state=JobState.DELIVERED, notified=True)
        log.info("job %s delivered", job.id)
        ctx.count(job, JobState.DELIVERED)
        ctx.metrics.child(ctx.metrics.delivery, job.channel.platform).observe(
            max(0.0, time.time() - charged_at)
        )
        if self._spool.may_be_over():
            keep = await ctx.patient(ctx.store.undelivered_ids)
            await asyncio.to_thread(self._spool.trim, keep)
        for warning in _warnings(settlement):
            with logged(job.id, "the quota warning"):
                await delivery.warn(job.id, warning)

    async def _hand_over(
        self, job: JobRecord, result: Result, delivery: Delivery, files: Files
    ) -> JobRecord:
        """Offer the result until the platform takes it; past the horizon, say `undeliverable`.

        The horizon counts from completion (`updated_at` of the `completed` row), so it spans
        restarts. An undeliverable job keeps being offered every `retry_max_s`.
        """
        horizon = job.updated_at + self._courier.horizon_s
        if job.state == JobState.UNDELIVERABLE:
            result = replace(result, notes=(*result.notes, LATE_NOTE))
        failures = 0
        while True:
            await self._ctx.still_mine(job)
            outcome = await self._offer(delivery, result, files)
            if isinstance(outcome, Route):
                if outcome is not Route.EDIT:
                    log.info("job %s: delivered by %s", job.id, outcome)
                return job
            wait = self._courier.delay(failures)
            failures += 1
            if job.state == JobState.COMPLETED and time.time() >= horizon:
                job = await self._undeliverable(job, outcome)
                result = replace(result, notes=(*result.notes, LATE_NOTE))
            elif job.state == JobState.COMPLETED:
                wait = min(wait, max(0.0, horizon - time.time()))
            log.warning("job %s: not delivered (%s); next try in %.0fs", job.id, outcome, wait)
            await asyncio.sleep(wait)

    async def _undeliverable(self, job: JobRecord, outcome: str) -> JobRecord:
        error = f"could not be delivered: {outcome}"
        job = await self._ctx.save(job, state=JobState.UNDELIVERABLE, error=error)
        log.error("job %s undeliverable (charged, kept for /show): %s", job.id, outcome)
        self._ctx.count(job, JobState.UNDELIVERABLE)
        return job

    async def _offer(self, delivery: Delivery, result: Result, files: Files) -> Route | str:
        """One offer, on every route, with the files read for it: the route that took it, else
        why not. Only the reason is kept through the wait (a traceback would keep the files)."""
        async with self._ctx.in_memory:
            try:
                return await self._courier.hand_over(delivery, replace(result, files=await files()))
            except Undelivered as exc:
                return str(exc)

    async def _stored_files(self, job: JobRecord, model: Model) -> dict[int, tuple[MediaFile, ...]]:
        """The spooled files, else (jobs charged before the spool existed) Runpod's again."""
        spooled = await asyncio.to_thread(self._spool.load, job.id)
        if spooled:
            return {0: spooled}
        files: dict[int, tuple[MediaFile, ...]] = {}
        for index, copy in enumerate(job.copies):
            if copy.status == "COMPLETED":
                try:
                    files[index] = await self._settler.fetch(job, model, index, copy)
                except OutputError as exc:
                    log.error("job %s: charged but result lost: %s", job.id, exc.message)
        if flat_files(files):  # the next offer (or restart) reads them from disk, not from Runpod
            await asyncio.to_thread(self._spool.save, job.id, flat_files(files))
        return files

    async def result(
        self,
        job: JobRecord,
        model: Model,
        files: dict[int, tuple[MediaFile, ...]],
        settlement: Settlement | None,
    ) -> Result:
        texts = [extract(model, c.output).text for c in job.copies if c.status == "COMPLETED"]
        failed = [c for c in job.copies if c.status != "COMPLETED"]
        notes = [job.request["hold_note"]] if job.request.get("hold_note") else []
        if failed:
            notes.append(
                f"{len(failed)} of {len(job.copies)} failed and were not charged: {failed[0].error}"
            )
        remaining = settlement.summary() if settlement else await self._remaining_text(job)
        return Result(
            job_id=job.id,
            command=job.command,
            model=model.name,
            model_id=model.id,
            prompt=prompt_of(job.input),
            kind=model.kind,
            files=flat_files(files),
            text="\n\n".join(t for t in texts if t) or None,
            seeds=tuple(
                c.seed for c in job.copies if c.status == "COMPLETED" and c.seed is not None
            ),
            cost=job.cost or Decimal(0),
            remaining=remaining,
            elapsed_s=(job.updated_at or time.time()) - job.created_at,
            notes=tuple(notes),
            params=job.input,
        )

    async def _remaining_text(self, job: JobRecord) -> str:
        ledger = self._ctx.ledger
        usage = await self._ctx.patient(lambda: ledger.usage(job.member))
        return describe_remaining(
            [a for a in (*usage.user, *usage.workspace) if a.limit is not None]
        )

    async def fail(self, job: JobRecord, delivery: Delivery) -> None:
        """Tell the member the job ended without a result (its hold is already released)."""
        await self._ctx.still_mine(job)
        await delivery.fail(
            Failure(job.id, job.error or job.state, charged=Decimal(0), retryable=True)
        )
        await self._ctx.save(job, notified=True)


def _warnings(settlement: Settlement | None) -> list[str]:
    """Soft-threshold notices, e.g. "You have used 80% of your daily limit ($0.80 of $1.00)."."""
    notices = []
    for crossed in settlement.crossed if settlement else []:
        whose = "You have" if crossed.scope is Scope.USER else "This workspace has"
        notices.append(
            f"{whose} used {crossed.percent}% of the {crossed.period.adjective} limit"
            f" ({exact_usd(crossed.spent)} of {exact_usd(crossed.limit)})."
        )
    return notices
