"""Watching copies that run at Runpod until they end: long poll, webhook or text stream.

A copy's wait ends in a final Runpod state, our watchdog (cancel at Runpod, "took longer than
this bot allows"), or Runpod losing or no longer answering about the job (cancel it there too:
it would run on, billed to the operator, for a result nobody sees).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.jobs.store import Copy, JobRecord
from bot.metrics import Metrics
from bot.runpod.catalog import Model
from bot.runpod.client import FINAL_STATES, RunpodClient, RunpodStatus
from bot.runpod.errors import NotFound, RunpodError, RunpodTimeout
from bot.runpod.outputs import strip_think, text_of

log = logging.getLogger(__name__)

STREAM_POLL_S = 0.5


class Tracker:
    def __init__(self, runpod: RunpodClient, metrics: Metrics) -> None:
        self._runpod = runpod
        self._metrics = metrics
        self._webhooks: dict[tuple[str, int], tuple[str, asyncio.Future[RunpodStatus]]] = {}
        self._cancelled: set[str] = set()  # Runpod ids already sent a /cancel

    async def cancel_at_runpod(self, job: JobRecord, model: Model) -> None:
        """Send /cancel for every copy still running, once per Runpod job."""
        for copy in job.copies:
            if not copy.runpod_id or copy.status in FINAL_STATES:
                continue
            if copy.runpod_id in self._cancelled:
                continue  # the user's click and the end of /run can both get here
            self._cancelled.add(copy.runpod_id)
            try:
                await self._runpod.cancel(model.endpoint, copy.runpod_id)
            except RunpodError as exc:
                log.warning("job %s: cancel of %s failed: %s", job.id, copy.runpod_id, exc.message)

    def webhook(self, job_id: str, index: int, token: str, state: RunpodStatus) -> bool:
        waiting = self._webhooks.get((job_id, index))
        if waiting is None:
            return False
        expected, future = waiting
        if not hmac.compare_digest(expected, token) or state.id == "" or not state.final:
            return False
        if not future.done():
            future.set_result(state)
        return True

    async def wait_copy(
        self,
        job: JobRecord,
        model: Model,
        index: int,
        deadline: float,
        progress: Callable[..., Awaitable[None]],
    ) -> Copy:
        copy = job.copies[index]
        assert copy.runpod_id is not None
        runpod_id = copy.runpod_id

        async def on_status(state: RunpodStatus) -> None:
            await progress(state.status)

        waiting_since = time.time()
        try:
            remaining = max(1.0, deadline - time.monotonic())
            if model.kind == "text":
                state = await self._stream_text(job, model, runpod_id, remaining, progress)
            else:
                state = await self._wait_or_webhook(
                    job, model, index, runpod_id, remaining, on_status
                )
        except RunpodTimeout as exc:
            if time.monotonic() < deadline:  # Runpod stopped answering, not our watchdog
                return await self._give_up(job, model, copy, exc)
            log.warning("job %s: copy %s timed out; cancelling at Runpod", job.id, runpod_id)
            with contextlib.suppress(RunpodError):
                await self._runpod.cancel(model.endpoint, runpod_id)
            return replace(copy, status="TIMED_OUT", error="took longer than this bot allows")
        except NotFound:
            return replace(
                copy,
                status="FAILED",
                error="Runpod no longer knows this job (it expired or vanished)",
            )
        except RunpodError as exc:
            return await self._give_up(job, model, copy, exc)
        if state.status == "TIMED_OUT":
            return replace(copy, status=state.status, error="took longer than Runpod allows")
        if state.status == "COMPLETED":
            self._metrics.copy_seen(model.id, waiting_since, state.delay_ms, state.execution_ms)
        return replace(copy, status=state.status, output=state.output, error=state.error)

    async def _give_up(self, job: JobRecord, model: Model, copy: Copy, exc: RunpodError) -> Copy:
        """Runpod stopped answering about a copy: cancel it there (it would run on, billed to
        the operator, for a result nobody sees) and fail it."""
        assert copy.runpod_id is not None
        log.warning(
            "job %s: lost track of %s (%s); cancelling at Runpod", job.id, copy.runpod_id, exc
        )
        with contextlib.suppress(RunpodError):
            await self._runpod.cancel(model.endpoint, copy.runpod_id)
        return replace(copy, status="FAILED", error=runpod_reason(exc, tracking=True))

    async def _wait_or_webhook(
        self,
        job: JobRecord,
        model: Model,
        index: int,
        runpod_id: str,
        timeout_s: float,
        on_status: Callable[[RunpodStatus], Awaitable[None]],
    ) -> RunpodStatus:
        waiting = self._runpod.wait(
            model.endpoint,
            runpod_id,
            timeout_s=timeout_s,
            on_status=on_status,
            backstop=bool(job.webhook_token),
        )
        if not job.webhook_token:
            return await waiting  # in this task: a task of its own is for racing a webhook
        poll = asyncio.ensure_future(waiting)
        pushed: asyncio.Future[RunpodStatus] = asyncio.get_running_loop().create_future()
        self._webhooks[(job.id, index)] = (job.webhook_token, pushed)
        try:
            done, _ = await asyncio.wait({poll, pushed}, return_when=asyncio.FIRST_COMPLETED)
            if pushed in done:
                log.info("job %s: copy %d finished (webhook)", job.id, index)
                return pushed.result()
            return poll.result()
        finally:
            self._webhooks.pop((job.id, index), None)
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, RunpodError):
                await poll

    async def _stream_text(
        self,
        job: JobRecord,
        model: Model,
        runpod_id: str,
        timeout_s: float,
        progress: Callable[..., Awaitable[None]],
    ) -> RunpodStatus:
        """Text models: poll `/stream` and show the reply as it grows; `/status` for the end."""

        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            try:
                status, chunks = await self._runpod.stream(model.endpoint, runpod_id)
            except RunpodError as exc:
                # No stream for this endpoint (404), or it failed: the stream is progress only,
                # so wait for the final answer instead of failing a job that may be fine.
                if not isinstance(exc, NotFound):
                    log.warning("job %s: progress stream failed (%s)", job.id, exc)
                break
            for chunk in chunks:
                text += text_of(chunk) if not isinstance(chunk, str) else chunk
            if chunks:
                await progress("IN_PROGRESS", partial_text=strip_think(text))
            if status in FINAL_STATES:
                break
            await asyncio.sleep(STREAM_POLL_S)
        remaining = max(1.0, deadline - time.monotonic())
        return await self._runpod.wait(model.endpoint, runpod_id, timeout_s=remaining)


def runpod_reason(exc: RunpodError, *, tracking: bool = False) -> str:
    """Why a copy failed, for the user; `tracking`: Runpod failed us after accepting the job."""
    if exc.status == 400:
        return f"Runpod rejected the request: {exc.message}"
    if exc.status in (401, 403):
        return "the bot's Runpod API key was refused (tell an admin)"
    if exc.status == 429:
        return "Runpod is rate limiting this bot; try again in a minute"
    if tracking:
        return f"the bot lost contact with Runpod while the job ran ({exc.message})"
    if exc.maybe_started:
        return f"sending the job to Runpod failed midway ({exc.message})"
    return f"Runpod could not be reached ({exc.message})"
