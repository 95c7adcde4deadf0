"""`python -m bot models` and `cost` start without the network stack or the ledger.

They took 0.37 s and 62 MB because every command module imported the job engine (`bot.app`:
aiohttp, httpx, prometheus, jinja2) at import time; commands that reach no network now load
it only when they run, and `python -m bot COMMAND` imports only COMMAND's module
(docs/benchmarks.md, "Start-up of the command line"). These tests name what is loaded, not how
long it takes: timings belong to the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import bot
from bot.cli.main import COMMANDS

ROOT = Path(bot.__file__).resolve().parent.parent
NETWORK = ("aiohttp", "httpx", "prometheus_client", "jinja2", "PIL", "psycopg", "bot.app")
# What other commands need: the ledger, the SQLite driver, the bot's logging thread.
HEAVY = (*NETWORK, "aiosqlite", "bot.ledger.service", "bot.storage.sqlite", "logging.handlers")
# Run the command as `python -m bot` does, then name the heavy modules it loaded.
PROBE = """
import runpy, sys
sys.argv = ["bot", *sys.argv[1:]]
try:
    runpy.run_module("bot", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print("loaded:", *sorted(m for m in {heavy} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _bot(
    tmp_path: Path, *args: str, heavy: tuple[str, ...] = HEAVY, extra_env: Mapping[str, str] = {}
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "RUNPOD_"))}
    env.update(extra_env)
    env["BOT_CONFIG"] = str(tmp_path / "absent.toml")
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("models",), "flux-schnell"),
        (("cost", "flux-schnell", "width=1024", "height=1024"), "$0.0025165824"),
    ],
)
def test_models_and_cost_answer_without_loading_the_network_stack(
    tmp_path: Path, args: tuple[str, ...], shown: str
) -> None:
    result = _bot(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded:"


def test_help_still_lists_every_command(tmp_path: Path) -> None:
    result = _bot(tmp_path, "--help", heavy=NETWORK)
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded:"


def test_each_command_is_found_in_the_module_named_for_it(tmp_path: Path) -> None:
    """`python -m bot COMMAND` loads only `COMMANDS[COMMAND]`: a wrong entry loses the command."""
    for command in COMMANDS:
        result = _bot(tmp_path, "--config", "models", command, "--help", heavy=())
        assert result.returncode == 0, result.stderr
        assert f"usage: python -m bot {command} " in result.stdout


# What `models` leaves out since it reads the catalog and its two settings without pydantic.
PYDANTIC_AND_ASYNC = ("pydantic", "pydantic_core", "pydantic_settings", "asyncio", *NETWORK)


def test_models_lists_without_pydantic_or_asyncio(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[storage]\ndatabase = "absent.db"\n[quotas]\n')
    result = _bot(tmp_path, "--config", "config.toml", "models", heavy=PYDANTIC_AND_ASYNC)
    assert result.returncode == 0, result.stderr
    assert "flux-schnell" in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded:"


@pytest.mark.parametrize(
    ("config", "env", "error"),
    [
        ("[storage]\ndatabase = 5\n", {}, "storage.database: Value error, storage.database must"),
        ("", {"BOT_STORAGE__SPOOL_MAX_MB": "-1"}, "storage.spool_max_mb: Input should be"),
        ("[models]\nflux-dev = 1\n", {}, "models.flux-dev: Input should be a valid dictionary"),
        ("[models.flux-dev]\nprice = { unit = 'hour', usd = '1' }\n", {}, "models.flux-dev:"),
        ("[storage\n", {}, "not valid TOML"),
        (
            "[models.flux-dev]\nfoo = 1\n",
            {},
            "flux-dev: 1 validation error for Model\nfoo\n  Extra inputs",
        ),
    ],
)
def test_models_words_a_bad_setting_it_reads_as_the_bot_does(
    tmp_path: Path, config: str, env: dict[str, str], error: str
) -> None:
    """What `models` reads is judged by pydantic as for the running bot: the same message."""
    (tmp_path / "config.toml").write_text(config)
    result = _bot(tmp_path, "--config", "config.toml", "models", heavy=(), extra_env=env)
    assert result.returncode == 2
    assert error in result.stderr


def test_the_shipped_catalog_read_without_pydantic_is_what_pydantic_reads() -> None:
    from bot.runpod.catalog import load_catalog

    shipped = load_catalog()
    checked = load_catalog({model.id: {} for model in shipped})  # every table through pydantic
    assert [repr(model) for model in shipped] == [repr(model) for model in checked]


def test_cost_of_the_example_config_answers_without_pydantic_or_asyncio(tmp_path: Path) -> None:
    """The common case: the shipped example, nothing in the environment, no database yet."""
    (tmp_path / "config.toml").write_text((ROOT / "config.example.toml").read_text())
    args = ("--config", "config.toml", "cost", "flux-schnell")
    result = _bot(tmp_path, *args, heavy=PYDANTIC_AND_ASYNC)
    assert result.returncode == 0, result.stderr
    assert "$0.0025165824" in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded:"


def test_cost_answers_without_pydantic_or_asyncio(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[storage]\ndatabase = "absent.db"\n[jobs]\nconfirm_above_usd = "0.001"\n'
        '[policy]\nblocked_terms = ["moon"]\n[discord]\nguilds = [1]\n'
    )
    result = _bot(
        tmp_path,
        "--config",
        "config.toml",
        "cost",
        "flux-schnell",
        "prompt=moon",
        heavy=PYDANTIC_AND_ASYNC,
    )
    assert result.returncode == 0, result.stderr
    assert "above $0.001: it asks for confirmation first" in result.stdout
    assert "not allowed:" in result.stdout
    assert result.stderr.splitlines()[-1] == "loaded:"


@pytest.mark.parametrize(
    ("config", "env", "shown"),
    [
        ("[jobs]\nconfirm_above_usd = -1\n", {}, "jobs.confirm_above_usd: Input should be"),
        ("jobs = 1\n", {}, "jobs: Input should be a valid dictionary"),
        ("", {"BOT_JOBS__CONFIRM_ABOVE_USD": "-1"}, "jobs.confirm_above_usd: Input should be"),
        ("", {"BOT_JOBS__CONFIRM_ABOVE_USD": "0.001"}, "above $0.001: it asks for confirmation"),
        ("", {"bot_policy__blocked_terms": '["moon"]'}, "not allowed:"),
        ('[quotas]\ntimezone = "Mars/Base"\n', {}, "quotas.timezone: Value error, unknown"),
        ("[quotas.roles.Patron]\ndaily_usd = -1\n", {}, "quotas.roles.Patron.daily_usd: Input"),
        ("[jobs]\nmax_per_user = 1.5\n", {}, "jobs.max_per_user: Input should be"),
        ("[policy.channels.terminal]\nmodels = []\n", {}, "not allowed: flux-schnell is not"),
    ],
)
def test_cost_reads_its_sections_as_the_bot_does(
    tmp_path: Path, config: str, env: dict[str, str], shown: str
) -> None:
    """The file alone, or the environment over it: the same values and the same errors."""
    (tmp_path / "config.toml").write_text(config)
    args = ("--config", "config.toml", "cost", "flux-schnell", "prompt=moon")
    result = _bot(tmp_path, *args, heavy=(), extra_env=env)
    assert shown in result.stdout + result.stderr
    assert result.returncode == (2 if "Input" in shown or "Value" in shown else 0)
