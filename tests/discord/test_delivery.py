"""Delivery: upload limits, quota refusals, expired tokens, restarts, duplicates and mentions."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

from PIL import Image

from bot.config import Settings
from bot.delivery import ChannelRef, MediaFile, Result
from bot.jobs.invocation import Community
from tests.discord.support import (
    discord_settings,
    fields,
    job_id_of,
    jobs_of,
    member_of,
    no_pings,
    png,
    result_of,
    running_bot,
)
from tests.fakes.discord import (
    FakeDiscord,
    FakeGuild,
    FakeRole,
    FakeUser,
    Message,
    point_discord_py_at,
)
from tests.fakes.discord_gateway import SEND_MESSAGES
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent

SCHNELL = "black-forest-labs-flux-1-schnell"
HOURGLASS = "\N{HOURGLASS WITH FLOWING SAND}"


def channel_result(fake: FakeDiscord) -> Message | None:
    """A result posted as a plain channel message (not through an interaction)."""
    return next((m for m in fake.messages.values() if m.interaction_id is None and m.embeds), None)


async def test_an_image_over_the_upload_limit_is_posted_as_a_smaller_jpeg(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints[SCHNELL].pad_bytes = 400_000
    async with FakeDiscord(guilds=[FakeGuild(upload_limit=150_000)]) as fake:
        with point_discord_py_at(fake):
            async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
                sent = await fake.slash_command("imagine", {"prompt": "a fox", "size": "512x512"})
                done = await result_of(sent)

    (attachment,) = done.attachments
    assert sent.upload_limit == 150_000 and attachment.size <= 150_000
    assert attachment.filename.endswith(".jpg") and attachment.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(attachment.data)).size == (512, 512)
    assert (
        "over this channel's 146 KB upload limit: posted as a smaller JPEG" in fields(done)["Note"]
    )
    assert done.embeds[0]["image"]["url"] == f"attachment://{attachment.filename}"


async def test_a_file_that_cannot_fit_is_linked_instead(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    async with FakeDiscord(guilds=[FakeGuild(upload_limit=600)]) as fake:
        with point_discord_py_at(fake):
            async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
                done = await result_of(
                    await fake.slash_command("imagine", {"prompt": "a fox", "size": "512x512"})
                )

    (job,) = jobs_of(runpod_fake, SCHNELL)
    assert not done.attachments
    assert f"({job.result['image_url']})" in done.embeds[0]["description"]
    assert "linked instead (the link works for 7 days)" in fields(done)["Note"]


async def test_a_quota_refusal_is_ephemeral_charges_nothing_and_calls_no_endpoint(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, fake, quotas={"daily_usd": "0.001"})
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "a fox"})
        refusal = await sent.wait_for_message(lambda m: m.ephemeral)
        assert await spent(bot.core, member_of(fake)) == (0, 0)

    assert refusal.content.startswith("Your daily limit is $0.001; $0.001 is left until")
    assert refusal.content.endswith("Nothing was charged.")
    assert [m for m in sent.messages if not m.ephemeral] == []  # the "thinking" message is gone
    assert runpod_fake.count("run") == 0


async def test_after_the_token_expires_the_result_arrives_as_a_channel_message(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.5
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)):
        sent = await fake.slash_command("imagine", {"prompt": "a fox", "size": "256x256"})
        progress = await sent.original(lambda m: m.content.startswith(HOURGLASS))
        fake.expire_token(sent.token)
        posted = await fake.wait_for_message(
            lambda m: m.interaction_id is None and bool(m.attachments), timeout=10
        )
        tidied = await fake.wait_for_message(lambda m: m.id == progress.id and not m.buttons)

    user = str(fake.user.id)
    job = job_id_of(posted)
    assert posted.content == f"<@{user}> your image is ready."
    assert posted.allowed_mentions == {"parse": [], "users": [fake.user.id]}
    assert posted.nonce == job and posted.channel_id == fake.guild.text_channel.id
    assert posted.button(f"rpb:reroll:{job}") and fields(posted)["Size"] == "256×256"
    assert tidied.content.startswith("\N{WHITE HEAVY CHECK MARK} Finished")
    assert not any(m.attachments for m in sent.messages)


async def test_a_job_resumed_after_a_restart_is_delivered_once_in_the_channel(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 1.0
    settings = discord_settings(tmp_path, runpod_fake, fake)
    async with running_bot(settings):
        sent = await fake.slash_command("imagine", {"prompt": "a patient fox", "size": "256x256"})
        await sent.original(lambda m: "queued at Runpod" in m.content or "generating" in m.content)
    # The bot stopped mid-job; the job is in SQLite with its Runpod id.
    async with running_bot(settings) as bot:
        posted = await fake.wait_for_message(lambda m: channel_result(fake) is m, timeout=10)
        await bot.core.jobs.wait_idle(10)
        paid, held = await spent(bot.core, member_of(fake))

    (job,) = jobs_of(runpod_fake, SCHNELL)
    assert posted.content.startswith(f"<@{fake.user.id}> your image is ready")
    assert posted.attachments and posted.nonce == job_id_of(posted)
    assert [m for m in fake.messages.values() if m.attachments] == [posted]
    assert (paid, held) == (job.cost, 0) and runpod_fake.count("run") == 1


async def test_a_result_shown_just_before_a_crash_is_not_posted_again(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, fake)
    async with running_bot(settings) as bot:
        shown = await result_of(await fake.slash_command("imagine", {"prompt": "a fox"}))
        await bot.core.jobs.wait_idle(10)
        async with bot.core.db.transaction() as tx:  # as if it crashed before recording delivery
            await tx.execute("UPDATE jobs SET state = 'completed', notified = 0")
    async with running_bot(settings) as bot:
        await bot.core.jobs.wait_idle(10)
        here = Community("discord", str(fake.guild.id))
        job = await bot.core.jobs.job(job_id_of(shown), here)

    assert job is not None and job.state == "delivered"
    assert [m.id for m in fake.messages.values()] == [shown.id]
    assert fake.messages[shown.id].buttons == shown.buttons  # untouched


async def test_a_repeated_delivery_after_a_crash_posts_one_message(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    channel = fake.guild.text_channel
    ref = ChannelRef("discord", str(fake.guild.id), str(channel.id), str(fake.user.id))
    result = Result(
        job_id="abc123def456",
        command="imagine",
        model="Flux Schnell",
        model_id="flux-schnell",
        prompt="a fox",
        kind="image",
        files=(MediaFile("abc123def456-1.png", "image/png", png(), 64, 64),),
        seeds=(3,),
        cost=Decimal("0.01"),
    )
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
        await bot.delivery(ref).deliver(result)
        await bot.delivery(ref).deliver(result)  # as after a crash before `delivered` was saved

    posted = [m for m in fake.messages.values() if m.channel_id == channel.id]
    assert len(posted) == 1 and posted[0].nonce == "abc123def456"
    assert [e.action for e in fake.history] == ["create"]


async def test_user_text_never_pings_anyone(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    role, victim = FakeRole("moderators"), FakeUser("victim")
    guild = FakeGuild(roles=[role])
    guild.add_member(victim)
    injection = f"@everyone @here <@&{role.id}> <@{victim.id}> <@!{victim.id}>"
    runpod_fake.endpoints["qwen3-32b-awq"].reply = f"Sure! {injection} hello"
    async with FakeDiscord(guilds=[guild]) as fake:
        with point_discord_py_at(fake):
            async with running_bot(discord_settings(tmp_path, runpod_fake, fake)) as bot:
                image = await result_of(
                    await fake.slash_command("imagine", {"prompt": f"{injection} a cat"})
                )
                answer = await result_of(
                    await fake.slash_command("ask", {"prompt": f"repeat {injection}"})
                )
                late = await fake.slash_command("imagine", {"prompt": f"{injection} a dog"})
                await late.original(lambda m: True)  # its message is up ("thinking...")
                fake.expire_token(late.token)
                posted = await fake.wait_for_message(
                    lambda m: channel_result(fake) is m, timeout=10
                )
                await bot.core.jobs.wait_idle(10)

    assert injection in image.embeds[0]["description"] and "@everyone" in answer.content
    assert posted.content.startswith(f"<@{fake.user.id}>") and "@everyone" in str(posted.embeds)
    spoken = [e.message for e in fake.history if e.message.content]
    assert spoken and all(no_pings(m, except_user=fake.user.id) for m in spoken)
    assert posted.allowed_mentions == {"parse": [], "users": [fake.user.id]}


EDIT = "PATCH /webhooks/{application_id}/{webhook_token}/messages/{message_id}"


def quick_retries(tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord) -> Settings:
    """A bot that offers a refused result again at once, and shows no progress in between."""
    return discord_settings(
        tmp_path,
        runpod_fake,
        fake,
        jobs={"progress_interval_s": 60},
        delivery={"retry_first_s": 0.01, "retry_max_s": 0.05, "attempt_timeout_s": 0.5},
    )


async def test_a_result_edit_answered_502_falls_back_to_a_channel_message(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.3
    settings = quick_retries(tmp_path, runpod_fake, fake)
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "a fox", "size": "256x256"})
        await sent.original(lambda m: m.loading)  # "thinking...": no progress shown in 60 s
        fake.outage(EDIT, 502)  # Discord answers 502 to the interaction's edits from here on
        posted = await fake.wait_for_message(lambda m: channel_result(fake) is m, timeout=10)
        await bot.core.jobs.wait_idle(10)
        job = await bot.core.jobs.job(job_id_of(posted), Community("discord", str(fake.guild.id)))
        paid, held = await spent(bot.core, member_of(fake))
        fake.end_outage(EDIT)

    (run,) = jobs_of(runpod_fake, SCHNELL)
    assert posted.content == f"<@{fake.user.id}> your image is ready."
    assert posted.attachments and posted.nonce == job_id_of(posted)
    assert job is not None and job.state == "delivered" and job.error is None
    assert (paid, held) == (run.cost, 0)
    assert any(r.route == EDIT and r.status == 502 for r in fake.requests)


async def test_when_the_edit_and_the_channel_both_refuse_the_result_arrives_by_dm(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.3
    settings = quick_retries(tmp_path, runpod_fake, fake)
    dm = fake.dm_channel(fake.user)
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "@everyone a fox", "size": "256x256"})
        await sent.original(lambda m: m.loading)  # "thinking...": no progress shown in 60 s
        fake.outage(EDIT, 502)  # the interaction's edits fail...
        fake.guild.everyone_permissions &= ~SEND_MESSAGES  # ...and the channel refuses the bot
        posted = await fake.wait_for_message(lambda m: m.channel_id == dm.id, timeout=10)
        await bot.core.jobs.wait_idle(10)
        job = await bot.core.jobs.job(job_id_of(posted), Community("discord", str(fake.guild.id)))
        paid, held = await spent(bot.core, member_of(fake))
        fake.end_outage(EDIT)

    (run,) = jobs_of(runpod_fake, SCHNELL)
    (attachment,) = posted.attachments
    assert Image.open(io.BytesIO(attachment.data)).size == (256, 256)
    assert fields(posted)["Size"] == "256×256" and posted.guild_id is None
    assert no_pings(posted) and "@everyone" in str(posted.embeds)
    assert job is not None and job.state == "delivered" and job.error is None
    assert (paid, held) == (run.cost, 0)
    assert [m for m in fake.messages.values() if m.attachments] == [posted]
    channel_posts = [r for r in fake.requests if r.route == "POST /channels/{channel_id}/messages"]
    assert any(r.status == 403 for r in channel_posts)
    assert [r.status for r in fake.requests if r.route == "POST /users/@me/channels"] == [200]
