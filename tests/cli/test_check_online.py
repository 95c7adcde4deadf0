"""`python -m bot check --online` against the fake Runpod, Discord and Slack servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cli.main import main
from tests.conftest import API_KEY
from tests.fakes.discord import FakeDiscord
from tests.fakes.runpod import FakeRunpod
from tests.fakes.slack import FakeSlack

SECRETS = (API_KEY, "fake-bot-token", "xoxb-test", "xapp-test", "wrong")


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def config(
    tmp_path: Path,
    runpod: FakeRunpod,
    discord: FakeDiscord,
    slack: FakeSlack,
    **tokens: str,
) -> Path:
    values = {
        "runpod_key": API_KEY,
        "discord_token": discord.bot_token,
        "bot_token": slack.bot_token,
        "app_token": slack.app_token,
        **tokens,
    }
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[runpod]
api_key = "{values["runpod_key"]}"
base_url = "{runpod.base_url}"
[storage]
database = "{tmp_path / "bot.db"}"
[discord]
token = "{values["discord_token"]}"
api_base = "{discord.api_base}"
[slack]
bot_token = "{values["bot_token"]}"
app_token = "{values["app_token"]}"
api_url = "{slack.api_url}"
""",
        encoding="utf-8",
    )
    return path


async def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    code = await asyncio.to_thread(main, ["--config", str(path), "check", "--online"])
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out + err
    lines = {}
    for line in out.splitlines():
        service, _, rest = line.partition(": ")
        if service in ("runpod", "discord", "slack"):
            lines[service] = rest
    return code, lines


async def test_everything_reachable_is_ok(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(tmp_path, runpod_fake, discord_fake, slack_fake)
    code, lines = await check(path, capsys)
    assert code == 0
    assert lines["runpod"].startswith("ok")
    assert lines["discord"].startswith("ok (logged in as")
    assert lines["slack"].startswith("ok (bot ") and "Socket Mode" in lines["slack"]


async def test_bad_tokens_are_named(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(
        tmp_path,
        runpod_fake,
        discord_fake,
        slack_fake,
        runpod_key="rp_wrong",
        discord_token="wrong-discord",
        bot_token="xoxb-wrong",
    )
    code, lines = await check(path, capsys)
    assert code == 2
    assert lines["runpod"] == "FAILED (bad API key: Runpod refused it (401))"
    assert lines["discord"] == "FAILED (bad token: Discord answered 401 Unauthorized)"
    assert lines["slack"] == "FAILED (bad bot token: auth.test said invalid_auth)"


async def test_a_bad_app_token_and_a_missing_scope(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(tmp_path, runpod_fake, discord_fake, slack_fake, app_token="xapp-wrong")
    code, lines = await check(path, capsys)
    assert code == 2
    assert lines["slack"] == "FAILED (bad app token: apps.connections.open said invalid_auth)"
    slack_fake.scopes = "app_mentions:read,chat:write,commands,files:read,users:read"
    path = config(tmp_path, runpod_fake, discord_fake, slack_fake)
    code, lines = await check(path, capsys)
    assert code == 2
    assert lines["slack"] == (
        "FAILED (missing scope: files:write, usergroups:read; add it and reinstall the app)"
    )
    assert lines["discord"].startswith("ok")


async def test_unreachable_services(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    discord_fake: FakeDiscord,
    slack_fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(tmp_path, runpod_fake, discord_fake, slack_fake)
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    text = path.read_text(encoding="utf-8")
    for url in (runpod_fake.base_url, discord_fake.api_base, slack_fake.api_url):
        text = text.replace(url, closed + "/")
    path.write_text(text, encoding="utf-8")
    code, lines = await check(path, capsys)
    assert code == 2
    assert lines["runpod"].startswith("FAILED (unreachable at http://127.0.0.1:9/")
    assert lines["discord"].startswith("FAILED (unreachable at http://127.0.0.1:9/")
    assert lines["slack"].startswith("FAILED (unreachable at http://127.0.0.1:9/")
