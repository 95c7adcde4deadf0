"""`log.format = "json"`: one JSON object per line, job fields filled, no secrets, no prompts."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
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
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


class Captured:
    """The bot's log output, configured as `python -m bot run` does, into memory."""

    def __init__(self, settings: Settings) -> None:
        self._stream = io.StringIO()
        self._handler = logs.configure(settings, stream=self._stream)

    def getvalue(self) -> str:
        """What was written once every line logged so far is out (they are written on a thread)."""
        self._handler.flush()
        return self._stream.getvalue()


def configured(settings: Settings) -> Captured:
    return Captured(settings)


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


class Rendered:
    """A log argument that notes the thread that turned it into text."""

    def __init__(self) -> None:
        self.on: str | None = None

    def __str__(self) -> str:
        self.on = threading.current_thread().name
        return "rendered"


@pytest.mark.usefixtures("restore_logging")
def test_lines_are_formatted_and_written_off_the_callers_thread() -> None:
    stream = configured(Settings())
    value = Rendered()
    logging.getLogger("bot.test").info("hold %s", value)
    assert " INFO bot.test: hold rendered" in stream.getvalue()
    assert value.on is not None
    assert value.on != threading.current_thread().name


def test_lines_queued_at_exit_are_written(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "from bot import logs\n"
        "from bot.config import Settings\n"
        "logs.configure(Settings(), stream=sys.stdout)\n"
        "for n in range(2000):\n"
        "    logging.getLogger('bot.test').info('line %d', n)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "BOT_CONFIG": str(tmp_path / "absent.toml")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2000
    assert lines[-1].endswith("INFO bot.test: line 1999")
