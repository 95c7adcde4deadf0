"""`/health/live` and `/health/ready`: readiness flips with the database and the adapters."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.discord import DiscordAdapter
from bot.app import Core
from bot.listener import Listener
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import populate
from tests.slack.support import running_bot as running_slack_bot

Body = dict[str, Any]


@pytest.fixture
async def health(discord_bot: DiscordAdapter) -> AsyncIterator[httpx.AsyncClient]:
    core = discord_bot.core
    listener = Listener(core.jobs, host="127.0.0.1", port=0, ready=core.not_ready)
    await listener.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}") as client:
            yield client
    finally:
        await listener.stop()


async def ready(client: httpx.AsyncClient) -> tuple[int, Body]:
    response = await client.get("/health/ready", timeout=10)
    return response.status_code, response.json()


async def until_ready(
    client: httpx.AsyncClient, want: Callable[[int, Body], bool], timeout: float = 20.0
) -> tuple[int, Body]:
    """Ask /health/ready until its answer is the one wanted (each answer is a fresh check)."""
    async with asyncio.timeout(timeout):
        while True:
            status, body = await ready(client)
            if want(status, body):
                return status, body
            await asyncio.sleep(0.05)


async def test_live_and_ready_when_everything_is_up(health: httpx.AsyncClient) -> None:
    assert (await health.get("/health/live")).status_code == 200
    assert (await health.get("/health")).json() == {"ok": True}
    assert await ready(health) == (200, {"ready": True})


async def test_a_read_only_database_is_not_ready_and_back(
    health: httpx.AsyncClient, discord_bot: DiscordAdapter
) -> None:
    # SQLite's own read-only state on the bot's two writing connections (the loop's and the
    # writer thread's): what a file on a read-only mount gives (SQLITE_READONLY). Tests run as
    # root, so file modes cannot produce it.
    db = discord_bot.core.db
    writer = db._writer
    await writer.execute("PRAGMA query_only = ON")
    db._here.execute("PRAGMA query_only = ON")
    status, body = await ready(health)
    assert status == 503
    assert body["ready"] is False
    assert "readonly" in body["not_ready"]["database"]
    assert set(body["not_ready"]) == {"database"}
    await writer.execute("PRAGMA query_only = OFF")
    db._here.execute("PRAGMA query_only = OFF")
    assert await ready(health) == (200, {"ready": True})


async def test_a_database_locked_by_another_process_is_not_ready_and_back(
    health: httpx.AsyncClient, discord_bot: DiscordAdapter
) -> None:
    other = sqlite3.connect(discord_bot.core.db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        status, body = await ready(health)
        assert status == 503
        assert "no write lock" in body["not_ready"]["database"]
        other.execute("COMMIT")
    finally:
        other.close()
    await until_ready(health, lambda status, _: status == 200)


async def test_a_dropped_gateway_is_not_ready_until_it_reconnects(
    health: httpx.AsyncClient, discord_fake: FakeDiscord
) -> None:
    discord_fake.gateway.refusing = True
    await discord_fake.gateway.close()
    _, body = await until_ready(health, lambda status, _: status == 503)
    assert body["not_ready"] == {"adapter:discord": "gateway connection lost; reconnecting"}
    discord_fake.gateway.refusing = False
    assert await until_ready(health, lambda status, _: status == 200) == (200, {"ready": True})


async def test_runpod_unreachable_is_not_ready(
    health: httpx.AsyncClient, discord_bot: DiscordAdapter, runpod_fake: FakeRunpod
) -> None:
    discord_bot.core.runpod.last_answer_at = (
        None  # as after a quiet spell: readiness asks Runpod now
    )
    runpod_fake.fail_next("health", 503, count=1)
    status, body = await ready(health)
    assert status == 503
    assert body["not_ready"]["runpod"].startswith("no answer in the last 5 min")
    assert await ready(health) == (200, {"ready": True})


async def test_a_lost_socket_mode_connection_is_not_ready_until_it_reconnects(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    """Slack's SDK reconnects Socket Mode by itself; readiness asks it on every check."""

    async def adapters_not_ready(core: Core) -> dict[str, str]:
        return {k: v for k, v in (await core.not_ready()).items() if k.startswith("adapter:")}

    async def until(core: Core, want: dict[str, str]) -> None:
        """Ask again (each ask is a fresh check) until the adapters' part is `want`."""
        async with asyncio.timeout(30):
            while True:
                if await adapters_not_ready(core) == want:
                    return
                await asyncio.sleep(0.05)

    async with FakeSlack() as slack:
        populate(slack)
        async with running_slack_bot(tmp_path, runpod_fake, slack, socket=True) as bot:
            await until(bot.core, {})
            slack.outage("apps.connections.open", 503)  # it cannot get a new connection yet
            await slack.socket_close_all()
            await until(bot.core, {"adapter:slack": "Socket Mode connection lost; reconnecting"})
            slack.end_outage("apps.connections.open")
            await until(bot.core, {})
            assert slack.socket_connections == 1
