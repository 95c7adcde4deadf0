"""A job's message is edited at most once per progress interval, its first write included.

The core sends a job's progress at most once per `jobs.progress_interval_s`, but its first
update comes just after the job's message appeared (Slack's card posted, Discord's interaction
deferred), and Slack's "uploading" step just before the result: edits a member hardly sees, each
a request counted against the platform's rate limits and costing the bot CPU. So a progress edit
within the interval since the message was last written waits for the interval's end, and a newer
one replaces it; the job's final write (its result, or its end) drops an edit that waits, and is
never delayed itself. A job that runs longer still shows its progress every interval.

A job's first edit, coming right after its message was written, waits a whole interval from
when the core sent it, which is when the core's next update is due: that update then replaces
the waiting one, so what shows is current, not the state of an interval ago.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.tasks import TaskSet

log = logging.getLogger(__name__)

Edit = Callable[[], Awaitable[object]]


class CardPacer:
    """The messages of one Delivery's jobs; waiting edits run in `tasks`, which the adapter
    cancels and awaits when it stops. `opened`: the message was written just now, before its
    job was known (Discord's deferred response), and counts as each job's first write."""

    def __init__(self, *, interval_s: float, tasks: TaskSet, opened: bool = False) -> None:
        self._interval = interval_s
        self._tasks = tasks
        self._opened = time.monotonic() if opened else None
        self._edited: set[str] = set()  # jobs whose first edit came
        self._written: dict[str, float] = {}  # job id -> when its message was last written
        self._waiting: dict[str, Edit] = {}  # job id -> the newest edit waiting
        self._sending: dict[str, asyncio.Task[object]] = {}  # job id -> a waited edit being sent

    def wrote(self, job_id: str) -> None:
        self._written[job_id] = time.monotonic()

    async def edit(self, job_id: str, edit: Edit) -> None:
        """Edit now, or when the interval since the last write ends (the newest edit wins)."""
        sending = self._sending.get(job_id)
        if sending is not None:  # a waited edit being sent lands first
            await asyncio.wait({sending})
        now = time.monotonic()
        written = self._written.get(job_id, self._opened)
        if written is not None and job_id not in self._edited and now - written < self._interval:
            written = self._written[job_id] = now  # the first edit: see the module's docstring
        self._edited.add(job_id)
        wait = -1.0 if written is None else written + self._interval - now
        if wait <= 0 and job_id not in self._waiting:
            await self._send(job_id, edit)
            return
        if job_id not in self._waiting:
            self._tasks.spawn(self._later(job_id, wait), name=f"card-{job_id}", key=_key(job_id))
        self._waiting[job_id] = edit

    async def final(self, job_id: str) -> None:
        """Before the job's last write: drop the edit waiting, let one being sent land first."""
        self._waiting.pop(job_id, None)
        sending = self._sending.get(job_id)
        sleeping = self._tasks.get(_key(job_id))
        if sleeping is not None and sleeping is not sending:
            sleeping.cancel()
        if sending is not None:
            await asyncio.shield(sending)

    async def _later(self, job_id: str, wait: float) -> None:
        await asyncio.sleep(wait)
        edit = self._waiting.pop(job_id, None)
        task = asyncio.current_task()
        if edit is None or task is None:
            return
        self._sending[job_id] = task
        try:
            await self._send(job_id, edit)
        except Exception:
            # Like the core's progress edits: one that fails must not fail the job.
            log.warning("job %s: progress edit failed", job_id, exc_info=True)
        finally:
            del self._sending[job_id]

    async def _send(self, job_id: str, edit: Edit) -> None:
        await edit()
        self.wrote(job_id)


def _key(job_id: str) -> str:
    return f"card-edit:{job_id}"
