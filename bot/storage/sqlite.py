"""The bot's one SQLite file: connections, write transactions and applying migrations.

This is the embedded default `bot.storage.sql.Store`; `bot/storage/postgres.py` is the PostgreSQL one (same tables and
schema versions: tests/storage/test_pg_dialect.py keeps the two spellings in step). The tables are in
`bot.storage.tables`, the online backup in `bot.storage.sqlite_backup`.

Three connections. Write transactions run one at a time in this process (an asyncio lock) and
one process at a time across processes (`BEGIN IMMEDIATE` takes SQLite's write lock up front).
When this process's lock is free, a write transaction runs whole on the event loop's thread, on
a connection of its own with no busy timeout: its `BEGIN IMMEDIATE` either gets the write lock
at once or answers SQLITE_BUSY (another process holds it), and then the transaction goes to the
writer's thread instead, whose `BEGIN IMMEDIATE` waits up to the busy timeout. A write first
lets the loop turn once, holding the lock: writes that arrive meanwhile queue and then share
one transaction and its commit (`Database.run`), on the loop too if the write lock is free.
The read-only reader sees the last committed state and never waits (WAL).

The trade: a transaction on the loop blocks it for its own work (a ledger hold or settle:
~50-100 µs, commit included) and never for a wait, since it is never sent to the loop unless
the write lock was free; it saves the two thread hand-offs (~50 µs each) a transaction on the
writer's thread costs. The loop's connection never checkpoints (`wal_autocheckpoint=0`: a
checkpoint syncs the file, milliseconds on a slow disk); every `CHECKPOINT_EVERY` commits on
the loop, the writer's thread runs a PASSIVE checkpoint while writes go on, then, unless the
WAL was empty, another holding the write slot (writes queue for its ~3 ms here). Only a
checkpoint that no commit overtakes copies the whole WAL, so that the next write starts it
again from the top: without the second, a writer that never paused grew the WAL by every
commit, and a commit appending to the file cost ~45 µs of CPU against ~30 overwriting. Operations
that touch many rows (re-bucketing spend after a time zone change, migrations at startup)
block the loop for as long as they take, as they would hold every other writer up anyway.

Durability: WAL with `synchronous=NORMAL`. In WAL mode NORMAL cannot corrupt the file and loses
nothing when the process crashes; only a power loss or kernel crash can roll back the last
commits since the WAL was last synced. `FULL` would fsync on every commit and cap writes at the
disk's fsync rate (1,600 commits/s on the project machine against 14,600 with NORMAL; far fewer
on some cloud disks). The loss we accept: a settle rolled back by a power cut under-charges one
member, and a hold rolled back goes together with the job row written in the same transaction.

Schema versions live in `PRAGMA user_version`: `MIGRATIONS[i]` brings the file to version
`i + 1`, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.errors import BotError
from bot.storage.sql import Store
from bot.storage.sqlite_backup import DEFAULT_BUSY_TIMEOUT_MS, backup_file
from bot.storage.sqlite_write import (
    SqliteTransaction,
    begin_at_once,
    checkpoint,
    commit,
    connect_here,
    each_in_savepoint,
    end,
    in_transaction,
    on_thread,
)
from bot.storage.tables import SQLITE_MIGRATIONS as MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]

CHECKPOINT_EVERY = 200  # commits on the loop between checkpoints: ~1,000 WAL pages of holds


class SchemaTooNew(BotError):
    """The file was written by a newer version of the bot."""


async def migrate(
    db: Store,
    place: object,
    migrations: Sequence[str],
    apply: Callable[[Sequence[str], int, Any], bool],
) -> None:
    """Bring `db` to the last of `migrations`, each version in a transaction of its own (`apply`
    says whether the version was missing); refuse a database a newer bot has taken further.
    Shared by both backends."""
    target = len(migrations)
    for version in range(1, target + 1):
        if await db.run(partial(apply, migrations, version)):
            log.info("%s: migrated to schema version %d", place, version)
    current = await db.schema_version()
    if current > target:
        raise SchemaTooNew(
            f"{place} has schema version {current}, newer than this bot's {target}; upgrade the bot"
        )


def split_statements(script: str) -> Iterator[str]:
    """Yield the statements of `script` one by one (executescript would commit mid-migration)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                yield pending.strip()
            pending = ""
    if pending.strip().strip(";").strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:80]!r}")


