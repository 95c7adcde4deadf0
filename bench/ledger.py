"""Ledger throughput: hold+settle pairs per second on a fresh database, SQLite and PostgreSQL.

    python -m bench.ledger [--pairs 5000] [--runs 5] [--requesters 50] [--database PLACE ...]

`--database` (repeatable) names where each run's fresh database goes: a directory for a new
SQLite file (default: the system's temp directory), or a PostgreSQL server DSN on which each run
creates `bench_<random>` and drops it afterwards. By default both: the temp directory and
postgresql://postgres@127.0.0.1:5432/postgres, so the two backends are compared in one run.

Scenarios, each on its own new database:
- single writer: one task, one pair after the other (latency-bound: two operations in series);
- the same with 5,000 other jobs held in the workspace throughout (a queue behind
  `jobs.max_global`): admission must not read them one by one;
- N requesters: N asyncio tasks in one process sharing one store (group commit applies);
- 2 and 4 processes: N/2 or N/4 requesters in each process sharing the database;
and, for scale, empty write transactions through `Store.run` in series (the hand-off, lock and
BEGIN/COMMIT that every operation pays).
Every pair holds $0.01 for one of 200 members of one workspace and settles $0.009, with real
limits that never refuse; the totals are checked after each run. Prints the median of the runs,
and for the scenarios in this process (but the queue's) the median CPU time per pair, all threads included.

Logging is configured as `python -m bot run` does it (`bot.logs.configure`, INFO), writing to a
file (`--log`, default a throwaway file), so that any line the ledger writes is in the figure.
A pair writes none: a routine hold or settle logs at DEBUG (the job engine's "held" and
"completed" lines say it at INFO, a cost `bench.many_jobs` measures); only an overage or a
settle after a release would log, at WARNING, and neither happens here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench.common import throwaway_postgres
from bot import logs
from bot.config import QuotaSettings, Settings
from bot.ledger.service import Identity, SqliteLedger
from bot.storage.sql import is_postgres, open_store

DEFAULT_PLACES = [tempfile.gettempdir(), "postgresql://postgres@127.0.0.1:5432/postgres"]

HOLD, COST = Decimal("0.01"), Decimal("0.009")
QUEUED = 5000  # jobs held in the workspace throughout one scenario: a long queue
MEMBERS = [Identity("discord", "bench", f"member{n}") for n in range(200)]
QUOTAS = QuotaSettings(
    daily_usd=Decimal(10_000),
    monthly_usd=Decimal(100_000),
    workspace={"monthly_usd": Decimal(100_000)},  # type: ignore[arg-type]
)


async def _pairs(ledger: SqliteLedger, prefix: str, count: int) -> None:
    for n in range(count):
        job_id = f"{prefix}-{n}"
        await ledger.hold(job_id, MEMBERS[n % len(MEMBERS)], HOLD, model="bench")
        await ledger.settle(job_id, COST)


async def _requesters(
    place: str, prefix: str, requesters: int, pairs: int, *, queued: int = 0
) -> float:
    """Run `pairs` pairs split over `requesters` tasks; return the seconds it took.

    `queued` jobs are held in the workspace first, outside the timing, as a queue behind
    `jobs.max_global` holds them: they stay held throughout."""
    db = await open_store(place)
    try:
        ledger = SqliteLedger(db, QUOTAS)
        await ledger.usage(MEMBERS[0])  # first-use work (time zone check) outside the timing
        await asyncio.gather(
            *(
                ledger.hold(f"queued{n}", MEMBERS[n % len(MEMBERS)], HOLD, model="bench")
                for n in range(queued)
            )
        )
        share = pairs // requesters
        start = time.perf_counter()
        await asyncio.gather(*(_pairs(ledger, f"{prefix}{r}", share) for r in range(requesters)))
        return time.perf_counter() - start
    finally:
        await db.close()


def _process(
    place: str, prefix: str, requesters: int, pairs: int, barrier: Any, log_path: str
) -> None:
    _log_to(log_path)

    async def run() -> None:
        db = await open_store(place)
        ledger = SqliteLedger(db, QUOTAS)
        await ledger.usage(MEMBERS[0])
        await db.close()
        barrier.wait()
        await _requesters(place, prefix, requesters, pairs)

    asyncio.run(run())


def _processes(place: str, processes: int, requesters: int, pairs: int, log_path: str) -> float:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    each = pairs // requesters
    shares = [requesters // processes + (p < requesters % processes) for p in range(processes)]
    workers = [
        ctx.Process(
            target=_process,
            args=(place, f"p{p}-", share, share * each, barrier, log_path),
        )
        for p, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a benchmark process failed ({worker.exitcode})")
    return time.perf_counter() - start


def _log_to(path: str) -> None:
    """INFO lines to the file `path`, formatted and written as `python -m bot run` does."""
    logs.configure(Settings(), stream=open(path, "a", encoding="utf-8"))


async def _round_trips(place: str, count: int) -> float:
    """An empty write transaction through `Store.run`: the fixed cost of every operation."""
    db = await open_store(place)
    try:
        start = time.perf_counter()
        for _ in range(count):
            await db.run(lambda raw: None)
        return time.perf_counter() - start
    finally:
        await db.close()


def _check(place: str, pairs: int) -> None:
    sql = "SELECT COUNT(*), SUM(charged) FROM holds WHERE state = 'settled'"
    if is_postgres(place):
        with psycopg.connect(place) as pg:
            jobs, charged = pg.execute(sql).fetchone() or (0, 0)
    else:
        with closing(sqlite3.connect(place)) as conn:
            jobs, charged = conn.execute(sql).fetchone()
    if jobs != pairs or charged != pairs * 9 * 10**7:
        raise SystemExit(f"wrong totals after the run: {jobs} jobs, {charged} units")


@contextmanager
def _fresh(where: str) -> Iterator[str]:
    """A new empty database: a file in directory `where`, or one on the PostgreSQL server."""
    if not is_postgres(where):
        with tempfile.TemporaryDirectory(prefix="ledger-bench-", dir=where) as tmp:
            yield str(Path(tmp) / "bench.db")
        return
    with throwaway_postgres(where) as dsn:
        yield dsn


def _measure(
    name: str,
    where: str,
    runs: int,
    pairs: int,
    once: Callable[[str], float],
    *,
    unit: str = "pairs/s",
    show_cpu: bool = True,
) -> None:
    """Print the median rate of `runs` runs and, for scenarios run in this process, the median
    CPU time per pair (or transaction) of all its threads: on a shared machine the CPU figure
    moves much less with the load than the rate does."""
    rates, cpu = [], []
    for _ in range(runs):
        with _fresh(where) as place:
            asyncio.run(_create(place))
            cpu_start = time.process_time()
            seconds = once(place)
            cpu.append((time.process_time() - cpu_start) / pairs * 1e6)
            if unit == "pairs/s":
                _check(place, pairs)
        rates.append(pairs / seconds)
    shown = ", ".join(f"{r:,.0f}" for r in rates)
    cpu_shown = f"  cpu {statistics.median(cpu):,.0f} µs each" if show_cpu else ""
    print(
        f"{name:<40} median {statistics.median(rates):>7,.0f} {unit}{cpu_shown}  (runs: {shown};"
        f" load {os.getloadavg()[0]:.2f})",
        flush=True,
    )


async def _create(place: str) -> None:
    await (await open_store(place)).close()


def _scenarios(where: str, runs: int, pairs: int, requesters: int, log_path: str) -> None:
    backend = "postgresql" if is_postgres(where) else "sqlite"
    print(f"-- {backend}: {where}", flush=True)
    _measure(
        "empty write transactions, in series",
        where,
        runs,
        pairs,
        lambda p: asyncio.run(_round_trips(p, pairs)),
        unit="tx/s",
    )
    _measure(
        "single writer",
        where,
        runs,
        pairs,
        lambda p: asyncio.run(_requesters(p, "s", 1, pairs)),
    )
    _measure(
        f"single writer, {QUEUED:,} jobs held meanwhile",
        where,
        runs,
        pairs,
        lambda p: asyncio.run(_requesters(p, "q", 1, pairs, queued=QUEUED)),
        show_cpu=False,  # it would count the queue's holds too
    )
    _measure(
        f"{requesters} requesters, one process",
        where,
        runs,
        pairs,
        lambda p: asyncio.run(_requesters(p, "c", requesters, pairs)),
    )
    for processes in (2, 4):
        _measure(
            f"{requesters} requesters, {processes} processes",
            where,
            runs,
            pairs,
            lambda p, n=processes: _processes(p, n, requesters, pairs, log_path),  # type: ignore[misc]
            show_cpu=False,  # the other processes' CPU is theirs
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000, help="pairs per run (default 5000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requesters", type=int, default=50)
    parser.add_argument("--log", help="file for the bot's INFO lines (default: a throwaway file)")
    parser.add_argument(
        "--database",
        action="append",
        help="directory for SQLite files, or a PostgreSQL server DSN (repeatable; default both)",
    )
    args = parser.parse_args()
    pairs, requesters = args.pairs, args.requesters
    pairs -= pairs % requesters
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version},"
        f" {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {pairs} pairs x {args.runs} runs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ledger-bench-log-") as tmp:
        log_path = args.log or str(Path(tmp) / "bot.log")
        _log_to(log_path)
        for where in args.database or DEFAULT_PLACES:
            _scenarios(where, args.runs, pairs, requesters, log_path)
        logging.shutdown()  # write out what is queued before the file goes
        print(f"log: {_lines(log_path):,} lines at INFO", flush=True)


def _lines(path: str) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


if __name__ == "__main__":
    main()
