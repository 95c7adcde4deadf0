"""Concurrency caps: at most N jobs per user and M in all run at once; the rest wait in order.

A user's jobs start in the order they were asked for, and each waiting job knows its place in
that user's queue, which the progress line shows.

The caps hold across processes sharing a database: a job that fits here also asks the store
(`claim`, e.g. `JobStore.start_running`), which counts the jobs running in every process. When
the store says no, the job waits here, first in its user's line, and asks again when a slot of
this process frees or after `poll_s` (with jitter, so waiting processes don't ask in step).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Claim = Callable[[], Awaitable[bool]]


class Slots:
    def __init__(self, *, per_user: int, total: int, poll_s: float = 1.0) -> None:
        self._per_user = per_user
        self._total = total
        self._poll_s = poll_s
        self._running: Counter[str] = Counter()
        self._waiting: list[tuple[str, str]] = []  # (job id, user key), oldest first
        self._changed = asyncio.Condition()

    def position(self, job_id: str) -> int | None:
        """1-based place among the same user's waiting jobs, or None when not waiting."""
        user = next((u for j, u in self._waiting if j == job_id), None)
        if user is None:
            return None
        mine = [j for j, u in self._waiting if u == user]
        return mine.index(job_id) + 1

    @asynccontextmanager
    async def slot(
        self,
        job_id: str,
        user: str,
        *,
        on_wait: Callable[[int], Awaitable[None]] | None = None,
        claim: Claim | None = None,
    ) -> AsyncIterator[None]:
        """Wait for a slot here and, with `claim`, for the store to grant one too."""
        async with self._changed:
            self._waiting.append((job_id, user))
            told = False
            try:
                while not (self._fits(job_id, user) and (claim is None or await claim())):
                    if not told and on_wait is not None:
                        told = True
                        await on_wait(self.position(job_id) or 1)
                    await self._wait_for_change(poll=claim is not None)
            finally:
                self._waiting.remove((job_id, user))
            self._running[user] += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            async with self._changed:
                self._running[user] -= 1
                self._changed.notify_all()

    async def _wait_for_change(self, *, poll: bool) -> None:
        """Until a local slot frees; when the store has a say, at most about `poll_s`."""
        if not poll:
            await self._changed.wait()
            return
        try:
            async with asyncio.timeout(self._poll_s * random.uniform(0.5, 1.5)):
                await self._changed.wait()
        except TimeoutError:
            return

    def _fits(self, job_id: str, user: str) -> bool:
        if sum(self._running.values()) >= self._total or self._running[user] >= self._per_user:
            return False
        first_of_user = next(j for j, u in self._waiting if u == user)
        return first_of_user == job_id
