"""Calendar periods for quotas: day, week (from Monday) and month in the configured time zone.

Windows are computed from local calendar dates, never by adding 24 hours, so a day across a
daylight-saving change is 23 or 25 hours long, and a day whose midnight does not exist (the clock
jumps from 23:59:59 to 01:00) starts at the jump. Instants are aware datetimes in UTC; the
database stores them as integer microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def adverb(self) -> str:
        """How a user reads it: "today", "this week", "this month"."""
        return "today" if self is Period.DAY else f"this {self.value}"

    @property
    def adjective(self) -> str:
        return {"day": "daily", "week": "weekly", "month": "monthly"}[self.value]


@dataclass(frozen=True)
class Window:
    """One period's current span: [start, end) in UTC, and its first and last local dates."""

    period: Period
    start: datetime
    end: datetime
    first_day: date
    last_day: date

    def __contains__(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return _aware(instant).astimezone(zone).date()


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant `day` begins in `zone` (fold=0: the earlier instant, or the jump in a gap)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def window(period: Period, instant: datetime, zone: ZoneInfo) -> Window:
    today = local_date(instant, zone)
    if period is Period.DAY:
        first, after = today, today + timedelta(days=1)
    elif period is Period.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    start, end = local_midnight(first, zone), local_midnight(after, zone)
    return Window(period, start, end, first, after - timedelta(days=1))


def windows(instant: datetime, zone: ZoneInfo) -> dict[Period, Window]:
    return {period: window(period, instant, zone) for period in Period}


def to_micros(instant: datetime) -> int:
    delta = _aware(instant) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: the ledger needs aware datetimes")
    return instant
