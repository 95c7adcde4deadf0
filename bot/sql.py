"""The small interface the ledger's logic is written against, whatever database holds it.

The ledger's operations are plain synchronous functions taking a `Connection` (a DB-API-like
`execute`/`executemany` returning rows readable by index and by column name) and run whole,
inside one transaction, by a `Store`: `bot.db.Database` on SQLite, `bot.pg.PgDatabase` on
PostgreSQL. The SQL they send is written once, in SQLite's spelling (`?` and `:name`
placeholders); the PostgreSQL connection translates the few differences in one place.

Admission is serialized per scope. SQLite needs nothing more: `BEGIN IMMEDIATE` already makes
every write transaction wait for the previous one. PostgreSQL runs transactions side by side,
so `lock_scopes` takes a transaction-scoped advisory lock per scope key before the ledger reads
what is left; see `bot.pg` for why advisory locks rather than SERIALIZABLE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
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


def lock_scopes(raw: Connection, *keys: str) -> None:
    """Make admission for these scopes wait for any other transaction admitting for them."""
    if isinstance(raw, ScopeLocking):
        raw.lock_keys(sorted(set(keys)))  # one order everywhere: no deadlock between two


def is_postgres(place: str | Path) -> bool:
    return isinstance(place, str) and place.startswith(POSTGRES_SCHEMES)


def sqlite_path(place: str | Path) -> Path:
    """The file of an SQLite `storage.database`: a path, or `sqlite:///path`."""
    text = str(place)
    return Path(text[len(SQLITE_SCHEME) :] if text.startswith(SQLITE_SCHEME) else text)


async def open_store(place: str | Path) -> Store:
    """Open (creating and migrating if needed) the database `place` names."""
    if is_postgres(place):
        from bot.pg import PgDatabase

        return await PgDatabase.open(str(place))
    from bot.db import Database

    return await Database.open(sqlite_path(place))
