"""No secret ever reaches a log line, a user, the terminal or the database.

The five secrets the bot reads are set to recognisable strings. Representative flows then run:
jobs end to end through the core (an image, a streamed text reply), Runpod refusing the key at
/run and mid-job, `python -m bot check` on good and broken configurations, and `python -m bot
try` succeeding and failing, as real processes. Every log record of every logger (DEBUG,
including httpx and httpcore), everything the user was shown (RecordingDelivery), every byte of
stdout/stderr and the SQLite files are searched for each secret and for a fragment of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.app import open_core
from bot.config import Settings, load_settings
from tests.conftest import register_catalog
from tests.fakes.delivery import RecordingDelivery
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import submit

SECRETS = {
    "RUNPOD_API_KEY": "rp_LEAKCHECK_runpod_key_7f3a9c1e5b2d",
    "DISCORD_TOKEN": "MTA.LEAKCHECK_discord_token.Gx9Zq4",
    "SLACK_BOT_TOKEN": "xoxb-LEAKCHECK-slack-bot-1234567890",
    "SLACK_SIGNING_SECRET": "LEAKCHECK_signing_secret_8e1f0a7c",
    "SLACK_APP_TOKEN": "xapp-1-LEAKCHECK-slack-app-abcdef",
}
WRONG_KEY = "rp_LEAKCHECK_revoked_key_0b9d8c7a"
FLUX = "black-forest-labs-flux-1-schnell"


def leaks(text: str) -> list[str]:
    """Which secrets (whole, or a distinctive 16-character middle) appear in `text`."""
    found = []
    for name, secret in [*SECRETS.items(), ("revoked RUNPOD_API_KEY", WRONG_KEY)]:
        middle = secret[len(secret) // 2 - 8 : len(secret) // 2 + 8]
        if secret in text or middle in text:
            found.append(name)
    return found


def test_the_leak_check_finds_a_whole_or_partial_secret() -> None:
    key = SECRETS["RUNPOD_API_KEY"]
    assert leaks(f"Authorization: Bearer {key}") == ["RUNPOD_API_KEY"]
    assert leaks(f"key={key[4:-4]}") == ["RUNPOD_API_KEY"]
    assert leaks("Authorization: Bearer **********") == []


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG on every logger, including those set quieter elsewhere (httpx by the CLI)."""
    caplog.set_level(logging.DEBUG)
    known = ("httpx", "httpcore", "aiohttp", "asyncio", "aiosqlite", "bot", "tests")
    for name in (*known, *logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return "\n".join(parts)


def shown_to_user(delivery: RecordingDelivery) -> str:
    files = [(f.filename, f.content_type, f.source_url) for r in delivery.results for f in r.files]
    results = [r.__class__(**{**r.__dict__, "files": ()}) for r in delivery.results]
    return "\n".join(
        map(
            repr,
            [
                results,
                files,
                delivery.failures,
                delivery.progress_updates,
                delivery.warnings,
                delivery.confirmations,
            ],
        )
    )


def database_bytes(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in folder.glob("bot.db*") if p.is_file()
    )


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    yield SECRETS


@pytest.fixture
async def fake() -> AsyncIterator[FakeRunpod]:
    async with FakeRunpod(api_key=SECRETS["RUNPOD_API_KEY"]) as server:
        register_catalog(server)
        yield server


def write_config(tmp_path: Path, fake: FakeRunpod, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[runpod]\nbase_url = "{fake.base_url}"\nmax_retries = 1\nbackoff_base_s = 0.01\n'
        f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
        '[http]\nport = 0\nhost = "127.0.0.1"\n'
        '[slack]\nhost = "127.0.0.1"\n'
        "[security]\nallow_private_urls = true\n" + extra,  # results come from 127.0.0.1
        encoding="utf-8",
    )
    return config


def test_settings_never_print_a_secret(
    tmp_path: Path, fake: FakeRunpod, secret_env: dict[str, str]
) -> None:
    settings = load_settings(write_config(tmp_path, fake))
    assert settings.runpod.api_key is not None
    assert settings.runpod.api_key.get_secret_value() == SECRETS["RUNPOD_API_KEY"]
    assert set(settings.enabled_adapters()) == {"discord", "slack"}
    for text in (
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
    ):
        assert not leaks(text)


@pytest.mark.parametrize(
    "flow",
    [
        "image delivered",
        "text streamed and delivered",
        "key refused at /run",
        "key refused mid-job",
        "Runpod down mid-job, then delivered",
    ],
)
async def test_a_job_leaks_no_secret(
    flow: str,
    tmp_path: Path,
    fake: FakeRunpod,
    secret_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    every_log: pytest.LogCaptureFixture,
) -> None:
    if flow == "key refused at /run":
        monkeypatch.setenv("RUNPOD_API_KEY", WRONG_KEY)
    elif flow == "key refused mid-job":
        fake.fail_next("status-sync", 401)
    elif flow == "Runpod down mid-job, then delivered":
        fake.reset_next("status-sync", 5)
    settings: Settings = load_settings(write_config(tmp_path, fake))
    command, text = ("ask", "tell me about foxes") if flow.startswith("text") else ("imagine", "")
    async with open_core(settings) as core:
        _, delivery = await submit(core, text or "a red fox --size 256x256", command=command)
        await delivery.wait_for(lambda: delivery.ended, timeout=15)
        await core.jobs.wait_idle(15)
    delivered = flow.endswith("delivered")
    assert bool(delivery.results) == delivered, delivery.failures
    if flow.startswith("key refused"):
        assert "API key was refused" in delivery.failures[0].message
    sent = [r for r in fake.requests if r.route in ("run", "status-sync")]
    assert sent and all("authorization" in r.headers for r in sent)  # the key was really used
    debug = {r.name.split(".")[0] for r in every_log.records if r.levelno == logging.DEBUG}
    # The stacks' own DEBUG lines were captured. Runpod's API and the image downloads go
    # through aiohttp, which logs no request lines; aiosqlite logs each statement.
    assert "aiosqlite" in debug, debug
    assert not leaks(log_text(every_log)), "a secret in the logs"
    assert not leaks(shown_to_user(delivery)), "a secret shown to the user"
    assert not leaks(database_bytes(tmp_path)), "a secret in the database"


async def run_bot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


# name -> (the secret's environment variable, a config file misusing that secret). The variable
# is left unset for that run, since the environment would win over the file.
# name: (the variable the secret came from, the config, what `check` names as the fault)
BROKEN_CONFIGS = {
    "a secret of the wrong type": (
        "SLACK_SIGNING_SECRET",
        f'[slack]\nsigning_secret = ["{SECRETS["SLACK_SIGNING_SECRET"]}"]\n',
        "slack.signing_secret: Input should be a valid string",
    ),
    "a secret under an unknown key": (
        "DISCORD_TOKEN",
        f'[discord]\ntokn = "{SECRETS["DISCORD_TOKEN"]}"\n',
        "discord.tokn: Extra inputs are not permitted",
    ),
    "a secret in a broken TOML line": (
        "RUNPOD_API_KEY",
        f'[runpod]\napi_key = "{SECRETS["RUNPOD_API_KEY"]}\n',
        "not valid TOML",
    ),
    "a secret as a bad number": (
        "SLACK_APP_TOKEN",
        f'[jobs]\nmax_per_user = "{SECRETS["SLACK_APP_TOKEN"]}"\n',
        "jobs.max_per_user: Input should be a valid integer",
    ),
}


async def test_check_prints_what_would_run_but_no_secret(
    tmp_path: Path, fake: FakeRunpod, secret_env: dict[str, str]
) -> None:
    env = dict(os.environ)
    good = tmp_path / "good"
    good.mkdir()
    runs = [run_bot("--config", str(write_config(good, fake)), "check", env=env, cwd=good)]
    for number, (variable, text, _) in enumerate(BROKEN_CONFIGS.values()):
        folder = tmp_path / f"broken{number}"
        folder.mkdir()
        config = folder / "config.toml"
        config.write_text(text, encoding="utf-8")
        without = {k: v for k, v in env.items() if k != variable}
        runs.append(run_bot("--config", str(config), "check", env=without, cwd=folder))
    (code, output), *broken = await asyncio.gather(*runs)
    assert code == 0 and "adapters that would run: discord, slack" in output, output
    assert "api key set" in output and not leaks(output)
    for (name, (*_, fault)), (code, output) in zip(BROKEN_CONFIGS.items(), broken, strict=True):
        assert code == 2 and fault in output, (name, output)
        assert not leaks(output), f"{name}: {output}"


async def test_try_leaks_no_secret_when_it_works_or_the_key_is_refused(
    tmp_path: Path, fake: FakeRunpod, secret_env: dict[str, str]
) -> None:
    config = write_config(tmp_path, fake)
    env = {**os.environ, "BOT_CONFIG": str(config)}
    args = ("try", "flux-schnell", "a fox", "-p", "width=256", "-p", "height=256")
    (ok, ok_output), (refused, refused_output) = await asyncio.gather(
        run_bot(*args, "--out", "fox.png", "--show-request", env=env, cwd=tmp_path),
        run_bot(*args, "--out", "no.png", env={**env, "RUNPOD_API_KEY": WRONG_KEY}, cwd=tmp_path),
    )
    assert ok == 0 and (tmp_path / "fox.png").exists(), ok_output
    assert "$RUNPOD_API_KEY" in ok_output  # the printed curl names the variable, not the key
    assert refused == 1 and "API key was refused" in refused_output, refused_output
    assert not leaks(ok_output) and not leaks(refused_output)
    assert not leaks(database_bytes(tmp_path))
