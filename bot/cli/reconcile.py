"""`python -m bot reconcile`: the ledger's charges against Runpod's Public Endpoint bill, per UTC day.

Exit codes: 0 when no day has the ledger above the bill, 1 when one does (a bug to report),
2 when Runpod's billing API cannot be read (the message says why).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.config import Settings, load_settings
from bot.errors import BotError
from bot.ledger.periods import utc_now
from bot.ledger.quota import format_usd

if TYPE_CHECKING:
    from bot.runpod.client import RunpodClient
    from bot.storage.sql import Store

DEFAULT_DAYS = 7
EXIT_LEDGER_HIGHER = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = subparsers.add_parser(
        "reconcile", help="compare the ledger's charges with Runpod's bill, per UTC day"
    )
    reconcile.add_argument(
        "--since", type=_date, help=f"first UTC day, YYYY-MM-DD (default: {DEFAULT_DAYS} days ago)"
    )
    reconcile.add_argument("--until", type=_date, help="last UTC day, inclusive (default: today)")
    reconcile.set_defaults(handler=_reconcile)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


async def _reconcile(args: argparse.Namespace) -> int:
    # Runpod's client and httpx load with the command, not with every `python -m bot` (startup).
    from bot.ledger.reconcile import SHARED_KEY_NOTE, Verdict, billing_failure, compare, describe
    from bot.runpod.client import RunpodError

    settings = load_settings(args.config)
    until = args.until or utc_now().date()
    since = args.since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise BotError(f"--since {since} is after --until {until}")
    async with _runpod(settings) as runpod, _database(settings) as db:
        try:
            days = await compare(db, runpod, settings.runpod.rest_url, since, until)
        except RunpodError as exc:
            raise BotError(billing_failure(exc, settings.runpod.rest_url)) from None
    tolerance = settings.reconcile.tolerance_usd
    print(f"Public Endpoints, UTC days {since} to {until} (equal within {format_usd(tolerance)}):")
    for day in days:
        print(describe(day, tolerance))
    charged = sum((d.charged for d in days), Decimal(0))
    billed = sum((d.billed for d in days), Decimal(0))
    print(f"total       ledger {format_usd(charged):>10}  Runpod {format_usd(billed):>10}")
    print(SHARED_KEY_NOTE)
    higher = [d for d in days if d.verdict(tolerance) is Verdict.LEDGER_HIGHER]
    if higher:
        print(
            f"!! The ledger charged more than Runpod billed on {len(higher)} day(s): members were"
            " charged for something Runpod did not bill. Please report this as a bug."
        )
        return EXIT_LEDGER_HIGHER
    return 0


@asynccontextmanager
async def _runpod(settings: Settings) -> AsyncIterator[RunpodClient]:
    import httpx

    from bot.runpod.client import RunpodClient

    if settings.runpod.api_key is None:
        raise BotError("runpod.api_key: RUNPOD_API_KEY is not set")
    async with httpx.AsyncClient(
        timeout=settings.runpod.request_timeout_s, trust_env=False, follow_redirects=True
    ) as http:
        yield RunpodClient(
            http,
            base_url=settings.runpod.base_url,
            api_key=settings.runpod.api_key,
            max_retries=settings.runpod.max_retries,
            backoff_base_s=settings.runpod.backoff_base_s,
            request_timeout_s=settings.runpod.request_timeout_s,
        )


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Store]:
    from bot.storage.sql import (
        open_existing,  # the database drivers: only when a command needs them
    )

    db = await open_existing(settings.storage.database)
    try:
        yield db
    finally:
        await db.close()
