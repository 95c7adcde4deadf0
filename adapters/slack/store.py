"""What the Slack adapter must remember across restarts, in the bot's database (SQLite or
PostgreSQL: the SQL here is spelled to run on both).

- `slack_seen`: keys of events already handled (event ids, mention messages), so an event Slack
  redelivers after a restart is still recognised; also when a periodic chore keyed here last ran
  (`due`: a member's name looked up). The process also keeps a bounded in-memory set
  in front of it, so a retry burst costs no database write.
- `slack_messages`: per job, the messages we posted that later calls must find again: the
  `anchor` (the one message edited for progress and turned into the result card), streamed text
  pieces (`text:0`, `text:1`...), and `delivered`, written once a result is in Slack, which makes
  a second `deliver` of the same job (after a crash) a no-op.

These tables belong to the adapter (prefixed `slack_`, created if missing); the core's
migrations neither know nor touch them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from functools import partial

from bot.storage import Connection, Store, lock_scopes

SEEN_MEMORY = 5000
SEEN_KEEP_S = 3 * 24 * 3600  # Slack retries for minutes; three days is plenty

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS slack_seen (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slack_messages ("
    " job_id TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL,"
    " PRIMARY KEY (job_id, kind))",
)


class SlackStore:
    def __init__(self, db: Store) -> None:
        self._db = db
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._due: dict[str, float] = {}  # key -> when this process last found it due

    async def open(self) -> None:
        """Create the tables if needed and forget events too old to be retried."""
        await self._db.run(_create)
        await self._db.run(partial(_prune, time.time() - SEEN_KEEP_S))

    async def first_time(self, *keys: str) -> bool:
        """True once for a new event; False for any event sharing a key with an earlier one."""
        if any(key in self._recent for key in keys):
            return False
        for key in keys:
            self._recent[key] = None
        while len(self._recent) > SEEN_MEMORY:
            self._recent.popitem(last=False)
        return bool(await self._db.run(partial(_mark_seen, keys, time.time())))

    async def due(self, key: str, every_s: float) -> bool:
        """True at most once per `every_s` for `key` (across restarts and workers): for chores
        like a lookup per member that must not run per request."""
        now = time.time()
        if now - self._due.get(key, -every_s) < every_s:
            return False
        self._due[key] = now
        return bool(await self._db.run(partial(_mark_due, key, now, now - every_s)))

    async def messages(self, job_id: str) -> dict[str, tuple[str, str]]:
        """kind -> (channel, ts) of what was posted for this job."""
        rows = await self._db.fetchall(
            "SELECT kind, channel, ts FROM slack_messages WHERE job_id = ?", (job_id,)
        )
        return {str(row[0]): (str(row[1]), str(row[2])) for row in rows}

    async def remember(self, job_id: str, kind: str, channel: str, ts: str) -> None:
        await self._db.run(partial(_upsert, job_id, kind, channel, ts))

    async def forget(self, job_id: str, kind: str) -> None:
        await self._db.run(partial(_delete, job_id, kind))


def _create(raw: Connection) -> None:
    # Workers starting together: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe side by side.
    lock_scopes(raw, "slack-schema")
    for statement in _SCHEMA:
        raw.execute(statement)


def _prune(before: float, raw: Connection) -> None:
    raw.execute("DELETE FROM slack_seen WHERE at < ?", (before,))


def _mark_seen(keys: tuple[str, ...], now: float, raw: Connection) -> bool:
    fresh = [
        raw.execute(
            "INSERT INTO slack_seen (key, at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (k, now)
        ).rowcount
        for k in keys
    ]
    return all(fresh)


def _mark_due(key: str, now: float, before: float, raw: Connection) -> bool:
    marked = raw.execute(
        "INSERT INTO slack_seen (key, at) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE slack_seen.at < ?",
        (key, now, before),
    )
    return bool(marked.rowcount)


def _upsert(job_id: str, kind: str, channel: str, ts: str, raw: Connection) -> None:
    raw.execute(
        "INSERT INTO slack_messages (job_id, kind, channel, ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (job_id, kind) DO UPDATE SET channel = excluded.channel, ts = excluded.ts",
        (job_id, kind, channel, ts),
    )


def _delete(job_id: str, kind: str, raw: Connection) -> None:
    raw.execute("DELETE FROM slack_messages WHERE job_id = ? AND kind = ?", (job_id, kind))
