"""Buttons: Reroll, Variations, Show request, Cancel and Confirm, before and after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from bot.jobs.invocation import Community
from tests.conftest import API_KEY
from tests.discord.support import (
    discord_settings,
    fields,
    job_id_of,
    member_of,
    reply_to,
    result_of,
    running_bot,
)
from tests.fakes.discord import (
    FakeDiscord,
    FakeUser,
    Message,
    SentInteraction,
)
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent

HOURGLASS = "\N{HOURGLASS WITH FLOWING SAND}"


def stranger(fake: FakeDiscord) -> FakeUser:
    user = FakeUser("stranger")
    fake.guild.add_member(user)
    return user


async def test_reroll_and_show_request_work_after_a_restart(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, fake)
    async with running_bot(settings) as bot:
        first = await result_of(
            await fake.slash_command("imagine", {"prompt": "a fox", "seed": 7, "size": "256x256"})
        )
        await bot.core.jobs.wait_idle(10)
    job = job_id_of(first)

    async with running_bot(settings):  # a new process: new client, new core, the same database
        reroll = await fake.click_button(first, f"rpb:reroll:{job}")
        rerolled = await result_of(reroll)
        request = await fake.click_button(first, f"rpb:request:{job}")
        shown = await reply_to(request)

    assert len(fake.gateway.identifies) == 2
    assert rerolled.id != first.id and rerolled.attachments
    assert fields(rerolled)["Seed"] != "7" and fields(rerolled)["Size"] == "256×256"
    assert job_id_of(rerolled) != job
    assert shown.ephemeral and shown.content.startswith("```")
    assert (
        "curl -X POST" in shown.content and "black-forest-labs-flux-1-schnell/run" in shown.content
    )
    assert '"seed": 7' in shown.content and "$RUNPOD_API_KEY" in shown.content
    assert API_KEY not in shown.content


async def test_variations_make_four_new_images(bot: DiscordAdapter, fake: FakeDiscord) -> None:
    first = await result_of(
        await fake.slash_command("imagine", {"prompt": "a fox", "size": "256x256"})
    )
    click = await fake.click_button(first, f"rpb:vary:{job_id_of(first)}")
    varied = await result_of(click)
    assert len(varied.attachments) == 4 and len(set(fields(varied)["Seed"].split(", "))) == 4
    assert click.user is fake.user and varied.id != first.id


async def running_job(fake: FakeDiscord, runpod_fake: FakeRunpod) -> tuple[Message, str]:
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 30
    sent = await fake.slash_command("imagine", {"prompt": "a slow fox"})
    progress = await sent.original(
        lambda m: "generating" in m.content or "queued at Runpod" in m.content
    )
    return progress, job_id_of(progress)


async def test_only_the_requester_can_cancel_and_nothing_is_charged(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    progress, job = await running_job(fake, runpod_fake)
    assert progress.content.startswith(HOURGLASS)

    refused = await fake.click_button(progress, f"rpb:cancel:{job}", user=stranger(fake))
    no = await reply_to(refused, lambda m: bool(m.content))
    mine = await fake.click_button(progress, f"rpb:cancel:{job}")
    yes = await reply_to(mine, lambda m: bool(m.content))
    slash = next(i for i in fake.interactions.values() if i.type == 2)
    ended = await slash.wait_for_message(lambda m: m.ephemeral, timeout=10)

    assert no.ephemeral and "Only the person who asked (or an admin)" in no.content
    assert yes.ephemeral and yes.content.startswith("Cancelling")
    assert ended.content == "Cancelled. Nothing was charged."
    assert progress.id not in fake.messages  # the public progress message is gone
    assert runpod_fake.count("cancel") == 1
    assert await spent(bot.core, member_of(fake)) == (0, 0)


async def test_an_admin_can_cancel_anyones_job(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    progress, job = await running_job(fake, runpod_fake)
    click = await fake.click_button(progress, f"rpb:cancel:{job}", user=fake.guild.owner)
    assert (await reply_to(click, lambda m: bool(m.content))).content.startswith("Cancelling")
    await bot.core.jobs.wait_idle(10)
    here = Community("discord", str(fake.guild.id))
    assert (await bot.core.jobs.job(job, here)).state == "cancelled"  # type: ignore[union-attr]


@pytest.fixture
async def pricey_bot(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> AsyncIterator[DiscordAdapter]:
    settings = discord_settings(tmp_path, runpod_fake, fake, jobs={"confirm_above_usd": "0.001"})
    async with running_bot(settings) as adapter:
        yield adapter


async def test_an_expensive_job_runs_only_when_its_requester_confirms(
    pricey_bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command("imagine", {"prompt": "a costly fox", "model": "flux-dev"})
    ask = await sent.original(lambda m: bool(m.buttons))
    job = job_id_of(ask)
    assert [b.label for b in ask.buttons] == ["Confirm", "Cancel"]
    assert "is estimated at **$0.02**" in ask.content and "Nothing is held" in ask.content
    assert runpod_fake.count("run") == 0

    refused = await fake.click_button(ask, f"rpb:confirm:{job}", user=stranger(fake))
    assert "Only the person who asked" in (await reply_to(refused)).content
    assert runpod_fake.count("run") == 0

    await fake.click_button(ask, f"rpb:confirm:{job}")
    done = await fake.wait_for_message(lambda m: m.id == ask.id and bool(m.attachments), timeout=10)
    assert done.button(f"rpb:reroll:{job}") and fields(done)["Cost"] == "$0.02"
    assert (await spent(pricey_bot.core, member_of(fake)))[0] == Decimal("0.02097152")


async def test_declining_an_expensive_job_holds_and_charges_nothing(
    pricey_bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command("imagine", {"prompt": "a costly fox", "model": "flux-dev"})
    ask = await sent.original(lambda m: bool(m.buttons))
    await fake.click_button(ask, f"rpb:cancel:{job_id_of(ask)}")
    declined = await fake.wait_for_message(lambda m: m.id == ask.id and not m.buttons)
    assert declined.content == "Cancelled. Nothing was charged."
    assert runpod_fake.count("run") == 0
    assert await spent(pricey_bot.core, member_of(fake)) == (0, 0)


async def test_a_button_for_an_unknown_job_says_so(bot: DiscordAdapter, fake: FakeDiscord) -> None:
    first = await result_of(
        await fake.slash_command("imagine", {"prompt": "a fox", "size": "256x256"})
    )
    async with bot.core.db.transaction() as tx:
        await tx.execute("DELETE FROM jobs WHERE id = ?", (job_id_of(first),))
    click = await fake.click_button(first, f"rpb:request:{job_id_of(first)}")
    reply = await reply_to(click)
    assert reply.ephemeral and "not known to this bot" in reply.content


def everything_shown(fake: FakeDiscord) -> list[str]:
    """Every text any version of any message carried: what the member could have read."""
    return [e.message.content for e in fake.history if e.message.content]


async def answered(click: SentInteraction) -> str:
    """What the clicker was told: the clicked message rewritten, or a reply of its own."""
    callback = await click.response()
    if callback["type"] == 7:  # UPDATE_MESSAGE: the question became the answer
        return str(callback["data"]["content"])
    return (await reply_to(click, lambda m: bool(m.content) and not m.loading)).content


async def settled_outcome(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod, job: str
) -> tuple[str, Decimal, list[str]]:
    """Once the job is done: its committed state, what was charged, and every text shown, with
    the checks that hold whichever click won: the charge is what the job's record says, nothing
    stays held, and "Nothing was charged" is never shown for a job that cost something."""
    await fake.wait_for_message(
        lambda m: bool(m.attachments) or m.content.startswith("Cancelled"), timeout=10
    )
    await bot.core.jobs.wait_idle(10)
    record = await bot.core.jobs.job(job, Community("discord", str(fake.guild.id)))
    assert record is not None
    paid, held = await spent(bot.core, member_of(fake))
    shown = everything_shown(fake)
    assert held == 0 and paid == (record.cost or 0)
    if paid:
        assert not any("nothing was charged" in text.lower() for text in shown), shown
    return record.state, paid, shown


async def test_confirm_then_cancel_at_once_one_wins_and_the_messages_match_the_charge(
    pricey_bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command("imagine", {"prompt": "a costly fox", "model": "flux-dev"})
    ask = await sent.original(lambda m: bool(m.buttons))
    job = job_id_of(ask)
    confirm = await fake.click_button(ask, f"rpb:confirm:{job}")
    await confirm.response()  # the bot is deciding on the confirmation as the Cancel arrives
    cancel = await fake.click_button(ask, f"rpb:cancel:{job}")
    await answered(cancel)

    state, paid, shown = await settled_outcome(pricey_bot, fake, runpod_fake, job)
    if state == "delivered":  # the Confirm won and the job ran before the Cancel could stop it
        assert paid == Decimal("0.02097152") and runpod_fake.count("run") == 1
    else:  # the Cancel won, or stopped the confirmed job before Runpod finished it
        assert state == "cancelled" and paid == 0
        assert any(text.startswith("Cancel") for text in shown), shown


async def test_cancel_then_confirm_at_once_runs_nothing_and_charges_nothing(
    pricey_bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command("imagine", {"prompt": "a costly fox", "model": "flux-dev"})
    ask = await sent.original(lambda m: bool(m.buttons))
    job = job_id_of(ask)
    cancel, confirm = await asyncio.gather(
        fake.click_button(ask, f"rpb:cancel:{job}"), fake.click_button(ask, f"rpb:confirm:{job}")
    )
    await answered(cancel)
    refused = await reply_to(confirm, lambda m: bool(m.content))

    state, spent, shown = await settled_outcome(pricey_bot, fake, runpod_fake, job)
    assert (state, spent, runpod_fake.count("run")) == ("cancelled", 0, 0)
    assert "Cancelled. Nothing was charged." in shown
    assert refused.ephemeral and "cancelled" in refused.content, refused.content
    assert "running" not in refused.content
