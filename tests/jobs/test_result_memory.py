"""Paid results wait for delivery on disk (the spool), not in the bot's memory.

With 1,000 jobs of 2 MB results in flight the bot reached 2 GB (`bench.many_jobs --media-kb
2048`): every result was kept in memory from its download until the platform took it, and a
platform outage keeps results waiting for minutes.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import open_core
from tests.conftest import make_settings
from tests.fakes.delivery import RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.identities import member
from tests.jobs.support import submit

SCHNELL = "black-forest-labs-flux-1-schnell"
JOBS = 24
RESULT_BYTES = 1_000_000
ROUTES = 4  # a refused offer is tried on edit, message, DM and link before its wait


@pytest.fixture
def traced() -> Iterator[None]:
    # Six frames reach the bot's code from a spool read in a worker thread (four do) and from a
    # download (one does): each found a leak put there to check. Thirty frames made this test
    # take 30 s on a quiet 2-core machine and over pytest's 120 s on a loaded one.
    tracemalloc.start(6)
    yield
    tracemalloc.stop()


def held_by_the_bot() -> int:
    """Bytes allocated from the bot's own code that are still alive (the fakes' are not)."""
    gc.collect()  # refusals leave tracebacks in reference cycles: count only what is kept
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/bot/*", all_frames=True)]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_results_waiting_through_a_platform_outage_are_not_held_in_memory(
    tmp_path: Path, runpod_fake: FakeRunpod, traced: None
) -> None:
    runpod_fake.endpoints[SCHNELL].pad_bytes = RESULT_BYTES
    settings = make_settings(
        tmp_path,
        runpod_fake,
        jobs={"max_per_user": 2, "max_global": JOBS},
        # The first offer is refused on every route; the next comes long after the check.
        delivery={"retry_first_s": 30.0, "retry_max_s": 30.0},
    )
    async with open_core(settings) as core:
        deliveries = []
        for n in range(JOBS):
            delivery = RecordingDelivery(fail_deliveries=ROUTES)
            who = member(f"user{n // 2}")
            await submit(core, f"fox {n} --size 256x256", who=who, delivery=delivery)
            deliveries.append(delivery)
        for delivery in deliveries:
            await delivery.wait_for(lambda d=delivery: len(d.refused) == ROUTES, timeout=120)
        held = held_by_the_bot()

    assert all(not d.results for d in deliveries)
    # Before: every refused result stayed in memory until its next offer (26 MB here; after,
    # well under 1 MB: the margin is for an offer still unwinding when this looks).
    assert held < JOBS * RESULT_BYTES / 3, f"{held / 1e6:.1f} MB of results held in memory"
    spooled = sorted(settings.storage.spool_dir.rglob("*.png"))
    assert len(spooled) == JOBS and all(p.stat().st_size > RESULT_BYTES for p in spooled)
