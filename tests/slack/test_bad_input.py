"""Bad input that used to get through Slack: out-of-range seeds, huge amounts, empty prompts,
a garbled answer to an auxiliary API call, an unreadable request timestamp.

Each is sent over the wire (signed requests in, FakeSlack and FakeRunpod out) and judged by what
the member sees, what Runpod received and what the ledger holds.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from tests.slack.support import (
    ALICE,
    BOB,
    BOSS,
    SlackBot,
    block_texts,
)

TOP_SEED = 2**31 - 1


async def nothing_ran(bot: SlackBot, user: str = ALICE) -> bool:
    await bot.idle()
    usage = await bot.core.ledger.usage(bot.member(user))
    row = await bot.core.db.fetchone("SELECT COUNT(*) FROM jobs")
    return (
        bot.runpod.count("run") == 0
        and not bot.public()
        and (usage.user[0].spent, usage.user[0].held) == (0, 0)
        and row is not None
        and row[0] == 0
    )


# --- seeds -----------------------------------------------------------------------------------


async def test_the_top_seed_reaches_runpod_as_shown(bot: SlackBot) -> None:
    await bot.command("/imagine", f"a fox --size 256x256 --seed {TOP_SEED}")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.click(card, "job_show")
    (shown,) = await bot.wait(bot.ephemerals)

    (job,) = bot.runpod.jobs.values()
    assert job.input["seed"] == TOP_SEED
    assert f"seed {TOP_SEED}" in block_texts(card)[1]
    assert f'"seed": {TOP_SEED}' in shown.text and f"'seed': {TOP_SEED}" in shown.text


@pytest.mark.parametrize("seed", [2**32, 10**32, -2])
async def test_a_seed_outside_the_range_is_refused_naming_the_range(
    bot: SlackBot, seed: int
) -> None:
    await bot.command("/imagine", f"a fox --seed {seed}")
    (refusal,) = await bot.wait(bot.ephemerals)
    assert "seed must be" in refusal.text and f"from -1 to {TOP_SEED}" in refusal.text
    assert await nothing_ran(bot)


async def test_copies_of_a_seed_near_the_top_are_refused_rather_than_wrapped(
    bot: SlackBot,
) -> None:
    await bot.command("/imagine", f"a fox --size 256x256 --seed {TOP_SEED - 1} --count 4")
    (refusal,) = await bot.wait(bot.ephemerals)
    assert f"at most {TOP_SEED - 3}" in refusal.text and "--count 4" in refusal.text
    assert await nothing_ran(bot)


async def test_copies_up_to_the_top_seed_are_sent_and_shown_as_sent(bot: SlackBot) -> None:
    await bot.command("/imagine", f"a fox --size 256x256 --seed {TOP_SEED - 3} --count 4")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.click(card, "job_show")
    (shown,) = await bot.wait(bot.ephemerals)

    wanted = list(range(TOP_SEED - 3, TOP_SEED + 1))
    assert sorted(job.input["seed"] for job in bot.runpod.jobs.values()) == wanted
    assert f"seeds {', '.join(map(str, wanted))}" in block_texts(card)[1]
    assert f'"seed": {TOP_SEED - 3}' in shown.text
    assert ", ".join(map(str, wanted[1:])) in shown.text


async def test_show_request_gives_the_random_seed_that_was_sent(bot: SlackBot) -> None:
    await bot.command("/imagine", "a fox --size 256x256")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.click(card, "job_show")
    (shown,) = await bot.wait(bot.ephemerals)

    (job,) = bot.runpod.jobs.values()
    assert job.input["seed"] >= 0 and f'"seed": {job.input["seed"]}' in shown.text


# --- prompts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["\u200b\u200b", "\ufeff \u2060", "\u00ad"])
async def test_a_prompt_with_nothing_visible_is_refused(bot: SlackBot, prompt: str) -> None:
    await bot.command("/imagine", prompt)
    (refusal,) = await bot.wait(bot.ephemerals)
    assert "prompt" in refusal.text
    assert await nothing_ran(bot)


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [f"set <@{BOB}|bob> --daily 1e12", f"grant <@{BOB}|bob> 1e12 for everything"],
)
async def test_quota_refuses_an_amount_above_the_maximum(bot: SlackBot, text: str) -> None:
    await bot.command("/quota", text, user=BOSS)
    (refusal,) = await bot.wait(lambda: bot.ephemerals(BOSS))
    assert refusal.text == "Amounts above $100,000.00 are not accepted."
    usage = await bot.core.ledger.usage(bot.member(BOB))
    assert usage.user[0].limit == Decimal("1.00")  # the default daily limit, unchanged
    written = await bot.core.db.fetchone(
        "SELECT (SELECT COUNT(*) FROM grants) + (SELECT COUNT(*) FROM limit_overrides)"
    )
    assert written is not None and written[0] == 0


# --- garbled answers from Slack --------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "text/plain"])
async def test_a_garbled_users_info_answer_means_not_an_admin(
    bot: SlackBot, caplog: pytest.LogCaptureFixture, content_type: str
) -> None:
    bot.fake.garble_next("users.info", content_type=content_type)
    with caplog.at_level(logging.INFO):
        await bot.command("/quota", f"show <@{BOB}|bob>", user=BOSS)
        (refused,) = await bot.wait(lambda: bot.ephemerals(BOSS))
        await bot.idle()
    assert refused.text.startswith("Only workspace admins can see or change quotas.")
    told = [r for r in caplog.records if "users.info" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.WARNING and not told[0].exc_info
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "text/plain"])
async def test_a_garbled_usergroups_answer_means_no_groups(
    bot: SlackBot, caplog: pytest.LogCaptureFixture, content_type: str
) -> None:
    bot.fake.garble_next("usergroups.list", content_type=content_type)
    with caplog.at_level(logging.INFO):
        await bot.command("/imagine", "a fox --size 256x256")
        await bot.wait(bot.finished_cards)
        await bot.idle()
    told = [r for r in caplog.records if "usergroups" in r.getMessage()]
    assert len(told) == 1 and not told[0].exc_info
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bot.runpod.count("run") == 1


# --- request verification --------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["abc", "", "1e9", pytest.param("9" * 5000, id="5000-digits")]
)
async def test_an_unreadable_timestamp_is_refused_without_a_traceback(
    bot: SlackBot, caplog: pytest.LogCaptureFixture, timestamp: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        reply = await bot.command("/imagine", "a fox", timestamp=timestamp)
    assert reply.status == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert await nothing_ran(bot)
