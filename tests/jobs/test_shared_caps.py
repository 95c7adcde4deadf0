"""Concurrency caps across processes: two workers (two cores) on one database (SQLite and
PostgreSQL) count the jobs running at Runpod in the store, so a member's cap and the global cap
hold however many processes take their jobs."""

from __future__ import annotations

import itertools
from pathlib import Path

from bot.app import open_core
from tests.conftest import make_settings
from tests.fakes.runpod import FakeRunpod
from tests.identities import ALICE, BOB
from tests.jobs.support import submit

FLUX = "black-forest-labs-flux-1-schnell"


def one_at_a_time(runpod: FakeRunpod) -> bool:
    """Whether every Runpod job was created only after the one before it had completed."""
    jobs = sorted(runpod.jobs.values(), key=lambda job: job.created)
    return all(
        before.completed is not None and before.completed <= after.created
        for before, after in itertools.pairwise(jobs)
    )


async def test_a_members_cap_holds_across_two_workers(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 0.5
    settings = make_settings(
        tmp_path,
        runpod_fake,
        database=db_place,
        jobs={"max_per_user": 1},
        workers={"heartbeat_s": 0.3, "lease_s": 2},
    )
    async with open_core(settings) as first, open_core(settings) as second:
        _, running = await submit(first, "fox 1 --size 256x256")
        await running.wait_for(lambda: any(u.state == "IN_QUEUE" for u in running.progress_updates))
        _, waiting = await submit(second, "fox 2 --size 256x256")
        for delivery in (running, waiting):
            await delivery.wait_for(lambda d=delivery: d.ended, timeout=15)
            assert len(delivery.results) == 1
        assert [u.position for u in waiting.progress_updates if u.state == "queued"] == [1]
    assert runpod_fake.count("run") == 2
    assert one_at_a_time(runpod_fake)


async def test_the_global_cap_holds_across_two_workers(
    tmp_path: Path, runpod_fake: FakeRunpod, db_place: Path | str
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 0.5
    settings = make_settings(
        tmp_path,
        runpod_fake,
        database=db_place,
        jobs={"max_global": 1},
        workers={"heartbeat_s": 0.3, "lease_s": 2},
    )
    async with open_core(settings) as first, open_core(settings) as second:
        _, alices = await submit(first, "fox --size 256x256", who=ALICE)
        await alices.wait_for(lambda: any(u.state == "IN_QUEUE" for u in alices.progress_updates))
        _, bobs = await submit(second, "owl --size 256x256", who=BOB)
        for delivery in (alices, bobs):
            await delivery.wait_for(lambda d=delivery: d.ended, timeout=15)
            assert len(delivery.results) == 1
    assert runpod_fake.count("run") == 2
    assert one_at_a_time(runpod_fake)
