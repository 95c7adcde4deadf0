"""How a write transaction runs on SQLite: on the event loop's own connection when the write
lock is free at once, else on aiosqlite's writer thread (see `bot.storage.sqlite` for why)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


async def on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` on the connection's own thread, in one hop.

    aiosqlite has no public call for this; `_execute` and `_conn` have been stable through its
    0.x releases (pinned `<1`). One hop per ledger operation instead of one per statement is
    most of the ledger's throughput (a hop costs 15-65 µs here), and it means no other coroutine
    can run between the statements of one operation.
    """
    execute = cast(Callable[..., Awaitable[T]], conn._execute)
    return await execute(fn, conn._conn)


def in_transaction(
    fn: Callable[[sqlite3.Connection], T], begin: str
) -> Callable[[sqlite3.Connection], T]:
    def call(raw: sqlite3.Connection) -> T:
        raw.execute(begin)
        return commit(fn, raw)

    return call


def commit(fn: Callable[[sqlite3.Connection], T], raw: sqlite3.Connection) -> T:
    """Finish the transaction `raw` has begun with `fn`: COMMIT, or ROLLBACK if anything raises."""
    try:
        result = fn(raw)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return result


def begin_at_once(raw: sqlite3.Connection) -> bool:
    """`BEGIN IMMEDIATE` on the loop's connection (no busy timeout): False if another process
    holds the write lock, so the transaction must wait for it on the writer's thread instead."""
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
            return False
        raise
    return True


def checkpoint(raw: sqlite3.Connection) -> int:
    """PASSIVE: copies what no reader still needs, waits for nobody; returns how many frames
    the WAL held. Skipped inside a transaction (one of `Database.transaction()` may be open on
    this connection): 0."""
    if raw.in_transaction:
        return 0
    _, frames, _ = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


class SqliteTransaction:
    """An open `Database.transaction()`: hand it to `Database.run` as `tx=`; `execute` and
    `execute_fetchall` run one statement in it (aiosqlite's spelling)."""

    __slots__ = ("_conn", "open")

    def __init__(self, conn: sqlite3.Connection | aiosqlite.Connection) -> None:
        self._conn = conn  # the loop's own connection, or the writer's (on its thread)
        self.open = True

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if isinstance(self._conn, sqlite3.Connection):
            return fn(self._conn)
        return await on_thread(self._conn, fn)

    async def execute(self, sql: str, params: Params = ()) -> None:
        await self.call(lambda raw: raw.execute(sql, params))

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.call(lambda raw: raw.execute(sql, params).fetchall())

    async def rollback(self) -> None:
        if isinstance(self._conn, sqlite3.Connection):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            return
        try:
            await asyncio.shield(self._conn.execute("ROLLBACK"))
        except sqlite3.OperationalError as exc:
            # COMMIT may have gone through before a cancellation reached us.
            if "no transaction is active" not in str(exc):
                raise


def each_in_savepoint(
    fns: Sequence[Callable[[sqlite3.Connection], Any]], raw: sqlite3.Connection
) -> list[tuple[bool, Any]]:
    """The calls one after the other, each in a savepoint so one raising undoes only itself:
    (ok, result or error) for each."""
    outcomes: list[tuple[bool, Any]] = []
    for fn in fns:
        raw.execute("SAVEPOINT call")
        try:
            outcomes.append((True, fn(raw)))
        except Exception as exc:
            raw.execute("ROLLBACK TO call")
            outcomes.append((False, exc))
        raw.execute("RELEASE call")
    return outcomes


def end(raw: sqlite3.Connection) -> None:
    raw.execute("COMMIT")


def connect_here(path: Path) -> sqlite3.Connection:
    """The loop's connection: no busy timeout (it must never wait), no checkpoints."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.row_factory = sqlite3.Row
    for pragma in ("foreign_keys = ON", "synchronous = NORMAL", "wal_autocheckpoint = 0"):
        conn.execute(f"PRAGMA {pragma}")
    return conn
