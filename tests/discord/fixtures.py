"""Discord fixtures for every folder (loaded by tests/conftest.py): a fake Discord that
discord.py talks to, and the real adapter and core on it. tests/discord/ calls them `fake`, `bot`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from tests.conftest import marked_sections
from tests.discord.support import discord_settings, running_bot
from tests.fakes.discord import FakeDiscord, FakeGuild, point_discord_py_at
from tests.fakes.runpod import FakeRunpod


@pytest.fixture
async def discord_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeDiscord]:
    """A fake Discord; parametrize it indirectly with an upload limit (bytes) for a smaller one."""
    upload_limit = getattr(request, "param", None)
    guilds = [FakeGuild(upload_limit=upload_limit)] if upload_limit else None
    async with FakeDiscord(guilds=guilds) as fake:
        with point_discord_py_at(fake):
            yield fake


@pytest.fixture
async def discord_bot(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    discord_fake: FakeDiscord,
) -> AsyncIterator[DiscordAdapter]:
    """The adapter on `discord_fake`; `@pytest.mark.bot_settings(...)` adds settings sections."""
    settings = discord_settings(
        tmp_path, runpod_fake, discord_fake, **marked_sections(request, tmp_path)
    )
    async with running_bot(settings) as adapter:
        yield adapter
