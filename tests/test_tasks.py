"""Owned background tasks (bot/tasks.py): a failure is logged when it happens, not lost; stopping
waits for every task; a keyed task is found while it runs and forgotten once it ended."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.tasks import TaskSet


async def test_a_failing_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet()

    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.tasks"):
        tasks.spawn(broken(), name="job-abc")
        await asyncio.wait_for(tasks.idle(), 5)
    (record,) = [r for r in caplog.records if r.name == "bot.tasks"]
    assert "job-abc" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


async def test_cancel_all_waits_for_each_task_to_end() -> None:
    tasks = TaskSet()
    cleaned_up = asyncio.Event()
    started = asyncio.Event()

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            cleaned_up.set()

    tasks.spawn(long_running(), name="long")
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(tasks.cancel_all(), 5)
    assert cleaned_up.is_set()
    await asyncio.wait_for(tasks.idle(), 5)


async def test_a_keyed_task_is_found_while_it_runs_and_forgotten_after() -> None:
    tasks = TaskSet()
    release = asyncio.Event()

    async def wait_for_release() -> None:
        await release.wait()

    tasks.spawn(wait_for_release(), name="job-1", key="1")
    assert tasks.keys() == {"1"} and tasks.get("1") is not None
    release.set()
    await asyncio.wait_for(tasks.idle(), 5)
    assert tasks.keys() == set() and tasks.get("1") is None
