"""Progress updates at most once per interval per job: chat platforms rate-limit message edits.

The newest update always wins: one that arrives inside the interval is held and sent when the
interval is over, replacing any older held one, so the last word a user sees is current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.delivery import Progress

log = logging.getLogger(__name__)


class ProgressThrottle:
    def __init__(self, send: Callable[[Progress], Awaitable[None]], *, interval_s: float) -> None:
        self._send = send
        self._interval = interval_s
        self._last_sent = float("-inf")
        self._pending: Progress | None = None
        self._timer: asyncio.Task[None] | None = None

    async def push(self, update: Progress) -> None:
        wait = self._last_sent + self._interval - time.monotonic()
        if wait <= 0 and self._timer is None:
            await self._deliver(update)
            return
        self._pending = update
        if self._timer is None:
            self._timer = asyncio.create_task(self._flush_after(max(wait, 0.0)))

    async def close(self) -> None:
        """Drop anything held: the job has ended and its final message supersedes progress."""
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        update, self._pending = self._pending, None
        self._timer = None
        if update is not None:
            await self._deliver(update)

    async def _deliver(self, update: Progress) -> None:
        self._last_sent = time.monotonic()
        try:
            await self._send(update)
        except Exception:
            # A progress edit that fails (rate limit, expired token) must not fail the job.
            log.warning("job %s: progress update failed", update.job_id, exc_info=True)
