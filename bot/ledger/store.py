"""The ledger's SQL that needs no quota policy: state reads, reports, admin writes, row mapping.

Every function takes the raw `bot.storage.sql.Connection` last and runs inside a transaction opened by
a `bot.storage.sql.Store` (SQLite or PostgreSQL); none commits. Schema: `bot/storage/sqlite.py`, `bot/storage/postgres.py`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import InvalidRequest
from bot.ledger.periods import Period, Window, from_micros, local_date, to_micros, windows
from bot.ledger.quota import Identity, ScopeState, to_usd
from bot.ledger.records import Grant, Hold, HoldState, RecentJob, Report, ReportLine
from bot.storage.sql import Connection


def _scope_sql(key: str) -> str:
    """What admission reads about one scope, `:key` (a member's or a pool's): every part an
    equality seek on its key. (One statement for both scopes with `scope_key IN (:user, :pool)`
    read the same rows in about twice the time: SQLite builds a temporary table for each `IN`.)"""
    return f"""
SELECT 'held', scope_key, held, CAST(NULL AS INTEGER), CAST(NULL AS INTEGER)
  FROM active_holds WHERE scope_key = :{key}
UNION ALL
SELECT 'charged', :{key},
       SUM(CASE WHEN day BETWEEN :day_first AND :day_last THEN charged END),
       SUM(CASE WHEN day BETWEEN :week_first AND :week_last THEN charged END),
       SUM(CASE WHEN day BETWEEN :month_first AND :month_last THEN charged END)
  FROM daily_spend WHERE scope_key = :{key} AND day >= :earliest_day
UNION ALL
SELECT 'granted', scope_key,
       SUM(CASE WHEN granted_at >= :day_start AND granted_at < :day_end THEN amount END),
       SUM(CASE WHEN granted_at >= :week_start AND granted_at < :week_end THEN amount END),
       SUM(CASE WHEN granted_at >= :month_start AND granted_at < :month_end THEN amount END)
  FROM grants WHERE scope_key = :{key} AND granted_at >= :earliest GROUP BY scope_key
UNION ALL
SELECT 'override:' || period, scope_key, amount, NULL, NULL FROM limit_overrides
 WHERE scope_key = :{key}
