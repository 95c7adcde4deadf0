"""The ledger's database on PostgreSQL: connections, transactions, migrations.

Driver: psycopg 3 with psycopg-pool. The ledger's operations are synchronous functions run
whole on a thread (`bot.storage.sql`); psycopg's synchronous API lets them run unchanged on a pooled
connection, one thread hop per operation, as on SQLite. asyncpg is async only: every statement
would be an await, so each operation would be written twice.

Concurrency: unlike SQLite, PostgreSQL runs write transactions side by side (one pooled
connection each). Admission takes `pg_advisory_xact_lock` on the member's and the pool's scope
keys (`bot.storage.sql.lock_scopes`, always in sorted order) before it reads what is left, and holds
them to commit; the next admission for either scope then reads under READ COMMITTED everything
the first committed. We chose this over SERIALIZABLE with retry: the ledger's reads are sums
over many rows, which SERIALIZABLE turns into frequent aborts under load, and a retry loop would
have to re-run whole operations. Advisory locks on hashed keys may make two unrelated scopes
wait for each other on a hash collision (64-bit: rare); they never let one overspend.

Schema: `bot.storage.tables` (the same tables and versions as SQLite); the dialect: `bot.storage.postgres_dialect`.
The version is kept in `schema_version`; migrations run under an advisory lock so two processes
starting at once apply each migration once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from bot.errors import BotError
from bot.storage.postgres_dialect import PgConnection, plain, row_factory, translate
from bot.storage.sql import Connection, Params, display_place
from bot.storage.sqlite import migrate
from bot.storage.tables import POSTGRES_MIGRATIONS as MIGRATIONS

__all__ = ["MIGRATIONS", "PgConnection", "PgDatabase", "connect_error", "plain", "translate"]

log = logging.getLogger(__name__)

T = TypeVar("T")

POOL_SIZE = 4  # per process: 25 processes fit PostgreSQL's default max_connections (100)
CONNECT_TIMEOUT_S = 5
_MIGRATION_LOCK = 0x72756E706F64  # any constant: all processes migrating take the same one


def _in_transaction(fn: Callable[[Connection], T], begin: str, conn: psycopg.Connection[Any]) -> T:
    conn.execute(begin)
    try:
        result = fn(PgConnection(conn))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return result


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


class PgTransaction:
    """An open write transaction: one pooled connection and the one thread that drives it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.open = True
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pg-tx")

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    def close(self) -> None:
        self.open = False
        self._thread.shutdown(wait=False)


def _probe(dsn: str) -> None:
    """Connect once, so a wrong DSN or a down server fails now, with the driver's reason."""
    psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True).close()


def connect_error(dsn: str, exc: Exception) -> BotError:
    """One line saying which database could not be used and why."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BotError(f"cannot use PostgreSQL database {display_place(dsn)}: {first}")


class _QuietReconnects(logging.Filter):
    """The pool warns on every failed reconnect attempt; `bot.storage.outage` says an outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("error connecting in", "discarding "))


_QUIET_RECONNECTS = _QuietReconnects()


class PgDatabase:
    """The ledger's `bot.storage.sql.Store` on PostgreSQL; build it with `await PgDatabase.open(dsn)`."""

    def __init__(self, dsn: str, pool: ConnectionPool[Any]) -> None:
        self.dsn = dsn
        self.path = display_place(dsn)
        self._pool = pool
        self._threads = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="pg")
        self._writing: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(
        cls, dsn: str, *, migrations: Sequence[str] | None = None, pool_size: int = POOL_SIZE
    ) -> PgDatabase:
        """Connect, check the server answers, and migrate to the newest schema."""
        logging.getLogger("psycopg.pool").addFilter(_QUIET_RECONNECTS)
        try:
            await asyncio.to_thread(_probe, dsn)
        except (psycopg.Error, ValueError) as exc:
            raise connect_error(dsn, exc) from None
        pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": row_factory},
            timeout=60,
        )
        await asyncio.to_thread(pool.open, True, CONNECT_TIMEOUT_S)
        db = cls(dsn, pool)
        try:
            await migrate(db, db.path, MIGRATIONS if migrations is None else migrations, _apply)
        except psycopg.Error as exc:
            await db.close()
            raise connect_error(dsn, exc) from None
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.close)
        self._threads.shutdown(wait=False)

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn)

    def _pooled(self, fn: Callable[[Connection], T], begin: str) -> T:
        with self._pool.connection() as conn:
            return _in_transaction(fn, begin, conn)

    async def run(self, fn: Callable[[Connection], T], *, tx: Any = None) -> T:
        """Run `fn` in `tx` if given, else in a transaction of its own on a pooled connection."""
        if tx is not None:
            if not isinstance(tx, PgTransaction) or not tx.open:
                raise RuntimeError("tx must be an open PgDatabase.transaction()")
            return await tx.call(partial(fn, PgConnection(tx.conn)))
        if asyncio.current_task() in self._writing:
            raise RuntimeError("nested write transaction: pass the open transaction as tx=")
        return await self._on_thread(partial(self._pooled, fn, "BEGIN"))

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` under one read-only snapshot."""
        return await self._on_thread(
            partial(self._pooled, fn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """BEGIN ... COMMIT, or ROLLBACK if the block raises; hand the yielded value as `tx=`."""
        task = asyncio.current_task()
        if task in self._writing:
            raise RuntimeError("nested write transaction: pass the open transaction as tx=")
        conn = await self._getconn()
        tx = PgTransaction(conn)
        if task is not None:
            self._writing.add(task)
        try:
            await tx.call(partial(conn.execute, "BEGIN"))
            try:
                yield tx
                await tx.call(partial(conn.execute, "COMMIT"))
            except BaseException:
                await asyncio.shield(tx.call(partial(_rollback, conn)))
                raise
        finally:
            self._writing.discard(task)
            tx.close()
            self._pool.putconn(conn)

    async def _getconn(self) -> psycopg.Connection[Any]:
        """A pooled connection; one obtained after the caller was cancelled (a worker stopping
        its jobs while the pool waits for the server to come back) goes back to the pool."""
        getting = asyncio.ensure_future(asyncio.to_thread(self._pool.getconn))
        try:
            return await asyncio.shield(getting)
        except asyncio.CancelledError:
            getting.add_done_callback(self._give_back)
            raise

    def _give_back(self, getting: asyncio.Future[psycopg.Connection[Any]]) -> None:
        if not getting.cancelled() and getting.exception() is None:
            self._pool.putconn(getting.result())

    async def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return await self.read(lambda raw: raw.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Params = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def schema_version(self) -> int:
        return await self.read(_version)

    async def backup(self, dest: Path) -> None:
        raise BotError(
            f"{self.path} is on PostgreSQL: back it up with the server's tools, e.g."
            f" pg_dump --format=custom --file {dest} '{self.path}'"
        )


def _version(raw: Connection) -> int:
    row = raw.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _apply(migrations: Sequence[str], version: int, raw: Connection) -> bool:
    """Apply migration `version` inside the caller's transaction unless the database has it."""
    assert isinstance(raw, PgConnection)
    raw.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    raw.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    if _version(raw) >= version:
        return False
    raw.conn.execute(migrations[version - 1].encode())  # several statements, one transaction
    raw.conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return True
