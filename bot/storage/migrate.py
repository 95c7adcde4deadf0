"""`python -m bot migrate-db SOURCE TARGET`: move an SQLite database into PostgreSQL.

The source is never written (it is opened read-only): it is copied under one read snapshot to
a temporary file, which is brought to this bot's schema if it is older. The target must be an
empty PostgreSQL database (or schema): its tables are created, then every row of the ledger
(holds, daily spend, overrides, unlimited scopes, grants, audit log, ledger settings), the jobs,
conversations, hidden models and the Slack adapter's tables is copied in ONE transaction, and row counts and money sums are
compared with the source before it commits. Anything wrong: one line, exit 2, no row written.
Worker leases are not copied: no process holds a lease on the new database yet, so the first
worker to start there claims the unfinished jobs.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import BotError
from bot.storage.sql import Connection, display_place, is_postgres, sqlite_path
from bot.storage.sqlite import Database
from bot.storage.tables import SQLITE_MIGRATIONS as MIGRATIONS

if TYPE_CHECKING:  # psycopg loads only when a migration runs, not for every CLI command
    import psycopg

# In an order that needs no deferred checks; `workers` is left out (see the module docstring).
TABLES = (
    "holds",
    "daily_spend",
    "limit_overrides",
    "unlimited_scopes",
    "grants",
    "admin_log",
    "ledger_meta",
    "jobs",
    "conversation_turns",
    "conversation_places",
    "model_availability",
)
ADAPTER_TABLES = {
    "slack_seen": "CREATE TABLE IF NOT EXISTS slack_seen"
    " (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)",
    "slack_messages": "CREATE TABLE IF NOT EXISTS slack_messages (job_id TEXT NOT NULL,"
    " kind TEXT NOT NULL, channel TEXT NOT NULL, ts TEXT NOT NULL, PRIMARY KEY (job_id, kind))",
}
# What must add up to the same on both sides, besides each table's row count.
SUMS = {
    "holds.held": "SELECT SUM(held) FROM holds",
    "holds.charged": "SELECT SUM(charged) FROM holds",
    "daily_spend.charged": "SELECT SUM(charged) FROM daily_spend",
    # not copied: the target's trigger adds each active hold as it is copied in
    "active_holds.held": "SELECT SUM(held) FROM active_holds",
    "grants.amount": "SELECT SUM(amount) FROM grants",
    "limit_overrides.amount": "SELECT SUM(amount) FROM limit_overrides",
}
# Tables whose key PostgreSQL numbers itself: it carries on after the copied rows.
IDENTITY_COLUMNS = {"grants": "id", "admin_log": "id", "conversation_turns": "turn"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "migrate-db",
        help="copy an SQLite database into an empty PostgreSQL database",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("source", help="the SQLite file (a path or sqlite:///path)")
    parser.add_argument("target", help="postgresql://user@host/database, empty")
    parser.set_defaults(handler=_migrate_db)


async def _migrate_db(args: argparse.Namespace) -> int:
    counts = await migrate(args.source, args.target)
    total = sum(counts.values())
    print(
        f"copied {total} rows into {display_place(args.target)}; counts and sums match the source"
    )
    for table, count in counts.items():
        print(f"  {table}: {count}")
    return 0


async def migrate(source: str | Path, target: str) -> dict[str, int]:
    """Copy `source` into `target`; the rows copied per table. Raises `BotError` on any fault."""
    import psycopg

    from bot.storage.postgres import PgDatabase

    if is_postgres(source):
        raise BotError(f"the source must be an SQLite file, not {display_place(source)}")
    if not is_postgres(target):
        raise BotError(f"the target must be a postgresql:// DSN, not {target}")
    path = sqlite_path(source)
    if not path.is_file():
        raise BotError(f"no SQLite database at {path}")
    with tempfile.TemporaryDirectory(prefix="migrate-db-") as folder:
        snapshot = Path(folder) / "source.db"
        _snapshot(path, snapshot)
        await (await Database.open(snapshot)).close()  # an older file: brought up to date
        pg = await PgDatabase.open(target)
        try:
            return await pg.run(partial(_copy_all, snapshot))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise BotError(
                f"migrate-db into {display_place(target)} failed, nothing copied: {first}"
            ) from None
        finally:
            await pg.close()


def _snapshot(path: Path, copy: Path) -> None:
    """A private copy of the source, checked to be one this bot can read; the source is only read."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src:
            with closing(sqlite3.connect(copy)) as db:
                src.backup(db)  # one read snapshot, also while a bot still writes the source
                (version,) = db.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BotError(f"{path} is not a readable SQLite database: {exc}") from None
    if version > len(MIGRATIONS):
        raise BotError(
            f"{path} has schema version {version}, newer than this bot's {len(MIGRATIONS)};"
            " upgrade the bot"
        )


def _copy_all(snapshot: Path, raw: Connection) -> dict[str, int]:
    from bot.storage.postgres import PgConnection

    assert isinstance(raw, PgConnection)
    conn = raw.conn
    with closing(sqlite3.connect(snapshot)) as src:
        tables = [*TABLES, *(t for t in ADAPTER_TABLES if _has_table(src, t))]
        for table in ADAPTER_TABLES:
            if table in tables:
                conn.execute(ADAPTER_TABLES[table].encode())
        nonempty = [t for t in tables if conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
        if nonempty:
            raise BotError(
                f"the target is not empty ({', '.join(nonempty)} have rows): migrate-db only"
                " fills a new database"
            )
        counts = {table: _copy_table(src, conn, table) for table in tables}
        for table, column in IDENTITY_COLUMNS.items():
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
            )
        _verify(src, conn, tables)
    return counts


def _copy_table(src: sqlite3.Connection, conn: psycopg.Connection[Any], table: str) -> int:
    columns = [row[1] for row in src.execute(f"PRAGMA table_info({table})")]
    names = ", ".join(columns)
    count = 0
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {names} FROM {table}"):
            copy.write_row(row)
            count += 1
    return count


def _verify(src: sqlite3.Connection, conn: psycopg.Connection[Any], tables: list[str]) -> None:
    """Raise (rolling the copy back) unless counts and money sums are equal on both sides."""
    checks = {f"{t} rows": f"SELECT COUNT(*) FROM {t}" for t in tables} | SUMS
    for name, sql in checks.items():
        (theirs,) = src.execute(sql).fetchone()
        row = conn.execute(sql).fetchone()
        assert row is not None
        ours = None if row[0] is None else int(row[0])
        if (theirs or 0) != (ours or 0):
            raise BotError(f"migrate-db: {name} differ ({theirs} in the source, {ours} copied)")


def _has_table(src: sqlite3.Connection, table: str) -> bool:
    found = src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return found.fetchone() is not None