UNION ALL
SELECT 'unlimited', scope_key, NULL, NULL, NULL FROM unlimited_scopes WHERE scope_key = :{key}"""


_STATE_SQL = _scope_sql("user") + "\nUNION ALL" + _scope_sql("pool")


_DAY, _WEEK, _MONTH = Period
_OVERRIDE = len("override:")
_NONE: Mapping[Period, int] = {}  # no rows: nothing charged or granted (shared, never written)


@dataclass(frozen=True)
class Calendar:
    """The current windows and their SQL parameters; valid for one local day."""

    windows: dict[Period, Window]
    params: dict[str, object]

    @classmethod
    def at(cls, now: datetime, zone: ZoneInfo) -> Calendar:
        current = windows(now, zone)
        params: dict[str, object] = {}
        for period, win in current.items():
            params[f"{period}_first"] = win.first_day.isoformat()
            params[f"{period}_last"] = win.last_day.isoformat()
            params[f"{period}_start"] = to_micros(win.start)
            params[f"{period}_end"] = to_micros(win.end)
        params["earliest_day"] = min(w.first_day for w in current.values()).isoformat()
        params["earliest"] = min(to_micros(w.start) for w in current.values())
        return cls(current, params)

    def covers(self, now: datetime) -> bool:
        return now in self.windows[Period.DAY]


def scope_states(
    raw: Connection, user_key: str, pool_key: str, calendar: Calendar
) -> tuple[ScopeState, ScopeState]:
    """Everything admission needs about a member and their pool, in one statement."""
    params = {**calendar.params, "user": user_key, "pool": pool_key}
    held: dict[str, int] = {}
    sums: dict[tuple[str, str], dict[Period, int]] = {}
    overrides: dict[str, dict[Period, int | None]] = {user_key: {}, pool_key: {}}
    unlimited: set[str] = set()
    for kind, key, a, b, c in raw.execute(_STATE_SQL, params):
        if kind == "held":
            held[key] = a
        elif kind == "charged" or kind == "granted":
            sums[kind, key] = {_DAY: a or 0, _WEEK: b or 0, _MONTH: c or 0}
        elif kind == "unlimited":
            unlimited.add(key)
        else:
            overrides[key][Period(kind[_OVERRIDE:])] = a
    return (
        _state(user_key, held, sums, overrides, unlimited),
        _state(pool_key, held, sums, overrides, unlimited),
    )


def _state(
    key: str,
    held: dict[str, int],
    sums: dict[tuple[str, str], dict[Period, int]],
    overrides: dict[str, dict[Period, int | None]],
    unlimited: set[str],
) -> ScopeState:
    return ScopeState(
        held.get(key, 0),
        sums.get(("charged", key), _NONE),
        sums.get(("granted", key), _NONE),
        overrides[key],
        key in unlimited,
    )


def sync_zone(raw: Connection, name: str, zone: ZoneInfo) -> str | None:
    """Re-bucket settled spend by local day if the zone changed; return the previous zone."""
    row = raw.execute("SELECT value FROM ledger_meta WHERE key = 'timezone'").fetchone()
    if row is not None and row[0] == name:
        return None
    settled = raw.execute("SELECT job_id, closed_at FROM holds WHERE state = 'settled'")
    raw.executemany(
        "UPDATE holds SET settled_day = ? WHERE job_id = ?",
        [(local_date(from_micros(at), zone).isoformat(), job) for job, at in settled.fetchall()],
    )
    raw.execute("DELETE FROM daily_spend")
    raw.execute(
        """INSERT INTO daily_spend (scope_key, day, charged)
           SELECT key, settled_day, SUM(charged) FROM (
               SELECT user_key AS key, settled_day, charged FROM holds WHERE state = 'settled'
               UNION ALL
               SELECT pool_key, settled_day, charged FROM holds WHERE state = 'settled') AS spend
           GROUP BY key, settled_day"""
    )
    raw.execute(
        "INSERT INTO ledger_meta (key, value) VALUES ('timezone', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (name,),
    )
    return None if row is None else str(row[0])


def report(workspace: str | None, since: datetime, until: datetime, raw: Connection) -> Report:
    where = "state = 'settled' AND closed_at >= ? AND closed_at < ?"
    params: list[object] = [to_micros(since), to_micros(until)]
    if workspace is not None:
        where += " AND (pool_key = ? OR substr(pool_key, instr(pool_key, ':') + 1) = ?)"
        params += [workspace, workspace]

    def lines(column: str) -> list[ReportLine]:
        rows = raw.execute(
            f"SELECT {column}, COUNT(*), SUM(charged) FROM holds WHERE {where}"
            f" GROUP BY {column} ORDER BY SUM(charged) DESC, {column}",
            params,
        ).fetchall()
        return [ReportLine(key, jobs, to_usd(charged)) for key, jobs, charged in rows]

    by_user = lines("user_key")
    total = sum((line.charged for line in by_user), Decimal(0))
    jobs = sum(line.jobs for line in by_user)
    over_jobs, over = raw.execute(
        f"SELECT COUNT(*), SUM(charged - held) FROM holds WHERE {where} AND charged > held",
        params,
    ).fetchone()
    return Report(
        workspace, since, until, by_user, lines("model"), total, jobs, over_jobs, to_usd(over or 0)
    )


def set_limits(
    scope_key: str,
    units: Mapping[Period, int | None],
    by: str,
    now: datetime,
    raw: Connection,
) -> None:
    raw.executemany(
        "INSERT INTO limit_overrides (scope_key, period, amount, set_by, set_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope_key, period) DO UPDATE SET"
        " amount = excluded.amount, set_by = excluded.set_by, set_at = excluded.set_at",
        [(scope_key, str(p), amount, by, to_micros(now)) for p, amount in units.items()],
    )
    detail = {str(p): None if a is None else str(to_usd(a)) for p, a in units.items()}
    _audit(raw, now, by, "set_limits", scope_key, json.dumps(detail))


def grant(
    scope_key: str,
    units: int,
    reason: str,
    by: str,
    grant_key: str | None,
    now: datetime,
    raw: Connection,
) -> Grant:
    row = raw.execute(
        "INSERT INTO grants (grant_key, scope_key, amount, reason, granted_by, granted_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (grant_key) DO NOTHING RETURNING *",
        (grant_key, scope_key, units, reason, by, to_micros(now)),
    ).fetchone()
    if row is not None:
        _audit(raw, now, by, "grant", scope_key, json.dumps([str(to_usd(units)), reason]))
    else:
        row = raw.execute("SELECT * FROM grants WHERE grant_key = ?", (grant_key,)).fetchone()
        if row["scope_key"] != scope_key or row["amount"] != units:
            raise InvalidRequest(f"grant {grant_key!r} was already made with other details")
    return Grant(
        row["id"],
        row["scope_key"],
        to_usd(row["amount"]),
        row["reason"],
        row["granted_by"],
        from_micros(row["granted_at"]),
    )


def reset(scope_key: str, by: str, now: datetime, raw: Connection) -> bool:
    deleted = raw.execute("DELETE FROM limit_overrides WHERE scope_key = ?", (scope_key,))
    if deleted.rowcount:
        _audit(raw, now, by, "reset", scope_key, "{}")
    return deleted.rowcount > 0


def set_unlimited(scope_key: str, unlimited: bool, by: str, now: datetime, raw: Connection) -> bool:
    if unlimited:
        cursor = raw.execute(
            "INSERT INTO unlimited_scopes (scope_key, set_by, set_at) VALUES (?, ?, ?)"
            " ON CONFLICT (scope_key) DO NOTHING",
            (scope_key, by, to_micros(now)),
        )
    else:
        cursor = raw.execute("DELETE FROM unlimited_scopes WHERE scope_key = ?", (scope_key,))
    if cursor.rowcount:
        _audit(raw, now, by, "unlimited", scope_key, json.dumps(unlimited))
    return cursor.rowcount > 0


def _audit(
    raw: Connection, now: datetime, actor: str, action: str, scope_key: str, detail: str
) -> None:
    raw.execute(
        "INSERT INTO admin_log (at, actor, action, scope_key, detail) VALUES (?, ?, ?, ?, ?)",
        (to_micros(now), actor, action, scope_key, detail),
    )


def identity_of(row: Any) -> Identity:
    """The member a hold row belongs to, with the roles they had when it was made."""
    return _identity(row["user_key"], row["roles"])


@functools.lru_cache(maxsize=1024)
def _identity(user_key: str, roles: str) -> Identity:
    """Cached (an `Identity` is frozen): built and checked once per member, not every settle."""
    platform, workspace, user = user_key.split(":")
    return Identity(platform, workspace, user, frozenset(json.loads(roles)))


@functools.lru_cache(maxsize=256)
def roles_text(roles: frozenset[str]) -> str:
    """A member's roles as the `roles` column keeps them (cached: written on every hold)."""
    return json.dumps(sorted(roles))


