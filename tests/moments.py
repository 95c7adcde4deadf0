"""Moments the date-sensitive tests also run at: the edges where quota periods turn over.

`moved_clock` (tests/conftest.py) freezes the wall clock at each of these with time-machine, so
the ledger, period, CLI and report tests prove they pass on any day, not only the day they were
written. Each moment is the last half second before the edge, in the zone it is about; with
that zone the ledger's periods and the process's local time zone both change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Moment:
    name: str
    instant: datetime
    zone: str


def _before(name: str, zone: ZoneInfo, year: int, month: int, day: int, hour: int) -> Moment:
    """Half a second before the end of `hour` on that local day."""
    return Moment(name, datetime(year, month, day, hour, 59, 59, 500_000, tzinfo=zone), str(zone))


MOMENTS = (
    _before("month-end", UTC_ZONE, 2027, 2, 28, 23),
    _before("berlin-dst-starts", BERLIN, 2027, 3, 28, 1),  # 02:00 CET jumps to 03:00 CEST
    _before("berlin-dst-ends", BERLIN, 2026, 10, 25, 2),  # 03:00 CEST falls back to 02:00 CET
    _before("sunday-to-monday", BERLIN, 2026, 11, 29, 23),
    _before("new-years-eve", UTC_ZONE, 2026, 12, 31, 23),
)
