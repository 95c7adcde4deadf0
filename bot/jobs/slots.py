"""Concurrency caps: at most N jobs per user and M in all run at once; the rest wait in order.

A user's jobs start in the order they were asked for, and each waiting job knows its place in
that user's queue, which the progress line shows.

The caps hold across processes sharing a database: a job that fits here also asks the store
(`claim`, e.g. `JobStore.start_running`), which counts the jobs running in every process. When
the store says no, the job waits here, first in its user's line, and asks again when a slot of
this process frees or after `poll_s` (with jitter, so waiting processes don't ask in step).

Only the jobs that could start are woken: the first waiting job of each user with room, when
there is room in all; and only a job that fits here but not in the store polls. Waking every
waiting job on each change (a condition's `notify_all`) and every `poll_s` cost a fifth of the
bot's CPU with thousands of jobs queued (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Claim = Callable[[], Awaitable[bool]]


class Slots:
    def __init__(self, *, per_user: int, total: int, poll_s: float = 1.0) -> None:
        self._per_user = per_user
        self._total = total
        self._poll_s = poll_s
        self._running: Counter[str] = Counter()
        self._running_total = 0
        self._lines: dict[str, deque[str]] = {}  # user key -> waiting job ids, oldest first
        self._wakers: dict[str, asyncio.Event] = {}  # waiting job id -> set when it may fit
        self._starting: set[str] = set()  # first in line, asking the store for its slot

    def position(self, job_id: str) -> int | None:
        """1-based place among the same user's waiting jobs, or None when not waiting. A job
        asking the store for its slot is starting, not waiting: it is not counted ahead."""
        for line in self._lines.values():
            if job_id in line:
                ahead = itertools.takewhile(lambda other: other != job_id, line)
                return 1 + sum(other not in self._starting for other in ahead)
        return None

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
        await self._take(job_id, user, on_wait, claim)
        try:
            yield
        finally:
            self._running[user] -= 1
            self._running_total -= 1
            self._wake_those_that_fit()

    async def _take(
        self,
        job_id: str,
        user: str,
        on_wait: Callable[[int], Awaitable[None]] | None,
        claim: Claim | None,
    ) -> None:
        line = self._lines.setdefault(user, deque())
        line.append(job_id)
        waker = self._wakers[job_id] = asyncio.Event()
        told = False
        try:
            while not (
                self._fits(job_id, user) and (claim is None or await self._ask(job_id, claim))
            ):
                if not told and on_wait is not None:
                    told = True
                    await on_wait(self.position(job_id) or 1)
                waker.clear()
                # Only a job that fits here but not in the store asks it again by itself: any
                # other is woken when it fits here (a slot frees, it comes first in its line).
                await self._wait(waker, poll=claim is not None and self._fits(job_id, user))
        finally:
            line.remove(job_id)
            if not line:
                del self._lines[user]
            del self._wakers[job_id]
            self._wake_those_that_fit()  # the next of this user may be first in line now
        self._running[user] += 1
        self._running_total += 1

    async def _ask(self, job_id: str, claim: Claim) -> bool:
        self._starting.add(job_id)
        try:
            return await claim()
        finally:
            self._starting.discard(job_id)

    async def _wait(self, waker: asyncio.Event, *, poll: bool) -> None:
        """Until woken; when the store has a say, at most about `poll_s`."""
        if not poll:
            await waker.wait()
            return
        try:
            async with asyncio.timeout(self._poll_s * random.uniform(0.5, 1.5)):
                await waker.wait()
        except TimeoutError:
            return

    def _fits(self, job_id: str, user: str) -> bool:
        if self._running_total >= self._total or self._running[user] >= self._per_user:
            return False
        return self._lines[user][0] == job_id

    def _wake_those_that_fit(self) -> None:
        """Wake the first waiting job of each user with room, if there is room in all."""
        if self._running_total >= self._total:
            return
        for user, line in self._lines.items():
            if line and self._running[user] < self._per_user:
                self._wakers[line[0]].set()
