"""Leases in one process: two workers (two cores) on one database (SQLite and PostgreSQL), the lease made to lapse
in the database as a paused process's would. The fence and the claim are checked directly;
tests/jobs/test_workers.py does the same with real processes and signals."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from bot.app import Core, open_core
from bot.config import Settings
from bot.jobs.invocation import Submitted
from tests.conftest import make_settings
from tests.fakes.delivery import DeliveryHub, RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent, submit
from tests.pg_support import execute

FLUX = "black-forest-labs-flux-1-schnell"
PRICE = Decimal("0.0001572864")  # a 256x256 flux-schnell image


def slow_heartbeat(tmp_path: Path, runpod: FakeRunpod, place: Path | str) -> Settings:
    """Leases that never lapse by themselves during a test: the tests end them."""
    return make_settings(
        tmp_path,
        runpod,
        workers={"heartbeat_s": 600, "lease_s": 1200},
        jobs={"max_per_user": 5},
        storage={"database": str(place), "spool": str(tmp_path / "spool")},
    )


async def at_runpod(core: Core, text: str) -> tuple[Submitted, RecordingDelivery]:
    """Submit a job and wait until it is queued at Runpod."""
    submitted, delivery = await submit(core, text)
    await delivery.wait_for(lambda: any(u.state == "IN_QUEUE" for u in delivery.progress_updates))
    return submitted, delivery


def end_lease(core: Core) -> None:
    """What a pause past the lease looks like from the database: the lease has run out."""
    place = core.settings.storage.database
    execute(place, "UPDATE workers SET expires_at = 0 WHERE id = ?", (core.worker.id,))


async def test_a_worker_whose_job_was_taken_over_neither_delivers_nor_charges_it(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 1.0
    settings = slow_heartbeat(tmp_path, runpod_fake, db_place)
    async with open_core(settings) as first, open_core(settings) as second:
        submitted, lost = await at_runpod(first, "a fox --size 256x256")
        end_lease(first)
        hub = DeliveryHub()
        second.jobs.register_platform("test", hub)
        assert await second.jobs.resume("test") == 1
        await second.jobs.wait_idle(10)
        await first.jobs.wait_idle(10)  # its task found the job gone at its next write
        (result,) = hub.by_channel["c1"].results
        assert result.job_id == submitted.job_id and result.cost == PRICE
        assert not lost.results and not lost.failures
        assert await spent(second) == (PRICE, 0)
    assert runpod_fake.count("run") == 1


async def test_two_workers_resuming_at_once_take_each_job_once(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 0.5
    settings = slow_heartbeat(tmp_path, runpod_fake, db_place)
    async with open_core(settings) as first:
        for n in range(3):
            await at_runpod(first, f"fox {n} --size 256x256")
        end_lease(first)
        async with open_core(settings) as second, open_core(settings) as third:
            hubs = DeliveryHub(), DeliveryHub()
            for core, hub in zip((second, third), hubs, strict=True):
                core.jobs.register_platform("test", hub)
            taken = await asyncio.gather(second.jobs.resume("test"), third.jobs.resume("test"))
            assert sum(taken) == 3
            await asyncio.gather(second.jobs.wait_idle(10), third.jobs.wait_idle(10))
            results = [r for hub in hubs for d in hub.by_channel.values() for r in d.results]
            assert len(results) == 3 and len({r.job_id for r in results}) == 3
            assert await spent(second) == (3 * PRICE, 0)
        await first.jobs.wait_idle(10)
    assert runpod_fake.count("run") == 3


async def test_a_clean_shutdown_hands_its_jobs_over_at_once(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 0.5
    settings = slow_heartbeat(tmp_path, runpod_fake, db_place)
    async with open_core(settings) as staying:
        async with open_core(settings) as leaving:
            await submit(leaving, "a fox --size 256x256")
        hub = DeliveryHub()
        staying.jobs.register_platform("test", hub)
        assert await staying.jobs.resume("test") == 1  # no wait for the 1200 s lease
        await staying.jobs.wait_idle(10)
        assert len(hub.by_channel["c1"].results) == 1
    assert runpod_fake.count("run") == 1
