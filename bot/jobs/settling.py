"""The end of a job's run: fetch and spool its results, then charge it, or release its hold.

Media is downloaded before charging (a result that cannot be fetched is not charged) and
written to the spool before the charge (a restart or an expired Runpod URL cannot lose a paid
result); the charge and the `completed` state are one transaction, fenced on this worker
owning the job, so a job another worker took over is charged nothing here. Both
transactions are re-run whole while the store is away: settle and release are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from decimal import Decimal

from bot.delivery import MediaFile
from bot.jobs.allowance import Loan
from bot.jobs.context import JobContext
from bot.jobs.spool import Spool
from bot.jobs.states import JobState
from bot.jobs.store import Copy, JobRecord
from bot.ledger.service import Settlement
from bot.logs import job_fields
from bot.runpod import pricing, recording
from bot.runpod.catalog import Model
from bot.runpod.outputs import Downloader, OutputError, extract, transcript_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """A job as its run left it, with what delivering it needs from settling: the files, when
    the spool could not keep them (for every offer) or under `loan` (for the first offer only,
    bot/jobs/allowance.py), and the settlement (its quota warnings). A job resumed after a
    restart has neither: its files come from the spool, what is left from the ledger."""

    job: JobRecord
    files: dict[int, tuple[MediaFile, ...]] | None = None
    settlement: Settlement | None = None
    loan: Loan | None = None


class Settler:
    def __init__(self, ctx: JobContext, *, downloader: Downloader, spool: Spool) -> None:
        self._ctx = ctx
        self._downloader = downloader
        self._spool = spool

    async def finish(self, job: JobRecord, model: Model) -> Settled:
        """All copies ended: fetch results, then charge and record completion in one step."""
        copies = list(job.copies)
        files: dict[int, tuple[MediaFile, ...]] = {}
        async with self._ctx.in_memory:  # until the files are on disk
            for index, copy in enumerate(copies):
                if copy.status != "COMPLETED":
                    continue
                try:
                    files[index] = await self.fetch(job, model, index, copy)
                except OutputError as exc:
                    copies[index] = replace(copy, status="FAILED", error=exc.message)
            spooled = await self._spooled(job, copies, files, model)
        loan = self._ctx.kept.borrow(_size(files)) if spooled else None
        held = None if spooled and loan is None else files
        del files  # on disk now: the bytes go before this job waits for its turn to settle
        job = replace(job, copies=tuple(copies))
        done = [i for i, c in enumerate(copies) if c.status == "COMPLETED"]
        if not done:
            if all(c.status == "CANCELLED" for c in copies if c.runpod_id):
                return Settled(
                    await self.end_quietly(
                        job, JobState.CANCELLED, "Cancelled. Nothing was charged."
                    )
                )
            state = (
                JobState.TIMED_OUT
                if any(c.status == "TIMED_OUT" for c in copies)
                else JobState.FAILED
            )
            return Settled(await self.end_quietly(job, state, failure_message(copies)))
        total = sum((Decimal(copies[i].cost or 0) for i in done), Decimal(0))
        try:
            job, settlement = await self._ctx.patient(lambda: self._charge(job, total))
        except BaseException:
            if loan is not None:
                loan.repay()
            raise
        log.info("job %s completed; charged %s", job.id, total, extra=job_fields(job, cost=total))
        self._ctx.count(job, JobState.COMPLETED)
        metrics = self._ctx.metrics
        metrics.money(metrics.charged, total, model=job.model, workspace=job.member.pool_key)
        return Settled(job, held, settlement, loan)

    async def _charge(self, job: JobRecord, total: Decimal) -> tuple[JobRecord, Settlement]:
        ctx = self._ctx
        async with ctx.db.transaction() as tx:  # fenced write first: a lost job charges nothing
            job = await ctx.store.save(job, tx=tx, state=JobState.COMPLETED, cost=total)
            return job, await ctx.ledger.settle(job.id, total, tx=tx)

    async def _spooled(
        self,
        job: JobRecord,
        copies: list[Copy],
        files: dict[int, tuple[MediaFile, ...]],
        model: Model,
    ) -> bool:
        """Price each completed copy (audio length needs the bytes) and write the files to the
        spool; True when the spool holds them, so the bytes can go until delivery."""
        for index, copy in enumerate(copies):
            if copy.status == "COMPLETED":
                cost = pricing.actual(
                    model,
                    {**job.input, "seed": copy.seed},
                    copy.output,
                    audio_seconds=_audio_seconds(files.get(index, ())),
                )
                copies[index] = replace(copy, cost=str(cost))
        flat = flat_files(files)
        return bool(flat) and await asyncio.to_thread(self._spool.save, job.id, flat)

    async def fetch(
        self, job: JobRecord, model: Model, index: int, copy: Copy
    ) -> tuple[MediaFile, ...]:
        found = extract(model, copy.output)
        if model.kind == "text":
            return ()
        if model.kind == "transcription":
            return transcript_files(job.id, found.text or "", found.segments)
        fetched = []
        for n, url in enumerate(found.urls):
            name = f"{job.id}-{index + 1}" + (f"-{n + 1}" if len(found.urls) > 1 else "")
            fetched.append(await self._downloader.fetch(url, kind=model.kind, name=name))
        return tuple(fetched)

    async def end_quietly(self, job: JobRecord, state: JobState, message: str) -> JobRecord:
        """Release the hold and record how the job ended; the member is told by the caller."""
        job, released = await self._ctx.patient(lambda: self._release(job, state, message))
        log.info("job %s %s: %s", job.id, state, message, extra=job_fields(job))
        self._ctx.count(job, state)
        if released:
            metrics = self._ctx.metrics
            metrics.money(
                metrics.released, job.estimate, model=job.model, workspace=job.member.pool_key
            )
        return job

    async def _release(
        self, job: JobRecord, state: JobState, message: str
    ) -> tuple[JobRecord, bool]:
        ctx = self._ctx
        async with ctx.db.transaction() as tx:  # fenced write first: a lost job keeps its hold
            job = await ctx.store.save(job, tx=tx, state=state, error=message, cost=Decimal(0))
            return job, await ctx.ledger.release(job.id, reason=state, tx=tx)


def flat_files(files: dict[int, tuple[MediaFile, ...]]) -> tuple[MediaFile, ...]:
    """The files of every copy, in copy order."""
    return tuple(f for index in sorted(files) for f in files[index])


def failure_message(copies: list[Copy] | tuple[Copy, ...]) -> str:
    reasons = [c.error or c.status or "unknown" for c in copies if c.status != "COMPLETED"]
    reason = reasons[0] if reasons else "unknown"
    return f"The job failed: {reason}. Nothing was charged."


def _audio_seconds(files: tuple[MediaFile, ...]) -> float | None:
    """How long the audio among a copy's files lasts, when its bytes say (speech is billed so)."""
    for file in files:
        if file.content_type.startswith("audio/"):
            return recording.seconds_of(file.data)
    return None


def _size(files: dict[int, tuple[MediaFile, ...]]) -> int:
    return sum(len(f.data) for copy in files.values() for f in copy)
