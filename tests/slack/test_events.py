"""Requests Slack sends on its own schedule: signatures, redelivered events, mentions with files."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.media import wav
from tests.fakes.slack_signing import app_mention
from tests.slack.support import (
    ALICE,
    CHANNEL,
    SlackBot,
    block_texts,
)


@pytest.mark.parametrize("fault", ["bad_signature", "stale"])
async def test_unsigned_or_stale_requests_are_refused_and_run_nothing(
    bot: SlackBot, fault: str
) -> None:
    calls_before = len(bot.fake.calls)
    reply = await bot.command("/imagine", "a cat", **{fault: True})
    event = app_mention(bot.fake, "<@bot> imagine a dog", user_id=ALICE, channel_id=CHANNEL)
    refused_event = await bot.signer.post_event(bot.url, event, **{fault: True})
    await bot.idle()
    assert (reply.status, refused_event.status) == (401, 401)
    assert bot.runpod.count("run") == 0 and not bot.runpod.jobs
    assert bot.fake.calls[calls_before:] == [] and bot.public() == []
    row = await bot.core.db.fetchone("SELECT COUNT(*) FROM jobs")
    assert row is not None and row[0] == 0


async def test_a_redelivered_event_gets_one_answer(bot: SlackBot) -> None:
    event = await bot.mention("imagine a lighthouse --size 256x256")
    again = await bot.signer.post_event(bot.url, event, retry_num=1, retry_reason="http_timeout")
    assert again.status == 200
    thread = event["event"]["ts"]
    await bot.wait(bot.finished_cards)
    await bot.idle()
    (card,) = bot.cards()
    assert card.thread_ts == thread and len(bot.runpod.jobs) == 1
    assert len(bot.fake.uploads) == 1 and bot.fake.uploads[0].thread_ts == thread


async def test_a_mention_runs_in_its_thread_with_the_model_it_names(bot: SlackBot) -> None:
    parent = bot.fake.post_as_user("ideas?", user_id=ALICE, channel_id=CHANNEL)
    event = await bot.mention("imagine a cat --model flux-dev --size 512x512", thread_ts=parent.ts)
    (card,) = await bot.wait(bot.finished_cards)
    assert card.thread_ts == parent.ts != event["event"]["ts"]
    assert block_texts(card)[0] == f"🎨 <@{ALICE}> asked for: a cat"
    assert block_texts(card)[1].startswith("*Flux Dev*")
    (job,) = bot.runpod.jobs.values()
    assert job.endpoint_id == "black-forest-labs-flux-1-dev"
    assert bot.fake.uploads[0].thread_ts == parent.ts


async def test_mention_help_and_unknown_words_answer_privately(bot: SlackBot) -> None:
    await bot.mention("help")
    await bot.mention("dance for me")
    help_text, unknown = await bot.wait(lambda: len(bot.ephemerals()) == 2 and bot.ephemerals())
    assert help_text.text.startswith("*Runpod models in Slack.*") and "--seed N" in help_text.text
    assert unknown.text.startswith("I don't know 'dance'.")
    assert bot.public() == [] and bot.runpod.count("run") == 0


async def test_an_audio_file_in_a_mention_is_transcribed_through_a_signed_link(
    bot: SlackBot,
) -> None:
    assert bot.adapter.context is not None
    links = bot.adapter.context.links
    links.public_url = f"http://127.0.0.1:{bot.adapter.port}"
    audio = wav(1.5)
    shared = bot.fake.add_user_file("talk.wav", audio, user_id=ALICE)
    event = await bot.mention("transcribe", files=[shared])
    (card,) = await bot.wait(bot.finished_cards)
    assert block_texts(card)[0] == f"📝 <@{ALICE}> asked for a transcription"
    (job,) = bot.runpod.jobs.values()
    link = job.input["audio"]
    assert link.startswith(f"{links.public_url}/slack/files/") and "/talk.wav?src=" in link
    async with aiohttp.ClientSession() as session:  # what Runpod does with it: no Slack login
        async with session.get(link) as response:
            assert (response.status, await response.read()) == (200, audio)
        async with session.get(link.replace("/talk.wav", "/other.wav")) as response:
            assert response.status == 200  # the name is cosmetic; the signature covers the file
        forged = link.replace("%2Ftalk.wav", "%2Fsecret.wav")
        async with session.get(forged) as response:
            assert response.status == 403
    (transcript,) = bot.fake.messages_in(CHANNEL, thread_ts=event["event"]["ts"])[1:]
    assert transcript.text == job.result["transcription"]


async def test_without_a_public_url_a_shared_file_is_explained_not_run(bot: SlackBot) -> None:
    shared = bot.fake.add_user_file("talk.mp3", b"ID3-audio", user_id=ALICE)
    await bot.mention("transcribe", files=[shared])
    picture = bot.fake.add_user_file("cat.png", b"png", user_id=ALICE)
    await bot.mention("transcribe", files=[picture])
    first, second = await bot.wait(lambda: len(bot.ephemerals()) == 2 and bot.ephemerals())
    assert first.text.startswith("Runpod can't open files shared in Slack")
    assert "`slack.public_url`" in first.text
    assert second.text == "/transcribe needs an audio or video file; the attached file is not one."
    assert bot.runpod.count("run") == 0 and bot.public() == []


async def test_ask_by_mention_answers_in_the_thread(bot: SlackBot) -> None:
    bot.runpod.endpoints["qwen3-32b-awq"].reply = "Because of Rayleigh scattering & <b>air</b>."
    event = await bot.mention("ask why is the sky blue?")
    (card,) = await bot.wait(bot.finished_cards)
    thread = event["event"]["ts"]
    answer = [m for m in bot.fake.messages_in(CHANNEL, thread_ts=thread) if not m.blocks]
    assert [m.text for m in answer] == [
        "Because of Rayleigh scattering &amp; &lt;b&gt;air&lt;/b&gt;."
    ]
    assert card.thread_ts == thread


async def test_a_retry_of_an_event_never_seen_is_handled(bot: SlackBot) -> None:
    """Slack retries when it got no answer, e.g. while the bot was down: that one is new."""
    event = app_mention(
        bot.fake,
        f"<@{bot.fake.bot_user_id}> imagine a boat --size 256x256",
        user_id=ALICE,
        channel_id=CHANNEL,
    )
    response = await bot.signer.post_event(bot.url, event, retry_num=2, retry_reason="timeout")
    assert response.status == 200
    (card,) = await bot.wait(bot.finished_cards)
    assert card.thread_ts == event["event"]["ts"]


async def test_the_request_url_check_is_answered(bot: SlackBot) -> None:
    """What Slack sends when an admin pastes the Request URL into the app settings."""
    challenge = {
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    response = await bot.signer.post_event(bot.url, challenge)
    assert response.status == 200 and challenge["challenge"] in response.body


async def test_a_mention_cannot_make_the_bot_ping_anyone(bot: SlackBot) -> None:
    event = await bot.mention("imagine <!here> and <!channel> meet <@U0BOB> &lt;!everyone&gt;")
    (card,) = await bot.wait(bot.finished_cards)
    shown = "@here and @channel meet @U0BOB &lt;!everyone&gt;"
    assert block_texts(card)[0] == f"🎨 <@{ALICE}> asked for: {shown}"
    assert card.text.startswith(f"🎨 <@{ALICE}> asked for: {shown}")
    assert card.thread_ts == event["event"]["ts"]
