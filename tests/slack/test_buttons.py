"""Buttons on job cards, including after the bot restarted, and jobs carried across a restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bot.delivery import Result
from bot.jobs.invocation import Community
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

SCHNELL = "black-forest-labs-flux-1-schnell"


async def test_reroll_and_variations_run_in_the_thread_paid_by_the_clicker(bot: SlackBot) -> None:
    await bot.command("/imagine", "a red fox --size 256x256 --seed 5")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.idle()
    await bot.click(card, "job_reroll", user=BOB)
    reroll = (await bot.wait(lambda: len(bot.finished_cards()) == 2 and bot.finished_cards()))[1]
    assert reroll.thread_ts == card.ts
    assert block_texts(reroll)[0] == f"🎲 <@{BOB}> rerolled: a red fox"
    first, second = (job.input for job in bot.runpod.jobs.values())
    assert first["seed"] == 5 and second["seed"] != 5 and second["width"] == 256
    await bot.idle()
    assert await bot.spent(BOB) > 0

    await bot.click(card, "job_variations", user=ALICE)
    varied = (await bot.wait(lambda: len(bot.finished_cards()) == 3 and bot.finished_cards()))[2]
    assert block_texts(varied)[0] == f"🔀 <@{ALICE}> asked for variations of: a red fox"
    assert "seeds" in block_texts(varied)[1]
    await bot.idle()
    assert len(bot.fake.uploads) == 1 + 1 + 4 and len(bot.runpod.jobs) == 6


async def test_cancel_is_for_the_requester_or_an_admin(bot: SlackBot) -> None:
    bot.runpod.endpoints[SCHNELL].execution_time = 30
    await bot.command("/imagine", "a slow fox")
    (card,) = await bot.wait(bot.cards)
    await bot.runpod.wait_until(
        lambda: any(j.status == "IN_PROGRESS" for j in bot.runpod.jobs.values())
    )
    card = await bot.wait(lambda: bot.fake.message(CHANNEL, card.ts))
    assert button_ids(card) == {"job_cancel"}

    await bot.click(card, "job_cancel", user=BOB)
    (refused,) = await bot.wait(lambda: bot.ephemerals(BOB))
    assert refused.text == "Only the person who asked (or an admin) can do that."
    await bot.click(card, "job_cancel", user=BOSS)
    (said,) = await bot.wait(lambda: bot.ephemerals(BOSS))
    assert said.text.startswith("Cancelling.")
    ended = await bot.wait(
        lambda: (
            "Cancelled" in " ".join(block_texts(bot.fake.message(CHANNEL, card.ts)))
            and bot.fake.message(CHANNEL, card.ts)
        )
    )
    assert block_texts(ended)[1] == "🚫 Cancelled. Nothing was charged."
    (told,) = await bot.wait(bot.ephemerals)  # the requester learns it privately
    assert "Nothing was charged" in told.text
    await bot.idle()
    assert bot.runpod.count("cancel") == 1 and await bot.spent(ALICE) == 0


async def test_show_request_gives_the_api_call_privately(bot: SlackBot) -> None:
    await bot.command("/imagine", "a &lt;tiny&gt; fox &amp; friends --size 256x256")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.click(card, "job_show", user=BOB)
    (shown,) = await bot.wait(lambda: bot.ephemerals(BOB))
    job_id = button_value(card, "job_show")
    assert shown.text.startswith(f"The Runpod API call for job `{job_id}`:\n```\n# curl")
    assert "a &lt;tiny&gt; fox &amp; friends" in shown.text and "<tiny>" not in shown.text


async def test_an_expensive_job_waits_for_run_it(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    async with running_bot(tmp_path, runpod_fake, fake, jobs={"confirm_above_usd": "0.01"}) as bot:
        await bot.command("/imagine", "a fox --model flux-dev")
        (question,) = await bot.wait(bot.ephemerals)
        assert "This will cost about *$0.02*, more than the $0.01" in block_texts(question)[0]
        assert button_ids(question) == {"job_confirm", "job_decline"}
        assert bot.runpod.count("run") == 0 and bot.public() == []

        await bot.click(question, "job_decline")
        await bot.wait(lambda: bot.fake.message(CHANNEL, question.ts).text.startswith("Cancelled"))

        await bot.command("/imagine", "a bigger fox --model flux-dev")
        question = (await bot.wait(lambda: len(bot.ephemerals()) == 2 and bot.ephemerals()))[1]
        await bot.click(question, "job_confirm")
        (card,) = await bot.wait(bot.finished_cards)
        assert block_texts(card)[0] == f"🎨 <@{ALICE}> asked for: a bigger fox"
        replaced = bot.fake.message(CHANNEL, question.ts)
        assert replaced is not None and replaced.text == "Confirmed; it is running."
        assert bot.runpod.count("run") == 1


async def test_buttons_work_after_a_restart(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        event = await bot.mention("imagine a harbour at dawn --size 256x256")
        (card,) = await bot.wait(bot.finished_cards)
        await bot.idle()
    async with running_bot(tmp_path, runpod_fake, fake) as bot:  # a new process, same database
        again = await bot.signer.post_event(bot.url, event, retry_num=3, retry_reason="timeout")
        assert again.status == 200
        await bot.click(card, "job_show", user=BOB)
        (shown,) = await bot.wait(lambda: bot.ephemerals(BOB))
        assert "a harbour at dawn" in shown.text and "curl -X POST" in shown.text
        await bot.click(card, "job_reroll", user=BOB)
        cards = await bot.wait(lambda: len(bot.finished_cards()) == 2 and bot.finished_cards())
        assert block_texts(cards[1])[0] == f"🎲 <@{BOB}> rerolled: a harbour at dawn"
        assert cards[1].thread_ts == event["event"]["ts"]
        await bot.idle()
        assert len(runpod_fake.jobs) == 2, "the redelivered mention ran again"


async def test_a_job_running_at_a_restart_finishes_on_the_same_card(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 1.0
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        await bot.command("/imagine", "a lantern --size 256x256")
        (card,) = await bot.wait(bot.cards)
        await bot.wait(lambda: "queued at Runpod" in block_texts(fake.message(CHANNEL, card.ts))[1])
    assert not fake.uploads  # the process ends with the job running at Runpod
    async with running_bot(tmp_path, runpod_fake, fake) as bot:
        (finished,) = await bot.wait(bot.finished_cards)
        await bot.idle()
        assert finished.ts == card.ts and len(bot.cards()) == 1
        (upload,) = fake.uploads
        assert upload.thread_ts == card.ts and runpod_fake.count("run") == 1


async def test_a_result_delivered_twice_is_posted_once(bot: SlackBot) -> None:
    await bot.command("/imagine", "a lamp --size 256x256")
    (card,) = await bot.wait(bot.finished_cards)
    await bot.idle()
    here = Community("slack", bot.fake.team_id)
    job = await bot.core.jobs.job(button_value(card, "job_show"), here)
    assert job is not None and bot.adapter.context is not None
    again = Result(job.id, "imagine", "Flux Schnell", job.model, "a lamp", "image", cost=Decimal(1))
    await bot.adapter.context.delivery(job.channel).deliver(again)  # as after a crash
    assert len(bot.fake.uploads) == 1 and len(bot.cards()) == 1
    assert "$1.00" not in " ".join(block_texts(bot.cards()[0]))
