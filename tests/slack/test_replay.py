"""A signed Slack request sent twice runs once.

Slack's signature only proves who sent a request and that it is under 5 minutes old; anyone who
captures one (a logging proxy, a leaked access log) can send the same bytes again within that
window. Each slash command and click carries a `trigger_id` Slack issues once, so the bot runs
one job per (team, trigger_id) and answers the copy with an empty 200, as Slack expects.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp

from tests.fakes.slack_signing import block_actions, slash_command
from tests.slack.support import ALICE, CHANNEL, SlackBot, button_value


async def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


def signed_imagine(bot: SlackBot) -> tuple[bytes, dict[str, str]]:
    """One `/imagine` exactly as Slack signed it: the bytes a replay sends again."""
    payload = slash_command(
        bot.fake, "/imagine", "a fox --size 256x256", user_id=ALICE, channel_id=CHANNEL
    )
    body = urlencode(payload).encode()
    return body, bot.signer.headers(body, content_type="application/x-www-form-urlencoded")


async def charged(bot: SlackBot) -> Decimal:
    usage = await bot.core.ledger.usage(bot.member(ALICE))
    return usage.user[0].spent


async def test_the_same_imagine_sent_again_later_runs_once(bot: SlackBot) -> None:
    body, headers = signed_imagine(bot)
    assert await send(bot.url, body, headers) == (200, "")
    await bot.wait(bot.finished_cards)
    await bot.idle()
    assert await send(bot.url, body, headers) == (200, "")
    await bot.idle()
    assert bot.runpod.count("run") == 1 and len(bot.finished_cards()) == 1
    (job,) = bot.runpod.jobs.values()
    assert await charged(bot) == job.cost
    assert bot.ephemerals() == []


async def test_the_same_imagine_sent_twice_at_once_runs_once(bot: SlackBot) -> None:
    body, headers = signed_imagine(bot)
    answers = await asyncio.gather(*(send(bot.url, body, headers) for _ in range(2)))
    assert answers == [(200, ""), (200, "")]
    await bot.wait(bot.finished_cards)
    await bot.idle()
    assert bot.runpod.count("run") == 1 and len(bot.finished_cards()) == 1
    (job,) = bot.runpod.jobs.values()
    assert await charged(bot) == job.cost


async def test_a_new_imagine_with_the_same_text_still_runs(bot: SlackBot) -> None:
    for _ in range(2):
        body, headers = signed_imagine(bot)  # a fresh trigger_id each time, as Slack sends
        assert await send(bot.url, body, headers) == (200, "")
    await bot.wait(lambda: len(bot.finished_cards()) == 2)
    assert bot.runpod.count("run") == 2


async def test_the_same_reroll_click_sent_twice_rerolls_once(bot: SlackBot) -> None:
    await bot.command("/imagine", "a fox --size 256x256")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.idle()
    value = button_value(card, "job_reroll")
    payload = block_actions(bot.fake, card, action_id="job_reroll", value=value, user_id=ALICE)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = bot.signer.headers(body, content_type="application/x-www-form-urlencoded")
    answers = await asyncio.gather(*(send(bot.url, body, headers) for _ in range(2)))
    assert [status for status, _ in answers] == [200, 200]
    await bot.wait(lambda: bot.runpod.count("run") >= 2)
    await bot.idle()
    assert await send(bot.url, body, headers) == (200, "")
    await bot.idle()
    assert bot.runpod.count("run") == 2
