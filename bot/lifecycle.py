"""One job's life after admission: submit its copies, track them, settle, deliver, or release.

    held -> submitting -> submitted -> completed -> delivered
                                               \\-> undeliverable -> delivered
    held | submitting | submitted -> failed | timed_out | cancelled (hold released, user told)

(Before `held`, `JobService` may keep an expensive job in `awaiting_confirmation`; bot/jobs.py.)

Rules that keep money and results safe:
- `submitting` is written before `/run` is called and each Runpod id right after it returns, so
  a restart knows which copies exist; a copy whose `/run` may or may not have gone out is
  dropped, not resubmitted (no double run), and the user is told.
- media is downloaded before charging: a result that cannot be fetched is not charged;
- the files are written to the spool before the charge, so a restart or an expired Runpod URL
  cannot lose a paid result;
- the charge (ledger settle) and the `completed` state are one transaction;
- `delivered` is written after the platform accepted the result; a crash in between re-sends
  it with the same job id, which adapters use to deduplicate;
- a result the platform refuses is offered again on every route with backoff (`bot.courier`),
  across restarts; past `delivery.horizon_s` the job is `undeliverable` (still charged: Runpod
  billed it; kept for /show) and is still offered, becoming `delivered` once shown;
- every write is fenced on this worker owning the job (bot/workers.py), and the lease is checked
  again before a /run or a message leaves: a job this worker lost (`LeaseLost`) just stops,
  telling no one and charging nothing, since its new owner does both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bot import pricing, recording
from bot.archive import Archive
from bot.availability import Availability, not_available
from bot.catalog import Catalog, Model
from bot.config import Settings
from bot.courier import Courier, Undelivered
from bot.delivery import Delivery, Failure, MediaFile, Progress, Result, Route
from bot.jobstore import Copy, JobRecord, JobStore
from bot.ledger import Settlement, SqliteLedger
from bot.ledger_records import describe_remaining
from bot.logs import job_fields
from bot.metrics import Metrics
from bot.outputs import Downloader, OutputError, extract, transcript_files
from bot.pricing import exact_usd
from bot.progress import ProgressThrottle
from bot.quota import Identity, Scope
from bot.requests import prompt_of
from bot.runpod import FINAL_STATES, JobState, RunpodClient, RunpodError
from bot.slots import Slots
from bot.spool import Spool
from bot.sql import Store
from bot.tracking import Tracker, runpod_reason
from bot.workers import LeaseLost, Worker

log = logging.getLogger(__name__)

LATE_NOTE = "Posted late: the platform refused this result when it was ready."
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
        settings: Settings,
        downloader: Downloader,
        archive: Archive | None,
        spool: Spool,
        courier: Courier,
        worker: Worker,
        availability: Availability,
        metrics: Metrics,
    ) -> None:
        self._worker = worker
        self._availability = availability
        self._metrics = metrics
        self._store = store
        self._db = db
        self._ledger = ledger
        self._runpod = runpod
        self._catalog = catalog
        self._settings = settings
        self._downloader = downloader
        self._archive = archive
        self._spool = spool
        self._courier = courier
        self._slots = Slots(
            per_user=settings.jobs.max_per_user,
            total=settings.jobs.max_global,
            poll_s=min(1.0, settings.workers.heartbeat_s),
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._tracker = Tracker(runpod, metrics)
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_memory = asyncio.Semaphore(RESULTS_IN_MEMORY)
        # After settling: the settlement, and the files only when the spool could not keep them.
        self._prefetched: dict[str, tuple[dict[int, tuple[MediaFile, ...]] | None, Settlement]] = {}

    # --- control --------------------------------------------------------------------------

    def start(self, job: JobRecord, delivery: Delivery, *, resumed: bool = False) -> None:
        if job.id in self._tasks:
            return
        if job.state == "held" and not resumed:
            self._count(job, "held")
        task = asyncio.create_task(self._drive(job, delivery, resumed), name=f"job-{job.id}")
        self._tasks[job.id] = task
        self._idle.clear()
        task.add_done_callback(lambda _: self._forget(job.id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        if not self._tasks:
            self._idle.set()

    def running_ids(self) -> set[str]:
        return set(self._tasks)

    async def idle(self) -> None:
        await self._idle.wait()

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

    def webhook(self, job_id: str, index: int, token: str, state: JobState) -> bool:
        return self._tracker.webhook(job_id, index, token, state)

    async def aclose(self) -> None:
        """Stop driving jobs; their state stays in the database for `resume()` next start."""
        await self.stop_all()

    async def stop_all(self) -> None:
        """Stop every job task where it is, writing nothing (a lost lease, or shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the life of one job --------------------------------------------------------------

    async def _drive(self, job: JobRecord, delivery: Delivery, resumed: bool) -> None:
        model = self._catalog.get(job.model)
        throttle = ProgressThrottle(
            delivery.progress, interval_s=self._settings.jobs.progress_interval_s
        )
        started = time.monotonic()
        started_at = time.time()

        async def progress(state: str, **extra: Any) -> None:
            elapsed = time.monotonic() - started
            await throttle.push(
                Progress(job.id, model.name, state, elapsed, started_at=started_at, **extra)
            )

        try:
            if job.state in ("held", "submitting", "submitted"):
                job = await self._run(job, model, progress, resumed)
            await throttle.close()
            if job.state in ("completed", "undeliverable"):
                await self._deliver(job, model, delivery)
            elif job.state in ("failed", "timed_out", "cancelled") and not job.notified:
                await self._tell_failure(job, delivery)
        except LeaseLost:
            log.warning("job %s: no longer this worker's; left to its new owner", job.id)
        except asyncio.CancelledError:
            if job.id in self._cancel_requested:
                # cancelled by the user while waiting for a slot: nothing ran at Runpod
                with _logged(job.id, "recording the cancel"):
                    await self._end(job, "cancelled", "Cancelled before it started.", delivery)
            raise
        except Exception:
            log.exception("job %s: unexpected failure", job.id)
            with _logged(job.id, "ending the job after that"):
                current = await self._store.get(job.id) or job
                if current.state in ("held", "submitting", "submitted"):
                    await self._end(
                        current, "failed", "Something went wrong inside the bot.", delivery
                    )
        finally:
            await throttle.close()
            self._cancel_requested.discard(job.id)

    async def _run(
        self, job: JobRecord, model: Model, progress: Callable[..., Awaitable[None]], resumed: bool
    ) -> JobRecord:
        user_key = ":".join(job.identity)

        async def on_wait(position: int) -> None:
            await progress("queued", position=position)

        async def claim() -> bool:  # the caps counted over every process on the database
            jobs = self._settings.jobs
            return await self._store.start_running(
                job, per_user=jobs.max_per_user, total=jobs.max_global
            )

        asked = time.monotonic()
        held = job.state == "held"  # a resumed job already at Runpod keeps running
        async with self._slots.slot(
            job.id, user_key, on_wait=on_wait, claim=claim if held else None
        ):
            self._metrics.queue_wait.observe(time.monotonic() - asked)
            if job.state == "submitting" and resumed:
                job = await self._drop_unknown_copies(job)
            if job.state in ("held", "submitting"):
                job = await self._submit(job, model, progress)
            if job.state == "submitted":
                job = await self._track(job, model, progress)
        return job

    async def _drop_unknown_copies(self, job: JobRecord) -> JobRecord:
        """After a crash mid-submit, a copy with no Runpod id may or may not exist: drop it."""
        copies = [
            c
            if c.runpod_id
            else replace(c, status="FAILED", error="lost in a restart; not charged")
            for c in job.copies
        ]
        job = await self._store.save(job, copies=tuple(copies))
        if all(c.runpod_id is None for c in job.copies):
            return await self._end_quietly(
                job,
                "failed",
                "The bot restarted while sending this job to Runpod, so it may not have run. "
                "Nothing was charged; please run the command again.",
            )
        return await self._store.save(job, state="submitted")

    async def _submit(
        self, job: JobRecord, model: Model, progress: Callable[..., Awaitable[None]]
    ) -> JobRecord:
        job = await self._store.save(job, state="submitting")
        await progress("submitting")
        copies = list(job.copies)
        for index, copy in enumerate(copies):
            if copy.runpod_id or copy.status in FINAL_STATES:
                continue
            if job.id in self._cancel_requested:
                copies[index] = replace(copy, status="CANCELLED", error="cancelled")
                continue
            self._check_lease(job)
            try:
                state = await self._runpod.run(
                    model.endpoint,
                    job.payload(index),
                    webhook=self._webhook_url(job, index),
                    # Runpod's own limit is a backstop a minute behind our watchdog.
                    policy={"executionTimeout": int((self._settings.jobs.timeout_s + 60) * 1000)},
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
                await self._availability.found(model.id)
            copies[index] = replace(copy, runpod_id=state.id, status=state.status)
            job = await self._store.save(job, copies=tuple(copies))
            log.info("job %s: copy %d submitted as %s", job.id, index, state.id)
            await progress(state.status)
            if job.id in self._cancel_requested:
                await self._tracker.cancel_at_runpod(replace(job, copies=(copies[index],)), model)
        job = await self._store.save(job, copies=tuple(copies))
        if not any(c.runpod_id for c in copies):
            if job.id in self._cancel_requested:
                return await self._end_quietly(job, "cancelled", "Cancelled. Nothing was charged.")
            return await self._end_quietly(job, "failed", _failure_message(copies))
        job = await self._store.save(job, state="submitted")
        self._count(job, "submitted")
        return job

    async def _run_refused(self, model: Model, exc: RunpodError) -> str:
        """Why a `/run` failed, for the member; a 404 (no such endpoint) counts against the
        model, which is hidden after `jobs.hide_model_after_404s` of them in a row."""
        if exc.status != 404 or exc.maybe_started:
            return runpod_reason(exc)
        hide_after = self._settings.jobs.hide_model_after_404s
        if await self._availability.not_found(model.id, hide_after=hide_after):
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
    ) -> JobRecord:
        deadline = time.monotonic() + self._settings.jobs.timeout_s
        live = [i for i, c in enumerate(job.copies) if c.runpod_id and c.status not in FINAL_STATES]
        results = await asyncio.gather(
            *(self._tracker.wait_copy(job, model, i, deadline, progress) for i in live)
        )
        copies = list(job.copies)
        for index, copy in zip(live, results, strict=True):
            copies[index] = copy
        job = replace(job, copies=tuple(copies))
        return await self._finish(job, model)

    async def _finish(self, job: JobRecord, model: Model) -> JobRecord:
        """All copies ended: fetch results, then charge and record completion in one step."""
        copies = list(job.copies)
        files: dict[int, tuple[MediaFile, ...]] = {}
        async with self._in_memory:  # until the files are on disk
            for index, copy in enumerate(copies):
                if copy.status != "COMPLETED":
                    continue
                try:
                    files[index] = await self._fetch(job, model, index, copy)
                except OutputError as exc:
                    copies[index] = replace(copy, status="FAILED", error=exc.message)
            spooled = await self._spooled(job, copies, files, model)
        held = None if spooled else files
        del files  # on disk now: the bytes go before this job waits for its turn to settle
        job = replace(job, copies=tuple(copies))
        done = [i for i, c in enumerate(copies) if c.status == "COMPLETED"]
        if not done:
            if all(c.status == "CANCELLED" for c in copies if c.runpod_id):
                return await self._end_quietly(job, "cancelled", "Cancelled. Nothing was charged.")
            state = "timed_out" if any(c.status == "TIMED_OUT" for c in copies) else "failed"
            return await self._end_quietly(job, state, _failure_message(copies))
        total = sum((Decimal(copies[i].cost or 0) for i in done), Decimal(0))
        async with self._db.transaction() as tx:  # fenced write first: a lost job charges nothing
            job = await self._store.save(
                job, tx=tx, state="completed", cost=total, copies=tuple(copies)
            )
            settlement = await self._ledger.settle(job.id, total, tx=tx)
        log.info("job %s completed; charged %s", job.id, total, extra=job_fields(job, cost=total))
        self._count(job, "completed")
        self._metrics.money(self._metrics.charged, total, model=job.model, workspace=_pool(job))
        self._prefetched[job.id] = (held, settlement)
        return job

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
        flat = _flat(files)
        return bool(flat) and await asyncio.to_thread(self._spool.save, job.id, flat)

    async def _fetch(
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

    # --- telling the user -----------------------------------------------------------------

    async def _deliver(self, job: JobRecord, model: Model, delivery: Delivery) -> None:
        held, settlement = self._prefetched.pop(job.id, (None, None))

        async def files() -> tuple[MediaFile, ...]:
            """Read again for each offer, so a result waiting to be retried is not in memory."""
            return _flat(held if held is not None else await self._stored_files(job, model))

        result = await self._result(job, model, {}, settlement)
        if self._archive:
            async with self._in_memory:
                kept = await files()
                if kept:
                    await asyncio.to_thread(self._archive.save, job.id, kept)
                del kept
        charged_at = job.updated_at
        job = await self._hand_over(job, result, delivery, files)
        await self._store.save(job, state="delivered", notified=True)
        log.info("job %s delivered", job.id)
        self._count(job, "delivered")
        self._metrics.delivery.labels(job.channel.platform).observe(
            max(0.0, time.time() - charged_at)
        )
        keep = await self._store.undelivered_ids()
        await asyncio.to_thread(self._spool.trim, keep)
        for warning in _warnings(settlement):
            with _logged(job.id, "the quota warning"):
                await delivery.warn(job.id, warning)

    async def _hand_over(
        self,
        job: JobRecord,
        result: Result,
        delivery: Delivery,
        files: Callable[[], Awaitable[tuple[MediaFile, ...]]],
    ) -> JobRecord:
        """Offer the result until the platform takes it; past the horizon, say `undeliverable`.

        The horizon counts from completion (`updated_at` of the `completed` row), so it spans
        restarts. An undeliverable job keeps being offered every `retry_max_s`.
        """
        horizon = job.updated_at + self._settings.delivery.horizon_s
        if job.state == "undeliverable":
            result = replace(result, notes=(*result.notes, LATE_NOTE))
        failures = 0
        while True:
            await self._still_mine(job)
            outcome = await self._offer(delivery, result, files)
            if isinstance(outcome, Route):
                if outcome is not Route.EDIT:
                    log.info("job %s: delivered by %s", job.id, outcome)
                return job
            wait = self._courier.delay(failures)
            failures += 1
            if job.state == "completed" and time.time() >= horizon:
                job = await self._store.save(
                    job, state="undeliverable", error=f"could not be delivered: {outcome}"
                )
                log.error("job %s undeliverable (charged, kept for /show): %s", job.id, outcome)
                self._count(job, "undeliverable")
                result = replace(result, notes=(*result.notes, LATE_NOTE))
            elif job.state == "completed":
                wait = min(wait, max(0.0, horizon - time.time()))
            log.warning("job %s: not delivered (%s); next try in %.0fs", job.id, outcome, wait)
            await asyncio.sleep(wait)

    async def _offer(
        self,
        delivery: Delivery,
        result: Result,
        files: Callable[[], Awaitable[tuple[MediaFile, ...]]],
    ) -> Route | str:
        """One offer, on every route, with the files read for it: the route that took it, else
        why not. Only the reason is kept through the wait (a traceback would keep the files)."""
        async with self._in_memory:
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
                    files[index] = await self._fetch(job, model, index, copy)
                except OutputError as exc:
                    log.error("job %s: charged but result lost: %s", job.id, exc.message)
        if _flat(files):  # the next offer (or restart) reads them from disk, not from Runpod
            await asyncio.to_thread(self._spool.save, job.id, _flat(files))
        return files

    async def _result(
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
            files=_flat(files),
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
        usage = await self._ledger.usage(Identity(*job.identity))
        return describe_remaining(
            [a for a in (*usage.user, *usage.workspace) if a.limit is not None]
        )

    async def _end_quietly(self, job: JobRecord, state: str, message: str) -> JobRecord:
        """Release the hold and record how the job ended; the user is told by `_drive`."""
        async with self._db.transaction() as tx:  # fenced write first: a lost job keeps its hold
            job = await self._store.save(job, tx=tx, state=state, error=message, cost=Decimal(0))
            released = await self._ledger.release(job.id, reason=state, tx=tx)
        log.info("job %s %s: %s", job.id, state, message, extra=job_fields(job))
        self._count(job, state)
        if released:
            self._metrics.money(
                self._metrics.released, job.estimate, model=job.model, workspace=_pool(job)
            )
        return job

    async def _end(self, job: JobRecord, state: str, message: str, delivery: Delivery) -> None:
        job = await self._end_quietly(job, state, message)
        await self._tell_failure(job, delivery)

    async def _tell_failure(self, job: JobRecord, delivery: Delivery) -> None:
        await self._still_mine(job)
        await delivery.fail(
            Failure(job.id, job.error or job.state, charged=Decimal(0), retryable=True)
        )
        await self._store.save(job, notified=True)

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
            job, state="delivered", cost=Decimal(0), copies=earlier.copies, notified=True
        )
        async with self._db.transaction() as tx:
            await self._store.insert(cached_job, tx=tx)
        result = await self._result(cached_job, model, {0: files}, None)
        await delivery.deliver(replace(result, cached=True, cost=Decimal(0)))
        log.info("job %s delivered from the cache of %s", job.id, earlier.id)
        return True

    def _count(self, job: JobRecord, state: str) -> None:
        self._metrics.job_state(
            state, command=job.command, model=job.model, platform=job.identity[0]
        )

    def _check_lease(self, job: JobRecord) -> None:
        """Raise `LeaseLost` when this worker's lease may have lapsed (local monotonic check)."""
        if not self._worker.holds_lease():
            raise LeaseLost(f"job {job.id}: this worker's lease may have lapsed")

    async def _still_mine(self, job: JobRecord) -> None:
        """Before a message leaves for good: the lease holds here and the job is still ours."""
        self._check_lease(job)
        await self._store.affirm(job.id)

    def _webhook_url(self, job: JobRecord, index: int) -> str | None:
        base = self._settings.runpod.webhook_url
        if not base or not job.webhook_token:
            return None
        return f"{base.rstrip('/')}/runpod/webhook/{job.id}/{index}/{job.webhook_token}"


def _flat(files: dict[int, tuple[MediaFile, ...]]) -> tuple[MediaFile, ...]:
    """The files of every copy, in copy order."""
    return tuple(f for index in sorted(files) for f in files[index])


def _pool(job: JobRecord) -> str:
    """The workspace as the ledger keys it ("platform:workspace"), for the USD metrics."""
    return f"{job.identity[0]}:{job.identity[1]}"


def _audio_seconds(files: tuple[MediaFile, ...]) -> float | None:
    """How long the audio among a copy's files lasts, when its bytes say (speech is billed so)."""
    for file in files:
        if file.content_type.startswith("audio/"):
            return recording.seconds_of(file.data)
    return None


def _failure_message(copies: list[Copy] | tuple[Copy, ...]) -> str:
    reasons = [c.error or c.status or "unknown" for c in copies if c.status != "COMPLETED"]
    reason = reasons[0] if reasons else "unknown"
    return f"The job failed: {reason}. Nothing was charged."


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


@contextlib.contextmanager
def _logged(job_id: str, what: str) -> Iterator[None]:
    """Best effort on a path that must go on (a cancel, a failure already logged): a further
    error is logged with its traceback, never raised and never silent."""
    try:
        yield
    except Exception:
        log.exception("job %s: %s failed", job_id, what)
