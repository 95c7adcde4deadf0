"""Period edges: last seconds of days and months away from UTC, DST changes, Monday weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.ledger.periods import Period, window, windows
from bot.ledger.service import QuotaExceeded
from tests.ledger.support import ALICE, Clock, open_ledger, quotas, usd

pytestmark = pytest.mark.usefixtures("moved_clock")

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_last_second_of_a_berlin_day_and_month() -> None:
    last = utc(2026, 11, 30, 22, 59, 59)  # 23:59:59 CET on 30 November
    day, month = window(Period.DAY, last, BERLIN), window(Period.MONTH, last, BERLIN)
    assert (day.first_day, day.start, day.end) == (
        date(2026, 11, 30),
        utc(2026, 11, 29, 23),
        utc(2026, 11, 30, 23),
    )
    assert (month.first_day, month.last_day) == (date(2026, 11, 1), date(2026, 11, 30))
    assert (month.start, month.end) == (utc(2026, 10, 31, 23), utc(2026, 11, 30, 23))
    after = windows(last + timedelta(seconds=1), BERLIN)
    assert after[Period.DAY].first_day == date(2026, 12, 1)
    assert after[Period.MONTH].start == utc(2026, 11, 30, 23)
    assert after[Period.MONTH].end == utc(2026, 12, 31, 23)


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = window(Period.DAY, utc(2026, 3, 29, 12), BERLIN)
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = window(Period.DAY, utc(2026, 10, 25, 12), BERLIN)
    assert autumn.end - autumn.start == timedelta(hours=25)
    ny = window(Period.DAY, utc(2026, 3, 8, 12), NEW_YORK)
    assert (ny.start, ny.end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    week = window(Period.WEEK, utc(2026, 3, 8, 12), NEW_YORK)  # Sunday: the week began Monday
    assert (week.first_day, week.end - week.start) == (date(2026, 3, 2), timedelta(hours=167))


def test_a_day_whose_midnight_does_not_exist_starts_at_the_jump() -> None:
    # Chile springs forward at 24:00 on Saturday 5 September 2026: Sunday begins at 01:00 -03.
    sunday = window(Period.DAY, utc(2026, 9, 6, 15), SANTIAGO)
    assert sunday.start == utc(2026, 9, 6, 4)
    assert sunday.end - sunday.start == timedelta(hours=23)
    saturday = window(Period.DAY, sunday.start - timedelta(microseconds=1), SANTIAGO)
    assert saturday.end == sunday.start


def test_weeks_start_on_monday() -> None:
    sunday_night = utc(2026, 11, 29, 22, 59, 59)  # Sunday 23:59:59 in Berlin
    week = window(Period.WEEK, sunday_night, BERLIN)
    assert (week.first_day, week.last_day) == (date(2026, 11, 23), date(2026, 11, 29))
    assert window(Period.WEEK, sunday_night + timedelta(seconds=1), BERLIN).first_day == date(
        2026, 11, 30
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        window(Period.DAY, datetime(2026, 1, 1), BERLIN)


@pytest.mark.parametrize(
    ("zone", "last_second"),
    [
        ("Europe/Berlin", utc(2026, 11, 30, 22, 59, 59)),  # end of a day and a month
        ("America/New_York", utc(2026, 12, 1, 4, 59, 59)),
        ("Europe/Berlin", utc(2026, 3, 28, 22, 59, 59)),  # the night before spring forward
        ("America/New_York", utc(2026, 11, 2, 4, 59, 59)),  # the end of a 25-hour day
    ],
)
async def test_the_ledger_resets_exactly_at_local_midnight(
    tmp_path: Path, zone: str, last_second: datetime
) -> None:
    local = ZoneInfo(zone)
    resets = last_second + timedelta(seconds=1)
    assert last_second.astimezone(local).date() != resets.astimezone(local).date()
    clock = Clock(last_second - timedelta(hours=1))
    settings = quotas(daily_usd="1", monthly_usd="2", timezone=zone)
    async with open_ledger(tmp_path / "l.db", settings, clock) as ledger:
        await ledger.hold("a", ALICE, usd("0.90"), model="m")
        clock.now = last_second
        await ledger.settle("a", usd("0.90"))
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("b", ALICE, usd("0.20"), model="m")
        assert (caught.value.period, caught.value.resets_at) == (Period.DAY, resets)
        clock.now = resets
        usage = await ledger.usage(ALICE)
        spent = {a.period: a.spent for a in usage.user}
        new_month = resets.astimezone(local).day == 1
        assert spent[Period.DAY] == 0
        assert spent[Period.MONTH] == (0 if new_month else usd("0.90"))
        await ledger.hold("b", ALICE, usd("0.20"), model="m")
