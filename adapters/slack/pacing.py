"""A job's card is edited at most once per progress interval, its post and last steps included.

The core sends a job's progress at most once per `jobs.progress_interval_s`, but its first
update comes just after the card was posted, and the "uploading" step just before the result
card: edits a member hardly sees, each a `chat.update` counted against Slack's rate limits. So
a progress edit within the interval since the card was last written waits for the interval's
end, and a newer one replaces it; the job's final write (its result card, or its end) drops an
edit that waits, and is never delayed itself.
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
    """The cards of a `SlackDelivery`'s jobs; waiting edits run in `tasks`, which the adapter
    cancels and awaits when it stops."""

    def __init__(self, *, interval_s: float, tasks: TaskSet) -> None:
        self._interval = interval_s
        self._tasks = tasks
        self._written: dict[str, float] = {}  # job id -> when its card was last posted or edited
        self._waiting: dict[str, Edit] = {}  # job id -> the newest edit waiting
        self._sending: dict[str, asyncio.Task[object]] = {}  # job id -> a waited edit being sent

    def wrote(self, job_id: str) -> None:
        self._written[job_id] = time.monotonic()

    async def edit(self, job_id: str, edit: Edit) -> None:
        """Edit now, or when the interval since the last write ends (the newest edit wins)."""
        wait = self._written.get(job_id, -self._interval) + self._interval - time.monotonic()
        if wait <= 0 and job_id not in self._waiting:
            await edit()
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
            await edit()
        except Exception:
            # Like the core's progress edits: one that fails must not fail the job.
            log.warning("job %s: progress edit failed", job_id, exc_info=True)
        finally:
            del self._sending[job_id]


def _key(job_id: str) -> str:
    return f"card-edit:{job_id}"
