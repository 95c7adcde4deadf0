"""A job's card is edited at most once per progress interval, counting its post and last steps
(adapters/pacing.py): fewer `chat.update` calls, the same progress for a job that runs long."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack
from tests.slack.support import CHANNEL, block_texts, running_bot

SCHNELL = "black-forest-labs-flux-1-schnell"


async def test_a_short_job_edits_its_card_once_with_the_result(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.2
    async with running_bot(tmp_path, runpod_fake, fake, jobs={"progress_interval_s": 1.5}) as bot:
        await bot.command("/imagine", "a kite --size 256x256")
        (card,) = await bot.wait(bot.finished_cards)
        await bot.idle()
    assert fake.message(CHANNEL, card.ts).edits == 1, "progress and 'uploading' were shown"
    assert len(fake.uploads) == 1 and fake.uploads[0].thread_ts == card.ts


async def test_a_long_job_still_shows_its_progress_before_the_result(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeSlack
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 2.5
    async with running_bot(tmp_path, runpod_fake, fake, jobs={"progress_interval_s": 0.5}) as bot:
        await bot.command("/imagine", "a kite --size 256x256")
        (card,) = await bot.wait(bot.cards)
        first = block_texts(card)[1]
        progress = await bot.wait(
            lambda: "Runpod" in (line := block_texts(fake.message(CHANNEL, card.ts))[1]) and line
        )
        assert not bot.finished_cards(), "the result came before any progress was shown"
        (finished,) = await bot.wait(bot.finished_cards)
        await bot.idle()
    assert "queued" in first and "Flux Schnell" in progress and finished.ts == card.ts
