"""Inputs kept with the job: a Reroll of a week-old /edit works after Discord's signed
attachment link expired, from the copy the bot kept and serves to Runpod by a signed link."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from bot.cli.main import main
from bot.delivery import MediaFile
from bot.jobs.inputs import DAY_S, Inputs
from bot.listener import Listener
from tests.discord.support import (
    discord_settings,
    job_id_of,
    jobs_of,
    png,
    reply_to,
    result_of,
    running_bot,
)
from tests.fakes.discord import FakeDiscord, Upload
from tests.fakes.runpod import FakeRunpod

pytestmark = pytest.mark.bot_settings(http={"public_url": "http://x.test"})
EDIT = {"prompt": "make it night", "model": "qwen-image-edit"}


@pytest.fixture
async def listening(discord_bot: DiscordAdapter) -> AsyncIterator[Listener]:
    """The bot's `[http]` listener, its public address being where it really listens."""
    listener = Listener(discord_bot.core.jobs, host="127.0.0.1", port=0)
    await listener.start()
    discord_bot.core.jobs.kept.links.base_url = f"http://127.0.0.1:{listener.port}"
    try:
        yield listener
    finally:
        await listener.stop()


@pytest.mark.usefixtures("listening")
async def test_reroll_of_an_edit_whose_attachment_expired_runs_from_the_kept_copy(
    discord_bot: DiscordAdapter, discord_fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    original = png(48, 32)
    first = await result_of(
        await discord_fake.slash_command(
            "edit", EDIT, attachments={"image": Upload("day.png", original, "image/png")}
        )
    )
    (sent_first,) = jobs_of(runpod_fake, "qwen-image-edit")
    discord_fake.expire_attachment(sent_first.input["image"])
    assert (await discord_bot.core.http.get(sent_first.input["image"])).status_code == 404

    rerolled = await result_of(
        await discord_fake.click_button(first, f"rpb:reroll:{job_id_of(first)}")
    )

    assert rerolled.attachments and job_id_of(rerolled) != job_id_of(first)
    sent_again = jobs_of(runpod_fake, "qwen-image-edit")[1]
    served = await discord_bot.core.http.get(sent_again.input["image"])
    assert served.status_code == 200 and served.content == original
    assert sent_again.input["prompt"] == "make it night"
    assert discord_bot.core.jobs.kept.inputs.disk_use().jobs == 2, "the reroll keeps its input too"


async def test_without_a_public_address_the_reroll_says_why_it_cannot_run(
    tmp_path: Path, runpod_fake: FakeRunpod, discord_fake: FakeDiscord
) -> None:
    async with running_bot(discord_settings(tmp_path, runpod_fake, discord_fake)):
        first = await result_of(
            await discord_fake.slash_command(
                "edit", EDIT, attachments={"image": Upload("day.png", png(), "image/png")}
            )
        )
        (sent_first,) = jobs_of(runpod_fake, "qwen-image-edit")
        discord_fake.expire_attachment(sent_first.input["image"])
        click = await discord_fake.click_button(first, f"rpb:reroll:{job_id_of(first)}")
        reply = await reply_to(click, lambda m: m.ephemeral)

    assert reply.ephemeral
    assert "the original attachment expired and this bot has no public address" in reply.content
    assert runpod_fake.count("run") == 1


async def test_a_recording_is_fetched_once_for_its_length_and_its_copy(
    discord_bot: DiscordAdapter, discord_fake: FakeDiscord, runpod_fake: FakeRunpod
) -> None:
    sent = await discord_fake.slash_command(
        "transcribe", attachments={"audio": Upload("talk.wav", b"RIFF....WAVE", "audio/wav")}
    )
    await result_of(sent)
    assert list(discord_fake.downloads.values()) == [1]
    assert discord_bot.core.jobs.kept.inputs.disk_use().jobs == 1


def test_inputs_are_removed_after_their_days_and_oldest_first_above_the_cap(
    tmp_path: Path,
) -> None:
    inputs = Inputs(tmp_path / "inputs", keep_days=7, max_bytes=10**6)
    now = time.time()
    for age_days, job_id in ((3, "old"), (2, "middle"), (1, "new")):
        inputs.save(job_id, (MediaFile("input-1.png", "image/png", b"x" * 1000),))
        written = now - age_days * DAY_S
        for path in (tmp_path / "inputs" / job_id).iterdir():
            os.utime(path, (written, written))
    inputs.max_bytes = 2500
    assert inputs.trim(now) == ["old"]  # over 3000 bytes > 2500: the oldest goes
    assert inputs.path("old", "input-1.png") is None
    assert inputs.path("new", "input-1.png") is not None
    assert inputs.trim(now + 5.5 * DAY_S) == ["middle"]  # 7.5 days old; "new" is 6.5
    assert inputs.disk_use().jobs == 1


def test_check_reports_the_disk_the_kept_inputs_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Inputs(tmp_path / "inputs", keep_days=30, max_bytes=10**6).save(
        "job1", (MediaFile("input-1.png", "image/png", b"x" * 2048),)
    )
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n')
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "inputs kept: 1 job(s), 0.0 MB" in out and "30 days" in out
