"""Slack fixtures for every folder (loaded by tests/conftest.py): a fake workspace with the usual
channel and members, and the real adapter and core on it. tests/slack/ calls them `fake`, `bot`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import marked_sections
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import SlackBot, populate, running_bot


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        populate(slack)
        yield slack


@pytest.fixture
async def slack_bot(
    request: pytest.FixtureRequest, tmp_path: Path, runpod_fake: FakeRunpod, slack_fake: FakeSlack
) -> AsyncIterator[SlackBot]:
    """The adapter on `slack_fake`; `@pytest.mark.bot_settings(...)` adds settings sections."""
    sections = marked_sections(request, tmp_path)
    async with running_bot(tmp_path, runpod_fake, slack_fake, **sections) as running:
        yield running
