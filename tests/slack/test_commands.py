"""Slash commands end to end: signed requests in, what the channel shows out.

Real Bolt and slack_sdk against FakeSlack, the real core against FakeRunpod; assertions are on
the messages, uploads and ephemeral replies the fake recorded, and on the ledger.
"""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from bot.jobs.invocation import Community
from tests.chart_support import TODAY_BAR, TOP_MODEL, checked_png, shows
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import (
    ALICE,
    BOB,
    BOSS,
    CHANNEL,
    SlackBot,
    block_texts,
    button_ids,
    button_value,
    running_bot,
)


async def test_imagine_posts_a_card_and_the_image_in_its_thread(bot: SlackBot) -> None:
    reply = await bot.command("/imagine", "a cat --ar 16:9 --seed 7")
    assert (reply.status, reply.body) == (200, "")

    (card,) = await bot.wait(bot.finished_cards)
    texts = block_texts(card)
    assert texts[0] == f"🎨 <@{ALICE}> asked for: a cat"
    assert "seed 7" in texts[1] and "left today" in texts[1]
    assert button_ids(card) == {"job_reroll", "job_variations", "job_show"}
    (upload,) = bot.fake.uploads
    assert (upload.channel_id, upload.thread_ts) == (CHANNEL, card.ts)
    image = Image.open(io.BytesIO(upload.data))
    assert image.format == "PNG" and image.width > image.height
    (job,) = bot.runpod.jobs.values()
    assert job.input["seed"] == 7
    job_id = button_value(card, "job_reroll")
    await bot.idle()
    record = await bot.core.jobs.job(job_id, Community("slack", bot.fake.team_id))
    assert record is not None and record.state == "delivered"
    spent = (await bot.core.ledger.usage(bot.member(ALICE))).user[0]
    assert spent.spent == record.cost and spent.held == 0


async def test_edit_and_video_take_the_image_link_from_the_text(bot: SlackBot) -> None:
    await bot.command("/edit", "make it blue https://example.com/cat.png")
    await bot.command("/video", "a fox runs <https://example.com/fox.png|fox.png> --duration 5")
    cards = await bot.wait(lambda: len(bot.finished_cards()) == 2 and bot.finished_cards())
    headlines = {block_texts(card)[0] for card in cards}
    assert headlines == {
        f"🖌️ <@{ALICE}> asked for: make it blue",
        f"🎬 <@{ALICE}> asked for: a fox runs",
    }
    inputs = {job.endpoint_id: job.input for job in bot.runpod.jobs.values()}
    assert inputs["qwen-image-edit"]["image"] == "https://example.com/cat.png"
    assert inputs["qwen-image-edit"]["prompt"] == "make it blue"
    assert inputs["wan-2-5"]["image"] == "https://example.com/fox.png"
    kinds = sorted(upload.filename.rsplit(".", 1)[1] for upload in bot.fake.uploads)
    assert kinds == ["mp4", "png"]
    for card in cards:  # each result sits in its own card's thread
        (share,) = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
        assert share.files


async def test_transcribe_shows_a_short_transcript_inline(bot: SlackBot) -> None:
    await bot.command("/transcribe", "https://example.com/talk.mp3")
    (card,) = await bot.wait(bot.finished_cards)
    assert block_texts(card)[0] == f"📝 <@{ALICE}> asked for a transcription"
    (job,) = bot.runpod.jobs.values()
    assert job.input["audio"] == "https://example.com/talk.mp3"
    (reply,) = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
    assert reply.text == job.result["transcription"] and not bot.fake.uploads


async def test_a_long_transcript_comes_as_a_file(bot: SlackBot) -> None:
    endpoint = bot.runpod.endpoints["whisper-v3-large"]
    endpoint.reply, endpoint.segments = "transcribed " * 500, True  # 6,000 characters
    await bot.command("/transcribe", "https://example.com/long.mp3")
    await bot.wait(bot.finished_cards)
    names = sorted(u.filename.rsplit(".", 1)[1] for u in bot.fake.uploads)
    assert names == ["srt", "txt"]
    txt = next(u for u in bot.fake.uploads if u.filename.endswith(".txt"))
    assert txt.data.decode().split() == ["transcribed"] * 500
    assert all("transcribed" not in m.text for m in bot.fake.messages_in(CHANNEL))


