"""Slack conversations over the wire: replies in an `/ask` answer's thread are the next turns."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.invocation import Community
from tests.fakes.media import png
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.slack_signing import message
from tests.slack.support import (
    ALICE,
    BOB,
    BOSS,
    CHANNEL,
    SlackBot,
    button_value,
    running_bot,
)

GRANITE = "granite-4-0-h-small"  # a chat model: its input is `messages`
# Each turn below is 6 bytes ("turn 1") and each answer 8 ("answer 1"): 14 a turn. Three
# earlier turns and a new one (48) are over this cap; two and a new one (34) fit.
CAP = 40


def answer(inp: dict[str, Any]) -> str:
    """The fake model answers "answer N" to the member's N-th message."""
    return f"answer {inp['messages'][-1]['content'].split()[-1]}"


async def say(bot: SlackBot, text: str, *, user: str, thread: str) -> None:
    event = message(bot.fake, text, user_id=user, channel_id=CHANNEL, thread_ts=thread)
    response = await bot.signer.post_event(bot.url, event)
    assert response.status == 200, response


async def first_turn(bot: SlackBot) -> Message:
    """`/ask` to the chat model: its answer card (the conversation's thread)."""
    await bot.command("/ask", "turn 1 --model granite-4")
    (card,) = await bot.wait(bot.finished_cards)
    return card


def sent_messages(runpod: FakeRunpod) -> list[list[dict[str, str]]]:
    runs = [r for r in runpod.requests if r.route == "run" and r.endpoint_id == GRANITE]
    return [r.json["input"]["messages"] for r in runs]


def billed(runpod: FakeRunpod) -> list[Decimal]:
    jobs = [j for j in runpod.jobs.values() if j.endpoint_id == GRANITE]
    return [j.cost or Decimal(0) for j in jobs]


