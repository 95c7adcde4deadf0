"""Shared pieces for the ledger tests: a settable clock and a ledger on either backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import QuotaSettings
from bot.ledger.service import Identity, SqliteLedger
from bot.storage.sql import open_store

# Set by the `moved_clock` fixture (tests/conftest.py) to the zone the moment is about.
ZONE_VARIABLE = "BOT_TEST_QUOTA_ZONE"

ALICE = Identity("discord", "g1", "alice")
BOB = Identity("discord", "g1", "bob")
CAROL = Identity("discord", "g1", "carol")


class Clock:
    """A clock the test moves by hand; it starts at the wall clock (which `moved_clock` moves)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def usd(text: str) -> Decimal:
    return Decimal(text)


def quota_zone() -> ZoneInfo:
    """The zone the current `moved_clock` moment is about (UTC unless a test names one)."""
    return ZoneInfo(os.environ.get(ZONE_VARIABLE, "UTC"))


def quotas(**values: Any) -> QuotaSettings:
    """QuotaSettings with no defaults unless given: tests say what limits they rely on.

    The time zone is `quota_zone()`.
    """
    base: dict[str, Any] = {
        "timezone": str(quota_zone()),
        "daily_usd": None,
        "weekly_usd": None,
        "monthly_usd": None,
        "workspace": {},
    }
    return QuotaSettings(**{**base, **values})


@asynccontextmanager
async def open_ledger(
    place: Path | str, settings: QuotaSettings, clock: Clock | None = None
) -> AsyncIterator[SqliteLedger]:
    """A ledger on an SQLite file or a PostgreSQL DSN (the `db_place` fixture)."""
    db = await open_store(place)
    try:
        yield SqliteLedger(db, settings, clock=clock or Clock())
    finally:
        await db.close()
