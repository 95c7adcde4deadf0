"""Owned background tasks: kept until they end, their failures logged, cancelled and awaited.

asyncio keeps only a weak reference to a task, so one nobody holds can be collected mid-flight,
and an exception nobody retrieves is reported late or never. Everything in the process that
runs in the background (each job's task, the Slack adapter's handlers, the worker's heartbeat)
is spawned into a `TaskSet` whose owner cancels and awaits it when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[None], str | None] = {}  # each with its key
        self._keyed: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str, key: str | None = None) -> None:
        """Run `work` in the background; `key` finds it again (`get`) while it runs."""
        task = asyncio.create_task(work, name=name)
        self._tasks[task] = key
        if key is not None:
            self._keyed[key] = task
        self._idle.clear()
        task.add_done_callback(self._finished)

    def get(self, key: str) -> asyncio.Task[None] | None:
        return self._keyed.get(key)

    def keys(self) -> set[str]:
        """The keys of the tasks still running."""
        return set(self._keyed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        key = self._tasks.pop(task)
        if key is not None and self._keyed.get(key) is task:
            del self._keyed[key]
        if not self._tasks:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def idle(self) -> None:
        """Until nothing is running (tests, shutdown)."""
        await self._idle.wait()

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has ended; the set can be used again."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
