"""`log.format = "json"`: one JSON object per line, job fields filled, no secrets, no prompts."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import logs
from bot.config import Settings
from tests.conftest import API_KEY
from tests.discord.support import discord_settings, result_of, running_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod

PROMPT = "a lighthouse made of marmalade"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    logging.getLogger("httpx").setLevel(httpx_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def configured(settings: Settings) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(settings, stream=stream)
    return stream


@pytest.mark.usefixtures("restore_logging")
async def test_a_job_logs_json_lines_without_secrets_or_prompt(
    tmp_path: Path, runpod_fake: FakeRunpod, discord_fake: FakeDiscord
) -> None:
    settings = discord_settings(tmp_path, runpod_fake, discord_fake, log={"format": "json"})
    stream = configured(settings)
    async with running_bot(settings):
        done = await result_of(await discord_fake.slash_command("imagine", {"prompt": PROMPT}))
        assert done.attachments
        logging.getLogger("bot.test").warning("echo %s and %s", API_KEY, discord_fake.bot_token)
    text = stream.getvalue()
    records = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
    for secret in (API_KEY, discord_fake.bot_token):
        assert secret not in text
    assert "echo ********** and **********" in text
    assert "marmalade" not in text
    (completed,) = [r for r in records if " completed; charged " in r["message"]]
    assert completed["state"] == "completed"
    assert completed["platform"] == "discord"
    assert completed["workspace"] == str(discord_fake.guild.id)
    assert completed["model"] == "flux-schnell"
    assert completed["message"].endswith(f"charged {completed['cost']}")
    assert completed["cost"].startswith("0.0025")  # Flux Schnell, 1 megapixel
    assert completed["job_id"] in completed["message"]
    held = next(r for r in records if " held " in r["message"])
    assert held["job_id"] == completed["job_id"]


@pytest.mark.usefixtures("restore_logging")
def test_prompts_only_when_asked(tmp_path: Path, runpod_fake: FakeRunpod) -> None:
    base = {"runpod": {"api_key": API_KEY}, "storage": {"database": str(tmp_path / "b.db")}}
    for include in (False, True):
        settings = Settings(**base, log={"format": "json", "include_prompts": include})
        stream = configured(settings)
        logging.getLogger("bot.test").info("submitted", extra={"prompt": PROMPT})
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line).get("prompt") == (PROMPT if include else None)


@pytest.mark.usefixtures("restore_logging")
def test_human_format_stays_the_default(tmp_path: Path) -> None:
    settings = Settings(runpod={"api_key": API_KEY})
    stream = configured(settings)
    logging.getLogger("bot.test").info("job %s held", "abc")
    assert " INFO bot.test: job abc held" in stream.getvalue()
