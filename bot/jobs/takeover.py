"""Carrying on jobs this process did not start: after a restart, or a dead worker's.

A job is taken only once its owner's lease has lapsed (or its owner handed it back at
shutdown), in one atomic claim (`JobStore.claim`), so jobs other running processes drive, and
this process's own, are left alone. Each adapter says how to reach its jobs' channels again
(`register`); once a platform is resumed, `recover` keeps taking over its orphaned jobs.
"""

from __future__ import annotations

import logging
import time

from bot.delivery import Delivery, DeliveryFactory
from bot.errors import BotError
from bot.jobs.lifecycle import JobRunner
from bot.jobs.states import CONFIRMATION_TTL_S, WAITING, JobState
from bot.jobs.store import JobRecord, JobStore
from bot.jobs.workers import Worker

log = logging.getLogger(__name__)


class Takeover:
    def __init__(self, *, store: JobStore, runner: JobRunner, worker: Worker) -> None:
        self._store = store
        self._runner = runner
        self._worker = worker
        self._factories: dict[str, DeliveryFactory] = {}
        self._resumed: set[str] = set()  # platforms whose jobs this process may take over

    def register(self, platform: str, factory: DeliveryFactory) -> None:
        self._factories[platform] = factory

    def delivery(self, job: JobRecord) -> Delivery:
        """How to answer in the job's channel, from its platform's registered factory."""
        factory = self._factories.get(job.channel.platform)
        if factory is None:
            raise BotError(f"no adapter for platform {job.channel.platform!r} is running")
        return factory(job.channel)

    async def resume(self, platform: str | None) -> int:
        if platform is not None:
            self._resumed.add(platform)
        await self._expire_confirmations(platform)
        return await self._take_over(platform)

    async def recover(self) -> int:
        taken = 0
        for platform in sorted(self._resumed):
            taken += await self._take_over(platform)
        return taken

    async def lease_lost(self) -> None:
        log.error(
            "worker %s lost its lease; its jobs are left to whoever takes them", self._worker.id
        )
        await self._runner.stop_all()
        await self._worker.join()

    async def _take_over(self, platform: str | None) -> int:
        taken = 0
        for job in await self._store.claim(platform):
            try:
                delivery = self.delivery(job)
            except BotError as exc:
                log.error("job %s cannot be resumed: %s", job.id, exc.message)
                continue
            log.info("job %s taken over in state %s", job.id, job.state)
            self._runner.start(job, delivery, resumed=True)
            taken += 1
        return taken

    async def _expire_confirmations(self, platform: str | None) -> None:
        for job in await self._store.unfinished():
            if platform is not None and job.channel.platform != platform:
                continue
            if job.state in WAITING and time.time() - job.created_at > CONFIRMATION_TTL_S:
                await self._store.transition(
                    job.id, WAITING, JobState.CANCELLED, error="confirmation expired", notified=True
                )
