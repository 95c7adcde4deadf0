"""Workers and leases: which process drives which job when several share one database.

Every process that drives jobs is a worker: a row in `workers` whose lease (`expires_at`) it
renews every `heartbeat_s`. A job being driven names its worker in `jobs.owner`. A process
drives only the jobs it owns, takes one over only once its owner's lease has lapsed
(`JobStore.claim`, one statement), and every write that moves a job checks in its own
transaction that the writer still owns it under a live lease (`JobStore.save` raises
`LeaseLost` otherwise). A worker whose lease lapsed (a paused process, a stalled disk) stops
its jobs and joins again under a new id; its old jobs go to whoever claims them first.

Lease instants are read from the database's clock (SQLite's `julianday('now')`: the clock of
the machine every process using the file shares; on PostgreSQL `bot.storage.postgres` reads the server's
clock instead), never a
process's own. Local timers (the heartbeat, "may my lease have run out") use the monotonic
clock. docs/scaling.md says what this promises.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

from bot.config import WorkerSettings
from bot.storage.outage import Outage
from bot.storage.sql import Connection, Store, db_errors, unreachable

log = logging.getLogger(__name__)

# The database's clock in Unix seconds (ms precision). SQLite 3.42+ also has unixepoch('subsec').
DB_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
# Workers whose lease is running now.
LIVE_WORKERS = f"SELECT id FROM workers WHERE expires_at > {DB_NOW}"
# Rows of workers gone this long are deleted when a worker joins (their jobs are long claimed).
FORGET_AFTER_S = 7 * 24 * 3600


class LeaseLost(Exception):
    """This worker no longer owns the job: its lease lapsed, or another worker took it over.

    The job's task stops on it without telling the member anything or touching the ledger:
    the worker that owns the job now does both.
    """


class Worker:
    """This process as a worker: its row, its lease, and how long it may trust it locally."""

    def __init__(self, db: Store, settings: WorkerSettings) -> None:
        self._db = db
        self.settings = settings
        self.id = ""
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._trusted_until = 0.0  # monotonic; past it the lease may have lapsed
        self._extended = asyncio.Event()  # set whenever the lease is extended
        # The store's reachability as this process finds it; the jobs' writes share it.
        self.outage = Outage()

    async def join(self) -> None:
        """Register under a fresh id with a new lease."""
        worker_id = uuid.uuid4().hex[:16]
        lease = self.settings.lease_s
        asked = time.monotonic()

        def register(raw: Connection) -> None:
            raw.execute(f"DELETE FROM workers WHERE expires_at < {DB_NOW} - ?", (FORGET_AFTER_S,))
            raw.execute(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, expires_at)"
                f" VALUES (?, ?, ?, {DB_NOW}, {DB_NOW}, {DB_NOW} + ?)",
                (worker_id, self.host, self.pid, lease),
            )

        await self._db.run(register)
        self.id = worker_id
        self._trust(asked + lease)
        log.info("worker %s (%s pid %d) joined; lease %.0fs", self.id, self.host, self.pid, lease)

    async def renew(self) -> bool:
        """Extend the lease; False when the store says it had already lapsed (then it is not
        extended). While the store is away this answers True and the heartbeat keeps trying:
        the jobs wait in their fenced writes (refused once back if another worker took them),
        and nothing leaves the process past the local lease (`holds_lease`)."""
        lease = self.settings.lease_s
        asked = time.monotonic()

        def extend(raw: Connection) -> bool:
            cursor = raw.execute(
                f"UPDATE workers SET heartbeat_at = {DB_NOW}, expires_at = {DB_NOW} + ?"
                f" WHERE id = ? AND expires_at > {DB_NOW}",
                (lease, self.id),
            )
            return cursor.rowcount == 1

        try:
            renewed = await self._db.run(extend)
        except db_errors() as exc:
            if not unreachable(exc):
                raise
            self.outage.gone(exc)
            return True
        self.outage.back()
        if renewed:
            self._trust(asked + lease)
        return renewed

    def _trust(self, until: float) -> None:
        self._trusted_until = until
        self._extended.set()

    def holds_lease(self) -> bool:
        """Whether the lease surely still runs, by this process's own monotonic clock.

        Checked before anything leaves the process (a /run, a delivery): after a pause longer
        than the lease this is False before the process can do anything else.
        """
        return time.monotonic() < self._trusted_until

    async def lease_confirmed(self) -> None:
        """Return once the lease surely runs (`holds_lease`); checked before a /run or a
        message leaves. A lease only slow to renew (a busy store, one just back from an
        outage) makes the job wait, not drop; one really lost ends the wait when the heartbeat
        finds it so and `JobService.lease_lost` cancels this worker's job tasks."""
        while not self.holds_lease():
            self._extended.clear()
            await self._extended.wait()

    async def leave(self) -> None:
        """Clean shutdown: hand every job back at once (no wait for the lease) and go."""
        worker_id = self.id

        def hand_back(raw: Connection) -> int:
            cursor = raw.execute("UPDATE jobs SET owner = NULL WHERE owner = ?", (worker_id,))
            raw.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
            return cursor.rowcount

        self._trusted_until = 0.0
        try:
            handed = await self._db.run(hand_back)
        except db_errors() as exc:
            if not unreachable(exc):
                raise
            log.warning(
                "worker %s left with the store away; its jobs go when its lease lapses", worker_id
            )
            return
        log.info("worker %s left; %d job(s) handed back", worker_id, handed)
