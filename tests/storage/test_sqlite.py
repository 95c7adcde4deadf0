"""The store on both backends (`db_place`): migrations, transactions, simultaneous starts; and
the SQLite file's own pragmas, statement splitting and online backup."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from functools import partial
from pathlib import Path

import psycopg
import pytest

from bot.errors import BotError
from bot.ledger.service import SqliteLedger
from bot.storage.postgres import MIGRATIONS as PG_MIGRATIONS
from bot.storage.postgres import PgDatabase
from bot.storage.sql import Connection, Store, is_postgres, open_store
from bot.storage.sqlite import CHECKPOINT_EVERY, Database, SchemaTooNew, split_statements
from bot.storage.tables import SQLITE_MIGRATIONS as MIGRATIONS
from tests.ledger.support import ALICE, BOB, Clock, quotas, usd
from tests.pg_support import query

EXTRA = """
CREATE TABLE notes (job_id TEXT REFERENCES holds (job_id), text TEXT);
-- a comment; with a semicolon
INSERT INTO notes (job_id, text) SELECT job_id, 'migrated; kept' FROM holds;
ALTER TABLE holds ADD COLUMN note TEXT DEFAULT 'none';
"""


def tables(place: Path | str) -> set[str]:
    if is_postgres(place):
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {str(name) for (name,) in query(place, sql)}


def migrations(place: Path | str) -> list[str]:
    """The backend's own spelling of the schema versions."""
    return PG_MIGRATIONS if is_postgres(place) else MIGRATIONS


async def open_at(place: Path | str, versions: list[str]) -> Store:
    """Open `place` migrated with `versions` instead of the bot's own."""
    if is_postgres(place):
        return await PgDatabase.open(str(place), migrations=versions)
    return await Database.open(place, migrations=versions)


async def execute(db: Store, sql: str, tx: object) -> None:
    await db.run(lambda raw: raw.execute(sql), tx=tx)


async def test_an_empty_database_gets_every_migration(db_place: Path | str) -> None:
    db = await open_store(db_place)
    try:
        assert await db.schema_version() == len(migrations(db_place))
    finally:
        await db.close()
    assert {"holds", "daily_spend", "grants", "limit_overrides", "jobs"} <= tables(db_place)


async def test_an_sqlite_file_gets_the_pragmas(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "new.db")
    try:
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 10_000  # type: ignore[index]
        async with db.transaction() as tx:
            rows = list(await tx.execute_fetchall("PRAGMA synchronous"))
            assert rows[0][0] == 1  # NORMAL
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.fetchall("CREATE TABLE nope (x)")  # the reader cannot write
    finally:
        await db.close()


async def test_an_older_database_is_migrated_without_losing_rows(db_place: Path | str) -> None:
    path, versions = db_place, migrations(db_place)
    db = await open_at(path, versions[:1])
    # Written as the first version's ledger wrote them: j1 still held, j2 settled.
    holding = (
        "INSERT INTO holds (job_id, user_key, pool_key, model, held, created_at)"
        " VALUES (?, ?, ?, 'm', ?, 0)"
    )
    await db.run(
        lambda raw: raw.execute(holding, ("j1", ALICE.user_key, ALICE.pool_key, 2500000000))
    )
    await db.run(lambda raw: raw.execute(holding, ("j2", BOB.user_key, BOB.pool_key, 5000000000)))
    settling = (
        "UPDATE holds SET state = 'settled', charged = 4000000000, closed_at = 1,"
        " settled_day = '2026-01-01' WHERE job_id = 'j2'"
    )
    await db.run(lambda raw: raw.execute(settling))
    await db.close()

    db = await open_at(path, [*versions, EXTRA])
    try:
        assert await db.schema_version() == len(versions) + 1
        rows = await db.fetchall("SELECT job_id, state, charged, note FROM holds ORDER BY job_id")
        assert [tuple(r) for r in rows] == [
            ("j1", "held", 0, "none"),
            ("j2", "settled", 4_000_000_000, "none"),
        ]
        notes = await db.fetchall("SELECT job_id, text FROM notes ORDER BY job_id")
        assert [tuple(r) for r in notes] == [("j1", "migrated; kept"), ("j2", "migrated; kept")]
        ledger = SqliteLedger(db, quotas(), clock=Clock())
        # The hold made before the upgrade still counts against its member and pool.
        usage = await ledger.usage(ALICE)
        assert {a.held for a in usage.user + usage.workspace} == {usd("0.25")}
        await ledger.settle("j1", usd("0.25"))  # the ledger works on the migrated file
        usage = await ledger.usage(ALICE)
        assert {a.held for a in usage.user + usage.workspace} == {usd("0")}
    finally:
        await db.close()
    db = await open_at(path, [*versions, EXTRA])  # reopening changes nothing
    await db.close()


