"""In this folder `fake` is the fake Slack and `bot` the adapter on it (tests/slack/fixtures.py)."""

from __future__ import annotations

import pytest

from tests.fakes.slack import FakeSlack
from tests.slack.support import SlackBot


@pytest.fixture
def fake(slack_fake: FakeSlack) -> FakeSlack:
    return slack_fake


@pytest.fixture
def bot(slack_bot: SlackBot) -> SlackBot:
    return slack_bot
