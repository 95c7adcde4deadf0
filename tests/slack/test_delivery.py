"""A paid result reaches the member in Slack even while Slack refuses to edit the card."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.jobs.invocation import Community
from tests.slack.support import CHANNEL, SlackBot, button_value

FLUX = "black-forest-labs-flux-1-schnell"
pytestmark = pytest.mark.bot_settings(
    jobs={"progress_interval_s": 60},
    delivery={"retry_first_s": 0.01, "retry_max_s": 0.05, "attempt_timeout_s": 2},
)


async def test_chat_update_failing_after_the_charge_still_shows_the_result(bot: SlackBot) -> None:
    bot.runpod.endpoints[FLUX].execution_time = 0.3  # long enough to see the progress card
    await bot.command("/imagine", "a cat --size 256x256")
    (card,) = await bot.wait(bot.cards)  # the card is up, showing progress
    bot.fake.outage("chat.update", 503)  # from here Slack answers 5xx to every edit

    (result,) = await bot.wait(bot.finished_cards)
    job_id = button_value(result, "job_reroll")
    await bot.idle()
    job = await bot.core.jobs.job(job_id, Community("slack", bot.fake.team_id))
    bot.fake.end_outage("chat.update")

    assert result.ts != card.ts and result.thread_ts == card.ts  # a new message in its thread
    (upload,) = bot.fake.uploads
    assert (upload.channel_id, upload.thread_ts) == (CHANNEL, card.ts)
    assert Image.open(io.BytesIO(upload.data)).size == (256, 256)
    assert job is not None and job.state == "delivered" and job.error is None
    assert [c.error for c in bot.fake.calls_to("chat.update")][-1] == "internal_error"
