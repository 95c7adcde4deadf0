"""Reconciliation: what the ledger charged against what Runpod billed, per UTC day.

Runpod's REST API (`GET /v2/billing/endpoints`) reports the account's Public Endpoint spend in
UTC buckets, all endpoints together. The ledger's charges are summed over the same UTC days
(by the instant each job was settled). Runpod bills the whole API key, so other software using
the same key makes the bill larger: the ledger below the bill is expected then, and above it is
always a bug (a charge Runpod never billed). A job finishing near midnight can be billed on one
side of it and settled on the other, so a single day can differ by that job; the totals agree.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from bot.config import ReconcileSettings
from bot.ledger.periods import from_micros, to_micros, utc_now
from bot.ledger.quota import format_usd, to_usd
from bot.runpod.client import (
    ConnectionFailed,
    MalformedResponse,
    RateLimited,
    RunpodClient,
    RunpodError,
    RunpodTimeout,
    Unauthorized,
    UpstreamError,
)
from bot.storage.sql import Connection, Store

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.notices import AdminNotices

log = logging.getLogger(__name__)

SHARED_KEY_NOTE = (
    "Runpod bills the whole API key: when other software uses the same key, the bill is higher"
    " than the ledger by that software's spend. The ledger must never be higher."
)


class Verdict(Enum):
    EQUAL = "equal"
    LEDGER_LOWER = "ledger lower: other spend on this key, or charges missing from the ledger"
    LEDGER_HIGHER = "LEDGER HIGHER THAN THE BILL: a bug, the bot charged what Runpod did not bill"


@dataclass(frozen=True)
class Day:
    day: date
    charged: Decimal  # by the ledger
    billed: Decimal  # by Runpod, Public Endpoints

    @property
    def difference(self) -> Decimal:
        """Bill minus ledger: positive is spend the ledger did not charge."""
        return self.billed - self.charged

    def verdict(self, tolerance: Decimal) -> Verdict:
        if abs(self.difference) <= tolerance:
            return Verdict.EQUAL
        return Verdict.LEDGER_LOWER if self.difference > 0 else Verdict.LEDGER_HIGHER


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def compare(
    db: Store, runpod: RunpodClient, rest_url: str, first: date, last: date
) -> list[Day]:
    """Every UTC day from `first` to `last` (inclusive), ledger against bill."""
    start, end = day_start(first), day_start(last + timedelta(days=1))
    billed = await billed_by_day(runpod, rest_url, start, end)
    charged = await charged_by_day(db, start, end)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [Day(d, charged.get(d, Decimal(0)), billed.get(d, Decimal(0))) for d in days]


async def charged_by_day(db: Store, start: datetime, end: datetime) -> dict[date, Decimal]:
    """The ledger's settled charges per UTC day of the settle, in [start, end)."""

    def query(raw: Connection) -> dict[date, int]:
        rows = raw.execute(
            "SELECT closed_at, charged FROM holds WHERE state = 'settled'"
            " AND closed_at >= ? AND closed_at < ?",
            (to_micros(start), to_micros(end)),
        )
        totals: dict[date, int] = {}
        for closed_at, charged in rows:
            day = from_micros(closed_at).astimezone(UTC).date()
            totals[day] = totals.get(day, 0) + charged
        return totals

    return {day: to_usd(units) for day, units in (await db.read(query)).items()}


async def billed_by_day(
    runpod: RunpodClient, rest_url: str, start: datetime, end: datetime
) -> dict[date, Decimal]:
    records = await runpod.endpoint_billing(rest_url, start=start, end=end)
    totals: dict[date, Decimal] = {}
    for record in records:
        try:
            day = datetime.fromisoformat(str(record["startTime"])).astimezone(UTC).date()
            amount = Decimal(str(record["totalAmount"]))
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise MalformedResponse(f"a billing record without a time or amount: {record}") from exc
        totals[day] = totals.get(day, Decimal(0)) + amount
    return totals


def describe(day: Day, tolerance: Decimal) -> str:
    sign = "+" if day.difference > 0 else "-" if day.difference < 0 else ""
    difference = sign + format_usd(abs(day.difference))
    return (
        f"{day.day.isoformat()}  ledger {format_usd(day.charged):>10}"
        f"  Runpod {format_usd(day.billed):>10}  difference {difference:>10}"
        f"  {day.verdict(tolerance).value}"
    )


def notice(day: Day, tolerance: Decimal) -> str:
    """One day's finding as a sentence for an admin channel."""
    sign = "+" if day.difference > 0 else "-" if day.difference < 0 else ""
    return (
        f"Reconciliation with Runpod's bill for {day.day.isoformat()} (UTC):"
        f" the ledger charged {format_usd(day.charged)}, Runpod billed {format_usd(day.billed)},"
        f" difference {sign}{format_usd(abs(day.difference))}: {day.verdict(tolerance).value}."
    )


@dataclass(frozen=True, kw_only=True)
class Reconciler:
    """The periodic check, with what it reads; built once by the composition root."""

    db: Store
    runpod: RunpodClient
    rest_url: str  # `runpod.rest_url`
    settings: ReconcileSettings
    metrics: Metrics
    notices: AdminNotices

    async def check_once(self) -> list[Day]:
        """The last `reconcile.days` UTC days. The difference is exported as a metric; a
        worrying day is logged at WARNING (a ledger above the bill at ERROR) and posted to the
        admin channels (`bot.notices`)."""
        settings = self.settings
        today = utc_now().date()
        first = today - timedelta(days=settings.days - 1)
        days = await compare(self.db, self.runpod, self.rest_url, first, today)
        self.metrics.reconcile_difference.set(float(sum((d.difference for d in days), Decimal(0))))
        for day in days:
            higher = day.verdict(settings.tolerance_usd) is Verdict.LEDGER_HIGHER
            if not higher and abs(day.difference) <= settings.threshold_usd:
                continue
            log.log(
                logging.ERROR if higher else logging.WARNING,
                "reconcile: %s",
                describe(day, settings.tolerance_usd),
            )
            await self.notices.post(notice(day, settings.tolerance_usd))
        return days

    async def forever(self) -> None:
        """`check_once` every `reconcile.interval_hours`; a failed check is logged, retried then."""
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("reconcile: the check against Runpod's bill failed")
            await asyncio.sleep(self.settings.interval_hours * 3600)


def billing_failure(exc: RunpodError, rest_url: str) -> str:
    """What went wrong reading the bill, in words an operator can act on."""
    where = f"Runpod's billing API ({rest_url})"
    if isinstance(exc, Unauthorized):
        if exc.status == 403:
            return f"{where} refused: the API key lacks read access to billing (403)"
        return f"{where} refused the API key (401): check RUNPOD_API_KEY"
    if isinstance(exc, RateLimited):
        return f"{where} is rate limiting this key (429); try again in a minute"
    if isinstance(exc, UpstreamError):
        return f"{where} is failing (HTTP {exc.status}); try again later"
    if isinstance(exc, ConnectionFailed | RunpodTimeout):
        return f"{where} is unreachable: {exc.message}"
    if isinstance(exc, MalformedResponse):
        return f"{where} answered something that is not a billing report: {exc.message}"
    return f"{where}: {exc.message}"