@pytest.mark.usefixtures("moved_clock")
async def test_replies_in_the_thread_continue_the_conversation(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    jobs = {"conversation_max_tokens": CAP}
    async with running_bot(tmp_path, runpod_fake, fake, jobs=jobs) as bot:
        await bot.command("/ask", "turn 1 --model granite-4")
        (card,) = await bot.wait(bot.finished_cards)
        thread = card.ts
        await say(bot, "turn 2", user=ALICE, thread=thread)
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        await say(bot, "turn 3", user=BOB, thread=thread)  # another member: Bob's turn
        await bot.wait(lambda: len(bot.finished_cards()) == 3)
        await say(bot, "turn 4", user=ALICE, thread=thread)
        await bot.wait(lambda: len(bot.finished_cards()) == 4)
        await bot.idle()
        sent = sent_messages(runpod_fake)
        alice, bob = await bot.spent(ALICE), await bot.spent(BOB)
        texts = [m.text for m in fake.messages_in(CHANNEL, thread_ts=thread) if not m.blocks]

    def turn(n: int) -> list[dict[str, str]]:
        said = {"role": "user", "content": f"turn {n}"}
        return [said, {"role": "assistant", "content": f"answer {n}"}]

    assert sent == [
        [{"role": "user", "content": "turn 1"}],
        [*turn(1), {"role": "user", "content": "turn 2"}],
        [*turn(1), *turn(2), {"role": "user", "content": "turn 3"}],
        [*turn(2), *turn(3), {"role": "user", "content": "turn 4"}],  # turn 1 is over the cap
    ]
    assert [t for t in texts if t.startswith("answer")] == [f"answer {n}" for n in (1, 2, 3, 4)]
    costs = billed(runpod_fake)
    assert len(costs) == 4 and all(c > 0 for c in costs)
    assert (alice, bob) == (costs[0] + costs[1] + costs[3], costs[2])


async def test_new_starts_fresh_and_other_threads_are_left_alone(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/ask", "turn 1 --model granite-4")
        (card,) = await bot.wait(bot.finished_cards)
        await say(bot, "--new turn 2", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        await say(bot, "turn 3", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 3)
        await bot.mention("turn 4", thread_ts=card.ts)  # a mention there is a turn too
        await bot.wait(lambda: len(bot.finished_cards()) == 4)
        other = fake.post_as_user("a thread of people", user_id=BOB, channel_id=CHANNEL)
        await say(bot, "turn 9", user=ALICE, thread=other.ts)
        await bot.idle()
        sent = sent_messages(runpod_fake)
    said_2 = [
        {"role": "user", "content": "turn 2"},
        {"role": "assistant", "content": "answer 2"},
    ]
    said_3 = [
        {"role": "user", "content": "turn 3"},
        {"role": "assistant", "content": "answer 3"},
    ]
    assert sent == [
        [{"role": "user", "content": "turn 1"}],
        [{"role": "user", "content": "turn 2"}],
        [*said_2, {"role": "user", "content": "turn 3"}],
        [*said_2, *said_3, {"role": "user", "content": "turn 4"}],
    ]


async def test_a_turn_over_the_quota_is_refused_privately(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/quota", f"set <@{BOB}|bob> --daily 0.001", user=BOSS)
        await bot.wait(lambda: bot.ephemerals(BOSS))
        await bot.command("/ask", "turn 1 --model granite-4")
        (card,) = await bot.wait(bot.finished_cards)
        await say(bot, "turn 2", user=BOB, thread=card.ts)
        (refusal,) = await bot.wait(lambda: bot.ephemerals(BOB))
        await bot.idle()
    assert refusal.text.startswith("Your daily limit is")
    assert refusal.thread_ts == card.ts
    assert len(sent_messages(runpod_fake)) == 1


async def test_a_prompt_model_gets_a_transcript_and_the_hold_bounds_it(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    """Qwen3 takes a `prompt`: the earlier turns go in it, the hold covers every byte, and the
    first turn's settings carry on."""
    runpod_fake.endpoints["qwen3-32b-awq"].reply = lambda inp: f"answer {inp['prompt'][-1]}"
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/ask", "turn 1 --max-tokens 10")  # the next turn keeps this
        (card,) = await bot.wait(bot.finished_cards)
        await say(bot, "turn 2", user=ALICE, thread=card.ts)
        second = (await bot.wait(lambda: len(bot.finished_cards()) == 2 and bot.finished_cards()))[
            1
        ]
        await bot.idle()
        community = Community("slack", fake.team_id)
        jobs = [
            await bot.core.jobs.job(button_value(c, "job_show"), community) for c in (card, second)
        ]
    runs = [r for r in runpod_fake.requests if r.route == "run"]
    assert [r.json["input"]["max_tokens"] for r in runs] == [10, 10]
    assert [r.json["input"]["prompt"] for r in runs] == [
        "turn 1",
        "User: turn 1\nAssistant: answer 1\nUser: turn 2",
    ]
    first_job, second_job = jobs
    assert first_job is not None and second_job is not None
    # $10 per 1M tokens, one token per byte: every byte the transcript adds is held
    extra = len("User: turn 1\nAssistant: answer 1\nUser: turn 2") - len("turn 1")
    assert second_job.estimate - first_job.estimate == Decimal(extra) * 10 / 1_000_000


async def test_policy_judges_what_the_member_says_not_the_history(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    """A blocked word in the model's earlier answer does not block the next turn (the history
    of a prompt model is in its prompt); the member writing it is refused, privately."""
    runpod_fake.endpoints["qwen3-32b-awq"].reply = "answer with kraken"
    policy = {"blocked_terms": ["kraken"]}
    async with running_bot(tmp_path, runpod_fake, fake, policy=policy) as bot:
        await bot.command("/ask", "turn 1")
        (card,) = await bot.wait(bot.finished_cards)
        await say(bot, "turn 2", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        await say(bot, "a kraken turn", user=BOB, thread=card.ts)
        (refusal,) = await bot.wait(lambda: bot.ephemerals(BOB))
        await bot.idle()
    runs = [r for r in runpod_fake.requests if r.route == "run"]
    assert [r.json["input"]["prompt"] for r in runs] == [
        "turn 1",
        "User: turn 1\nAssistant: answer with kraken\nUser: turn 2",
    ]
    assert refusal.text == "The prompt contains a term this community has blocked."
    assert refusal.thread_ts == card.ts


async def test_a_conversation_survives_a_restart(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/ask", "turn 1 --model granite-4")
        (card,) = await bot.wait(bot.finished_cards)
        await bot.idle()
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await say(bot, "turn 2", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 2)
        await bot.idle()
    assert sent_messages(runpod_fake)[-1] == [
        {"role": "user", "content": "turn 1"},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "turn 2"},
    ]


async def test_start_fresh_makes_the_next_turn_in_the_thread_a_new_conversation(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        card = await first_turn(bot)
        await say(bot, "turn 2", user=ALICE, thread=card.ts)
        answers = await bot.wait(lambda: len(bot.finished_cards()) == 2 and bot.finished_cards())
        await bot.click(answers[1], "job_fresh", user=BOB)
        (told,) = await bot.wait(lambda: bot.ephemerals(BOB))
        await say(bot, "turn 3", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 3)
        await say(bot, "turn 4", user=ALICE, thread=card.ts)
        await bot.wait(lambda: len(bot.finished_cards()) == 4)
        await bot.idle()
    assert "starts a new one" in told.text and told.thread_ts == card.ts
    three, four = sent_messages(runpod_fake)[2:]
    assert three == four[:1] == [{"role": "user", "content": "turn 3"}]
    assert [m["content"] for m in four] == ["turn 3", "answer 3", "turn 4"]


async def test_an_image_on_a_turn_is_refused_by_a_text_only_model(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[GRANITE].reply = answer
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        assert bot.adapter.context is not None
        bot.adapter.context.links.public_url = f"http://127.0.0.1:{bot.adapter.port}"
        card = await first_turn(bot)
        photo = fake.add_user_file("cat.png", png(8, 8), user_id=ALICE)
        event = message(
            fake,
            "what is this?",
            user_id=ALICE,
            channel_id=CHANNEL,
            thread_ts=card.ts,
            files=[photo],
        )
        assert (await bot.signer.post_event(bot.url, event)).status == 200
        (refusal,) = await bot.wait(lambda: bot.ephemerals(ALICE))
        await bot.idle()
    assert "reads text only, so it cannot see the attached image" in refusal.text
    assert refusal.thread_ts == card.ts and len(sent_messages(runpod_fake)) == 1
