"""Discord conversations over the wire: a reply to an `/ask` answer (or a message in a thread
opened on it) is the next turn, with the earlier turns sent as the chat model's `messages`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter
from bot.config import QuotaLimits, Settings
from bot.ledger.quota import Identity
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
    """The bot hears its servers and its DM, so answers there carry Start fresh; it is in no
    group DM, so an answer there (a member's own install) does not."""
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(personal_settings(tmp_path, runpod_fake, fake)):
        options = {"prompt": "turn 1", "model": "granite-4"}
        in_dm = await result_of(await fake.slash_command("ask", options, dm=True))
        group = fake.group_dm().id
        in_group = await fake.slash_command("ask", options, channel_id=group, user_install=True)
        in_group_dm = await result_of(in_group)
        in_server = await result_of(await fake.slash_command("ask", options))
    labels = {b.label for b in in_group_dm.buttons}
    assert "Reroll" in labels and "Start fresh" not in labels
    for heard in (in_dm, in_server):
        assert "Start fresh" in {b.label for b in heard.buttons}


def personal_settings(
    tmp_path: Path, runpod: FakeRunpod, fake: FakeDiscord, **sections: dict[str, Any]
) -> Settings:
    """Global commands (a user install needs them) and personal use turned on."""
    personal = {"enabled": True, "daily_usd": "1.00"}
    return discord_settings(
        tmp_path, runpod, fake, discord={"guilds": []}, quotas={"personal": personal}, **sections
    )


@pytest.mark.parametrize("user_install", [False, True], ids=["server-install", "user-install"])
async def test_replies_in_the_bots_dm_continue_on_the_first_turns_pool(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord, user_install: bool
) -> None:
    """A reply to an answer in the member's DM with the bot is the next turn (its text arrives
    without the Message Content intent), charged where the DM's `/ask` was: the shared "dm"
    pool under a server's install, the member's personal pool under their own."""
    runpod_fake.endpoints[GRANITE].reply = answer
    user = str(fake.user.id)
    pools = [Identity("discord", "dm", user), Identity.personal("discord", user)]
    used, other = pools[::-1] if user_install else pools
    dm = fake.dm_channel(fake.user)
    async with running_bot(personal_settings(tmp_path, runpod_fake, fake)) as bot:
        options = {"prompt": "turn 1", "model": "granite-4"}
        sent = await fake.slash_command("ask", options, dm=True, user_install=user_install)
        first = await result_of(sent)
        await fake.user_message("turn 2", reply_to=first)
        second = await answered(fake, 2, channel_id=dm.id)
        await bot.core.jobs.wait_idle(10)
        charged = await spent_and_held(bot.core, used)
        elsewhere = await spent_and_held(bot.core, other)
    assert sent_messages(runpod_fake) == [
        [{"role": "user", "content": "turn 1"}],
        [
            {"role": "user", "content": "turn 1"},
            {"role": "assistant", "content": "answer 1"},
            {"role": "user", "content": "turn 2"},
        ],
    ]
    costs = billed(runpod_fake)
    assert len(costs) == 2 and all(c > 0 for c in costs)
    assert charged == (costs[0] + costs[1], 0) and elsewhere == (0, 0)
    assert "Start fresh" in {b.label for b in second.buttons}


async def test_a_reply_in_a_group_dm_does_nothing(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """The bot is in no group DM, so a reply to its answer there (a member's own install)
    reaches nothing; the same member's reply in the bot's DM, sent after it, still does."""
    runpod_fake.endpoints[GRANITE].reply = answer
    group = fake.group_dm()
    async with running_bot(personal_settings(tmp_path, runpod_fake, fake)) as bot:
        options = {"prompt": "turn 1", "model": "granite-4"}
        asked = await fake.slash_command("ask", options, channel_id=group.id, user_install=True)
        in_group = await result_of(asked)
        await fake.user_message("turn 2", reply_to=in_group)
        in_dm = await result_of(
            await fake.slash_command("ask", {**options, "prompt": "turn 3"}, dm=True)
        )
        await fake.user_message("turn 4", reply_to=in_dm)
        await answered(fake, 4)
        await bot.core.jobs.wait_idle(10)
    assert [m[-1]["content"] for m in sent_messages(runpod_fake)] == ["turn 1", "turn 3", "turn 4"]
    assert [m.id for m in fake.messages.values() if m.channel_id == group.id][-1] != in_group.id


async def test_a_dm_turn_over_the_quota_is_refused_in_the_dm(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    dm_pool = Identity("discord", "dm", str(fake.user.id))
    async with running_bot(personal_settings(tmp_path, runpod_fake, fake)) as bot:
        first = await result_of(
            await fake.slash_command("ask", {"prompt": "turn 1", "model": "granite-4"}, dm=True)
        )
        await bot.core.jobs.wait_idle(10)
        before = await spent_and_held(bot.core, dm_pool)
        await bot.core.ledger.set_limits(dm_pool.user_key, QuotaLimits(daily_usd=Decimal("0.001")))
        mine = await fake.user_message("turn 2", reply_to=first)
        refusal = await fake.wait_for_message(
            lambda m: m.payload.get("message_reference", {}).get("message_id") == str(mine.id)
        )
        await bot.core.jobs.wait_idle(10)
        after = await spent_and_held(bot.core, dm_pool)
    assert refusal.channel_id == first.channel_id == fake.dm_channel(fake.user).id
    assert refusal.content.startswith("Your daily limit is")
    assert "Nothing was charged" in refusal.content
    assert after == before and before[0] > 0 and len(sent_messages(runpod_fake)) == 1


async def test_an_nsfw_model_is_refused_on_a_personal_dm_turn(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    """A turn in the DM under the member's own install is ruled as that install's `/ask` is:
    no NSFW model outside an age-restricted channel."""
    runpod_fake.endpoints[GRANITE].reply = answer
    nsfw = {"qwen3-32b": {"nsfw": True}}
    settings = personal_settings(tmp_path, runpod_fake, fake, models=nsfw)
    async with running_bot(settings) as bot:
        options = {"prompt": "turn 1", "model": "granite-4"}
        sent = await fake.slash_command("ask", options, dm=True, user_install=True)
        first = await result_of(sent)
        mine = await fake.user_message("--model qwen3-32b turn 2", reply_to=first)
        refusal = await fake.wait_for_message(
            lambda m: m.payload.get("message_reference", {}).get("message_id") == str(mine.id)
        )
        await bot.core.jobs.wait_idle(10)
    assert "age-restricted" in refusal.content and "Nothing was charged" in refusal.content
    assert runpod_fake.count("run") == 1
