"""The shared HTTP pool holds every long poll the engine may have in flight, plus room to spare.

Each running copy of a job holds one connection for its long poll. When more copies run than the
pool has connections, httpcore queues the rest, rescanning the queue against every connection on
each request (CPU quadratic in the queue, see docs/benchmarks.md), and a new job's `/run` waits
behind long polls until it times out.
"""

from __future__ import annotations

from pathlib import Path

from bot.app import open_core
from tests.conftest import make_settings
from tests.fakes.runpod import FakeRunpod
from tests.identities import member
from tests.jobs.support import submit

SCHNELL = "black-forest-labs-flux-1-schnell"


async def test_a_new_job_is_sent_at_once_while_220_copies_long_poll(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 3.0
    settings = make_settings(
        tmp_path,
        runpod_fake,
        jobs={"max_global": 100, "max_per_user": 100, "progress_interval_s": 2.0},
        runpod={"request_timeout_s": 1.0, "max_retries": 0},
    )
    async with open_core(settings) as core:
        running = [
            (
                await submit(
                    core, f"a fox, take {i} --count 4 --size 256x256", who=member(f"u{i % 5}")
                )
            )[1]
            for i in range(55)
        ]
        await runpod_fake.wait_until(lambda: runpod_fake.count("status-sync") >= 200, timeout=20)
        _, late = await submit(core, "one more fox --size 256x256", who=member("late"))
        await late.wait_for(lambda: late.ended, timeout=20)
        assert late.results and not late.failures, late.failures
        for delivery in running:
            await delivery.wait_for(lambda d=delivery: d.ended, timeout=20)  # type: ignore[misc]
        assert all(len(d.results) == 1 and not d.failures for d in running)
