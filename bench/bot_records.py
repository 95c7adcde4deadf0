"""What the bot recorded, read from its database after it stopped, checked against the fakes.

Nothing may be lost, repeated or charged wrongly: one job per command, each delivered and its
user told, one Runpod job per job, each hold settled at exactly what FakeRunpod billed (the
`cost` in the job's output, read back by id), no hold left open, and the ledger's own report
agreeing with the sum of the bills.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench.chat_users import ACK_LIMIT_S, LABEL, Platforms, seen_in_discord, seen_in_slack
from bench.common import ServerJob
from bot.config import QuotaSettings
from bot.ledger.quota import to_usd
from bot.ledger.service import SqliteLedger
from bot.storage.postgres import plain
from bot.storage.sql import is_postgres, open_store


@dataclass(frozen=True)
class JobRow:
    id: str
    platform: str
    label: str
    state: str
    notified: bool
    runpod_ids: tuple[str, ...]
    created_at: float  # time.time()
    finished_at: float | None


@dataclass(frozen=True)
class Records:
    jobs: list[JobRow]
    holds: dict[str, tuple[str, Decimal]]  # job id -> (state, charged)
    ledger_jobs: int  # from the ledger's own report
    ledger_total: Decimal


def _rows(database: Path | str, sql: str) -> list[Any]:
    if is_postgres(database):
        with psycopg.connect(str(database)) as pg:
            return [tuple(plain(v) for v in row) for row in pg.execute(sql).fetchall()]
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


async def read_records(database: Path | str) -> Records:
    """The jobs table and the holds, read after the bot has stopped (SQLite file or DSN)."""
    rows = _rows(
        database,
        "SELECT id, platform, request, state, notified, copies, created_at, finished_at FROM jobs",
    )
    held = _rows(database, "SELECT job_id, state, charged FROM holds")
    jobs = []
    for job_id, platform, request, state, notified, copies, created, finished in rows:
        found = LABEL.search(json.loads(request)["input"].get("prompt", ""))
        ids = tuple(c["runpod_id"] for c in json.loads(copies) if c.get("runpod_id"))
        label = found[1] if found else "?"
        jobs.append(JobRow(job_id, platform, label, state, bool(notified), ids, created, finished))
    db = await open_store(database)
    try:
        now = datetime.now(UTC)
        report = await SqliteLedger(db, QuotaSettings()).report(
            None, now - timedelta(days=1), now + timedelta(days=1)
        )
    finally:
        await db.close()
    holds = {job_id: (state, to_usd(charged)) for job_id, state, charged in held}
    return Records(jobs, holds, report.jobs, report.total)


def check(
    p: Platforms, records: Records, server: dict[str, ServerJob], costs: dict[str, Decimal]
) -> list[str]:
    """Every way a command can be lost, repeated or charged wrongly, as sentences; [] when none."""
    problems = []
    not_acked = [s.label for s in p.sent.values() if s.ack_s is None]
    late = [s.label for s in p.sent.values() if s.ack_s is not None and s.ack_s > ACK_LIMIT_S]
    if not_acked or late:
        problems.append(f"not acknowledged: {not_acked[:10]}; later than 3 s: {late[:10]}")
    seen = seen_in_slack(p.slack) | seen_in_discord(p)
    wrong = {k: v for k, v in seen.items() if (v.results, v.files, len(v.job_ids)) != (1, 1, 1)}
    missing = sorted(set(p.sent) - set(seen))
    if wrong or missing:
        shown = {k: (v.results, v.files, len(v.job_ids)) for k, v in list(wrong.items())[:10]}
        problems.append(
            f"(results, files, jobs) per command not (1, 1, 1): {shown}; none: {missing[:10]}"
        )
    by_label = Counter(job.label for job in records.jobs)
    if by_label != Counter(list(p.sent)):
        extra = {k: n for k, n in by_label.items() if n != 1 or k not in p.sent}
        problems.append(
            f"bot jobs per command not 1: {extra}; no job: {sorted(set(p.sent) - set(by_label))[:10]}"
        )
    states = Counter((job.state, job.notified) for job in records.jobs)
    if set(states) != {("delivered", True)}:
        problems.append(f"job (state, notified): {dict(states)}")
    copies = Counter(rid for job in records.jobs for rid in job.runpod_ids)
    if set(copies) != set(server) or any(n != 1 for n in copies.values()):
        problems.append(
            f"Runpod jobs: {len(server)} at the fake, {len(copies)} named by the bot's jobs,"
            f" {sum(n > 1 for n in copies.values())} named twice"
        )
    for job in records.jobs:
        state, charged = records.holds.get(job.id, ("none", Decimal(0)))
        expected = sum((costs.get(rid, Decimal(0)) for rid in job.runpod_ids), Decimal(0))
        if state != "settled" or charged != expected:
            problems.append(f"job {job.id}: hold {state}, charged {charged}, billed {expected}")
    open_holds = [job_id for job_id, (state, _) in records.holds.items() if state == "held"]
    if open_holds:
        problems.append(f"{len(open_holds)} holds still open: {open_holds[:10]}")
    total = sum(costs.values(), Decimal(0))
    if (records.ledger_jobs, records.ledger_total) != (len(costs), total):
        problems.append(
            f"ledger report: {records.ledger_jobs} jobs, ${records.ledger_total};"
            f" FakeRunpod billed {len(costs)} jobs, ${total}"
        )
    return problems
