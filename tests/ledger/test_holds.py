"""Holds are upper bounds of what Runpod can bill, so concurrent jobs cannot overspend a quota.

Core + real httpx against FakeRunpod and a FileHost serving the recordings members attach.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import Core, open_core
from bot.jobs.invocation import Submitted
from bot.ledger.periods import utc_now
from bot.ledger.quota import QuotaExceeded
from bot.runpod import recording as recordings
from tests.conftest import make_settings
from tests.discord.support import discord_settings, running_bot
from tests.fakes import media
from tests.fakes.delivery import RecordingDelivery
from tests.fakes.discord import FakeDiscord, Upload, point_discord_py_at
from tests.fakes.files import FileHost
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent, submit

# A member with $1.00 a day, and no other limit that could be the one named.
ONE_DOLLAR_A_DAY = {"daily_usd": "1.00", "monthly_usd": None, "workspace": {"monthly_usd": None}}
WHISPER = "whisper-v3-large"


@pytest.fixture
async def files() -> AsyncIterator[FileHost]:
    async with FileHost() as host:
        yield host


@pytest.fixture
async def core(tmp_path: Path, runpod_fake: FakeRunpod) -> AsyncIterator[Core]:
    settings = make_settings(tmp_path, runpod_fake, quotas=ONE_DOLLAR_A_DAY)
    async with open_core(settings) as built:
        yield built


def wav(seconds: float) -> bytes:
    """A real WAV of `seconds`; 400 Hz sampling keeps a long one small (2 MB for 2,500 s)."""
    return media.wav(seconds, rate=400)


def recording(files: FileHost, name: str, seconds: float) -> str:
    """A recording served by `files`, as a CDN serves an upload; returns its URL."""
    return files.add(name, wav(seconds), "audio/wav")


def transcript(characters: int, cost: str | None = None) -> Any:
    """A FakeRunpod output rule: a transcript of `characters`, billed `cost` if given."""

    def output(inp: dict[str, Any], url: str) -> dict[str, Any]:
        out: dict[str, Any] = {"transcription": "a" * characters}
        if cost is not None:
            out["cost"] = cost
        return out

    return output


@pytest.mark.parametrize(
    ("data", "seconds"),
    [
        (media.wav(2.5), 2.5),
        (media.wav(3, pad=101), 3.0),  # a chunk players skip
        (media.mp4(64, 64, 7.0), 7.0),  # a video's sound track transcribes too
        (b"RIFF....WAVE", None),  # a header and nothing else
        (media.png(8, 8), None),
        (b"", None),
    ],
)
def test_a_recordings_length_is_read_from_its_bytes(data: bytes, seconds: float | None) -> None:
    assert recordings.seconds_of(data) == seconds


async def transcribe_twice(core: Core, url: str) -> list[Submitted | BaseException]:
    async def one() -> Submitted:
        submitted, _ = await submit(core, "", command="transcribe", media=(url,))
        return submitted

    return await asyncio.gather(one(), one(), return_exceptions=True)


async def test_two_long_recordings_at_once_cannot_spend_past_the_daily_limit(
    core: Core, runpod_fake: FakeRunpod, files: FileHost
) -> None:
    """Issue 10: both were admitted on $0.25 holds and charged $5.00 each against $1.00."""
    runpod_fake.endpoints[WHISPER].output = transcript(100_000, cost="5.00")
    # 2,500 s can transcribe to 100,000 characters at 40 a second: $5.00 at $0.05 per 1,000.
    url = recording(files, "meeting.wav", 2500)
    outcomes = await transcribe_twice(core, url)
    for outcome in outcomes:
        assert isinstance(outcome, QuotaExceeded), outcome
        assert "Your daily limit is $1.00" in outcome.message
        assert "This costs about $5.00" in outcome.message
    assert runpod_fake.count("run") == 0
    assert await spent(core) == (Decimal(0), Decimal(0))


async def test_of_two_recordings_at_once_only_the_one_that_fits_runs(
    core: Core, runpod_fake: FakeRunpod, files: FileHost
) -> None:
    runpod_fake.endpoints[WHISPER].output = transcript(7_200)  # 5 minutes at 24 a second
    url = recording(files, "talk.wav", 300)  # holds 300 s x 40 x $0.05 / 1,000 = $0.60
    outcomes = await transcribe_twice(core, url)
    admitted = [o for o in outcomes if isinstance(o, Submitted)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(admitted) == 1 and len(refused) == 1, outcomes
    assert admitted[0].estimate == Decimal("0.60")
    await core.jobs.wait_idle(10)
    assert await spent(core) == (Decimal("0.36"), Decimal(0))
    assert runpod_fake.count("run") == 1


@pytest.mark.parametrize("served", ["missing", "not audio"])
async def test_a_recording_of_unknown_length_holds_the_cap_and_the_member_is_told(
    core: Core, runpod_fake: FakeRunpod, files: FileHost, served: str
) -> None:
    url = f"{files.base_url}/gone.mp3"
    if served == "not audio":
        url = files.add("page.mp3", b"<html>log in first</html>", "text/html")
    submitted, delivery = await submit(core, "", command="transcribe", media=(url,))
    assert submitted.estimate == Decimal("0.50")  # jobs.unknown_length_hold_usd
    await delivery.wait_for(lambda: delivery.ended)
    (result,) = delivery.results
    assert "Held up to $0.50 because the recording's length could not be read." in result.notes


async def test_a_bill_above_the_bound_is_charged_recorded_logged_and_counted(
    core: Core, runpod_fake: FakeRunpod, files: FileHost, caplog: pytest.LogCaptureFixture
) -> None:
    # 10 s bounds the transcript at 400 characters ($0.02); Runpod bills $0.30 regardless.
    runpod_fake.endpoints[WHISPER].output = transcript(200, cost="0.30")
    url = recording(files, "short.wav", 10)
    with caplog.at_level(logging.WARNING, logger="bot.ledger.service"):
        submitted, delivery = await submit(core, "", command="transcribe", media=(url,))
        await delivery.wait_for(lambda: delivery.ended)
    assert submitted.estimate == Decimal("0.02")
    assert delivery.results[0].cost == Decimal("0.30")
    assert await spent(core) == (Decimal("0.30"), Decimal(0))
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "overage $0.28" in warning.getMessage()
    now = utc_now()
    report = await core.ledger.report(None, now - timedelta(days=1), now + timedelta(days=1))
    assert (report.overage_jobs, report.overage) == (1, Decimal("0.28"))


async def test_a_request_that_cannot_fit_the_quota_is_refused_before_any_confirmation(
    core: Core, runpod_fake: FakeRunpod
) -> None:
    """`/ask --max-tokens 999999999999` offered to confirm a $10,000,000 job."""
    delivery = RecordingDelivery()
    with pytest.raises(QuotaExceeded) as refused:
        await submit(core, "hi --max-tokens 999999999999", command="ask", delivery=delivery)
    assert "Your daily limit is $1.00" in refused.value.message
    assert "This costs about $10,000,000" in refused.value.message
    assert delivery.confirmations == []
    rows = await core.db.fetchall("SELECT state FROM jobs")
    assert rows == [] and runpod_fake.count("run") == 0


# --- over the wire: Discord ------------------------------------------------------------------


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with point_discord_py_at(fake):
            yield fake


async def test_two_long_recordings_attached_at_once_on_discord_are_both_refused(
    tmp_path: Path, runpod_fake: FakeRunpod, discord_fake: FakeDiscord
) -> None:
    runpod_fake.endpoints[WHISPER].output = transcript(100_000, cost="5.00")
    settings = discord_settings(tmp_path, runpod_fake, discord_fake, quotas=ONE_DOLLAR_A_DAY)
    upload = {"audio": Upload("meeting.wav", wav(2500), "audio/wav")}
    async with running_bot(settings):
        sent = await asyncio.gather(
            discord_fake.slash_command("transcribe", attachments=upload),
            discord_fake.slash_command("transcribe", attachments=upload),
        )
        refusals = [await s.wait_for_message(lambda m: m.ephemeral) for s in sent]
    for refusal in refusals:
        assert refusal.content.startswith("Your daily limit is $1.00; $1.00 is left until")
        assert "This costs about $5.00." in refusal.content
    assert runpod_fake.count("run") == 0


async def test_ask_for_a_trillion_tokens_on_discord_is_refused_without_a_confirm_button(
    tmp_path: Path, runpod_fake: FakeRunpod, discord_fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, discord_fake, quotas=ONE_DOLLAR_A_DAY)
    async with running_bot(settings):
        sent = await discord_fake.slash_command(
            "ask", {"prompt": "hi", "max_tokens": 999_999_999_999}
        )
        refusal = await sent.wait_for_message(lambda m: m.ephemeral)
    assert refusal.content.startswith("Your daily limit is $1.00")
    assert all(not m.buttons for m in sent.messages)
    assert runpod_fake.count("run") == 0
