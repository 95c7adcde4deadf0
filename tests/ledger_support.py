"""Shared pieces for the ledger tests: a settable clock and a ledger on a temp file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import QuotaSettings
from bot.db import Database
from bot.ledger import Identity, SqliteLedger

ALICE = Identity("discord", "g1", "alice")
BOB = Identity("discord", "g1", "bob")
CAROL = Identity("discord", "g1", "carol")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def usd(text: str) -> Decimal:
    return Decimal(text)


def quotas(**values: Any) -> QuotaSettings:
    """QuotaSettings with no defaults unless given: tests say what limits they rely on."""
    base: dict[str, Any] = {
        "daily_usd": None,
        "weekly_usd": None,
        "monthly_usd": None,
        "workspace": {},
    }
    return QuotaSettings(**{**base, **values})


@asynccontextmanager
async def open_ledger(
    path: Path, settings: QuotaSettings, clock: Clock | None = None
) -> AsyncIterator[SqliteLedger]:
    db = await Database.open(path)
    try:
        yield SqliteLedger(db, settings, clock=clock or Clock())
    finally:
        await db.close()
