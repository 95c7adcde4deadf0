"""Argument parsing and dispatch for `python -m bot`.

Subcommands are registered by the modules that own them (`register(subparsers)`), so this file
stays a table of contents. `python -m bot COMMAND` imports only the module of COMMAND (`COMMANDS`):
`models` and `cost` answer at once instead of loading the ledger, the job engine's types and the
database drivers that other commands need; `--help`, or no known command, imports them all. A handler returns the process exit code; `BotError`s print their
message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Coroutine, Sequence
from types import ModuleType

from bot.errors import BotError
from bot.storage.sql import db_errors

EXIT_USAGE = 2
EXIT_FAILED = 1
# Each command and the module that registers it (tests/test_cli_startup.py keeps this in step).
COMMANDS = {
    "run": "bot.cli.basic",
    "check": "bot.cli.basic",
    "models": "bot.cli.models",
    "cost": "bot.cli.answers",
    "show": "bot.cli.answers",
    "try": "bot.cli.playground",
    "resume": "bot.cli.playground",
    "backup": "bot.cli.ledger",
    "usage": "bot.cli.ledger",
    "quota": "bot.cli.ledger",
    "reconcile": "bot.cli.reconcile",
    "migrate-db": "bot.storage.migrate",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with only its command's module when it names one, else all."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="path to config.toml (default: $BOT_CONFIG or ./config.toml)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules(argv):
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


def _command_modules(argv: Sequence[str] | None) -> list[ModuleType]:
    named = [COMMANDS[arg] for arg in _words(argv) if arg in COMMANDS][:1]
    if not named:  # `--help`, or a mistyped command: argparse lists them all
        named = list(dict.fromkeys(COMMANDS.values()))
    return [importlib.import_module(name) for name in named]


def _words(argv: Sequence[str] | None) -> list[str]:
    """The words of `argv` that are not options nor `--config`'s value (a file named `run`)."""
    words, skip = [], False
    for arg in argv or ():
        if not skip and not arg.startswith("-"):
            words.append(arg)
        skip = arg == "--config"
    return words


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Request lines from httpx are noise at INFO; our own modules log what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        result = args.handler(args)
        if isinstance(result, Coroutine):
            import asyncio  # only for commands that wait on something (start-up time)

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
