"""Progress throttling: a slow platform never holds a job up, the newest update wins, and no
progress edit can land after the job's final message."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.delivery import Progress
from bot.jobs.progress import ProgressThrottle


def update(n: int) -> Progress:
    return Progress("job1", "Flux", "IN_PROGRESS", float(n))


class Sent:
    """What reached the platform, with a condition to wait on instead of sleeping."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.times: list[float] = []
        self.changed = asyncio.Condition()

    async def add(self, progress: Progress) -> None:
        async with self.changed:
            self.values.append(progress.elapsed_s)
            self.times.append(asyncio.get_running_loop().time())
            self.changed.notify_all()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(2), self.changed:
            await self.changed.wait_for(lambda: len(self.values) >= count)


async def test_a_slow_edit_does_not_block_the_job_and_the_newest_update_wins() -> None:
    release = asyncio.Event()
    sent = Sent()

    async def send(progress: Progress) -> None:
        await release.wait()
        await sent.add(progress)

    throttle = ProgressThrottle(send, interval_s=0)
    await asyncio.wait_for(throttle.push(update(1)), 0.5)  # the platform is stuck
    for n in (2, 3, 4):
        await asyncio.wait_for(throttle.push(update(n)), 0.5)
    release.set()
    await sent.until(2)
    assert sent.values == [1.0, 4.0]
    await throttle.close()


async def test_updates_are_spaced_by_the_interval() -> None:
    sent = Sent()
    throttle = ProgressThrottle(sent.add, interval_s=0.2)
    await throttle.push(update(1))
    await sent.until(1)
    await throttle.push(update(2))
    await sent.until(2)
    assert sent.times[1] - sent.times[0] >= 0.19
    await throttle.close()


async def test_close_waits_for_an_edit_in_flight_and_drops_the_rest() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    sent: list[float] = []

    async def send(progress: Progress) -> None:
        started.set()
        await release.wait()
        sent.append(progress.elapsed_s)

    throttle = ProgressThrottle(send, interval_s=0)
    await throttle.push(update(1))
    await started.wait()
    await throttle.push(update(2))
    closing = asyncio.create_task(throttle.close())
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, 2)
    assert sent == [1.0]


async def test_a_failing_edit_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    tried = asyncio.Event()

    async def send(progress: Progress) -> None:
        tried.set()
        raise ConnectionError("429")

    throttle = ProgressThrottle(send, interval_s=0)
    with caplog.at_level(logging.WARNING, logger="bot.jobs.progress"):
        await throttle.push(update(1))
        await asyncio.wait_for(tried.wait(), 2)
        await throttle.close()
    (record,) = [r for r in caplog.records if r.name == "bot.jobs.progress"]
    assert record.getMessage() == "job job1: progress update failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
