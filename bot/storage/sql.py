"""The small interface the ledger's logic is written against, whatever database holds it.

The ledger's operations are plain synchronous functions taking a `Connection` (a DB-API-like
`execute`/`executemany` returning rows readable by index and by column name) and run whole,
inside one transaction, by a `Store`: `bot.storage.sqlite.Database` on SQLite, `bot.storage.postgres.PgDatabase` on
PostgreSQL. The SQL they send is written once, in SQLite's spelling (`?` and `:name`
placeholders); the PostgreSQL connection translates the few differences in one place.

Admission is serialized per scope. SQLite needs nothing more: `BEGIN IMMEDIATE` already makes
every write transaction wait for the previous one. PostgreSQL runs transactions side by side,
so `lock_scopes` takes a transaction-scoped advisory lock per scope key before the ledger reads
what is left; see `bot.storage.postgres` for why advisory locks rather than SERIALIZABLE.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import urlsplit

from bot.errors import BotError

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def db_errors() -> tuple[type[Exception], ...]:
    """What a database raises that is the machine's or the server's doing, not the input's:
    sqlite3's errors, and psycopg's once PostgreSQL is in use (psycopg is imported only then,
    so quick CLI commands never load it)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


# SQLite's result codes (primary, low byte) that mean the file cannot be used just now.
_SQLITE_AWAY = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_IOERR,
}
# PostgreSQL SQLSTATEs of a server going or gone: connection exceptions, shutdown, starting.
_PG_AWAY = ("08", "57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether a database error says the store is away (connection lost or refused, file
    locked past the busy timeout), which waiting may cure; not a real error such as a
    constraint violation, whose retry would fail the same way."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _SQLITE_AWAY
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate  # None: the client's side (refused, closed, pool timeout)
    return state is None or state.startswith(_PG_AWAY)


SQLITE_SCHEME = "sqlite:///"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What a ledger operation may do with its transaction (sqlite3.Connection fits as is)."""

    def execute(self, sql: str, parameters: Params = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> Cursor: ...


@runtime_checkable
class ScopeLocking(Protocol):
    """A connection on a database that does not serialize write transactions by itself."""

    def lock_keys(self, keys: Iterable[str]) -> None: ...


class Store(Protocol):
    """One database: operations run whole, each in a transaction (`run`) or a snapshot (`read`)."""

    async def run(self, fn: Callable[[Connection], T], *, tx: Any = None) -> T: ...

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Any: ...

    async def schema_version(self) -> int: ...

    async def backup(self, dest: Path) -> None: ...

    async def close(self) -> None: ...


@functools.cache
def _locks_scopes(kind: type) -> bool:
    """Once per connection class: a runtime protocol check costs microseconds every time, on
    every hold and settle."""
    return issubclass(kind, ScopeLocking)


def lock_scopes(raw: Connection, *keys: str) -> None:
    """Make admission for these scopes wait for any other transaction admitting for them."""
    if _locks_scopes(type(raw)):
        cast(ScopeLocking, raw).lock_keys(sorted(set(keys)))  # one order: no deadlock between two


def skip_locked(raw: Connection) -> str:
    """`FOR UPDATE SKIP LOCKED` where writers run side by side (PostgreSQL), for a subquery
    choosing rows to claim; on SQLite the write transaction already excludes other claimers."""
    return " FOR UPDATE SKIP LOCKED" if _locks_scopes(type(raw)) else ""


def is_postgres(place: str | Path) -> bool:
    return isinstance(place, str) and place.startswith(POSTGRES_SCHEMES)


def display_place(dsn: str | Path) -> str:
    """`storage.database` for messages and logs: a DSN loses its password and options."""
    if not is_postgres(dsn):
        return str(dsn)
    parts = urlsplit(str(dsn))
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{parts.username + '@' if parts.username else ''}{host}{port}{parts.path}"


def sqlite_path(place: str | Path) -> Path:
    """The file of an SQLite `storage.database`: a path, or `sqlite:///path`."""
    text = str(place)
    return Path(text[len(SQLITE_SCHEME) :] if text.startswith(SQLITE_SCHEME) else text)


def exists(place: str | Path) -> bool:
    """Whether there is a database to read (a PostgreSQL server is asked when it is opened)."""
    return is_postgres(place) or sqlite_path(place).exists()


async def open_store(place: str | Path) -> Store:
    """Open (creating and migrating if needed) the database `place` names."""
    if is_postgres(place):
        from bot.storage.postgres import PgDatabase

        return await PgDatabase.open(str(place))
    from bot.storage.sqlite import Database

    return await Database.open(sqlite_path(place))


async def open_existing(place: str | Path) -> Store:
    """Open the database `storage.database` names for a command; one clear error if it can't."""
    if not exists(place):
        raise BotError(f"no database at {place} (storage.database)")
    try:
        return await open_store(place)
    except sqlite3.DatabaseError as exc:
        raise BotError(f"{place}: {exc}") from None
