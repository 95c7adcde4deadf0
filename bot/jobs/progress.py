"""Progress updates at most once per interval per job: chat platforms rate-limit message edits.

Updates are sent by a background sender so a slow or rate-limited platform never holds up the
job itself. The newest update always wins: one that arrives while another is waiting or being
sent replaces any older unsent one, so the last word a user sees is current. `close()` drops
what is unsent and waits for an edit already in flight, so no progress edit can land after the
job's final message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.delivery import Progress

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 10.0


class ProgressThrottle:
    def __init__(self, send: Callable[[Progress], Awaitable[None]], *, interval_s: float) -> None:
        self._send = send
        self._interval = interval_s
        self._last_sent = float("-inf")
        self._pending: Progress | None = None
        self._sender: asyncio.Task[None] | None = None
        self._sending = False

    async def push(self, update: Progress) -> None:
        self._pending = update
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain(), name=f"progress-{update.job_id}")

    async def close(self) -> None:
        """Drop anything unsent: the job has ended and its final message supersedes progress."""
        self._pending = None
        sender, self._sender = self._sender, None
        if sender is None or sender.done():
            return
        if self._sending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), CLOSE_WAIT_S)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender

    async def _drain(self) -> None:
        while self._pending is not None:
            wait = self._last_sent + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            update, self._pending = self._pending, None
            if update is None:
                return
            self._last_sent = time.monotonic()
            self._sending = True
            try:
                await self._send(update)
            except Exception:
                # A progress edit that fails (rate limit, expired token) must not fail the job.
                log.warning("job %s: progress update failed", update.job_id, exc_info=True)
            finally:
                self._sending = False
