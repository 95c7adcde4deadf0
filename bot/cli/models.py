"""`models`: the catalog with prices; `--probe` asks Runpod which endpoints still exist;
`--enable ID` offers again a model hidden after Runpod answered 404 for it (bot/runpod/availability.py).

The plain listing imports neither pydantic nor asyncio unless it must (`bot.config_file`;
a database to read hidden models from): it is the command people run to look things up.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.commands import command_of_kind
from bot.config_file import catalog_settings
from bot.errors import BotError
from bot.runpod import pricing
from bot.runpod.availability import Availability
from bot.runpod.catalog import Catalog, Model, load_catalog
from bot.storage.sql import exists

if TYPE_CHECKING:
    from bot.config import Settings

PROBE_TIMEOUT_S = 10.0
PROBES_AT_ONCE = 8


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="list the model catalog with prices")
    models.add_argument(
        "--probe",
        action="store_true",
        help="ask each model's endpoint /health; name those Runpod no longer has",
    )
    models.add_argument(
        "--enable", metavar="ID", help="offer again a model hidden after Runpod answered 404"
    )
    models.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    if args.enable or args.probe:
        return _at_runpod_or_database(args)
    found = catalog_settings(args.config)
    catalog = load_catalog(found.models)
    hidden: set[str] = set()
    if exists(found.database):
        import asyncio  # only to read the database

        hidden = asyncio.run(_hidden(found.database))
    rows = [
        (
            m.id,
            command_of_kind(m.kind).label,
            pricing.describe_price(m),
            m.endpoint + ("  (hidden: Runpod answered 404)" if m.id in hidden else ""),
        )
        for m in catalog
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in sorted(rows, key=lambda r: (r[1], r[0])):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]
        )
    return 0


async def _at_runpod_or_database(args: argparse.Namespace) -> int:
    from bot.cli.basic import settings_and_catalog  # every setting: Runpod's, the database's

    settings, catalog = settings_and_catalog(args)
    if args.enable:
        return await _enable(settings, catalog.get(args.enable))
    return await _probe(settings, catalog)


async def _probe(settings: Settings, catalog: Catalog) -> int:
    """One `/health` per endpoint; exit 2 when any model's endpoint no longer exists."""
    import asyncio

    import httpx  # the network stack only for commands that reach the network (startup time)

    from bot.cli.basic import EXIT_INVALID
    from bot.runpod.client import NotFound, RunpodClient, RunpodError

    key = settings.runpod.api_key
    if key is None:
        raise BotError("RUNPOD_API_KEY is not set")
    slots = asyncio.Semaphore(PROBES_AT_ONCE)
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as http:
        client = RunpodClient(http, base_url=settings.runpod.base_url, api_key=key, max_retries=0)

        async def probe(model: Model) -> str | None:
            async with slots:
                try:
                    await client.ping(model.endpoint, timeout_s=PROBE_TIMEOUT_S)
                except NotFound:
                    return "gone"
                except RunpodError as exc:
                    return f"no answer ({exc.message})"
            return None

        models = sorted(catalog, key=lambda m: m.id)
        answers = await asyncio.gather(*(probe(m) for m in models))
    gone = [m for m, answer in zip(models, answers, strict=True) if answer == "gone"]
    for model, answer in zip(models, answers, strict=True):
        if answer == "gone":
            print(f"gone: {model.id} (endpoint {model.endpoint} no longer exists at Runpod)")
        elif answer is not None:
            print(f"unknown: {model.id} (endpoint {model.endpoint}: {answer})")
    found = sum(answer is None for answer in answers)
    print(f"{found} of {len(models)} models' endpoints answered at Runpod")
    return EXIT_INVALID if gone else 0


async def _enable(settings: Settings, model: Model) -> int:
    async with _availability(settings.storage.database) as availability:
        changed = await availability.enable(model.id)
    print(f"{model.id}: " + ("offered again" if changed else "was not hidden"))
    return 0


async def _hidden(database: Path | str) -> set[str]:
    async with _availability(database) as availability:
        return await availability.hidden()


@asynccontextmanager
async def _availability(database: Path | str) -> AsyncIterator[Availability]:
    """The database's record of hidden models (`open_existing`: never creates a database)."""
    from bot.storage.sql import open_existing  # the database drivers: only when needed

    db = await open_existing(database)
    try:
        yield Availability(db)
    finally:
        await db.close()
