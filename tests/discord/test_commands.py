"""Each slash command end to end: real discord.py and the real core against FakeDiscord and
FakeRunpod. Assertions are on what the user sees: the uploaded bytes, the embed, the buttons."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from adapters.discord import DiscordAdapter
from adapters.discord.render import CURSOR
from bot.ledger.quota import Identity
from tests.chart_support import TODAY_BAR, checked_png, shows
from tests.discord.support import (
    discord_settings,
    fields,
    job_id_of,
    jobs_of,
    member_of,
    png,
    result_of,
    running_bot,
)
from tests.fakes.discord import FakeDiscord, Upload
from tests.fakes.discord_components import IS_COMPONENTS_V2
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent

pytestmark = pytest.mark.bot_settings(archive=True)


async def spent_today(bot: DiscordAdapter, fake: FakeDiscord) -> Decimal:
    return (await spent(bot.core, member_of(fake)))[0]


async def test_commands_are_synced_to_the_configured_guild(
    bot: DiscordAdapter, fake: FakeDiscord
) -> None:
    names = {c["name"] for c in fake.commands[fake.guild.id]}
    assert names == {
        "imagine", "edit", "video", "transcribe", "ask", "speak",
        "cost", "models", "usage", "show", "quota", "help", "web",
    }  # fmt: skip
    assert None not in fake.commands  # nothing global when guilds are configured
    (identify,) = fake.gateway.identifies
    # guilds, guild and DM messages: no privileged intent
    assert identify["intents"] == 1 | 1 << 9 | 1 << 12


async def test_imagine_posts_the_png_with_its_embed_and_buttons(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    # longer than a progress interval (0.05 s), so the member sees progress before the result
    runpod_fake.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 0.5
    sent = await fake.slash_command(
        "imagine", {"prompt": "a red fox", "size": "512x512", "seed": 5, "steps": 3}
    )
    assert (await sent.response())["type"] == 5  # deferred at once
    done = await result_of(sent)

    (attachment,) = done.attachments
    image = Image.open(io.BytesIO(attachment.data))
    assert (image.format, image.size) == ("PNG", (512, 512))
    assert attachment.content_type == "image/png" and attachment.description == "a red fox"
    embed = done.embeds[0]
    assert embed["description"] == "a red fox" and embed["author"]["name"] == "Flux Schnell"
    assert embed["image"]["url"] == f"attachment://{attachment.filename}"
    shown = fields(done)
    assert (shown["Seed"], shown["Size"], shown["Cost"]) == ("5", "512×512", "$0.0006")
    assert "left today" in shown["Left"] and shown["Time"].endswith("s")
    job = job_id_of(done)
    assert [(b.label, b.custom_id) for b in done.buttons] == [
        ("Reroll", f"rpb:reroll:{job}"),
        ("Variations", f"rpb:vary:{job}"),
        ("Show request", f"rpb:request:{job}"),
    ]
    assert not done.ephemeral and done.content == "" and done.allowed_mentions == {"parse": []}
    # While it ran, the same message showed progress with a Cancel button.
    progress = [
        v for v in fake.versions(done.id) if v.content.startswith("\N{HOURGLASS WITH FLOWING SAND}")
    ]
    assert progress and progress[0].button(f"rpb:cancel:{job}").label == "Cancel"
    assert (
        jobs_of(runpod_fake, "black-forest-labs-flux-1-schnell")[0].input["num_inference_steps"]
        == 3
    )
    assert await spent_today(bot, fake) == Decimal("0.0006291456")


async def test_imagine_count_and_aspect_ratio_make_a_gallery(
    bot: DiscordAdapter, fake: FakeDiscord
) -> None:
    sent = await fake.slash_command(
        "imagine", {"prompt": "tiny boats", "aspect_ratio": "16:9", "count": 2, "model": "flux-dev"}
    )
    done = await result_of(sent)
    assert len(done.attachments) == 2
    sizes = {Image.open(io.BytesIO(a.data)).size for a in done.attachments}
    assert sizes == {(1344, 768)}
    # several images: a Components V2 card with a media gallery of the uploads, no embed
    assert done.flags & IS_COMPONENTS_V2 and not done.content and not done.embeds
    assert done.gallery == [f"attachment://{a.filename}" for a in done.attachments]
    assert "tiny boats" in done.texts and "Seed " in done.texts[-1]
    assert [b.label for b in done.buttons] == ["Reroll", "Variations", "Show request"]


async def test_edit_sends_the_attached_image_to_the_model(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command(
        "edit",
        {"prompt": "make it night", "model": "qwen-image-edit"},
        attachments={"image": Upload("day.png", png(), "image/png")},
    )
    done = await result_of(sent)
    assert done.attachments[0].content_type.startswith("image/")
    (job,) = jobs_of(runpod_fake, "qwen-image-edit")
    assert job.input["image"].startswith(fake.base_url + "/attachments/")


async def test_edit_refuses_a_file_that_is_not_an_image(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command(
        "edit",
        {"prompt": "make it night"},
        attachments={"image": Upload("notes.txt", b"hello", "text/plain")},
    )
    reply = await sent.wait_for_message()
    assert reply.ephemeral and "attach an image" in reply.content
    assert "Nothing was charged" in reply.content
    assert runpod_fake.count("run") == 0


async def test_video_from_an_image_posts_an_mp4(bot: DiscordAdapter, fake: FakeDiscord) -> None:
    sent = await fake.slash_command(
        "video",
        {"prompt": "the boat sails", "duration": 5},
        attachments={"image": Upload("boat.png", png(), "image/png")},
    )
    done = await result_of(sent)
    assert done.attachments[0].content_type == "video/mp4"
    assert done.attachments[0].data[4:8] == b"ftyp"
    assert fields(done)["Cost"] == "$0.30"


async def test_transcribe_posts_the_text_or_subtitles(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    runpod_fake.endpoints["whisper-v3-large"].segments = True
    as_text = await fake.slash_command(
        "transcribe", attachments={"audio": Upload("talk.wav", b"RIFF....WAVE", "audio/wav")}
    )
    text = await result_of(as_text)
    (job,) = jobs_of(runpod_fake, "whisper-v3-large")
    assert text.content == job.result["transcription"] and not text.attachments

    as_srt = await fake.slash_command(
        "transcribe", {"url": "https://files.example.com/talk.mp3", "output": "srt"}
    )
    subtitles = await result_of(as_srt)
    (srt,) = subtitles.attachments
    assert srt.filename.endswith(".srt") and b"-->" in srt.data


async def test_transcribe_needs_a_recording(bot: DiscordAdapter, fake: FakeDiscord) -> None:
    sent = await fake.slash_command("transcribe")
    reply = await sent.wait_for_message()
    assert reply.ephemeral and "Attach the recording" in reply.content


async def test_ask_streams_the_reply_into_the_message_then_finishes_it(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    endpoint = runpod_fake.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks, endpoint.reply_tokens = 1.0, 4, 40
    sent = await fake.slash_command("ask", {"prompt": "tell me about foxes", "max_tokens": 60})
    done = await result_of(sent)

    (job,) = jobs_of(runpod_fake, "qwen3-32b-awq")
    answer = job.result[0]["choices"][0]["tokens"][0]
    assert done.content == answer
    streamed = [v.content for v in fake.versions(done.id) if v.content.endswith(CURSOR)]
    assert len(streamed) >= 2, "the reply was not shown as it grew"
    assert all(answer.startswith(s.removesuffix(CURSOR)) for s in streamed)
    assert [b.label for b in done.buttons] == ["Reroll", "Show request", "Start fresh"]
    assert "Cost" in fields(done) and done.allowed_mentions == {"parse": []}


async def test_a_long_streamed_reply_grows_into_a_second_message(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    endpoint = runpod_fake.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks, endpoint.reply_tokens = 1.0, 6, 500
    sent = await fake.slash_command("ask", {"prompt": "tell me everything about foxes"})
    last = await result_of(sent)
    first, second = sorted(sent.messages, key=lambda m: m.id)

    (job,) = jobs_of(runpod_fake, "qwen3-32b-awq")
    answer = job.result[0]["choices"][0]["tokens"][0]
    assert second is last and first.content and not first.buttons
    assert "".join((first.content + " " + second.content).split()) == "".join(answer.split())
    assert any(v.content.endswith(CURSOR) for v in fake.versions(second.id))  # streamed too
    assert not any(m.content.endswith(CURSOR) for m in (first, second))


async def test_a_long_reply_is_split_without_breaking_code_fences(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    code = "\n".join(f"print({i}, 'a fairly long line of python code here')" for i in range(90))
    reply = f"Here you go:\n\n```python\n{code}\n```\n\nThat prints ninety lines."

    def output(inp: dict[str, object], url: str) -> object:
        return [{"choices": [{"tokens": [reply]}], "usage": {"input": 5, "output": 900}}]

    runpod_fake.endpoints["qwen3-32b-awq"].output = output
    sent = await fake.slash_command("ask", {"prompt": "print ninety lines"})
    await result_of(sent)
    messages = sorted(sent.messages, key=lambda m: m.id)

    assert len(messages) >= 3
    assert all(len(m.content) <= 2000 and m.content.count("```") % 2 == 0 for m in messages)
    assert messages[1].content.startswith("```python")
    rebuilt = "".join(m.content for m in messages).replace("```python", "").replace("```", "")
    assert "".join(rebuilt.split()) == "".join(
        reply.replace("```python", "").replace("```", "").split()
    )
    assert messages[-1].embeds and messages[-1].buttons and not messages[0].buttons


async def test_speak_posts_the_audio_file(bot: DiscordAdapter, fake: FakeDiscord) -> None:
    sent = await fake.slash_command(
        "speak", {"text": "hello there, friends", "model": "minimax-speech", "voice": "Calm_Woman"}
    )
    done = await result_of(sent)
    (audio,) = done.attachments
    assert audio.content_type == "audio/x-wav" or audio.content_type == "audio/wav"
    assert audio.data[:4] == b"RIFF"


async def test_cost_estimates_without_running_or_charging(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command(
        "cost imagine", {"prompt": "a fox", "model": "flux-dev", "count": 2}
    )
    reply = await sent.wait_for_message()
    assert reply.ephemeral
    shown = fields(reply)
    assert shown["Estimate"] == "$0.04" and shown["Copies"] == "2"
    assert shown["Price"] == "$0.02 per megapixel" and "left today" in shown["Left"]
    assert "nothing was run or charged" in reply.embeds[0]["footer"]["text"]
    assert runpod_fake.count("run") == 0 and await spent_today(bot, fake) == 0


async def test_models_lists_what_this_channel_allows(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    channel = str(fake.guild.text_channel.id)
    policy = {"channels": {channel: {"models": ["flux-schnell", "qwen3-32b"]}}}
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake, policy=policy)):
        sent = await fake.slash_command("models")
        reply = await sent.wait_for_message()
    text = reply.embeds[0]["description"]
    assert reply.ephemeral and "`flux-schnell` Flux Schnell (default)" in text
    assert "`qwen3-32b`" in text and "flux-dev" not in text and "/imagine" in text


@pytest.mark.usefixtures("moved_clock")
async def test_usage_shows_spend_limits_and_recent_jobs(
    bot: DiscordAdapter, fake: FakeDiscord
) -> None:
    done = await result_of(
        await fake.slash_command("imagine", {"prompt": "a fox", "size": "512x512"})
    )
    sent = await fake.slash_command("usage")
    reply = await sent.wait_for_message()
    shown = fields(reply)
    assert reply.ephemeral
    assert shown["Daily"].startswith("$0.0006 of $1.00 spent") and "resets <t:" in shown["Daily"]
    assert job_id_of(done) in shown["Recent jobs"]
    # the chart of this period's spend, shown inside the embed; the text above stays
    assert reply.embeds[0]["image"]["url"] == "attachment://usage.png"
    assert shows(checked_png(reply.attachment("usage.png").data), TODAY_BAR)


async def test_show_reposts_an_archived_result_with_live_buttons(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    first = await result_of(await fake.slash_command("imagine", {"prompt": "a fox"}))
    job = job_id_of(first)
    choices = await (
        await fake.autocomplete("show", {"job_id": job[:4]}, focused="job_id")
    ).choices()
    assert [c["value"] for c in choices] == [job]

    again = await result_of(await fake.slash_command("show", {"job_id": job}))
    assert again.id != first.id
    assert again.attachments[0].data == first.attachments[0].data
    assert again.button(f"rpb:reroll:{job}") and "Posted again" in fields(again)["Note"]
    assert runpod_fake.count("run") == 1


async def test_show_says_when_results_are_not_kept(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    # a spool too small to keep a delivered result: it is removed once delivered
    settings = discord_settings(tmp_path, runpod_fake, fake, storage={"spool_max_mb": 0.001})
    async with running_bot(settings) as bot:
        first = await result_of(await fake.slash_command("imagine", {"prompt": "a fox"}))
        await bot.core.jobs.wait_idle(10)
        sent = await fake.slash_command("show", {"job_id": job_id_of(first)})
        reply = await sent.wait_for_message(lambda m: m.ephemeral)
    assert "not kept by this bot (no archive folder is configured)" in reply.content


async def test_model_autocomplete_offers_only_what_the_channel_allows(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    channel = str(fake.guild.text_channel.id)
    settings = discord_settings(
        tmp_path,
        runpod_fake,
        fake,
        policy={"channels": {channel: {"models": ["flux-dev", "flux-schnell", "p-image-t2i"]}}},
        models={"flux-dev": {"nsfw": True}},
    )
    async with running_bot(settings):
        typed = await fake.autocomplete("imagine", {"prompt": "x", "model": "fl"}, focused="model")
        here = await typed.choices()
        everything = await (
            await fake.autocomplete(
                "imagine", {"model": ""}, focused="model", channel_id=fake.guild.nsfw_channel.id
            )
        ).choices()
        video = await (await fake.autocomplete("video", {"model": ""}, focused="model")).choices()

    assert [c["value"] for c in here] == ["flux-schnell"]  # flux-dev is NSFW: not here
    assert here[0]["name"] == "Flux Schnell · $0.0024 per megapixel"
    values = [c["value"] for c in everything]
    assert "flux-dev" in values and values[0] == "flux-schnell" and len(values) <= 25
    assert video == []  # this channel allows no video model


async def test_nsfw_model_is_refused_outside_age_restricted_channels(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, fake, models={"flux-dev": {"nsfw": True}})
    async with running_bot(settings):
        refused = await fake.slash_command("imagine", {"prompt": "x", "model": "flux-dev"})
        reply = await refused.wait_for_message()
        allowed = await fake.slash_command(
            "imagine",
            {"prompt": "x", "model": "flux-dev", "size": "256x256"},
            channel_id=fake.guild.nsfw_channel.id,
        )
        await result_of(allowed)
    assert reply.ephemeral and "age-restricted channels" in reply.content
    assert "Nothing was charged" in reply.content
    assert (await refused.response())["type"] == 4  # refused before deferring: no public trace
    assert runpod_fake.count("run") == 1


async def test_blocked_terms_and_channel_commands_are_refused(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    channel = str(fake.guild.text_channel.id)
    policy = {"blocked_terms": ["forbidden"], "channels": {channel: {"commands": ["imagine"]}}}
    async with running_bot(discord_settings(tmp_path, runpod_fake, fake, policy=policy)):
        blocked = await (
            await fake.slash_command("imagine", {"prompt": "a Forbidden cat"})
        ).wait_for_message()
        wrong = await (await fake.slash_command("ask", {"prompt": "hello"})).wait_for_message()
    assert "blocked" in blocked.content and blocked.ephemeral
    assert "/ask is not allowed in this channel" in wrong.content and wrong.ephemeral
    assert runpod_fake.count("run") == 0


async def test_dms_follow_the_configured_policy(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    policy = {"allow_dms": False}
    settings = discord_settings(tmp_path, runpod_fake, fake, policy=policy, discord={"guilds": []})
    async with running_bot(settings):
        sent = await fake.slash_command("imagine", {"prompt": "a cat"}, dm=True)
        reply = await sent.wait_for_message()
    assert reply.ephemeral and "direct messages" in reply.content


async def test_global_commands_work_in_dms_and_charge_the_dm_identity(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, fake, discord={"guilds": []})
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "a cat", "size": "256x256"}, dm=True)
        done = await result_of(sent)
        usage = await bot.core.ledger.usage(Identity("discord", "dm", str(fake.user.id)))
    assert (
        fake.guild.id not in fake.commands and len(fake.commands[None]) == 13
    )  # every command, /web and /help too
    assert done.guild_id is None and done.attachments
    assert usage.user[0].spent > 0


async def test_invalid_options_are_explained_and_nothing_runs(
    bot: DiscordAdapter, fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await fake.slash_command(
        "imagine", {"prompt": "a fox", "model": "flux-schnell", "steps": 40}
    )
    reply = await sent.wait_for_message()
    assert reply.ephemeral and "num_inference_steps must be" in reply.content
    assert "Nothing was charged" in reply.content and runpod_fake.count("run") == 0
