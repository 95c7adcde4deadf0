"""What every stage of a job's life shares: the store as this worker may write it, and counts.

The stages (`bot.jobs.lifecycle` runs a job, `bot.jobs.settling` charges or releases it, `bot.jobs.handover`
tells the member) write through `patient`, so a store gone away pauses a job instead of
losing it (bot/storage/outage.py), and check `still_mine` before anything leaves the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.jobs.allowance import Allowance
from bot.jobs.states import JobState
from bot.jobs.store import JobRecord, JobStore
from bot.jobs.workers import Worker
from bot.ledger.service import SqliteLedger
from bot.metrics import Metrics
from bot.storage.sql import Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class JobContext:
    store: JobStore
    db: Store
    ledger: SqliteLedger
    worker: Worker
    metrics: Metrics
    # Jobs whose result bytes may be in memory at once (bot/jobs/lifecycle.py: RESULTS_IN_MEMORY).
    in_memory: asyncio.Semaphore
    outage_s: float
    # Results kept in memory from download to their first offer (bot/jobs/allowance.py).
    kept: Allowance

    async def patient(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a store operation, waiting out an outage of up to `storage.outage_s`."""
        return await self.worker.outage.outlast(op, deadline_s=self.outage_s)

    async def save(self, job: JobRecord, **changes: Any) -> JobRecord:
        """`JobStore.save` on its own transaction (fenced), waiting out an outage."""
        return await self.patient(lambda: self.store.save(job, **changes))

    def count(self, job: JobRecord, state: JobState) -> None:
        self.metrics.job_state(
            state, command=job.command, model=job.model, platform=job.member.platform
        )

    async def still_mine(self, job: JobRecord) -> None:
        """Before a message leaves for good: the lease holds here and the job is still ours."""
        await self.worker.lease_confirmed()
        await self.patient(lambda: self.store.affirm(job.id))


@contextlib.contextmanager
def logged(job_id: str, what: str) -> Iterator[None]:
    """Best effort on a path that must go on (a cancel, a failure already logged): a further
    error is logged with its traceback, never raised and never silent."""
    try:
        yield
    except Exception:
        log.exception("job %s: %s failed", job_id, what)
