"""`run` and `check`: the commands that need only settings and the catalog."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from bot.config import config_path, load_settings
from bot.errors import ConfigError, InvalidRequest, shown
from bot.ledger.quota import Identity
from bot.runpod import pricing
from bot.runpod.catalog import Catalog, load_catalog

if TYPE_CHECKING:
    from bot.config import Settings

EXIT_INVALID = 2
# The terminal's member (`try`, `cost`, `show`): cli:local:<user>.
PLATFORM = "cli"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run", help="start every adapter whose token is set")
    run.set_defaults(handler=_run)
    check = subparsers.add_parser("check", help="validate the configuration; print what would run")
    check.add_argument(
        "--online", action="store_true", help="also reach Runpod, Discord and Slack (one line each)"
    )
    check.set_defaults(handler=_check)


def settings_and_catalog(args: argparse.Namespace) -> tuple[Settings, Catalog]:
    settings = load_settings(args.config)
    return settings, load_catalog(settings.models)


async def _run(args: argparse.Namespace) -> int:
    from bot import logs  # its logging thread: only for the running bot (start-up time)

    settings, _ = settings_and_catalog(args)
    logs.configure(settings)
    if not settings.enabled_adapters():
        print(
            "error: no chat platform is configured. Set DISCORD_TOKEN (Discord), or "
            "SLACK_BOT_TOKEN with SLACK_APP_TOKEN or SLACK_SIGNING_SECRET (Slack).",
            file=sys.stderr,
        )
        return EXIT_INVALID
    if settings.runpod.api_key is None:
        print("error: RUNPOD_API_KEY is not set.", file=sys.stderr)
        return EXIT_INVALID
    from bot.app import serve  # the composition root, imported only when the bot really runs

    await serve(settings)
    return 0


def _check(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    code = _check_config(args)
    if code or not args.online:
        return code
    settings, catalog = settings_and_catalog(args)
    return _check_online(settings, catalog)


async def _check_online(settings: Settings, catalog: Catalog) -> int:
    from bot.cli.online_check import check_all  # httpx and the Runpod client: only when online

    results = await check_all(settings, catalog)
    for result in results:
        print(result.line())
    return 0 if all(result.ok for result in results) else EXIT_INVALID


def _check_config(args: argparse.Namespace) -> int:
    from bot.jobs.inputs import (
        Inputs,  # via bot.runpod.outputs: httpx and Pillow, which `models` never needs
    )

    path = config_path(args.config)
    try:
        settings, catalog = settings_and_catalog(args)
    except ConfigError as exc:
        where = "" if str(path) in exc.message else f"{path}: "
        print(f"{where}{exc.message}", file=sys.stderr)
        return EXIT_INVALID
    source = str(path) if path.exists() else f"{path} (not found: defaults and environment only)"
    print(f"config: {source}")
    print(f"runpod: {settings.runpod.base_url}  api key {_is_set(settings.runpod.api_key)}")
    from bot.storage.sql import display_place  # psycopg: `check` only, not `models` or `cost`

    print(f"database: {display_place(settings.storage.database)}")
    print(f"models: {len(catalog)} in the catalog")
    storage = settings.storage
    inputs = Inputs(storage.inputs_dir, keep_days=storage.inputs_keep_days, max_bytes=0)
    print(
        f"inputs kept: {inputs.disk_use().describe()} in {storage.inputs_dir}"
        f" (kept {storage.inputs_keep_days:g} days, at most {storage.inputs_max_mb:g} MB)"
    )
    adapters = settings.enabled_adapters()
    print(f"adapters that would run: {', '.join(adapters) if adapters else 'none'}")
    if "slack" in adapters:
        mode = "socket mode" if settings.slack.app_token else f"HTTP on port {settings.slack.port}"
        print(f"slack: {mode}")
    quotas = settings.quotas
    print(
        f"default user limits: daily {_limit(quotas.daily_usd)}, weekly {_limit(quotas.weekly_usd)},"
        f" monthly {_limit(quotas.monthly_usd)} ({quotas.timezone})"
    )
    return 0


def _is_set(secret: Any) -> str:
    return "set" if secret is not None else "NOT SET"


def _limit(value: Any) -> str:
    return "unlimited" if value is None else pricing.exact_usd(value)


def local_identity() -> Identity:
    user = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser()) or "operator"
    return Identity(PLATFORM, "local", user)


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """`width=512 seed=7 image_format=png` -> typed values (ints, floats, booleans, text)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"expected key=value, got {shown(item)}")
        params[key.strip()] = _typed(value.strip())
    return params


def _typed(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value