async def test_a_failing_migration_leaves_the_previous_version_intact(
    db_place: Path | str,
) -> None:
    await (await open_store(db_place)).close()
    broken = "CREATE TABLE half (x TEXT); INSERT INTO no_such_table VALUES (1);"
    # PostgreSQL's error comes as the one line `bot` prints for a database it cannot use.
    with pytest.raises((sqlite3.OperationalError, BotError), match="no_such_table"):
        await open_at(db_place, [*migrations(db_place), broken])
    assert "half" not in tables(db_place)
    db = await open_store(db_place)
    try:
        assert await db.schema_version() == len(migrations(db_place))
    finally:
        await db.close()


async def test_a_database_from_a_newer_bot_is_refused(db_place: Path | str) -> None:
    later = [*migrations(db_place), "CREATE TABLE later (x TEXT);"]
    await (await open_at(db_place, later)).close()
    with pytest.raises(SchemaTooNew, match="newer than this bot"):
        await open_store(db_place)


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    script = """
    CREATE TABLE t (x TEXT); -- comment; here
    INSERT INTO t VALUES ('a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES ('c'); END;
    """
    statements = list(split_statements(script))
    assert len(statements) == 3
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        list(split_statements("CREATE TABLE t (x); CREATE TRIGGER tr AFTER INSERT ON t BEGIN"))


async def test_a_transaction_rolls_back_when_its_block_raises(db_place: Path | str) -> None:
    db = await open_store(db_place)
    try:
        async with db.transaction() as tx:
            await execute(db, "CREATE TABLE t (x INTEGER)", tx)
        with pytest.raises(KeyError):
            async with db.transaction() as tx:
                await execute(db, "INSERT INTO t VALUES (1)", tx)
                raise KeyError("x")
        assert await db.fetchall("SELECT * FROM t") == []
        async with db.transaction() as tx:
            await execute(db, "INSERT INTO t VALUES (2)", tx)
            # Reads outside the transaction do not see it until it commits.
            assert await db.fetchall("SELECT * FROM t") == []
        assert [tuple(r) for r in await db.fetchall("SELECT * FROM t")] == [(2,)]
    finally:
        await db.close()


async def test_a_cancelled_transaction_rolls_back_and_frees_the_writer(
    db_place: Path | str,
) -> None:
    db = await open_store(db_place)
    entered = asyncio.Event()
    try:
        async with db.transaction() as tx:
            await execute(db, "CREATE TABLE t (x INTEGER)", tx)

        async def writer() -> None:
            async with db.transaction() as tx:
                await execute(db, "INSERT INTO t VALUES (1)", tx)
                entered.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(writer())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.transaction() as tx:
            await execute(db, "INSERT INTO t VALUES (2)", tx)
        assert [tuple(r) for r in await db.fetchall("SELECT * FROM t")] == [(2,)]
    finally:
        await db.close()


async def test_a_transaction_cancelled_while_waiting_for_the_file_leaves_none_open(
    tmp_path: Path,
) -> None:
    """Cancelled while `BEGIN IMMEDIATE` waited for another process's write lock, the BEGIN
    still went through afterwards and nothing rolled it back: the writer held SQLite's write
    lock for good ("cannot start a transaction within a transaction" here, "database is
    locked" in every other process; seen with a worker that lost its lease)."""
    path = tmp_path / "w.db"
    db = await Database.open(path)
    other = sqlite3.connect(path, isolation_level=None)  # another process, as SQLite sees it
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO ledger_meta VALUES ('k', 'v')")

        task = asyncio.create_task(write())
        await asyncio.sleep(0)  # one step: it sends BEGIN IMMEDIATE, which waits for `other`
        task.cancel()
        other.execute("COMMIT")  # the BEGIN it was waiting for goes through now
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO ledger_meta VALUES ('later', 'v')")
        other.execute("BEGIN IMMEDIATE")  # other processes can write again
        other.execute("COMMIT")
        assert [r[0] for r in await db.fetchall("SELECT key FROM ledger_meta")] == ["later"]
    finally:
        other.close()
        await db.close()


