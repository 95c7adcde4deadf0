"""Concurrent holds cannot overspend: many asyncio tasks, and two processes on one database,
on SQLite and on PostgreSQL (the `db_place` fixture)."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.ledger.periods import Period
from bot.ledger.service import Identity, QuotaExceeded, SqliteLedger
from bot.storage.sql import open_store
from tests.ledger.support import ALICE, BOB, open_ledger, quotas, usd
from tests.pg_support import fresh_schema, query

CENT = usd("0.01")


async def _hold_all(ledger: SqliteLedger, jobs: list[tuple[str, Identity]]) -> tuple[int, int]:
    """Hold a cent for every job at once; count successes and refusals (anything else raises)."""

    async def one(job_id: str, who: Identity) -> bool:
        try:
            await ledger.hold(job_id, who, CENT, model="m")
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(one(job_id, who) for job_id, who in jobs))
    return sum(results), results.count(False)


async def test_200_concurrent_holds_fit_exactly_n(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="0.37")) as ledger:
        ok, refused = await _hold_all(ledger, [(f"j{i}", ALICE) for i in range(200)])
        assert (ok, refused) == (37, 163)
        day = next(a for a in (await ledger.usage(ALICE)).user if a.period is Period.DAY)
        assert (day.held, day.remaining) == (usd("0.37"), Decimal(0))


async def test_concurrent_holds_of_many_members_fit_the_pool_exactly(db_place: Path | str) -> None:
    settings = quotas(daily_usd="0.05", workspace={"monthly_usd": "0.61"})
    members = [Identity("slack", "T1", f"u{n}") for n in range(20)]
    async with open_ledger(db_place, settings) as ledger:
        jobs = [(f"j{i}", members[i % 20]) for i in range(200)]
        ok, _ = await _hold_all(ledger, jobs)
        assert ok == 61
        rows = await ledger._db.fetchall(
            "SELECT user_key, SUM(held) FROM holds WHERE state = 'held' GROUP BY user_key"
        )
        assert all(held <= 5 * 10**8 for _, held in rows)  # nobody past their own 5 cents


def _process_holds(place: str, prefix: str, count: int, barrier: Any, results: Any) -> None:
    async def run() -> int:
        db = await open_store(place)
        try:
            ledger = SqliteLedger(db, quotas(daily_usd="0.60"))
            barrier.wait()
            ok, _ = await _hold_all(ledger, [(f"{prefix}{i}", ALICE) for i in range(count)])
            return ok
        finally:
            await db.close()

    try:
        results.put((prefix, asyncio.run(run())))
    except BaseException as exc:  # reported to the test instead of dying silently
        results.put((prefix, f"{type(exc).__name__}: {exc}"))
        raise


async def test_two_processes_sharing_the_database_fit_exactly_n(db_place: Path | str) -> None:
    await (await open_store(db_place)).close()  # migrated once, before the race
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_process_holds, args=(str(db_place), prefix, 100, barrier, results))
        for prefix in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    counts = dict(await asyncio.to_thread(lambda: [results.get(timeout=60) for _ in workers]))
    for worker in workers:
        await asyncio.to_thread(worker.join, 30)
    assert all(isinstance(n, int) for n in counts.values()), counts
    assert counts["a"] + counts["b"] == 60, counts
    assert [worker.exitcode for worker in workers] == [0, 0]
    db = await open_store(db_place)
    try:
        row = await db.fetchone("SELECT COUNT(*), SUM(held) FROM holds WHERE state = 'held'")
        assert row is not None and tuple(row) == (60, 60 * 10**8)
    finally:
        await db.close()
    results.close()
    results.join_thread()


async def test_concurrent_settles_and_releases_are_applied_once(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        for i in range(10):
            await ledger.hold(f"j{i}", ALICE, usd("0.05"), model="m")
        settles = [ledger.settle(f"j{i}", usd("0.03")) for i in range(10) for _ in range(5)]
        releases = [ledger.release(f"j{i}", reason="race") for i in range(10) for _ in range(5)]
        await asyncio.gather(*settles, *releases)
        rows = await ledger._db.fetchall("SELECT state, charged FROM holds")
        assert all(state in ("settled", "released") for state, _ in rows)
        day = next(a for a in (await ledger.usage(ALICE)).user if a.period is Period.DAY)
        settled = sum(Decimal(charged) for state, charged in rows if state == "settled")
        assert day.spent == settled / 10**10 and day.held == 0


async def test_the_same_job_id_held_concurrently_holds_once(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        holds = await asyncio.gather(
            *(ledger.hold("same", ALICE, usd("0.30"), model="m") for _ in range(20))
        )
        assert len(set(holds)) == 1
        day = next(a for a in (await ledger.usage(ALICE)).user if a.period is Period.DAY)
        assert day.held == usd("0.30")


async def test_holds_wait_for_an_open_transaction_to_commit(tmp_path: Path) -> None:
    async with open_ledger(tmp_path / "c.db", quotas(daily_usd="1")) as ledger:
        db = ledger._db
        inside = asyncio.Event()
        release = asyncio.Event()

        async def engine() -> None:
            async with db.transaction() as tx:
                await ledger.hold("engine", ALICE, usd("0.80"), model="m", tx=tx)
                inside.set()
                await release.wait()

        queued = asyncio.Event()
        run = db.run

        async def noting_run(fn: Any, *, tx: Any = None) -> Any:
            queued.set()  # the call queues before it first suspends
            return await run(fn, tx=tx)

        task = asyncio.create_task(engine())
        await inside.wait()
        db.run = noting_run  # type: ignore[method-assign]
        waiting = asyncio.create_task(ledger.hold("other", ALICE, usd("0.30"), model="m"))
        await queued.wait()
        assert db._pending and not waiting.done()
        release.set()
        await task
        with pytest.raises(QuotaExceeded):  # it saw the committed 0.80
            await waiting


async def test_processes_starting_at_once_after_a_zone_change_rebucket_once(
    db_place: Path | str,
) -> None:
    """Every ledger re-buckets settled spend when quotas.timezone changed; many starting at once
    (several `try` processes) must neither fail nor count a charge twice."""
    async with open_ledger(db_place, quotas(daily_usd="5", timezone="UTC")) as ledger:
        for i in range(20):
            await ledger.hold(f"j{i}", ALICE, CENT, model="m")
            await ledger.settle(f"j{i}", CENT)
    db = await open_store(db_place)
    try:
        ledgers = [
            SqliteLedger(db, quotas(daily_usd="5", timezone="Pacific/Kiritimati")) for _ in range(8)
        ]
        await asyncio.gather(
            *(one.hold(f"new{n}", ALICE, CENT, model="m") for n, one in enumerate(ledgers))
        )
        rows = await db.fetchall("SELECT SUM(charged) FROM daily_spend")
        assert rows[0][0] == 2 * 20 * 10**8  # the member's and the pool's rows, once each
    finally:
        await db.close()


async def test_on_postgresql_a_hold_waits_for_an_open_transaction_on_its_scope(
    postgres_database: str,
) -> None:
    """PostgreSQL runs transactions side by side: the scope's advisory lock makes admission
    wait for the one that holds it, then read what it committed."""
    place = fresh_schema(postgres_database)
    async with open_ledger(place, quotas(daily_usd="1")) as ledger:
        db = ledger._db
        inside = asyncio.Event()
        release = asyncio.Event()

        async def engine() -> None:
            async with db.transaction() as tx:
                await ledger.hold("engine", ALICE, usd("0.80"), model="m", tx=tx)
                inside.set()
                await release.wait()

        task = asyncio.create_task(engine())
        await inside.wait()
        waiting = asyncio.create_task(ledger.hold("other", ALICE, usd("0.30"), model="m"))
        blocked = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        async with asyncio.timeout(10):  # another connection's state: nothing to wait on but it
            while True:
                if await asyncio.to_thread(query, place, blocked):
                    break
                await asyncio.sleep(0.02)
        assert not waiting.done()
        release.set()
        await task
        with pytest.raises(QuotaExceeded):  # it saw the committed 0.80
            await waiting


async def test_on_postgresql_a_sweep_and_a_hold_in_one_workspace_do_not_deadlock(
    postgres_database: str,
) -> None:
    """A release takes no advisory lock; the running totals' rows are the one thing it shares
    with a hold in the same workspace. Both change the pool's row before the member's, so a
    sweep holding the pool's row and reaching a member's hold cannot meet a hold that took that
    member's row first (PostgreSQL would end one of them with a deadlock error)."""
    place = fresh_schema(postgres_database)
    async with open_ledger(place, quotas(daily_usd="1")) as ledger:
        db = ledger._db
        await ledger.hold("bob-old", BOB, usd("0.10"), model="m")
        await ledger.hold("alice-old", ALICE, usd("0.10"), model="m")
        swept_bob = asyncio.Event()
        go_on = asyncio.Event()

        async def sweeper() -> None:
            async with db.transaction() as tx:
                assert await ledger.release("bob-old", reason="swept", tx=tx)
                swept_bob.set()
                await go_on.wait()
                assert await ledger.release("alice-old", reason="swept", tx=tx)

        sweep = asyncio.create_task(sweeper())
        await swept_bob.wait()
        hold = asyncio.create_task(ledger.hold("alice-new", ALICE, usd("0.20"), model="m"))
        waiting = (
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%INSERT INTO holds%' AND datname = current_database()"
        )
        async with asyncio.timeout(10):  # another connection's state: nothing to wait on but it
            while True:
                if await asyncio.to_thread(query, place, waiting):
                    break
                await asyncio.sleep(0.02)
        go_on.set()
        async with asyncio.timeout(30):
            await sweep
            await hold
        usage = await ledger.usage(ALICE)
        assert allowance_held(usage.user) == usd("0.20")
        assert allowance_held(usage.workspace) == usd("0.20")


def allowance_held(allowances: list[Any]) -> Decimal:
    (day,) = [a for a in allowances if a.period is Period.DAY]
    return Decimal(day.held)
