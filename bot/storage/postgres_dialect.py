"""SQLite's spelling of the ledger's SQL on a psycopg connection: placeholders, rows, the clock.

The ledger's and job store's statements are written once, for SQLite (`bot.storage.sql`); this is the
one place that turns them into PostgreSQL's and its rows back into what `sqlite3.Row` gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg

from bot.jobs.workers import DB_NOW
from bot.storage.sql import Params

# The server's clock in Unix seconds, for leases (SQLite's spelling: `bot.jobs.workers.DB_NOW`).
_PG_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
_LITERAL_OR_MARK = re.compile(r"'(?:[^']|'')*'|::|\?|(?<![\w:]):(\w+)|%|INDEXED BY \w+|\binstr\(")


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite's spelling of a statement -> PostgreSQL's (psycopg's `%s`/`%(name)s` placeholders).

    Literals are left alone; `INDEXED BY` (a planner hint SQLite needs) is dropped; `instr` is
    `strpos`; the lease clock is the server's.
    """
    sql = sql.replace(DB_NOW, _PG_NOW)

    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("'"):
            return text.replace("%", "%%")  # psycopg reads `%` as a placeholder even in literals
        if text == "::":
            return text
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if text.startswith("INDEXED BY"):
            return ""
        if text.startswith("instr("):
            return "strpos("
        return f"%({match.group(1)})s"

    return _LITERAL_OR_MARK.sub(one, sql)


class Row(tuple[Any, ...]):
    """A result row readable by position and by column name, like `sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, (plain(v) for v in values))
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def plain(value: Any) -> Any:
    """SUM over BIGINT is NUMERIC in PostgreSQL; the ledger's sums are integers, as on SQLite."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


class PgCursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A `bot.storage.sql.Connection` on one psycopg connection inside an open transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Params = (), /) -> PgCursor:
        return PgCursor(self.conn.execute(translate(sql), parameters))

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> PgCursor:
        cursor = self.conn.cursor()
        cursor.executemany(translate(sql), list(parameters))
        return PgCursor(cursor)

    def lock_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
