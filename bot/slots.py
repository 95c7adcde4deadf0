"""Concurrency caps: at most N jobs per user and M in all run at once; the rest wait in order.

A user's jobs start in the order they were asked for, and each waiting job knows its place in
that user's queue, which the progress line shows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager


class Slots:
    def __init__(self, *, per_user: int, total: int) -> None:
        self._per_user = per_user
        self._total = total
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
        self, job_id: str, user: str, *, on_wait: Callable[[int], Awaitable[None]] | None = None
    ) -> AsyncIterator[None]:
        async with self._changed:
            self._waiting.append((job_id, user))
            try:
                if not self._fits(job_id, user) and on_wait is not None:
                    await on_wait(self.position(job_id) or 1)
                await self._changed.wait_for(lambda: self._fits(job_id, user))
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

    def _fits(self, job_id: str, user: str) -> bool:
        if sum(self._running.values()) >= self._total or self._running[user] >= self._per_user:
            return False
        first_of_user = next(j for j, u in self._waiting if u == user)
        return first_of_user == job_id
