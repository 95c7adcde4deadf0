"""Argument parsing and dispatch for `python -m bot`.

Subcommands are registered by the modules that own them (`register(subparsers)`), so this file
stays a table of contents. A handler returns the process exit code; `BotError`s print their
message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from bot.cli import answers as cli_answers
from bot.cli import basic as cli_basic
from bot.cli import ledger as ledger_cli
from bot.cli import models as cli_models
from bot.cli import playground as cli_try
from bot.cli import reconcile as reconcile_cli
from bot.errors import BotError
from bot.storage import migrate as migrate_db
from bot.storage.sql import db_errors

EXIT_USAGE = 2
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="path to config.toml (default: $BOT_CONFIG or ./config.toml)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    _accept_config_anywhere(parser)
    return parser


def _accept_config_anywhere(parser: argparse.ArgumentParser) -> None:
    """`python -m bot check --config x.toml` works as well as `python -m bot --config x.toml check`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _accept_config_anywhere(sub)


def _command_modules() -> list[ModuleType]:
    return [cli_basic, cli_models, cli_answers, cli_try, ledger_cli, reconcile_cli, migrate_db]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Request lines from httpx are noise at INFO; our own modules log what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except BotError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        # The machine, not the input: a locked or unreadable database, no server, a full disk,
        # a port in use (psycopg's errors count once PostgreSQL was loaded).
        if not isinstance(exc, (*db_errors(), OSError)):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
