"""A job's interaction response is edited at most once per progress interval, its defer counted
(adapters/pacing.py): a short job goes from "thinking..." to its result in one edit, a long one
still shows its progress, with the Cancel button, before the result."""

from __future__ import annotations

from pathlib import Path

from tests.discord.support import discord_settings, job_id_of, result_of, running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod

SCHNELL = "black-forest-labs-flux-1-schnell"
HOURGLASS = "\N{HOURGLASS WITH FLOWING SAND}"


async def test_a_short_job_goes_from_thinking_to_its_result_in_one_edit(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 0.2
    # An interval far longer than the job, so that a loaded machine's slowness shows no progress
    # either; the result never waits for it.
    settings = discord_settings(tmp_path, runpod_fake, fake, jobs={"progress_interval_s": 5.0})
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "a kite", "size": "256x256"})
        done = await result_of(sent)
        await bot.core.jobs.wait_idle(10)
    shown = fake.versions(done.id)
    assert [v.loading for v in shown] == [True, False], "progress was shown for a short job"
    assert shown[-1].attachments


async def test_a_long_job_still_shows_its_progress_before_the_result(
    tmp_path: Path, runpod_fake: FakeRunpod, fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[SCHNELL].execution_time = 2.5
    settings = discord_settings(tmp_path, runpod_fake, fake, jobs={"progress_interval_s": 0.5})
    async with running_bot(settings) as bot:
        sent = await fake.slash_command("imagine", {"prompt": "a kite", "size": "256x256"})
        thinking = await sent.original(lambda m: m.loading)
        progress = await sent.original(
            lambda m: "generating" in m.content or "queued at Runpod" in m.content
        )
        done = await result_of(sent)
        await bot.core.jobs.wait_idle(10)
    job = job_id_of(done)
    assert thinking.id == progress.id == done.id
    assert progress.button(f"rpb:cancel:{job}").label == "Cancel"