@pytest.mark.parametrize("refusal", ["not_allowed", "unknown_method"])
async def test_ask_streams_by_editing_then_splits_a_long_answer(
    bot: SlackBot, refusal: str
) -> None:
    """A workspace whose Slack refuses chat.startStream gets the answer by edits instead,
    in markdown blocks of up to 12,000 characters."""
    bot.fake.streaming_refusal = refusal
    endpoint = bot.runpod.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks = 1.0, 6
    endpoint.reply = " ".join(f"w{i}" for i in range(3000))  # ~16,000 characters
    await bot.command("/ask", "tell me everything --max-tokens 6000")
    (card,) = await bot.wait(bot.finished_cards)
    pieces = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
    shown = [p.blocks[0]["text"] for p in pieces if p.blocks[0]["type"] == "markdown"]
    assert len(shown) == len(pieces) == 2 and all(len(t) <= 12_000 for t in shown)
    assert " ".join(shown).split() == endpoint.reply.split()
    assert any(p.edits for p in pieces), "the answer was not streamed by chat.update"
    calls = bot.fake.calls
    first_piece = next(i for i, c in enumerate(calls) if c.params.get("thread_ts") == card.ts)
    finished = max(i for i, c in enumerate(calls) if c.params.get("ts") == card.ts)
    assert first_piece < finished - 2, "text appeared only at the end"
    assert "$" in block_texts(card)[1]
    assert [c.method for c in calls if "Stream" in c.method] == ["chat.startStream"]


async def test_speak_uploads_audio(bot: SlackBot) -> None:
    await bot.command("/speak", "hello there, friends")
    (card,) = await bot.wait(bot.finished_cards)
    (upload,) = bot.fake.uploads
    assert upload.data[:4] == b"RIFF" and upload.thread_ts == card.ts
    assert button_ids(card) == {"job_reroll", "job_show"}


async def test_cost_models_usage_and_show_answer_privately(bot: SlackBot) -> None:
    await bot.command("/cost", "imagine a cat --model flux-dev --count 2")
    await bot.command("/cost", "flux-dev")
    await bot.command("/models", "image")
    replies = await bot.wait(lambda: len(bot.ephemerals()) == 3 and bot.ephemerals())
    by_text = sorted(r.text for r in replies)
    assert any(t.startswith("2 × Flux Dev would cost about *$0.04*") for t in by_text)
    assert any(t.startswith("Flux Dev (`flux-dev`): $0.02 per megapixel") for t in by_text)
    assert any("`flux-schnell`" in t and "*Image generation (/imagine)*" in t for t in by_text)
    assert bot.runpod.count("run") == 0 and not bot.public()

    await bot.command("/imagine", "a fox --size 512x512")
    (card,) = await bot.wait(bot.finished_cards)
    job_id = button_value(card, "job_show")
    await bot.idle()
    await bot.command("/usage")
    await bot.command("/show")
    usage, show = (await bot.wait(lambda: len(bot.ephemerals()) == 5 and bot.ephemerals()))[3:]
    assert "*Your spend*" in usage.text and f"`{job_id}`" in usage.text
    assert "left*" in usage.text and "<!date^" in usage.text
    assert show.text.startswith(f"The result of `{job_id}` is kept, but this bot has no public")
    assert f"The Runpod API call for job `{job_id}`" in show.text
    assert "curl -X POST" in show.text and "a fox" in show.text
    assert "rp_test_key" not in show.text, "the bot's own key must never be shown"


