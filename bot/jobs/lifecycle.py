"""One job's life after admission: submit its copies, track them, settle, deliver, or release.

The states it moves a job through are described once, in bot/jobs/states.py.

Rules that keep money and results safe:
- `submitting` is written before `/run` is called and each Runpod id right after it returns, so
  a restart knows which copies exist; a copy whose `/run` may or may not have gone out is
  dropped, not resubmitted (no double run), and the user is told.
- charging or releasing is `bot.jobs.settling`'s, telling the member `bot.jobs.handover`'s;
- every write is fenced on this worker owning the job (bot/jobs/workers.py), and the lease is
  confirmed again before a /run or a message leaves: a job this worker lost just stops,
  telling no one and charging nothing, since its new owner does both;
- every write waits out a store gone away (bot/storage/outage.py): the job pauses and carries on when
  the store is back, or, past `storage.outage_s`, stops here for a live worker to take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bot.config import JobSettings
from bot.delivery import Delivery, Progress
from bot.jobs.allowance import Allowance
from bot.jobs.archive import Archive
from bot.jobs.context import JobContext, logged
from bot.jobs.courier import Courier
from bot.jobs.handover import LATE_NOTE, Handover
from bot.jobs.progress import ProgressThrottle
from bot.jobs.settling import Settled, Settler, failure_message
from bot.jobs.slots import Slots
from bot.jobs.spool import Spool
from bot.jobs.states import FAILED, RUNNING, UNDELIVERED, JobState
from bot.jobs.store import JobRecord, JobStore
from bot.jobs.tracking import Tracker, runpod_reason
from bot.jobs.workers import LeaseLost, Worker
from bot.ledger.service import SqliteLedger
from bot.metrics import Metrics
from bot.runpod.availability import Availability, not_available
from bot.runpod.catalog import Catalog, Model
from bot.runpod.client import FINAL_STATES, RunpodClient, RunpodError, RunpodStatus
from bot.runpod.outputs import Downloader
from bot.storage.outage import StoreAway
from bot.storage.sql import Store
from bot.tasks import TaskSet

__all__ = ["LATE_NOTE", "JobRunner"]

log = logging.getLogger(__name__)

# Jobs whose result bytes may be in memory at once (from download until spooled, or while
# offered to the platform); the others wait on disk. With 1,000 jobs of 2 MB in flight this
# keeps the bot under 200 MB (docs/benchmarks.md); 32 measured slower and 27 MB bigger.
RESULTS_IN_MEMORY = 16


class JobRunner:
    def __init__(
        self,
        *,
        store: JobStore,
        db: Store,
        ledger: SqliteLedger,
        runpod: RunpodClient,
        catalog: Catalog,
        jobs: JobSettings,
        webhook_url: str | None,
        outage_s: float,
        downloader: Downloader,
        archive: Archive | None,
        spool: Spool,
        courier: Courier,
        worker: Worker,
        availability: Availability,
        metrics: Metrics,
    ) -> None:
        self._availability = availability
        self._store = store
        self._db = db
        self._runpod = runpod
        self._catalog = catalog
        self._jobs = jobs
        self._webhook_base = webhook_url
        self._archive = archive
        self._ctx = JobContext(
            store=store,
            db=db,
            ledger=ledger,
            worker=worker,
            metrics=metrics,
            in_memory=asyncio.Semaphore(RESULTS_IN_MEMORY),
            outage_s=outage_s,
            kept=Allowance(),
        )
        self._settler = Settler(self._ctx, downloader=downloader, spool=spool)
        self._handover = Handover(
            self._ctx, settler=self._settler, archive=archive, spool=spool, courier=courier
        )
        self._slots = Slots(
            per_user=jobs.max_per_user,
            total=jobs.max_global,
            poll_s=min(1.0, worker.settings.heartbeat_s),
        )
        self._tasks = TaskSet()  # each job's, by its id
        self._cancel_requested: set[str] = set()
        self._tracker = Tracker(runpod, metrics)
        self._metrics = metrics

    # --- control --------------------------------------------------------------------------

    def start(self, job: JobRecord, delivery: Delivery, *, resumed: bool = False) -> None:
        if self._tasks.get(job.id) is not None:
            return
        if job.state == JobState.HELD and not resumed:
            self._ctx.count(job, JobState.HELD)
        self._tasks.spawn(self._drive(job, delivery, resumed), name=f"job-{job.id}", key=job.id)

    def running_ids(self) -> set[str]:
        return self._tasks.keys()

    async def idle(self) -> None:
        await self._tasks.idle()

    async def cancel(self, job: JobRecord) -> None:
        """Stop a job: Runpod cancels what runs there; a job still waiting for a slot just ends.

        The task is interrupted only while it waits for a slot (nothing sent yet); a copy whose
        `/run` is in flight is cancelled at Runpod as soon as its id is known (`_submit`).
        """
        self._cancel_requested.add(job.id)
        task = self._tasks.get(job.id)
        if task is not None and self._slots.position(job.id) is not None:
            task.cancel()
            return
        current = await self._store.get(job.id) or job
        await self._tracker.cancel_at_runpod(current, self._catalog.get(job.model))

    def webhook(self, job_id: str, index: int, token: str, state: RunpodStatus) -> bool:
        return self._tracker.webhook(job_id, index, token, state)

    async def aclose(self) -> None:
        """Stop driving jobs; their state stays in the database for `resume()` next start."""
        await self.stop_all()

    async def stop_all(self) -> None:
        """Stop every job task where it is, writing nothing (a lost lease, or shutdown)."""
        await self._tasks.cancel_all()

    # --- the life of one job --------------------------------------------------------------

    async def _drive(self, job: JobRecord, delivery: Delivery, resumed: bool) -> None:
        model = self._catalog.get(job.model)
        throttle = ProgressThrottle(delivery.progress, interval_s=self._jobs.progress_interval_s)
        started = time.monotonic()
        started_at = time.time()

        async def progress(state: str, **extra: Any) -> None:
            elapsed = time.monotonic() - started
            await throttle.push(
                Progress(job.id, model.name, state, elapsed, started_at=started_at, **extra)
            )

        settled = Settled(job)
        try:
            if job.state in RUNNING:
                settled = await self._run(job, model, progress, resumed)
                job = settled.job
            await throttle.close()
            if job.state in UNDELIVERED:
                await self._handover.deliver(settled, model, delivery)
            elif job.state in FAILED and not job.notified:
                await self._handover.fail(job, delivery)
        except LeaseLost:
            log.warning("job %s: no longer this worker's; left to its new owner", job.id)
        except StoreAway as exc:
            log.error("job %s: %s; left to whoever takes it over when it is back", job.id, exc)
        except asyncio.CancelledError:
            if job.id in self._cancel_requested:
                # cancelled by the user while waiting for a slot: nothing ran at Runpod
                with logged(job.id, "recording the cancel"):
                    await self._end(
                        job, JobState.CANCELLED, "Cancelled before it started.", delivery
                    )
            raise
        except Exception:
            log.exception("job %s: unexpected failure", job.id)
            with logged(job.id, "ending the job after that"):
                current = await self._store.get(job.id) or job
                if current.state in RUNNING:
                    await self._end(
                        current, JobState.FAILED, "Something went wrong inside the bot.", delivery
                    )
        finally:
            if settled.loan is not None:  # files kept for a first offer never made
                settled.loan.repay()
            await throttle.close()
            self._cancel_requested.discard(job.id)

    async def _run(
        self, job: JobRecord, model: Model, progress: Callable[..., Awaitable[None]], resumed: bool
    ) -> Settled:
        user_key = job.member.user_key

        async def on_wait(position: int) -> None:
            await progress("queued", position=position)

        async def claim() -> bool:  # the caps counted over every process on the database
            jobs = self._jobs
            return await self._ctx.patient(
                lambda: self._store.start_running(
                    job, per_user=jobs.max_per_user, total=jobs.max_global
                )
            )

        asked = time.monotonic()
        held = job.state == JobState.HELD  # a resumed job already at Runpod keeps running
        async with self._slots.slot(
            job.id, user_key, on_wait=on_wait, claim=claim if held else None
        ):
            self._metrics.queue_wait.observe(time.monotonic() - asked)
            if held:  # the claim moved it to `submitting` in the store
                job = replace(job, state=JobState.SUBMITTING)
            elif job.state == JobState.SUBMITTING and resumed:
                job = await self._drop_unknown_copies(job)
            if job.state in (JobState.HELD, JobState.SUBMITTING):
                job = await self._submit(job, model, progress)
            if job.state == JobState.SUBMITTED:
                return await self._track(job, model, progress)
        return Settled(job)

    async def _drop_unknown_copies(self, job: JobRecord) -> JobRecord:
        """After a crash mid-submit, a copy with no Runpod id may or may not exist: drop it."""
        copies = [
            c
            if c.runpod_id
            else replace(c, status="FAILED", error="lost in a restart; not charged")
            for c in job.copies
        ]
        job = await self._ctx.save(job, copies=tuple(copies))
        if all(c.runpod_id is None for c in job.copies):
            return await self._settler.end_quietly(
                job,
                JobState.FAILED,
                "The bot restarted while sending this job to Runpod, so it may not have run. "
                "Nothing was charged; please run the command again.",
            )
        return await self._ctx.save(job, state=JobState.SUBMITTED)

    async def _submit(
        self, job: JobRecord, model: Model, progress: Callable[..., Awaitable[None]]
    ) -> JobRecord:
        await progress("submitting")
        copies = list(job.copies)
        for index, copy in enumerate(copies):
            if copy.runpod_id or copy.status in FINAL_STATES:
                continue
            if job.id in self._cancel_requested:
                copies[index] = replace(copy, status="CANCELLED", error="cancelled")
                continue
            await self._ctx.worker.lease_confirmed()
            try:
                state = await self._runpod.run(
                    model.endpoint,
                    job.payload(index),
                    webhook=self._webhook_url(job, index),
                    # Runpod's own limit is a backstop a minute behind our watchdog.
                    policy={"executionTimeout": int((self._jobs.timeout_s + 60) * 1000)},
                )
            except RunpodError as exc:
                log.warning("job %s: /run failed: %s", job.id, exc.message)
                reason = await self._run_refused(model, exc)
                copies[index] = replace(copy, status="FAILED", error=reason)
                if not exc.maybe_started and exc.status in (400, 401, 403, 404):
                    copies[index + 1 :] = [
                        replace(c, status="FAILED", error=reason) for c in copies[index + 1 :]
                    ]
                    break
                continue
            if not any(c.runpod_id for c in copies):  # the first accepted: the model exists
                await self._ctx.patient(lambda: self._availability.found(model.id))
            copies[index] = replace(copy, runpod_id=state.id, status=state.status)
            # The last copy's id and `submitted` are one write: nothing is left to send.
            last = {"state": JobState.SUBMITTED} if index == len(copies) - 1 else {}
            job = await self._ctx.save(job, copies=tuple(copies), **last)
            log.info("job %s: copy %d submitted as %s", job.id, index, state.id)
            await progress(state.status)
            if job.id in self._cancel_requested:
                await self._tracker.cancel_at_runpod(replace(job, copies=(copies[index],)), model)
        if job.state != JobState.SUBMITTED:
            job = await self._submitted(replace(job, copies=tuple(copies)))
        if job.state == JobState.SUBMITTED:
            self._ctx.count(job, JobState.SUBMITTED)
        return job

    async def _submitted(self, job: JobRecord) -> JobRecord:
        """The last copy was not just accepted (its /run failed, it was cancelled, or it had
        ended already): `submitted` with the copies Runpod has, else ended, nothing charged."""
        if any(c.runpod_id for c in job.copies):
            return await self._ctx.save(job, state=JobState.SUBMITTED)
        if job.id in self._cancel_requested:
            return await self._settler.end_quietly(
                job, JobState.CANCELLED, "Cancelled. Nothing was charged."
            )
        return await self._settler.end_quietly(job, JobState.FAILED, failure_message(job.copies))

    async def _run_refused(self, model: Model, exc: RunpodError) -> str:
        """Why a `/run` failed, for the member; a 404 (no such endpoint) counts against the
        model, which is hidden after `jobs.hide_model_after_404s` of them in a row."""
        if exc.status != 404 or exc.maybe_started:
            return runpod_reason(exc)
        hide_after = self._jobs.hide_model_after_404s
        hidden = await self._ctx.patient(
            lambda: self._availability.not_found(model.id, hide_after=hide_after)
        )
        if hidden:
            log.error(
                "model %s hidden: Runpod answered 404 for endpoint %s %d times in a row;"
                " `python -m bot models --enable %s` offers it again",
                model.id,
                model.endpoint,
                hide_after,
                model.id,
            )
        return not_available(model)

    async def _track(
        self, job: JobRecord, model: Model, progress: Callable[..., Awaitable[None]]
    ) -> Settled:
        deadline = time.monotonic() + self._jobs.timeout_s
        live = [i for i, c in enumerate(job.copies) if c.runpod_id and c.status not in FINAL_STATES]
        waits = [self._tracker.wait_copy(job, model, i, deadline, progress) for i in live]
        # one copy (most jobs) is waited for in this task: gather would make a task for it
        results = [await waits[0]] if len(waits) == 1 else await asyncio.gather(*waits)
        copies = list(job.copies)
        for index, copy in zip(live, results, strict=True):
            copies[index] = copy
        job = replace(job, copies=tuple(copies))
        return await self._settler.finish(job, model)

    async def _end(self, job: JobRecord, state: JobState, message: str, delivery: Delivery) -> None:
        job = await self._settler.end_quietly(job, state, message)
        await self._handover.fail(job, delivery)

    # --- the cache ------------------------------------------------------------------------

    async def cached(self, job: JobRecord, delivery: Delivery) -> bool:
        """Deliver an identical earlier result from the archive, free; False when there is none."""
        if self._archive is None or job.cache_key is None:
            return False
        earlier = await self._store.cached(job.cache_key)
        files = self._archive.load(earlier.id) if earlier else None
        if earlier is None or files is None:
            return False
        model = self._catalog.get(job.model)
        cached_job = replace(
            job, state=JobState.DELIVERED, cost=Decimal(0), copies=earlier.copies, notified=True
        )
        async with self._db.transaction() as tx:
            await self._store.insert(cached_job, tx=tx)
        result = await self._handover.result(cached_job, model, {0: files}, None)
        await delivery.deliver(replace(result, cached=True, cost=Decimal(0)))
        log.info("job %s delivered from the cache of %s", job.id, earlier.id)
        return True

    def _webhook_url(self, job: JobRecord, index: int) -> str | None:
        base = self._webhook_base
        if not base or not job.webhook_token:
            return None
        return f"{base.rstrip('/')}/runpod/webhook/{job.id}/{index}/{job.webhook_token}"
