"""Spend per day, for the charts of `/usage`, `/quota report` and `python -m bot usage --chart`.

Read from settled holds by their `settled_day` (the local date, in `quotas.timezone`, of the
charge), the same rows `SqliteLedger.report` sums, so a chart and the text beside it agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.ledger.periods import Period, window
from bot.ledger.quota import to_usd
from bot.ledger.records import Report, Usage
from bot.storage.sql import Store

# A report chart names this many models (the rest are summed as "other") and spenders.
TOP_MODELS = 5
TOP_SPENDERS = 5


@dataclass(frozen=True)
class MemberSpend:
    """One member's spend per day over the period their tightest long limit runs."""

    period: Period
    days: list[date]
    spent: list[Decimal]  # per day, aligned with `days`
    limit: Decimal | None  # for the whole period


@dataclass(frozen=True)
class WorkspaceSpend:
    """A workspace's spend per day by model, and who spent most, over one period."""

    span: str  # "this month", "2026-11-01 .. 2026-11-29"
    days: list[date]
    by_model: dict[str, list[Decimal]]  # model -> per day, aligned with `days`
    top: list[tuple[str, Decimal]]  # (user key, charged), most first


def chart_period(usage: Usage) -> Period:
    """The longest period the member has a limit for (month when none): its days show the most."""
    limited = [a.period for a in usage.user if a.limit is not None]
    order = [Period.MONTH, Period.WEEK, Period.DAY]
    return next((p for p in order if p in limited), Period.MONTH)


async def member_spend(
    db: Store, user_key: str, usage: Usage, now: datetime, zone: ZoneInfo
) -> MemberSpend:
    period = chart_period(usage)
    span = window(period, now, zone)
    rows = await db.fetchall(
        "SELECT settled_day, SUM(charged) FROM holds WHERE state = 'settled' AND user_key = ?"
        " AND settled_day >= ? AND settled_day <= ? GROUP BY settled_day",
        (user_key, span.first_day.isoformat(), span.last_day.isoformat()),
    )
    per_day = {row[0]: to_usd(row[1]) for row in rows}
    days = _days(span.first_day, span.last_day)
    limit = next((a.limit for a in usage.user if a.period is period), None)
    return MemberSpend(period, days, [per_day.get(d.isoformat(), Decimal(0)) for d in days], limit)


async def workspace_spend(
    db: Store, workspace: str | None, report: Report, first: date, last: date, span: str
) -> WorkspaceSpend:
    """`workspace` is a pool key or bare workspace id (as `SqliteLedger.report` takes), None
    for all; `report` is the same period's report (its ranking of models and members)."""
    where = "state = 'settled' AND settled_day >= ? AND settled_day <= ?"
    params: list[object] = [first.isoformat(), last.isoformat()]
    if workspace is not None:
        where += " AND (pool_key = ? OR substr(pool_key, instr(pool_key, ':') + 1) = ?)"
        params += [workspace, workspace]
    rows = await db.fetchall(
        f"SELECT model, settled_day, SUM(charged) FROM holds WHERE {where}"
        " GROUP BY model, settled_day",
        params,
    )
    days = _days(first, last)
    index = {d.isoformat(): i for i, d in enumerate(days)}
    ranked = [line.key for line in report.by_model]
    shown = set(ranked[:TOP_MODELS])
    by_model: dict[str, list[Decimal]] = {}
    for model, day, charged in rows:
        if day not in index:
            continue
        key = model if model in shown or len(ranked) <= TOP_MODELS else "other"
        series = by_model.setdefault(key, [Decimal(0)] * len(days))
        series[index[day]] += to_usd(charged)
    ordered = {m: by_model[m] for m in [*ranked, "other"] if m in by_model}
    top = [(line.key, line.charged) for line in report.by_user[:TOP_SPENDERS]]
    return WorkspaceSpend(span, days, ordered, top)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def member_id(user_key: str) -> str:
    """How a chart names a member when no display name is known: their platform id."""
    return user_key.rsplit(":", 1)[-1]
