"""The store going away mid-run (issue 12): jobs pause and carry on when it is back.

A real PostgreSQL behind a proxy the test cuts (every connection closed, new ones turned away)
while jobs run at FakeRunpod, which finishes them during the outage. When the proxy is
restored every job is delivered once and charged once, and the ledger matches Runpod's bill.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.app import Core, open_core
from bot.config import Settings
from bot.jobs.service import Submitted
from bot.jobs.workers import DB_NOW
from tests.conftest import make_settings
from tests.fakes.delivery import DeliveryHub, RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent, submit
from tests.jobs.test_workers import until
from tests.pg_support import fresh_schema, query
from tests.storage.tcp_proxy import CuttableProxy

FLUX = "black-forest-labs-flux-1-schnell"
JOBS = 4


class Noticed(logging.Handler):
    """Records bot.storage.outage's lines and wakes a waiter on each."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.changed.set()

    async def wait_for(self, level: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not any(r.levelno == level for r in self.records):
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def noticed() -> AsyncIterator[Noticed]:
    handler = Noticed()
    logger = logging.getLogger("bot.storage.outage")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
async def proxy(postgres_database: str) -> AsyncIterator[tuple[CuttableProxy, str, str]]:
    """The proxy, the DSN through it, and the DSN straight to the server (for the test's reads)."""
    direct = fresh_schema(postgres_database)
    parts = urlsplit(direct)
    async with CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as cuttable:
        netloc = f"{parts.username}@127.0.0.1:{cuttable.port}"
        through = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        yield cuttable, through, direct


async def all_at_runpod(
    core: Core, runpod: FakeRunpod
) -> list[tuple[Submitted, RecordingDelivery]]:
    """Submit the jobs and wait until the bot polls each at Runpod (all are `submitted`)."""
    jobs = await asyncio.gather(*(submit(core, f"fox {n} --size 256x256") for n in range(JOBS)))

    def polled() -> bool:
        asked = {r.job_id for r in runpod.requests if r.route in ("status", "status-sync")}
        return len(runpod.jobs) == JOBS and asked >= set(runpod.jobs)

    await runpod.wait_until(polled, timeout=15)
    return list(jobs)


async def finished_at_runpod_and_fetched(runpod: FakeRunpod) -> None:
    """Every job completed at Runpod and the bot fetched its image (next: charging it)."""

    def fetched() -> bool:
        done = {job_id for job_id, job in runpod.jobs.items() if job.completed is not None}
        taken = {r.job_id for r in runpod.requests if r.route == "media"}
        return len(done) == JOBS and taken >= done

    await runpod.wait_until(fetched, timeout=15)


def outage_settings(
    tmp_path: Path, runpod: FakeRunpod, dsn: str, *, heartbeat_s: float, lease_s: float
) -> Settings:
    """A bot on `dsn` (the proxied database) whose jobs each run a second at Runpod."""
    runpod.endpoints[FLUX].execution_time = 1.0
    workers = {"heartbeat_s": heartbeat_s, "lease_s": lease_s}
    return make_settings(
        tmp_path, runpod, database=dsn, jobs={"max_per_user": JOBS}, workers=workers
    )


async def test_jobs_pause_while_postgresql_is_away_and_finish_once_when_it_is_back(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    proxy: tuple[CuttableProxy, str, str],
    noticed: Noticed,
) -> None:
    cuttable, through, direct = proxy
    settings = outage_settings(tmp_path, runpod_fake, through, heartbeat_s=600, lease_s=1200)
    async with open_core(settings) as core:
        jobs = await all_at_runpod(core, runpod_fake)
        cuttable.cut()
        await finished_at_runpod_and_fetched(runpod_fake)
        await noticed.wait_for(logging.WARNING)
        assert not any(delivery.ended for _, delivery in jobs)  # nothing told from no state
        cuttable.restore()
        await asyncio.wait_for(core.jobs.wait_idle(30), 35)
        assert [len(d.results) for _, d in jobs] == [1] * JOBS
        assert not any(d.failures for _, d in jobs)
        bill = sum((j.cost or Decimal(0) for j in runpod_fake.jobs.values()), Decimal(0))
        assert sum((d.results[0].cost for _, d in jobs), Decimal(0)) == bill
        assert await spent(core) == (bill, 0)
    assert runpod_fake.count("run") == JOBS
    assert query(direct, "SELECT COUNT(*) FROM holds WHERE state = 'held'") == [(0,)]
    assert query(direct, "SELECT COUNT(*) FROM holds WHERE state = 'settled'") == [(JOBS,)]
    assert cuttable.cuts > 0
    levels = [r.levelno for r in noticed.records]
    assert levels == [logging.WARNING, logging.INFO]  # one line each way, however many retries


async def test_a_worker_whose_lease_ran_out_while_the_store_was_away_hands_its_jobs_on(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    proxy: tuple[CuttableProxy, str, str],
    noticed: Noticed,
) -> None:
    """Past the lease, the paused writes are fenced off when the store is back; the worker
    joins anew and takes its old jobs over, so each is still delivered and charged once."""
    cuttable, through, direct = proxy
    settings = outage_settings(tmp_path, runpod_fake, through, heartbeat_s=0.3, lease_s=2)
    async with open_core(settings) as core:
        hub = DeliveryHub()
        core.jobs.register_platform("test", hub)
        await core.jobs.resume("test")
        jobs = await all_at_runpod(core, runpod_fake)
        first_id = core.worker.id
        cuttable.cut()
        await finished_at_runpod_and_fetched(runpod_fake)
        live = f"SELECT COUNT(*) FROM workers WHERE expires_at > {DB_NOW}"
        await until(lambda: query(direct, live) == [(0,)], timeout=10)  # as others see it
        cuttable.restore()
        await until(lambda: core.worker.id != first_id, timeout=10)  # it joined anew
        assert await core.jobs.recover() == JOBS
        await asyncio.wait_for(core.jobs.wait_idle(30), 35)
        results = hub.by_channel["c1"].results
        assert sorted(r.job_id for r in results) == sorted(s.job_id for s, _ in jobs)
        assert not any(d.ended for _, d in jobs)  # the first tasks told no one
        bill = sum((j.cost or Decimal(0) for j in runpod_fake.jobs.values()), Decimal(0))
        assert await spent(core) == (bill, 0)
    assert runpod_fake.count("run") == JOBS
    assert query(direct, "SELECT COUNT(*) FROM holds WHERE state = 'settled'") == [(JOBS,)]
    assert [r.levelno for r in noticed.records] == [logging.WARNING, logging.INFO]


async def test_jobs_wait_while_another_process_holds_the_sqlite_file_locked(
    tmp_path: Path, runpod_fake: FakeRunpod, noticed: Noticed
) -> None:
    """Locked past the 10 s busy timeout, as by a stuck process: the same pause and carry on."""
    database = tmp_path / "bot.db"
    settings = outage_settings(tmp_path, runpod_fake, str(database), heartbeat_s=600, lease_s=1200)
    async with open_core(settings) as core:
        jobs = await all_at_runpod(core, runpod_fake)
        with closing(sqlite3.connect(database, isolation_level=None)) as stuck:
            stuck.execute("BEGIN EXCLUSIVE")
            await finished_at_runpod_and_fetched(runpod_fake)
            await noticed.wait_for(logging.WARNING, timeout=30)
            assert not any(delivery.ended for _, delivery in jobs)
            stuck.execute("ROLLBACK")
        await asyncio.wait_for(core.jobs.wait_idle(30), 35)
        assert [len(d.results) for _, d in jobs] == [1] * JOBS
        bill = sum((j.cost or Decimal(0) for j in runpod_fake.jobs.values()), Decimal(0))
        assert await spent(core) == (bill, 0)
    assert runpod_fake.count("run") == JOBS
    assert [r.levelno for r in noticed.records] == [logging.WARNING, logging.INFO]
