"""The jobs table: every job's request, state, Runpod ids and outputs, written before each step.

A job runs `count` copies of one request (one Runpod job each). Its state moves
received -> held -> submitting -> submitted -> completed -> delivered, or ends in failed /
timed_out / cancelled with the hold released. A completed job the platform refused past
`delivery.horizon_s` is `undeliverable`: charged, kept in the spool, still offered until shown. `notified` records that the user was told how a
job ended, so a crash between ending a job and telling the user is repaired on the next start.
Amounts here are Decimal text for display; the ledger holds the authoritative integer amounts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

import aiosqlite

from bot.db import Database
from bot.delivery import ChannelRef

ACTIVE_STATES = ("awaiting_confirmation", "held", "submitting", "submitted", "completed")
FAILED_STATES = ("failed", "timed_out", "cancelled")
FINAL_STATES = ("delivered", *FAILED_STATES)
# Paid results not shown yet: their spooled files must be kept.
UNDELIVERED_STATES = ("completed", "undeliverable")
# Jobs with a result /show can give back.
WITH_RESULT = ("delivered", *UNDELIVERED_STATES)


@dataclass(frozen=True)
class Copy:
    """One Runpod job of a (possibly batched) request."""

    seed: int | None = None
    runpod_id: str | None = None
    status: str | None = None
    output: Any = None
    error: str | None = None
    cost: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    identity: tuple[str, str, str]  # platform, workspace, user
    channel: ChannelRef
    command: str
    model: str
    request: dict[str, Any]  # {"input": {...}, "count": n, "media": [...]}
    state: str
    estimate: Decimal
    created_at: float
    cost: Decimal | None = None
    copies: tuple[Copy, ...] = ()
    webhook_token: str | None = None
    cache_key: str | None = None
    error: str | None = None
    notified: bool = False
    updated_at: float = 0.0
    finished_at: float | None = None

    @property
    def input(self) -> dict[str, Any]:
        return dict(self.request["input"])

    @property
    def count(self) -> int:
        return int(self.request.get("count", 1))

    def payload(self, index: int) -> dict[str, Any]:
        """The input sent to Runpod for copy `index`: the request with that copy's own seed."""
        payload = self.input
        seed = self.copies[index].seed if index < len(self.copies) else None
        if seed is not None:
            payload["seed"] = seed
        return payload


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, job: JobRecord, *, tx: aiosqlite.Connection) -> None:
        now = time.time()
        await tx.execute(
            "INSERT INTO jobs (id, platform, workspace, user_id, channel_ref, command, model,"
            " request, state, estimate, copies, webhook_token, cache_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                *job.identity,
                job.channel.to_json(),
                job.command,
                job.model,
                json.dumps(job.request),
                job.state,
                str(job.estimate),
                _copies_json(job.copies),
                job.webhook_token,
                job.cache_key,
                job.created_at,
                now,
            ),
        )

    async def save(
        self, job: JobRecord, *, tx: aiosqlite.Connection | None = None, **changes: Any
    ) -> JobRecord:
        """Write the job's state, copies, cost and error; returns the updated record."""
        job = replace(job, **changes, updated_at=time.time())
        if job.state in FINAL_STATES and job.finished_at is None:
            job = replace(job, finished_at=job.updated_at)
        sql = (
            "UPDATE jobs SET state = ?, cost = ?, copies = ?, error = ?, notified = ?,"
            " updated_at = ?, finished_at = ? WHERE id = ?"
        )
        params = (
            job.state,
            None if job.cost is None else str(job.cost),
            _copies_json(job.copies),
            job.error,
            int(job.notified),
            job.updated_at,
            job.finished_at,
            job.id,
        )
        if tx is not None:
            await tx.execute(sql, params)
        else:  # one hand-off to the writer thread, group-committed with concurrent writes
            await self._db.run(lambda raw: raw.execute(sql, params))
        return job

    async def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        to_state: str,
        *,
        tx: aiosqlite.Connection | None = None,
        error: str | None = None,
        notified: bool = False,
    ) -> JobRecord | None:
        """Move the job to `to_state` only if its committed state is one of `from_states`.

        Returns the row as committed, or None when the job was elsewhere: another click or task
        moved it first, and the caller must answer from the job's state as it now is. This is
        how two racing clicks (Confirm and Cancel) end with exactly one of them taking effect.
        """
        sources = tuple(from_states)
        marks = ", ".join("?" for _ in sources)
        now = time.time()
        finished = now if to_state in FINAL_STATES else None

        def move(raw: sqlite3.Connection) -> JobRecord | None:
            moved = raw.execute(
                "UPDATE jobs SET state = ?, error = COALESCE(?, error), notified = ?,"
                f" updated_at = ?, finished_at = ? WHERE id = ? AND state IN ({marks})",
                (to_state, error, int(notified), now, finished, job_id, *sources),
            )
            if moved.rowcount != 1:
                return None
            row = raw.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return _record(row)

        return await self._db.run(move, tx=tx)

    async def get(self, job_id: str) -> JobRecord | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _record(row)

    async def unfinished(self) -> list[JobRecord]:
        """Jobs a restart must carry on: still active, or ended without the user being told."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks})"
            " OR (notified = 0 AND state IN"
            " ('delivered', 'undeliverable', 'failed', 'timed_out', 'cancelled'))"
            " ORDER BY created_at",
            ACTIVE_STATES,
        )
        return [_record(row) for row in rows]

    async def active_ids(self) -> set[str]:
        """Jobs that will still be carried on (now or after a restart): their holds are live."""
        marks = ", ".join("?" for _ in ACTIVE_STATES)
        rows = await self._db.fetchall(
            f"SELECT id FROM jobs WHERE state IN ({marks})", ACTIVE_STATES
        )
        return {row[0] for row in rows}

    async def undelivered_ids(self) -> set[str]:
        """Jobs whose result may still have to be delivered (or is being made): keep its files."""
        states = (*ACTIVE_STATES, *UNDELIVERED_STATES)
        marks = ", ".join("?" for _ in states)
        rows = await self._db.fetchall(f"SELECT id FROM jobs WHERE state IN ({marks})", states)
        return {row[0] for row in rows}

    async def cached(self, cache_key: str) -> JobRecord | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM jobs WHERE cache_key = ? AND state IN ('completed', 'delivered')"
            " ORDER BY created_at DESC LIMIT 1",
            (cache_key,),
        )
        return None if row is None else _record(row)


_COLUMNS = (
    "id, platform, workspace, user_id, channel_ref, command, model, request, state, estimate,"
    " cost, copies, webhook_token, cache_key, error, notified, created_at, updated_at, finished_at"
)


def _copies_json(copies: Iterable[Copy]) -> str:
    return json.dumps([asdict(copy) for copy in copies])


def _record(row: Any) -> JobRecord:
    (
        job_id,
        platform,
        workspace,
        user,
        channel,
        command,
        model,
        request,
        state,
        estimate,
        cost,
        copies,
        webhook_token,
        cache_key,
        error,
        notified,
        created_at,
        updated_at,
        finished_at,
    ) = tuple(row)
    return JobRecord(
        id=job_id,
        identity=(platform, workspace, user),
        channel=ChannelRef.from_json(channel),
        command=command,
        model=model,
        request=json.loads(request),
        state=state,
        estimate=Decimal(estimate),
        cost=None if cost is None else Decimal(cost),
        copies=tuple(Copy(**c) for c in json.loads(copies)),
        webhook_token=webhook_token,
        cache_key=cache_key,
        error=error,
        notified=bool(notified),
        created_at=created_at,
        updated_at=updated_at,
        finished_at=finished_at,
    )


def new_copies(count: int, seeds: list[int | None]) -> tuple[Copy, ...]:
    return tuple(Copy(seed=seeds[i] if i < len(seeds) else None) for i in range(count))
