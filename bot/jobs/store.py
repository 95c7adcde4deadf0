"""The jobs table: every job's request, state, Runpod ids and outputs, written before each step.

The states and what each means are bot/jobs/states.py's. `owner` is the worker driving the job
(bot/jobs/workers.py); a store given a worker fences every write that moves a job on that worker
still owning it under a live lease. Amounts here are Decimal text for display; the ledger holds
the authoritative integer amounts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any

from bot.delivery import ChannelRef
from bot.jobs.states import ACTIVE, AT_RUNPOD, ENDED, OUTCOMES, UNDELIVERED, JobState, sql_in
from bot.jobs.workers import LIVE_WORKERS, LeaseLost, Worker
from bot.ledger.quota import Identity
from bot.storage.sql import Connection, Store, lock_scopes, skip_locked

# Jobs at Runpod, or on their way there, counted against `jobs.max_per_user` / `max_global`.
_RUNNING = f"{sql_in(AT_RUNPOD)} AND owner IN ({LIVE_WORKERS})"
# What a restart or a takeover must carry on: still active, or ended without the user told.
_UNFINISHED = f"({sql_in(ACTIVE)} OR (notified = 0 AND {sql_in(OUTCOMES)}))"
# Claimed by a worker: a job waiting for a confirmation has no owner (any process confirms it).
_DRIVEN = f"{_UNFINISHED} AND state <> '{JobState.AWAITING_CONFIRMATION}'"
_INSERT = (
    "INSERT INTO jobs (id, platform, workspace, user_id, channel_ref, command, model,"
    " request, state, estimate, copies, webhook_token, cache_key, created_at, updated_at,"
    " owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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
    state: JobState
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
    def member(self) -> Identity:
        """Who asked, as the ledger names them (roles are not kept with the job)."""
        return Identity(*self.identity)

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
    def __init__(self, db: Store, worker: Worker | None = None) -> None:
        self._db = db
        self._worker = worker

    async def insert(self, job: JobRecord, *, tx: Any) -> None:
        """Add a job; one that is to be driven (`held`) belongs to this store's worker."""
        await self._db.run(self.inserting(job), tx=tx)

    def inserting(self, job: JobRecord) -> Callable[[Connection], object]:
        """`insert` as an operation for a transaction of the caller's (one trip with its
        other writes: the hold, the conversation's turn)."""
        now = time.time()
        owner = self._worker.id if self._worker and job.state == JobState.HELD else None
        row = (
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
            owner,
        )
        return lambda raw: raw.execute(_INSERT, row)

    async def save(self, job: JobRecord, *, tx: Any = None, **changes: Any) -> JobRecord:
        """Write the job's state, copies, cost and error; returns the updated record.

        Fenced: with a worker, the row changes only while that worker owns the job under a
        live lease, else `LeaseLost` is raised (and the caller's transaction rolls back). A job
        left with nothing to drive (ended and told) is released from its owner.
        """
        job = replace(job, **changes, updated_at=time.time())
        if job.state in ENDED and job.finished_at is None:
            job = replace(job, finished_at=job.updated_at)
        done = job.notified and job.state in ENDED
        fence, fence_params = self._fence()
        sql = (
            "UPDATE jobs SET state = ?, cost = ?, copies = ?, error = ?, notified = ?,"
            " updated_at = ?, finished_at = ?, owner = CASE WHEN ? = 1 THEN NULL ELSE owner END"
            f" WHERE id = ?{fence}"
        )
        params = (
            job.state,
            None if job.cost is None else str(job.cost),
            _copies_json(job.copies),
            job.error,
            int(job.notified),
            job.updated_at,
            job.finished_at,
            int(done),
            job.id,
            *fence_params,
        )

        def write(raw: Connection) -> None:
            if raw.execute(sql, params).rowcount != 1 and fence:
                raise LeaseLost(f"job {job.id} is no longer this worker's")

        # Without tx: one hand-off to the writer thread, group-committed with concurrent writes.
        await self._db.run(write, tx=tx)
        return job

    async def start_running(self, job: JobRecord, *, per_user: int, total: int) -> bool:
        """Move a `held` job to `submitting` if the caps allow it, counted over every worker.

        The store, not the process, counts the running jobs (`submitting` or `submitted` under a
        live owner), so the caps hold for any number of processes on one database. The count
        and the move are one transaction, serialized per member and for the pool (SQLite's write
        lock; advisory locks on PostgreSQL), so two workers can't both take the last slot.
        Returns False when the caps are full; fenced like `save`.
        """
        platform, workspace, user = job.identity
        fence, fence_params = self._fence()

        def take(raw: Connection) -> bool:
            lock_scopes(raw, "slots", f"slots:{platform}:{workspace}:{user}")
            row = raw.execute(
                "SELECT COUNT(*),"
                " COALESCE(SUM(CASE WHEN platform = ? AND workspace = ? AND user_id = ?"
                " THEN 1 ELSE 0 END), 0)"
                f" FROM jobs WHERE {_RUNNING} AND id <> ?",
                (platform, workspace, user, job.id),
            ).fetchone()
            if row[0] >= total or row[1] >= per_user:
                return False
            moved = raw.execute(
                f"UPDATE jobs SET state = '{JobState.SUBMITTING}', updated_at = ?"
                f" WHERE id = ? AND state = '{JobState.HELD}'{fence}",
                (time.time(), job.id, *fence_params),
            )
            if moved.rowcount != 1 and fence:
                raise LeaseLost(f"job {job.id} is no longer this worker's")
            return True

        return await self._db.run(take)

    async def affirm(self, job_id: str) -> None:
        """Raise `LeaseLost` unless this store's worker owns the job under a live lease now.

        Checked just before something leaves the process for good (a result, a failure
        notice), which no fenced write could take back.
        """
        fence, fence_params = self._fence()
        if not fence:
            return
        row = await self._db.fetchone(
            f"SELECT 1 FROM jobs WHERE id = ?{fence}", (job_id, *fence_params)
        )
        if row is None:
            raise LeaseLost(f"job {job_id} is no longer this worker's")

    async def claim(self, platform: str | None) -> list[JobRecord]:
        """Take over, atomically, the unfinished jobs (of `platform`) that no live worker owns.

        One statement, under SQLite's write lock (on PostgreSQL the rows are claimed with
        `FOR UPDATE SKIP LOCKED`): two workers claiming at once cannot both take a job, and a job
        whose owner still renews its lease is never taken. Returns the
        jobs as committed, oldest first. Jobs waiting for a confirmation have no owner and
        are not claimed (any process may confirm them).
        """
        assert self._worker is not None, "claiming needs a worker"
        me = self._worker.id

        def take(raw: Connection) -> list[JobRecord]:
            rows = raw.execute(
                f"UPDATE jobs SET owner = ? WHERE id IN (SELECT id FROM jobs WHERE {_DRIVEN}"
                " AND platform = COALESCE(?, platform)"
                f" AND (owner IS NULL OR owner NOT IN ({LIVE_WORKERS})){skip_locked(raw)})"
                f" AND ? IN ({LIVE_WORKERS}) RETURNING {_COLUMNS}",
                (me, platform, me),
            ).fetchall()
            return sorted((_record(row) for row in rows), key=lambda job: job.created_at)

        if not await self._claimable(platform):
            return []
        return await self._db.run(take)

    async def driven_elsewhere(self, platform: str | None) -> int:
        """How many unfinished jobs (of `platform`) another worker owns, live or not yet lapsed."""
        me = self._worker.id if self._worker else ""
        row = await self._db.fetchone(
            f"SELECT COUNT(*) FROM jobs WHERE {_DRIVEN}"
            " AND platform = COALESCE(?, platform) AND owner IS NOT NULL AND owner <> ?",
            (platform, me),
        )
        return int(row[0]) if row else 0

    async def _claimable(self, platform: str | None) -> bool:
        """Whether `claim` would find anything (a read: most heartbeats find nothing)."""
        row = await self._db.fetchone(
            f"SELECT 1 FROM jobs WHERE {_DRIVEN} AND platform = COALESCE(?, platform)"
            f" AND (owner IS NULL OR owner NOT IN ({LIVE_WORKERS})) LIMIT 1",
            (platform,),
        )
        return row is not None

    def _fence(self) -> tuple[str, tuple[str, ...]]:
        """The WHERE clause that limits a write to jobs this worker owns under a live lease."""
        if self._worker is None:
            return "", ()
        return f" AND owner = ? AND owner IN ({LIVE_WORKERS})", (self._worker.id,)

    async def transition(
        self,
        job_id: str,
        from_states: Iterable[JobState],
        to_state: JobState,
        *,
        tx: Any = None,
        error: str | None = None,
        notified: bool = False,
        take: bool = False,
    ) -> JobRecord | None:
        """Move the job to `to_state` only if its committed state is one of `from_states`.

        Returns the row as committed, or None when the job was elsewhere: another click or task
        moved it first, and the caller must answer from the job's state as it now is. This is
        how two racing clicks (Confirm and Cancel) end with exactly one of them taking effect.
        With `take`, the job becomes this store's worker's to drive.
        """
        sources = tuple(from_states)
        marks = ", ".join("?" for _ in sources)
        now = time.time()
        finished = now if to_state in ENDED else None
        owner = self._worker.id if take and self._worker else None

        def move(raw: Connection) -> JobRecord | None:
            moved = raw.execute(
                "UPDATE jobs SET state = ?, error = COALESCE(?, error), notified = ?,"
                " updated_at = ?, finished_at = ?, owner = COALESCE(?, owner)"
                f" WHERE id = ? AND state IN ({marks})",
                (to_state, error, int(notified), now, finished, owner, job_id, *sources),
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
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM jobs WHERE {_UNFINISHED} ORDER BY created_at"
        )
        return [_record(row) for row in rows]

    async def active_ids(self) -> set[str]:
        """Jobs that will still be carried on (now or after a restart): their holds are live."""
        rows = await self._db.fetchall(f"SELECT id FROM jobs WHERE {sql_in(ACTIVE)}")
        return {row[0] for row in rows}

    async def undelivered_ids(self) -> set[str]:
        """Jobs whose result may still have to be delivered (or is being made): keep its files."""
        rows = await self._db.fetchall(f"SELECT id FROM jobs WHERE {sql_in(ACTIVE | UNDELIVERED)}")
        return {row[0] for row in rows}

    async def cached(self, cache_key: str) -> JobRecord | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM jobs WHERE cache_key = ? AND {_CACHED}"
            " ORDER BY created_at DESC LIMIT 1",
            (cache_key,),
        )
        return None if row is None else _record(row)


_COPY_FIELDS = tuple(field.name for field in fields(Copy))
# A result the cache may give again: charged, and not refused by the platform.
_CACHED = sql_in({JobState.COMPLETED, JobState.DELIVERED})
_COLUMNS = (
    "id, platform, workspace, user_id, channel_ref, command, model, request, state, estimate,"
    " cost, copies, webhook_token, cache_key, error, notified, created_at, updated_at, finished_at"
)


def _copies_json(copies: Iterable[Copy]) -> str:
    """The copies as stored; not `asdict`, which deep-copies each output only to dump it."""
    return json.dumps([{name: getattr(copy, name) for name in _COPY_FIELDS} for copy in copies])


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
        state=JobState(state),
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
