"""Spend per day this month, for a member or a workspace pool, as the bars of an SVG chart.

Reads the ledger's `daily_spend` rows (settled spend per scope and local day in
`quotas.timezone`, the same days the limits count), so the bars add up to what `/usage` says
was spent this month. The page's template draws the SVG; this module only measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.ledger.periods import Period, window
from bot.ledger.quota import UNITS_PER_USD
from bot.storage.sql import Store

HEIGHT = 120  # px of the tallest bar
BAR = 14  # px per day, gap included


@dataclass(frozen=True)
class Bar:
    day: date
    charged: Decimal
    x: int
    height: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    top: Decimal  # the tallest bar's amount
    width: int
    height: int = HEIGHT


async def month_chart(db: Store, scope_key: str, zone: ZoneInfo) -> Chart:
    span = window(Period.MONTH, datetime.now(UTC), zone)
    rows = await db.fetchall(
        "SELECT day, charged FROM daily_spend WHERE scope_key = ? AND day BETWEEN ? AND ?",
        (scope_key, span.first_day.isoformat(), span.last_day.isoformat()),
    )
    by_day = {row[0]: Decimal(row[1]) / UNITS_PER_USD for row in rows}
    days = [span.first_day + timedelta(days=n) for n in range(span.last_day.day)]
    top = max(by_day.values(), default=Decimal(0))
    bars = [
        Bar(
            day,
            charged := by_day.get(day.isoformat(), Decimal(0)),
            x=index * BAR,
            height=int(charged / top * HEIGHT) if top else 0,
        )
        for index, day in enumerate(days)
    ]
    return Chart(bars, top, width=len(days) * BAR)
