"""`/ask` answers streamed with chat.startStream / appendStream / stopStream, over the wire.

Real Bolt and slack_sdk (its `chat_stream` helper) against FakeSlack, which records each
streaming call and keeps the streamed message as a user would see it. The fallback to edits
(a workspace that refuses streaming) is in test_slack_commands.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack, RecordedCall
from tests.slack.support import ALICE, CHANNEL, SlackBot, running_bot


def streamed(call: RecordedCall) -> str:
    chunks = call.params.get("chunks") or []
    text = str(call.params.get("markdown_text") or "")
    return text + "".join(c["text"] for c in chunks if c["type"] == "markdown_text")


def stream_calls(bot: SlackBot) -> list[RecordedCall]:
    return [c for c in bot.fake.calls if c.method.endswith("Stream")]


async def test_ask_streams_the_answer_in_order(bot: SlackBot) -> None:
    endpoint = bot.runpod.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks = 1.0, 6
    endpoint.reply = " ".join(f"w{i}" for i in range(300)) + " & <!channel>"
    await bot.command("/ask", "tell me a story")
    (card,) = await bot.wait(bot.finished_cards)

    calls = stream_calls(bot)
    methods = [c.method for c in calls]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert methods.count("chat.appendStream") >= 1, methods
    start = calls[0].params
    assert (start["channel"], start["thread_ts"]) == (CHANNEL, card.ts)
    assert (start["recipient_user_id"], start["recipient_team_id"]) == (ALICE, bot.fake.team_id)
    safe = endpoint.reply.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert "".join(streamed(c) for c in calls) == safe

    (answer,) = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
    assert answer.text == safe and not answer.streaming
    first_append = bot.fake.calls.index(calls[1])
    finished = max(i for i, c in enumerate(bot.fake.calls) if c.params.get("ts") == card.ts)
    assert first_append < finished, "text appeared only at the end"
    assert not [
        c for c in bot.fake.calls if c.method == "chat.update" and c.params["ts"] != card.ts
    ]


async def test_a_long_answer_continues_in_a_new_stream_beyond_12000_characters(
    bot: SlackBot,
) -> None:
    endpoint = bot.runpod.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks = 1.0, 5
    endpoint.reply = " ".join(f"word{i}" for i in range(5000))  # ~39,000 characters
    await bot.command("/ask", "tell me everything --max-tokens 12000")
    (card,) = await bot.wait(bot.finished_cards)

    pieces = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
    assert len(pieces) == 4 and all(len(p.text) <= 12_000 for p in pieces)
    assert " ".join(p.text for p in pieces).split() == endpoint.reply.split()
    assert not any(p.streaming for p in pieces)
    methods = [c.method for c in stream_calls(bot)]
    assert methods.count("chat.startStream") == methods.count("chat.stopStream") == 4


async def test_a_refusal_is_remembered_for_the_workspace(bot: SlackBot) -> None:
    bot.fake.streaming_refusal = "not_allowed"
    for question in ("one?", "two?"):
        await bot.command("/ask", question)
        await bot.wait(lambda q=question: [c for c in bot.finished_cards() if q in str(c.blocks)])
    assert [c.method for c in stream_calls(bot)] == ["chat.startStream"]
    in_threads = [m for m in bot.fake.messages_in(CHANNEL) if m.thread_ts and m.blocks]
    answers = [m for m in in_threads if m.blocks[0]["type"] == "markdown"]
    assert len(answers) == 2, "each answer is one markdown message, edited"


async def test_a_stream_that_breaks_midway_is_completed_by_an_edit(bot: SlackBot) -> None:
    """Slack stops taking text (the stream expired): the message gets the whole answer."""
    bot.fake.fail_next("chat.appendStream", "message_not_in_streaming_state")
    endpoint = bot.runpod.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks = 1.0, 6
    endpoint.reply = " ".join(f"w{i}" for i in range(300))
    await bot.command("/ask", "tell me a story")
    (card,) = await bot.wait(bot.finished_cards)

    (answer,) = bot.fake.messages_in(CHANNEL, thread_ts=card.ts)
    assert answer.blocks == [{"type": "markdown", "text": endpoint.reply}]
    first_append = bot.fake.calls_to("chat.appendStream")[0]
    assert first_append.error == "message_not_in_streaming_state"


async def test_an_answer_streaming_at_a_restart_is_completed_in_the_same_message(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    endpoint = runpod_fake.endpoints["qwen3-32b-awq"]
    endpoint.execution_time, endpoint.stream_chunks = 2.0, 8
    endpoint.reply = " ".join(f"w{i}" for i in range(400))
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/ask", "tell me a story")
        (card,) = await bot.wait(bot.cards)
        (partial,) = await bot.wait(lambda: fake.messages_in(CHANNEL, thread_ts=card.ts))
    assert partial.streaming  # the process ended mid-answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.wait(bot.finished_cards)
        await bot.idle()
    (answer,) = fake.messages_in(CHANNEL, thread_ts=card.ts)
    assert answer.ts == partial.ts
    assert answer.blocks == [{"type": "markdown", "text": endpoint.reply}]
    assert runpod_fake.count("run") == 1