def held_before(raw: Connection, job_id: str, identity: Identity) -> Hold | None:
    """The hold a repeated `hold` of `job_id` finds, if any; `ValueError` if another member's."""
    row = raw.execute("SELECT * FROM holds WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    if row["user_key"] != identity.user_key:
        raise ValueError(f"job id {job_id} is already held for {row['user_key']}")
    return hold_of(row)


def hold_of(row: Any) -> Hold:
    return Hold(
        row["job_id"],
        row["user_key"],
        row["pool_key"],
        row["model"],
        to_usd(row["held"]),
        HoldState(row["state"]),
        from_micros(row["created_at"]),
    )


def recent_jobs(raw: Connection, user_key: str, limit: int) -> list[RecentJob]:
    rows = raw.execute(
        "SELECT job_id, model, state, held, charged, created_at FROM holds"
        " WHERE user_key = ? ORDER BY created_at DESC, job_id LIMIT ?",
        (user_key, limit),
    ).fetchall()
    jobs = []
    for row in rows:
        state = HoldState(row["state"])
        cost = {HoldState.SETTLED: row["charged"], HoldState.HELD: row["held"]}.get(state, 0)
        jobs.append(
            RecentJob(
                row["job_id"], row["model"], to_usd(cost), from_micros(row["created_at"]), state
            )
        )
    return jobs
