"""`resume()` carries on jobs a previous process left; the jobs this process started are its own.

An adapter calls `resume` once it can post, but it may have accepted commands before then:
discord.py dispatches interactions before `on_ready` (which waits `guild_ready_timeout` for the
guilds), and Slack's HTTP listener is up before the adapter resumes. Found by bench/adapters.py,
where the Discord warm-up job was "resumed" while its own task was still running it.
"""

from __future__ import annotations

import pytest

from bot.app import Core
from bot.jobs.store import JobRecord
from tests.fakes.delivery import DeliveryHub
from tests.fakes.runpod import FakeRunpod
from tests.identities import HERE
from tests.jobs.support import submit

FLUX = "black-forest-labs-flux-1-schnell"


async def test_resume_leaves_a_job_this_process_is_running_to_its_own_task(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[FLUX].execution_time = 0.3
    hub = DeliveryHub()
    core.jobs.register_platform("test", hub)
    _, delivery = await submit(core, "a fox --size 256x256")
    assert await core.jobs.resume("test") == 0
    await core.jobs.wait_idle(10)
    assert len(delivery.results) == 1 and not hub.by_channel
    assert runpod_fake.count("run") == 1


async def test_a_job_that_finishes_while_resume_reads_the_table_is_not_driven_again(
    core: Core, runpod_fake: FakeRunpod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made certain: the table is read while the job is still being submitted, and
    the job is delivered before `resume` goes through the rows it read. Before the fix the
    stale row ("submitting") was driven again: the delivered, charged job was marked failed and
    its user told that nothing was charged and to run the command again."""
    runpod_fake.endpoints[FLUX].execution_time = 0.3
    hub = DeliveryHub()
    core.jobs.register_platform("test", hub)
    read = core.jobs._store.unfinished

    async def read_then_let_the_job_finish() -> list[JobRecord]:
        rows = await read()
        await core.jobs.wait_idle(10)
        return rows

    monkeypatch.setattr(core.jobs._store, "unfinished", read_then_let_the_job_finish)
    submitted, delivery = await submit(core, "a fox --size 256x256")
    await core.jobs.resume("test")
    await core.jobs.wait_idle(10)
    assert len(delivery.results) == 1 and not hub.by_channel
    record = await core.jobs.job(submitted.job_id, HERE)
    assert record is not None and record.state == "delivered"
    assert runpod_fake.count("run") == 1