class Database:
    """The open file; build it with `await Database.open(path)`."""

    def __init__(
        self,
        path: Path,
        *,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        here: sqlite3.Connection,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._here = here  # the event loop's own: see the module docstring
        self._tx: SqliteTransaction | None = None
        self._commits = 0  # on the loop since the last checkpoint
        self._checkpointer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        migrations: Sequence[str] | None = None,
    ) -> Database:
        """Open (creating if needed) and migrate to the newest schema."""
        path = Path(path)
        writer = await _connect(path, busy_timeout_ms)
        try:
            mode = await _switch_to_wal(writer, busy_timeout_ms)
            if str(mode).lower() != "wal":
                raise BotError(f"{path}: cannot use WAL journal mode (got {mode})")
            await writer.execute("PRAGMA synchronous=NORMAL")
            reader = await _connect(path, busy_timeout_ms)
        except BaseException:
            await writer.close()
            raise
        await reader.execute("PRAGMA query_only=ON")
        db = cls(path, writer=writer, reader=reader, here=connect_here(path))
        try:
            await migrate(db, db.path, MIGRATIONS if migrations is None else migrations, _apply)
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        if self._checkpointer is not None:
            await self._checkpointer
        self._here.close()
        await self._reader.close()
        await self._writer.close()

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    @asynccontextmanager
    async def _write_slot(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise RuntimeError("nested write transaction: pass the open transaction as tx=")
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` if the block raises.

        The transaction yielded is for this block only; hand it to ledger calls as `tx=` so they
        join it instead of waiting for it. On the loop's connection when the write lock was
        free at once, else on the writer's thread.
        """
        async with self._write_slot():
            here = begin_at_once(self._here)
            tx = self._tx = SqliteTransaction(self._here if here else self._writer)
            try:
                if not here:
                    # Inside the try: cancelled while BEGIN waits for another process, the
                    # BEGIN still runs on the writer's thread, and the ROLLBACK queued after
                    # it ends it.
                    await self._writer.execute("BEGIN IMMEDIATE")
                yield tx
                await tx.call(end)
            except BaseException:
                await tx.rollback()
                raise
            finally:
                tx.open, self._tx = False, None
            if here:
                self._committed()
                await asyncio.sleep(0)  # as in `run`: other tasks get their turn

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, tx: SqliteTransaction | None = None
    ) -> T:
        """Run `fn` in `tx` if given, else atomically in a write transaction of its own or
        shared with other calls queued meanwhile (group commit).

        Shared: calls that arrive while the write lock is held go together into the next
        transaction (on the loop, or on the writer's thread), each in a savepoint, so one
        raising undoes only itself, and each sees the ones before it. It commits once; no
        result is handed back before that commit.
        """
        if tx is not None:
            if tx is not self._tx or not tx.open:
                raise RuntimeError("tx must be an open Database.transaction()")
            return await tx.call(fn)
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise RuntimeError("nested write transaction: pass the open transaction as tx=")
        if not self._pending and not self._lock.locked():
            # Nobody to share a batch with: run it now, without `_write_slot`'s generator
            # (the lock is free: no wait), on the loop if no other process writes.
            async with self._lock:
                self._owner = task
                try:
                    # One turn of the loop first: writes arriving meanwhile queue and share
                    # the flusher's next transaction, and a task doing nothing but writes
                    # cannot starve the others.
                    await asyncio.sleep(0)
                    return await self._in_a_transaction(fn)
                finally:
                    self._owner = None
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"db-writer {self.path}")
        return await future

    def _committed(self) -> None:
        """Count a commit on the loop; every `CHECKPOINT_EVERY`, checkpoint on the writer's
        thread (unless one still runs), where its disk sync never blocks the loop."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and (
            self._checkpointer is None or self._checkpointer.done()
        ):
            self._commits = 0
            self._checkpointer = asyncio.create_task(
                self._checkpoint(), name=f"db-checkpoint {self.path}"
            )

    async def _checkpoint(self) -> None:
        try:
            if await on_thread(self._writer, checkpoint) <= 0:  # the bulk, while writes go on
                return  # an empty WAL: nothing to start again
            # Then what they added, holding the write slot: with no commit in between, the
            # checkpoint copies the whole WAL, and the next write starts it again from the top.
            async with self._write_slot():
                await on_thread(self._writer, checkpoint)
        except sqlite3.Error:
            log.warning("%s: checkpoint failed; the next one retries", self.path, exc_info=True)

    async def _in_a_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in a write transaction of its own: on the loop's connection when the write lock
        is free at once, else on the writer's thread, which waits for it."""
        if begin_at_once(self._here):
            result = commit(fn, self._here)
            self._committed()
            return result
        return await on_thread(self._writer, in_transaction(fn, "BEGIN IMMEDIATE"))

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._write_slot():
                    outcomes = await self._in_a_transaction(
                        partial(each_in_savepoint, [fn for fn, _ in batch])
                    )
            except BaseException as exc:
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled; the work is done regardless
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the reader's thread under one read snapshot."""
        return await on_thread(self._reader, in_transaction(fn, "BEGIN"))

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def backup(self, dest: Path) -> None:
        """Online copy of the whole file to `dest`; writers carry on meanwhile."""
        await asyncio.to_thread(backup_file, self.path, Path(dest))
        log.info("backed up %s to %s", self.path, dest)


def _apply(migrations: Sequence[str], version: int, raw: sqlite3.Connection) -> bool:
    """Apply migration `version` inside the caller's transaction unless the file has it."""
    (current,) = raw.execute("PRAGMA user_version").fetchone()
    if current >= version:
        return False
    for statement in split_statements(migrations[version - 1]):
        raw.execute(statement)
    violations = raw.execute("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise BotError(f"migration {version} leaves foreign key violations: {violations[:3]}")
    raw.execute(f"PRAGMA user_version = {int(version)}")
    return True


async def _connect(path: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


async def _switch_to_wal(conn: aiosqlite.Connection, busy_timeout_ms: int) -> str:
    """`PRAGMA journal_mode=WAL`, retried: SQLite answers "database is locked" at once, without
    its busy handler, while another process holds the new file (two starts at the same time)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.01
    while True:
        try:
            (mode,) = await _fetchone(conn, "PRAGMA journal_mode=WAL")
            return str(mode)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)


async def _fetchone(conn: aiosqlite.Connection, sql: str) -> sqlite3.Row:
    rows = list(await conn.execute_fetchall(sql))
    return rows[0]