async def test_show_gives_back_the_result_itself(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    """/show of an image links to the file the bot keeps; of an answer, shows the answer."""
    public = {"http": {"public_url": "http://bot.example"}}
    async with running_bot(tmp_path, runpod_fake, fake, **public) as bot:
        await bot.command("/imagine", "a fox --size 512x512")
        (card,) = await bot.wait(bot.finished_cards)
        image_job = button_value(card, "job_show")
        await bot.idle()
        await bot.command("/show", image_job)
        (image,) = await bot.wait(bot.ephemerals)
        runpod_fake.endpoints["qwen3-32b-awq"].reply = "A fox is a small wild dog."
        await bot.command("/ask", "what is a fox? --max-tokens 50")
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        await bot.idle()
        await bot.command("/show")  # the newest job
        answer = (await bot.wait(lambda: len(bot.ephemerals()) == 2 and bot.ephemerals()))[1]
        (link,) = re.findall(r"<(http://bot\.example/results/[^|>]+)\|", image.text)
        job, expires, signature, name = link.split("/")[-4:]
        assert job == image_job and bot.core.jobs.kept.links.valid(job, name, expires, signature)
        kept = bot.core.jobs.kept.path(job, name)
        assert kept is not None and kept.read_bytes() == fake.uploads[0].data
    assert image.text.startswith(f"*Result of `{image_job}`* (Flux Schnell):")
    assert answer.text.startswith("*Result of `") and "A fox is a small wild dog." in answer.text


async def test_a_quota_refusal_is_private_and_charges_nothing(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    async with running_bot(tmp_path, runpod_fake, fake, quotas={"daily_usd": "0.001"}) as bot:
        await bot.command("/imagine", "a fox --model flux-dev")
        (refusal,) = await bot.wait(bot.ephemerals)
        await bot.idle()
        assert refusal.text.startswith("Your daily limit is $0.001;")
        assert "This costs about $0.03" in refusal.text
        assert bot.public() == [] and bot.runpod.count("run") == 0
        usage = await bot.core.ledger.usage(bot.member())
        assert (usage.user[0].spent, usage.user[0].held) == (Decimal(0), Decimal(0))


@pytest.mark.usefixtures("moved_clock")
async def test_quota_is_for_admins_and_changes_limits(bot: SlackBot) -> None:
    await bot.command("/quota", f"set <@{BOB}|bob> --daily 0", user=ALICE)
    (refused,) = await bot.wait(bot.ephemerals)
    assert refused.text.startswith("Only workspace admins can see or change quotas.")

    await bot.command("/quota", f"set <@{BOB}|bob> --daily 0.001 --monthly none", user=BOSS)
    await bot.command("/quota", f"grant <@{BOB}|bob> 0.03 for the demo", user=BOSS)
    await bot.command("/quota", f"show <@{BOB}|bob>", user=BOSS)
    done = await bot.wait(lambda: len(bot.ephemerals(BOSS)) == 3 and bot.ephemerals(BOSS))
    assert [m.text.split(":")[0] for m in done[:1]] == [f"Limits of <@{BOB}> set"]
    assert done[1].text.startswith(f"Granted $0.03 to <@{BOB}>")
    assert "today: $0.00 of $0.031," in done[2].text
    assert "this month: $0.00 spent, no limit" in done[2].text

    await bot.command("/imagine", "a fox --model flux-dev", user=BOB)  # $0.021 fits $0.031
    await bot.wait(bot.finished_cards)
    await bot.idle()
    await bot.command("/imagine", "another fox --model flux-dev", user=BOB)
    (refusal,) = await bot.wait(lambda: bot.ephemerals(BOB))
    assert refusal.text.startswith("Your daily limit is $0.03;")
    assert bot.runpod.count("run") == 1


@pytest.mark.usefixtures("moved_clock")
async def test_usage_answers_privately_and_sends_the_chart_to_a_dm(bot: SlackBot) -> None:
    await bot.command("/imagine", "a fox --size 512x512")
    await bot.wait(bot.finished_cards)
    await bot.idle()
    await bot.command("/usage")
    (usage,) = await bot.wait(bot.ephemerals)
    assert "*Your spend*" in usage.text  # the text answer stays, where it was asked
    await bot.idle()
    chart = next(u for u in bot.fake.uploads if u.filename == "usage.png")
    assert bot.fake.channels[chart.channel_id or ""].im_user == ALICE  # a DM, not the channel
    assert chart.alt_txt == "Your spend per day"
    assert shows(checked_png(chart.data), TODAY_BAR)


@pytest.mark.usefixtures("moved_clock")
async def test_quota_report_lists_spend_by_member_and_model_with_a_chart(bot: SlackBot) -> None:
    await bot.command("/quota", "report", user=ALICE)
    (refused,) = await bot.wait(bot.ephemerals)
    assert refused.text.startswith("Only workspace admins")

    await bot.command("/imagine", "a fox --size 512x512", user=BOB)
    await bot.wait(bot.finished_cards)
    await bot.idle()
    await bot.command("/quota", "report day", user=BOSS)
    (report,) = await bot.wait(lambda: bot.ephemerals(BOSS))
    await bot.command("/quota", "report fortnight", user=BOSS)
    bad = (await bot.wait(lambda: len(bot.ephemerals(BOSS)) == 2 and bot.ephemerals(BOSS)))[1]
    assert report.text.splitlines() == [
        "*Spending today*: $0.0006 over 1 job(s).",
        "*By member*",
        f"• <@{BOB}> $0.0006 (1)",
        "*By model*",
        "• `flux-schnell` $0.0006 (1)",
    ]
    assert bad.text.startswith("Say which period: `/quota report day`")
    await bot.idle()
    (chart,) = [u for u in bot.fake.uploads if u.filename == "spend-report.png"]
    assert bot.fake.channels[chart.channel_id or ""].im_user == BOSS
    image = checked_png(chart.data)
    assert shows(image, TOP_MODEL) and shows(image, TODAY_BAR)


async def test_user_text_is_echoed_so_it_can_ping_no_one(bot: SlackBot) -> None:
    prompt = "a cat <!channel> @here <@U123> <!subteam^S1> &lt;!everyone&gt; & co"
    await bot.command("/imagine", prompt)
    (card,) = await bot.wait(bot.finished_cards)
    shown = "a cat @channel @here @U123 @S1 &lt;!everyone&gt; &amp; co"
    assert block_texts(card)[0] == f"🎨 <@{ALICE}> asked for: {shown}"
    (job,) = bot.runpod.jobs.values()
    assert job.input["prompt"] == "a cat @channel @here @U123 @S1 <!everyone> & co"

    await bot.command("/imagine", "a dog --model &lt;!here&gt;")
    (error,) = await bot.wait(bot.ephemerals)
    assert error.text.startswith("unknown model '&lt;!here&gt;'")
    await bot.idle()
    for message in bot.fake.messages:
        seen = message.text + json.dumps(message.blocks)
        for ping in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<!subteam"):
            assert ping not in seen, (ping, seen)


async def test_a_rate_limited_post_is_retried_after_retry_after(bot: SlackBot) -> None:
    bot.fake.rate_limit_next("chat.postMessage", retry_after=0)
    await bot.command("/imagine", "a fox --size 256x256")
    await bot.wait(bot.finished_cards)
    errors = [c.error for c in bot.fake.calls_to("chat.postMessage")]
    assert errors[:2] == ["ratelimited", None] and len(bot.cards()) == 1


async def test_user_groups_and_configured_roles_pick_the_quota_tier(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    fake.add_usergroup("S0DESIGN", "designers", [BOB])
    quotas = {
        "daily_usd": "0.001",
        "roles": {"designers": {"daily_usd": "5"}, "vip": {"daily_usd": "1"}},
    }
    slack = {"roles": {"vip": [BOSS]}}
    async with running_bot(tmp_path, runpod_fake, fake, slack=slack, quotas=quotas) as bot:
        for user in (ALICE, BOB, BOSS):
            await bot.command("/imagine", "a fox --model flux-dev", user=user)
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        (refusal,) = await bot.wait(lambda: bot.ephemerals(ALICE))
        await bot.idle()
        assert refusal.text.startswith("Your daily limit is $0.001;")
        headlines = sorted(block_texts(card)[0] for card in bot.finished_cards())
        assert headlines == [f"🎨 <@{user}> asked for: a fox" for user in sorted((BOB, BOSS))]
        assert any("$4.97 left today" in block_texts(c)[1] for c in bot.finished_cards())


async def test_a_failed_job_is_told_privately_and_the_card_says_nothing_was_charged(
    bot: SlackBot,
) -> None:
    bot.runpod.next_job(
        "black-forest-labs-flux-1-schnell", outcome="FAILED", error="worker said <!channel>"
    )
    await bot.command("/imagine", "a fox --size 256x256")
    (told,) = await bot.wait(bot.ephemerals)
    assert told.text == "The job failed: worker said &lt;!channel&gt;. Nothing was charged."
    card = await bot.wait(
        lambda: bot.cards() and "did not finish" in str(bot.cards()[0].blocks) and bot.cards()[0]
    )
    assert block_texts(card)[1] == "❌ This job did not finish. Nothing was charged."
    assert button_ids(card) == {"job_reroll"}  # "Try again"
    await bot.idle()
    usage = await bot.core.ledger.usage(bot.member(ALICE))
    assert usage.user[0].spent == 0 and not bot.fake.uploads


async def test_a_dropped_connection_while_posting_the_card_never_says_nothing_was_charged(
    bot: SlackBot,
) -> None:
    bot.runpod.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 2
    bot.fake.drop_next("chat.postMessage", times=2)  # slack_sdk retries a dropped call once
    await bot.command("/imagine", "a fox --size 256x256")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.idle()
    (upload,) = bot.fake.uploads
    assert upload.thread_ts == card.ts
    record = await bot.core.jobs.job(
        button_value(card, "job_reroll"), Community("slack", bot.fake.team_id)
    )
    assert record is not None and record.state == "delivered" and record.cost
    spent = (await bot.core.ledger.usage(bot.member(ALICE))).user[0]
    assert spent.spent == record.cost
    told = [m.text for m in bot.ephemerals()]
    assert not any("nothing was charged" in text.lower() for text in told), told
    assert not any("went wrong" in text for text in told), told
    assert any("The job is running" in text for text in told), told


async def test_a_slack_outage_while_posting_the_card_is_not_called_a_missing_invite(
    bot: SlackBot,
) -> None:
    bot.fake.unavailable_next("chat.postMessage")  # HTTP 503 with an HTML page
    await bot.command("/imagine", "a fox --size 256x256")
    told = await bot.wait(bot.ephemerals)
    await bot.idle()
    texts = [m.text for m in told]
    assert not any("invite" in text.lower() for text in texts), texts
    assert any("Slack" in text and "trouble" in text for text in texts), texts
    (card,) = await bot.wait(bot.finished_cards)  # the job went on and was delivered
    record = await bot.core.jobs.job(
        button_value(card, "job_reroll"), Community("slack", bot.fake.team_id)
    )
    assert record is not None and record.state == "delivered"
    spent = (await bot.core.ledger.usage(bot.member(ALICE))).user[0]
    assert spent.spent == record.cost and not any("charged" in t.lower() for t in texts)


async def test_a_channel_the_bot_is_not_in_asks_for_an_invite_and_charges_nothing(
    bot: SlackBot,
) -> None:
    bot.runpod.endpoints["black-forest-labs-flux-1-schnell"].execution_time = 30
    bot.fake.fail_next("chat.postMessage", "not_in_channel", times=5)
    await bot.command("/imagine", "a fox --size 256x256")
    await bot.wait(lambda: any("/invite" in m.text for m in bot.ephemerals()))
    await bot.idle()
    texts = [m.text for m in bot.ephemerals()]
    assert any("not_in_channel" in t and "/invite" in t for t in texts), texts
    ((state,),) = await bot.core.db.fetchall("SELECT state FROM jobs")
    spent = (await bot.core.ledger.usage(bot.member(ALICE))).user[0]
    assert state == "cancelled" and (spent.spent, spent.held) == (0, 0)
    assert any(t.startswith("Cancelled") and "Nothing was charged" in t for t in texts), texts
    assert bot.public() == []
