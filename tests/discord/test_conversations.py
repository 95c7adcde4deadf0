"""Discord conversations over the wire: a reply to an `/ask` answer (or a message in a thread
opened on it) is the next turn, with the earlier turns sent as the chat model's `messages`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter
from bot.ledger.quota import QuotaLimits
from tests.discord.support import discord_settings, job_id_of, member_of, result_of, running_bot
from tests.fakes.discord import FakeDiscord, FakeUser, Message, Upload
from tests.fakes.media import png
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent as spent_and_held

GRANITE = "granite-4-0-h-small"  # a chat model: its input is `messages`
# Each turn is 6 bytes ("turn 1") and each answer 8 ("answer 1"): 14 a turn. Three earlier
# turns and a new one (48) are over this cap; two and a new one (34) fit.
CAP = 40


def answer(inp: dict[str, Any]) -> str:
    """The fake model answers "answer N" to the member's N-th message."""
    return f"answer {inp['messages'][-1]['content'].split()[-1]}"


def sent_messages(runpod: FakeRunpod) -> list[list[dict[str, str]]]:
    runs = [r for r in runpod.requests if r.route == "run" and r.endpoint_id == GRANITE]
    return [r.json["input"]["messages"] for r in runs]


def billed(runpod: FakeRunpod) -> list[Decimal]:
    return [j.cost or Decimal(0) for j in runpod.jobs.values() if j.endpoint_id == GRANITE]


async def spent(bot: DiscordAdapter, fake: FakeDiscord, user: FakeUser) -> Decimal:
    return (await spent_and_held(bot.core, member_of(fake, user)))[0]


async def answered(fake: FakeDiscord, n: int, channel_id: int | None = None) -> Message:
    """The bot's channel message carrying the n-th answer."""

    def found(m: Message) -> bool:
        return f"answer {n}" in m.content and bool(m.embeds) and m.interaction_id is None

    message = await fake.wait_for_message(found, timeout=10)
    assert channel_id is None or message.channel_id == channel_id
    return message


@pytest.mark.usefixtures("moved_clock")
async def test_replies_and_a_thread_continue_the_conversation(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    bob = FakeUser("bob")
    fake.guild.add_member(bob)
    jobs = {"conversation_max_tokens": CAP}
    settings = discord_settings(tmp_path, runpod_fake, fake, jobs=jobs)
    async with running_bot(settings) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"})
        )
        await fake.user_message("turn 2", reply_to=first)  # a reply to the answer
        second = await answered(fake, 2)
        await fake.user_message("turn 3", reply_to=second, user=bob)  # Bob's turn
        await answered(fake, 3)
        thread = await fake.start_thread(first, "foxes")
        await fake.user_message("turn 4", channel_id=thread.id, mention_bot=True)
        fourth = await answered(fake, 4, channel_id=thread.id)
        await bot.core.jobs.wait_idle(10)
        sent = sent_messages(runpod_fake)
        alice, bobs = await spent(bot, fake, fake.user), await spent(bot, fake, bob)

    def turn(n: int) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": f"turn {n}"},
            {"role": "assistant", "content": f"answer {n}"},
        ]

    assert sent == [
        [{"role": "user", "content": "turn 1"}],
        [*turn(1), {"role": "user", "content": "turn 2"}],
        [*turn(1), *turn(2), {"role": "user", "content": "turn 3"}],
        [*turn(2), *turn(3), {"role": "user", "content": "turn 4"}],  # turn 1 is over the cap
    ]
    assert fourth.content.startswith(f"<@{fake.user.id}> ")
    costs = billed(runpod_fake)
    assert len(costs) == 4 and all(c > 0 for c in costs)
    assert (alice, bobs) == (costs[0] + costs[1] + costs[3], costs[2])
    assert job_id_of(first) != job_id_of(fourth)


