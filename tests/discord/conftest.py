"""In this folder `fake` is the fake Discord and `bot` the adapter on it (tests/discord/fixtures.py)."""

from __future__ import annotations

import pytest

from adapters.discord import DiscordAdapter
from tests.fakes.discord import FakeDiscord


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


@pytest.fixture
def bot(discord_bot: DiscordAdapter) -> DiscordAdapter:
    return discord_bot
