"""slack_sdk and Bolt decide whether to build a debug line from their logger's own level, not
the level in effect: with loggers left at NOTSET, every Web API call formatted its request and
Slack's whole answer for nothing. The adapter gives them the level in effect when it starts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import running_bot


async def test_slack_sdk_and_bolt_build_no_debug_lines_when_logging_is_at_info(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        assert bot.adapter.context is not None
        client = bot.adapter.context.client
    # what slack_sdk (web/async_internal_utils.py) and Bolt (app/async_app.py) test
    assert client.logger.level > logging.DEBUG
    assert logging.getLogger("slack_bolt").level > logging.DEBUG
