"""Settings precedence, the usual environment names, and the check/run commands' answers."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError

SECRET = "xoxb-SECRET-do-not-print-4242"
ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_gives_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.runpod.base_url == "https://api.runpod.ai/v2"
    assert settings.storage.database == Path("bot.db")
    assert settings.discord.gateway_url == "wss://gateway.discord.gg/"
    assert settings.slack.api_url == "https://slack.com/api/" and settings.slack.port == 3000
    assert settings.enabled_adapters() == []


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[quotas]\ndaily_usd = 1.5\n[runpod]\nbase_url = "http://file"\n')
    monkeypatch.setenv("BOT_RUNPOD__BASE_URL", "http://env")
    settings = load_settings(path)
    assert settings.runpod.base_url == "http://env"
    assert settings.quotas.daily_usd == Decimal("1.5")


def test_usual_names_are_read_and_kept_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-secret")
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-secret")
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.runpod.api_key is not None
    assert settings.runpod.api_key.get_secret_value() == "rp-secret"
    assert settings.enabled_adapters() == ["discord", "slack"]
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())


def test_bot_prefixed_names_beat_the_usual_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "usual")
    monkeypatch.setenv("BOT_RUNPOD__API_KEY", "prefixed")
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.runpod.api_key is not None
    assert settings.runpod.api_key.get_secret_value() == "prefixed"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[quotas]\ndaily_usd = "abc"\n', "quotas.daily_usd"),
        ("[quotas]\nmonthly_usd = -1\n", "quotas.monthly_usd"),
        ('[quotas]\ntimezone = "Mars/Olympus"\n', "quotas.timezone"),
        ("[slack]\nport = 70000\n", "slack.port"),
        ("[runpod]\nbase_urll = 1\n", "runpod.base_urll"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(write(tmp_path, text))
    assert key in bad.value.message


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[quotas\n"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the code under test, whatever the working folder (not an installed copy).
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd or Path.cwd()), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_check_exits_2_naming_the_bad_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[quotas]\ndaily_usd = "abc"\n')
    done = run_cli("--config", str(path), "check")
    assert done.returncode == 2
    assert "quotas.daily_usd" in done.stderr and "Traceback" not in done.stderr


def test_check_refuses_limits_above_the_admin_maximum_naming_each_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[quotas]\ndaily_usd = 1e12\nweekly_usd = 100000\n"
        "[quotas.workspace]\nmonthly_usd = 1e12\n"
        "[quotas.roles.vip]\nweekly_usd = 100000.01\n",
    )
    done = run_cli("--config", str(path), "check")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    refused = [
        line.split(":")[0].strip() for line in done.stderr.splitlines() if "$100,000" in line
    ]
    assert refused == [
        "quotas.daily_usd",
        "quotas.workspace.monthly_usd",
        "quotas.roles.vip.weekly_usd",
    ]


def test_check_prints_what_would_run_but_never_a_secret(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_SIGNING_SECRET": "sign-SECRET",
        "RUNPOD_API_KEY": "rp-SECRET",
    }
    done = run_cli("--config", str(tmp_path / "absent.toml"), "check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "slack" in done.stdout and "HTTP on port 3000" in done.stdout
    assert "SECRET" not in done.stdout + done.stderr


def test_run_without_any_platform_token_says_so_and_fails(tmp_path: Path) -> None:
    done = run_cli("run", env={"RUNPOD_API_KEY": "x"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "DISCORD_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_run_without_a_runpod_key_says_so(tmp_path: Path) -> None:
    done = run_cli("run", env={"DISCORD_TOKEN": "x"}, cwd=tmp_path)
    assert done.returncode == 2 and "RUNPOD_API_KEY" in done.stderr


EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_the_example_config_loads_and_documents_every_setting() -> None:
    from bot.config import Settings

    settings = load_settings(EXAMPLE)
    assert settings.quotas.daily_usd == Decimal("1.00")
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [key for key in _keys(Settings) if key.rsplit(".", 1)[-1] not in text]
    assert not missing, f"config.example.toml does not mention: {missing}"


def test_config_may_follow_the_command_and_toml_errors_name_the_file_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[quotas\n")
    done = run_cli("check", "--config", str(path))
    assert done.returncode == 2 and done.stderr.count(str(path)) == 1
    assert "not valid TOML" in done.stderr


def test_log_level_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_level"):
        load_settings(write(tmp_path, 'log_level = "LOUD"\n'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[discord]\nshard_ids = [0]\n", "shard_ids needs shards set to the total"),
        ('[discord]\nshards = "auto"\nshard_ids = [0]\n', "shard_ids needs shards set"),
        ("[discord]\nshards = 2\nshard_ids = [1, 2]\n", r"shard_ids \[2\] are outside 0..1"),
        ("[discord]\nshards = 2\nshard_ids = []\n", "at least one shard"),
        ("[discord]\nshards = 2\nshard_ids = [1, 1]\n", "names a shard twice"),
    ],
)
def test_shard_ids_must_fit_the_shard_count(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as bad:
        load_settings(write(tmp_path, text))
    assert "discord" in str(bad.value)


def test_shard_ids_pick_this_processs_shards(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[discord]\nshards = 4\nshard_ids = [2, 3]\n"))
    assert (settings.discord.shards, settings.discord.shard_ids) == (4, [2, 3])
