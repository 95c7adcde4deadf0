"""Ledger throughput: hold+settle pairs per second on a fresh SQLite file.

    python bench/ledger.py [--pairs 5000] [--runs 5] [--requesters 50]

Scenarios, each on its own new file in a temp directory on disk:
- single writer: one task, one pair after the other (latency-bound: two operations in series);
- N requesters: N asyncio tasks in one process sharing one Database (group commit applies);
- 2 processes: N/2 requesters in each of two processes sharing the file (cross-process lock);
and, for scale, empty write transactions through `Database.run` in series (the thread
hand-off, lock and BEGIN/COMMIT that every operation pays).
Every pair holds $0.01 for one of 200 members of one workspace and settles $0.009, with real
limits that never refuse; the totals are checked after each run. Prints the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import QuotaSettings
from bot.db import Database
from bot.ledger import Identity, SqliteLedger

HOLD, COST = Decimal("0.01"), Decimal("0.009")
MEMBERS = [Identity("discord", "bench", f"member{n}") for n in range(200)]
QUOTAS = QuotaSettings(
    daily_usd=Decimal(10_000),
    monthly_usd=Decimal(100_000),
    workspace={"monthly_usd": Decimal(10_000_000)},  # type: ignore[arg-type]
)


async def _pairs(ledger: SqliteLedger, prefix: str, count: int) -> None:
    for n in range(count):
        job_id = f"{prefix}-{n}"
        await ledger.hold(job_id, MEMBERS[n % len(MEMBERS)], HOLD, model="bench")
        await ledger.settle(job_id, COST)


async def _requesters(path: Path, prefix: str, requesters: int, pairs: int) -> float:
    """Run `pairs` pairs split over `requesters` tasks; return the seconds it took."""
    db = await Database.open(path)
    try:
        ledger = SqliteLedger(db, QUOTAS)
        await ledger.usage(MEMBERS[0])  # first-use work (time zone check) outside the timing
        share = pairs // requesters
        start = time.perf_counter()
        await asyncio.gather(*(_pairs(ledger, f"{prefix}{r}", share) for r in range(requesters)))
        return time.perf_counter() - start
    finally:
        await db.close()


def _process(path: str, prefix: str, requesters: int, pairs: int, barrier: Any) -> None:
    async def run() -> None:
        db = await Database.open(path)
        ledger = SqliteLedger(db, QUOTAS)
        await ledger.usage(MEMBERS[0])
        await db.close()
        barrier.wait()
        await _requesters(Path(path), prefix, requesters, pairs)

    asyncio.run(run())


def _two_processes(path: Path, requesters: int, pairs: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    share = requesters // 2
    workers = [
        ctx.Process(target=_process, args=(str(path), p, share, pairs // 2, barrier))
        for p in ("a", "b")
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


async def _round_trips(path: Path, count: int) -> float:
    """An empty write transaction through `Database.run`: the fixed cost of every operation."""
    db = await Database.open(path)
    try:
        start = time.perf_counter()
        for _ in range(count):
            await db.run(lambda raw: None)
        return time.perf_counter() - start
    finally:
        await db.close()


def _check(path: Path, pairs: int) -> None:
    with sqlite3.connect(path) as conn:
        jobs, charged = conn.execute(
            "SELECT COUNT(*), SUM(charged) FROM holds WHERE state = 'settled'"
        ).fetchone()
    if jobs != pairs or charged != pairs * 9 * 10**7:
        raise SystemExit(f"wrong totals after the run: {jobs} jobs, {charged} units")


def _measure(
    name: str, runs: int, pairs: int, once: Callable[[Path], float], *, unit: str = "pairs/s"
) -> None:
    rates = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            path = Path(tmp) / "bench.db"
            asyncio.run(_create(path))
            seconds = once(path)
            if unit == "pairs/s":
                _check(path, pairs)
        rates.append(pairs / seconds)
    shown = ", ".join(f"{r:,.0f}" for r in rates)
    print(f"{name:<36} median {statistics.median(rates):>7,.0f} {unit}  (runs: {shown})")


async def _create(path: Path) -> None:
    await (await Database.open(path)).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000, help="pairs per run (default 5000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requesters", type=int, default=50)
    args = parser.parse_args()
    pairs, requesters = args.pairs, args.requesters
    pairs -= pairs % requesters
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version},"
        f" {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {pairs} pairs x {args.runs} runs"
    )
    _measure(
        "empty write transactions, in series",
        args.runs,
        pairs,
        lambda p: asyncio.run(_round_trips(p, pairs)),
        unit="tx/s",
    )
    _measure(
        "single writer", args.runs, pairs, lambda p: asyncio.run(_requesters(p, "s", 1, pairs))
    )
    _measure(
        f"{requesters} requesters, one process",
        args.runs,
        pairs,
        lambda p: asyncio.run(_requesters(p, "c", requesters, pairs)),
    )
    _measure(
        f"{requesters} requesters, two processes",
        args.runs,
        pairs,
        lambda p: _two_processes(p, requesters, pairs),
    )


if __name__ == "__main__":
    main()