async def test_concurrent_calls_fail_alone(db_place: Path | str) -> None:
    """SQLite runs them in one shared transaction, each in a savepoint; PostgreSQL side by side."""
    db = await open_store(db_place)
    try:
        async with db.transaction() as tx:
            await execute(db, "CREATE TABLE t (x INTEGER PRIMARY KEY)", tx)

        def insert(x: int, raw: Connection) -> int:
            raw.execute("INSERT INTO t VALUES (?)", (x,))
            if x % 3 == 0:
                raise ValueError(x)  # undoes its own insert only
            return x

        calls = [db.run(partial(insert, x)) for x in range(1, 31)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert [o for o in outcomes if isinstance(o, ValueError)] == outcomes[2::3]
        rows = [r[0] for r in await db.fetchall("SELECT x FROM t ORDER BY x")]
        assert rows == [x for x in range(1, 31) if x % 3]
        # Each call sees the ones committed or queued before it: a duplicate key fails one.
        twice = await asyncio.gather(
            db.run(partial(insert, 100)),
            db.run(partial(insert, 100)),
            return_exceptions=True,
        )
        assert sorted(twice, key=lambda o: o != 100)[0] == 100
        assert [type(o) for o in twice if o != 100] in (
            [sqlite3.IntegrityError],
            [psycopg.errors.UniqueViolation],
        )
    finally:
        await db.close()


async def test_backup_while_a_writer_runs_is_a_consistent_copy(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "live.db")
    ledger = SqliteLedger(db, quotas(), clock=Clock())
    some_written = asyncio.Event()
    progressed = asyncio.Event()
    stop = asyncio.Event()
    written = 0

    async def write() -> None:
        nonlocal written
        while not stop.is_set():
            job = f"j{written}"
            await ledger.hold(job, ALICE, usd("0.01"), model="m")
            await ledger.settle(job, usd("0.01"))
            written += 1
            progressed.set()
            if written == 50:
                some_written.set()

    try:
        task = asyncio.create_task(write())
        await some_written.wait()
        await db.backup(tmp_path / "copy.db")
        at_backup_end = written
        while written < at_backup_end + 5:  # the writer carries on undisturbed
            progressed.clear()
            await progressed.wait()
        stop.set()
        await task
    finally:
        await db.close()
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        (jobs, charged) = copy.execute(
            "SELECT COUNT(*), SUM(charged) FROM holds WHERE state = 'settled'"
        ).fetchone()
        (bucketed,) = copy.execute(
            "SELECT SUM(charged) FROM daily_spend WHERE scope_key = ?", (ALICE.user_key,)
        ).fetchone()
        (held,) = copy.execute("SELECT COUNT(*) FROM holds WHERE state = 'held'").fetchone()
    assert 50 <= jobs <= at_backup_end + 1 and held <= 1
    assert bucketed == charged  # a snapshot: the totals match the rows they came from
    assert not (tmp_path / "copy.db.partial").exists()


async def test_the_wal_starts_again_while_a_writer_never_pauses(tmp_path: Path) -> None:
    """A checkpoint that ran while commits went on never caught up, so the WAL never restarted:
    it grew by every commit for as long as the writes went on (176 MB in 10,000 commits)."""
    db = await Database.open(tmp_path / "busy.db")
    ledger = SqliteLedger(db, quotas(), clock=Clock())
    wal = tmp_path / "busy.db-wal"
    try:
        first = CHECKPOINT_EVERY // 4  # settles: fewer commits than start a checkpoint
        for n in range(3 * CHECKPOINT_EVERY):
            await ledger.hold(f"j{n}", ALICE, usd("0.01"), model="m")
            await ledger.settle(f"j{n}", usd("0.01"))
            if n + 1 == first:
                each = wal.stat().st_size / (2 * first)  # what a commit adds to the WAL
        assert wal.stat().st_size < 3 * CHECKPOINT_EVERY * each  # of 6 * CHECKPOINT_EVERY
    finally:
        await db.close()


async def test_backup_refuses_to_overwrite_the_database(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "self.db")
    try:
        with pytest.raises(BotError, match="is the database itself"):
            await db.backup(tmp_path / "self.db")
    finally:
        await db.close()


def _open_at_once(place: str, barrier: object, results: object) -> None:
    """One process of a simultaneous start: open (create, switch to WAL, migrate), report."""

    async def main() -> str:
        barrier.wait()  # type: ignore[attr-defined]
        db = await open_store(place)
        try:
            return str(await db.schema_version())
        finally:
            await db.close()

    try:
        results.put(asyncio.run(main()))  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


# The SQLite race (below) shows in some starts only; PostgreSQL's advisory lock needs fewer.
STARTS = [*(("sqlite", n) for n in range(6)), *(("postgresql", n) for n in range(2))]


@pytest.mark.parametrize(("db_place", "attempt"), STARTS, indirect=["db_place"])
def test_processes_starting_together_on_a_new_database_all_open_it(
    db_place: Path | str, attempt: int
) -> None:
    """`python -m bot run` and `python -m bot usage` started at the same moment must both work:
    SQLite refuses the switch to WAL at once (no busy wait) while another process holds it;
    on PostgreSQL each migration must be applied once, by one of them."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    place = str(db_place)
    workers = [ctx.Process(target=_open_at_once, args=(place, barrier, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert answers == [str(len(migrations(db_place)))] * 6, answers