async def test_unreadable_or_unrelated_messages_start_nothing(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """In a thread without a mention Discord withholds the text (no Message Content intent):
    nothing runs. A reply to another member's message is not a turn either."""
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"})
        )
        thread = await fake.start_thread(first)
        await fake.user_message("turn 2", channel_id=thread.id)
        chatter = await fake.user_message("hello all")
        await fake.user_message("turn 3", reply_to=chatter)
        await fake.user_message("--new turn 4", reply_to=first)  # fresh: no history
        await answered(fake, 4)
        await bot.core.jobs.wait_idle(10)
    assert sent_messages(runpod_fake) == [
        [{"role": "user", "content": "turn 1"}],
        [{"role": "user", "content": "turn 4"}],
    ]


async def test_a_turn_over_the_quota_is_refused_in_a_reply(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    settings = discord_settings(tmp_path, runpod_fake, fake)
    async with running_bot(settings) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"})
        )
        await bot.core.ledger.set_limits(
            f"discord:{fake.guild.id}:{fake.user.id}", QuotaLimits(daily_usd=Decimal("0.001"))
        )
        mine = await fake.user_message("turn 2", reply_to=first)
        refusal = await fake.wait_for_message(
            lambda m: m.payload.get("message_reference", {}).get("message_id") == str(mine.id)
        )
        await bot.core.jobs.wait_idle(10)
    assert refusal.content.startswith("Your daily limit is")
    assert "Nothing was charged" in refusal.content and refusal.allowed_mentions is not None
    assert len(sent_messages(runpod_fake)) == 1


async def test_start_fresh_makes_the_next_reply_a_new_conversation(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """The button on an answer closes its conversation: the next reply starts a new one with
    the same model and no history, and the reply after that continues the new one."""
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"})
        )
        await fake.user_message("turn 2", reply_to=first)
        second = await answered(fake, 2)
        click = await fake.click_button(second, f"rpb:fresh:{job_id_of(second)}")
        told = await click.wait_for_message(lambda m: m.ephemeral)
        await fake.user_message("turn 3", reply_to=second)
        third = await answered(fake, 3)
        await fake.user_message("turn 4", reply_to=third)
        await answered(fake, 4)
        await bot.core.jobs.wait_idle(10)
    assert told.ephemeral and "starts a new one" in told.content
    three, four = sent_messages(runpod_fake)[2:]
    assert three == four[:1] == [{"role": "user", "content": "turn 3"}]
    assert [m["content"] for m in four] == ["turn 3", "answer 3", "turn 4"]


async def test_an_image_on_a_turn_is_refused_by_a_text_only_model(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"})
        )
        photo = Upload("cat.png", png(8, 8), "image/png")
        mine = await fake.user_message("what is this?", reply_to=first, attachments=[photo])
        refusal = await fake.wait_for_message(
            lambda m: m.payload.get("message_reference", {}).get("message_id") == str(mine.id)
        )
        await bot.core.jobs.wait_idle(10)
    assert "reads text only, so it cannot see the attached image" in refusal.content
    assert "Nothing was charged" in refusal.content and len(sent_messages(runpod_fake)) == 1


async def test_start_fresh_is_offered_only_where_replies_continue(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """The bot reads no DMs, so an answer in its DM or a group DM carries no Start fresh; one
    in a server does."""
    runpod_fake.endpoints[GRANITE].reply = answer
    personal = {"enabled": True, "daily_usd": "1.00"}
    settings = discord_settings(
        tmp_path, runpod_fake, fake, discord={"guilds": []}, quotas={"personal": personal}
    )
    async with running_bot(settings):
        options = {"prompt": "turn 1", "model": "granite-4"}
        in_dm = await result_of(await fake.slash_command("ask", options, dm=True))
        group = fake.group_dm().id
        in_group = await fake.slash_command("ask", options, channel_id=group, user_install=True)
        in_group_dm = await result_of(in_group)
        in_server = await result_of(await fake.slash_command("ask", options))
    for private in (in_dm, in_group_dm):
        labels = {b.label for b in private.buttons}
        assert "Reroll" in labels and "Start fresh" not in labels
    assert "Start fresh" in {b.label for b in in_server.buttons}
