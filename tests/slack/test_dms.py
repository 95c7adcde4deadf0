"""The bot's DM and assistant pane, and /help, over the wire (real Bolt against FakeSlack).

A plain DM needs no mention: a command word runs that command, anything else asks a text
model. Opening the assistant pane offers suggested prompts; a request in a DM thread titles
it and shows a status while the job starts.
"""

from __future__ import annotations

from tests.fakes.slack_signing import assistant_thread_started, message
from tests.slack.support import ALICE, SlackBot


async def direct_message(bot: SlackBot, text: str, *, thread_ts: str | None = None) -> str:
    dm = bot.fake.dm_channel(ALICE)
    event = message(
        bot.fake, text, user_id=ALICE, channel_id=dm, thread_ts=thread_ts, channel_type="im"
    )
    response = await bot.signer.post_event(bot.url, event)
    assert response.status == 200, response
    return str(event["event"]["ts"])


async def test_a_plain_dm_runs_a_command_without_a_mention(bot: SlackBot) -> None:
    dm = bot.fake.dm_channel(ALICE)
    asked = await direct_message(bot, "imagine a cat --size 256x256")
    (card,) = await bot.wait(lambda: bot.finished_cards(dm))
    assert card.thread_ts == asked
    (upload,) = bot.fake.uploads
    assert upload.channel_id == dm


async def test_a_plain_question_in_a_dm_is_answered_by_a_text_model(bot: SlackBot) -> None:
    bot.runpod.endpoints["qwen3-32b-awq"].reply = "Rayleigh scattering."
    dm = bot.fake.dm_channel(ALICE)
    asked = await direct_message(bot, "why is the sky blue?")
    await bot.wait(lambda: bot.finished_cards(dm))
    answers = [m for m in bot.fake.messages_in(dm, thread_ts=asked) if not m.blocks]
    assert [m.text for m in answers] == ["Rayleigh scattering."]
    (run,) = [r for r in bot.runpod.requests if r.route == "run"]
    assert "why is the sky blue?" in str(run.json)


async def test_a_plain_dm_is_charged_to_the_member_like_a_command(bot: SlackBot) -> None:
    """The DM route end to end: no mention, answered in the DM, and the billed cost charged
    to the member in the workspace once (the Discord DM route's test, mirrored)."""
    bot.runpod.endpoints["qwen3-32b-awq"].reply = "Rayleigh scattering."
    dm = bot.fake.dm_channel(ALICE)
    asked = await direct_message(bot, "why is the sky blue?")
    await bot.wait(lambda: bot.finished_cards(dm))
    await bot.idle()
    usage = await bot.core.ledger.usage(bot.member(ALICE))
    (job,) = bot.runpod.jobs.values()
    answers = [m.text for m in bot.fake.messages_in(dm, thread_ts=asked) if not m.blocks]
    assert answers == ["Rayleigh scattering."]
    assert job.cost and usage.user[0].spent == job.cost


async def test_opening_the_assistant_pane_offers_suggested_prompts(bot: SlackBot) -> None:
    dm = bot.fake.dm_channel(ALICE)
    thread = bot.fake.post_as_user("", user_id=bot.fake.bot_user_id, channel_id=dm).ts
    event = assistant_thread_started(bot.fake, user_id=ALICE, channel_id=dm, thread_ts=thread)
    assert (await bot.signer.post_event(bot.url, event)).status == 200
    state = await bot.wait(lambda: bot.fake.assistant_threads.get((dm, thread)))
    prompts = [p["message"] for p in state["prompts"]]
    assert "help" in prompts and any(p.startswith("imagine ") for p in prompts)


async def test_a_request_in_the_assistant_thread_titles_it_and_shows_a_status(
    bot: SlackBot,
) -> None:
    bot.runpod.endpoints["qwen3-32b-awq"].reply = "Because."
    dm = bot.fake.dm_channel(ALICE)
    thread = bot.fake.post_as_user("", user_id=bot.fake.bot_user_id, channel_id=dm).ts
    await direct_message(bot, "ask why is the sky blue?", thread_ts=thread)
    await bot.wait(lambda: bot.finished_cards(dm))
    state = await bot.wait(
        lambda: (
            len(bot.fake.assistant_threads[(dm, thread)].get("statuses", [])) == 2
            and bot.fake.assistant_threads[(dm, thread)]
        )
    )
    assert state["title"] == "ask why is the sky blue?"
    assert state["statuses"] == ["is working on it…", ""]  # shown, then cleared
    answers = [m for m in bot.fake.messages_in(dm, thread_ts=thread) if m.text == "Because."]
    assert len(answers) == 1


async def test_help_is_a_slash_command(bot: SlackBot) -> None:
    await bot.command("/help")
    (reply,) = await bot.wait(bot.ephemerals)
    assert "/imagine" in reply.text and "/usage" in reply.text


async def test_edits_and_bot_posts_in_a_dm_start_nothing(bot: SlackBot) -> None:
    dm = bot.fake.dm_channel(ALICE)
    edited = message(bot.fake, "imagine a cat", user_id=ALICE, channel_id=dm, channel_type="im")
    edited["event"]["subtype"] = "message_changed"
    from_bot = message(bot.fake, "imagine a dog", user_id=ALICE, channel_id=dm, channel_type="im")
    from_bot["event"]["bot_id"] = bot.fake.bot_id
    for event in (edited, from_bot):
        assert (await bot.signer.post_event(bot.url, event)).status == 200
    await direct_message(bot, "help")
    (reply,) = await bot.wait(bot.ephemerals)
    assert "/imagine" in reply.text
    await bot.idle()
    assert bot.runpod.count("run") == 0 and not bot.public(dm)
