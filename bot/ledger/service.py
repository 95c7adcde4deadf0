"""The spend ledger: admission (`hold`), `settle`, `release`, the sweeper, usage.

Amounts are stored as INTEGER units of 1e-10 USD, the precision Runpod bills to; a `Decimal`
finer than that rounds up, as Runpod's billing does (see `bot.ledger.quota.to_units`).

Admission is one transaction that reads, for every applicable scope and
period, `available = limit - charged_in_period - active_holds` and inserts the hold only if the
amount fits all of them. The lock is taken before the read (SQLite: `BEGIN IMMEDIATE`, the write
lock; PostgreSQL: advisory locks on the member's and the pool's keys, `bot.storage.sql.lock_scopes`), so
no other writer, in this process or another, can slip a hold in between. A charge counts in the day, week and month in
which it was settled; an active hold counts against every period until it ends.

Every operation is keyed by job id and can be repeated: a second hold returns the first, a
second settle or release changes nothing. A settle after a release (the sweeper gave up on a job
that then finished) still records what Runpod billed.

The same code runs on SQLite and PostgreSQL (`bot.storage.sql.Store`; the class keeps its historical
name). Each operation runs as one function (`Store.run`), in its
own transaction or, with `tx=`, in the caller's (the job engine settles in the transaction that
marks the job done).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.config import QuotaLimits, QuotaSettings
from bot.errors import InvalidRequest
from bot.ledger import store as store
from bot.ledger.periods import Period, from_micros, local_date, to_micros, utc_now
from bot.ledger.quota import (
    Allowance,
    Budget,
    Identity,
    LazyUsd,
    QuotaExceeded,
    QuotaPolicy,
    Scope,
    ThresholdCrossed,
    admin_amount,
    amount_units,
    budgets,
    describe_limits,
    limited,
    refusal,
    scope_of,
    to_usd,
)
from bot.ledger.records import (
    Grant,
    Hold,
    HoldState,
    RecentJob,
    Report,
    ReportLine,
    Settlement,
    UnknownHold,
    Usage,
)
from bot.storage.sql import Connection, Store, lock_scopes

__all__ = [
    "Allowance",
    "Grant",
    "Hold",
    "HoldState",
    "Identity",
    "QuotaExceeded",
    "RecentJob",
    "Report",
    "ReportLine",
    "Settlement",
    "SqliteLedger",
    "ThresholdCrossed",
    "UnknownHold",
    "Usage",
    "utc_now",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Tx = Any  # the value a `Store.transaction()` yields
RECENT_JOBS = 10


class SqliteLedger:
    """The `Ledger` the job engine uses; see the module docstring for the guarantees."""

    def __init__(
        self, db: Store, quotas: QuotaSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._db = db
        self._quotas = quotas
        self._policy = QuotaPolicy(quotas)
        self._clock = clock
        self._zone = ZoneInfo(quotas.timezone)
        self._zone_synced = False
        self._calendar: store.Calendar | None = None

    # -- the job engine's calls ------------------------------------------------------------

    async def hold(
        self,
        job_id: str,
        identity: Identity,
        amount: Decimal,
        *,
        model: str,
        tx: Tx | None = None,
        then: Callable[[Connection], object] | None = None,
    ) -> Hold:
        """Reserve `amount` for the job, or raise `QuotaExceeded`; the same job id holds once.

        `then` (the caller's own writes, such as the job's row) runs after a new hold in the
        same transaction: admission is one trip to the database instead of one per statement.
        """
        units = amount_units(amount, "hold amount")
        if not job_id:
            raise ValueError("job_id must not be empty")
        now = self._now()

        def holding(raw: Connection) -> tuple[Hold, bool]:
            hold, created = self._hold(job_id, identity, units, model, now, raw)
            if created and then is not None:
                then(raw)
            return hold, created

        hold, created = await self._write(holding, tx)
        if created:  # DEBUG: the job engine's "job <id> held" line says the same at INFO
            log.debug("hold %s: %s for %s (%s)", job_id, LazyUsd(amount), identity.user_key, model)
        else:
            log.info("hold %s: already %s", job_id, hold.state)
        return hold

    async def check(self, identity: Identity, amount: Decimal) -> None:
        """Raise `QuotaExceeded` if `amount` does not fit what is left now; holds nothing.

        For refusing a job before asking the member to confirm it: `hold` checks again,
        atomically, when the job is admitted.
        """
        units = amount_units(amount, "amount")
        await self._ensure_zone(None)
        await self._db.read(partial(self._admit, identity, units, self._now()))

    async def settle(self, job_id: str, cost: Decimal, *, tx: Tx | None = None) -> Settlement:
        """Charge the actual cost (in full, even above the hold) and end the hold."""
        units = amount_units(cost, "cost")
        result, previous = await self._write(partial(self._settle, job_id, units, self._now()), tx)
        if previous is HoldState.SETTLED:
            log.info("settle %s: already settled at %s", job_id, LazyUsd(result.charged))
        else:
            level = (  # DEBUG when routine: the engine's "job <id> completed" line says it
                logging.WARNING
                if previous is HoldState.RELEASED or result.overage
                else logging.DEBUG
            )
            log.log(
                level,
                "settle %s: charged %s, held %s, overage %s%s",
                job_id,
                LazyUsd(result.charged),
                LazyUsd(result.held),
                LazyUsd(result.overage),
                " (after its hold was released)" if previous is HoldState.RELEASED else "",
            )
        return result

    async def release(self, job_id: str, *, reason: str, tx: Tx | None = None) -> bool:
        """End the hold without a charge; False if there was no active hold to release."""
        released = await self._write(partial(self._release, job_id, reason, self._now()), tx)
        log.info("release %s: %s%s", job_id, reason, "" if released else " (nothing held)")
        return released

    async def sweep(self, *, running_job_ids: Collection[str]) -> list[str]:
        """Release holds older than `hold_max_age_minutes` whose job is not running."""
        now = self._now()
        cutoff = now - timedelta(minutes=self._quotas.hold_max_age_minutes)
        swept = await self._write(partial(self._sweep, cutoff, set(running_job_ids), now), None)
        for job_id, created_at in swept:
            log.warning("sweep released hold %s, held since %s", job_id, created_at.isoformat())
        return [job_id for job_id, _ in swept]

    async def usage(self, identity: Identity) -> Usage:
        await self._ensure_zone(None)
        return await self._db.read(partial(self._usage, identity, self._now()))

    async def report(self, workspace: str | None, since: datetime, until: datetime) -> Report:
        """Settled spend in [since, until) per user and per model; `workspace` is a pool key
        ("platform:workspace") or a bare workspace id, None for all."""
        return await self._db.read(partial(store.report, workspace, since, until))

    # -- admin operations ------------------------------------------------------------------

    async def set_limits(self, scope_key: str, limits: QuotaLimits, *, by: str = "admin") -> None:
        """Override the periods set explicitly on `limits` (an explicit None: no limit)."""
        scope_of(scope_key)
        periods = {p: getattr(limits, f"{p.adjective}_usd") for p in Period}
        chosen = {
            p: v for p, v in periods.items() if f"{p.adjective}_usd" in limits.model_fields_set
        }
        units = {
            p: None if v is None else amount_units(admin_amount(v), "limit")
            for p, v in chosen.items()
        }
        await self._write(partial(store.set_limits, scope_key, units, by, self._now()), None)
        log.info("limits of %s set by %s: %s", scope_key, by, describe_limits(chosen))

    async def grant(
        self,
        scope_key: str,
        amount: Decimal,
        reason: str,
        *,
        by: str = "admin",
        grant_key: str | None = None,
    ) -> Grant:
        """Add credit to the scope for the current periods; once per `grant_key` if given."""
        scope_of(scope_key)
        units = amount_units(admin_amount(amount), "grant")
        if units == 0:
            raise InvalidRequest("a grant must be more than $0")
        if not reason.strip():
            raise InvalidRequest("a grant needs a reason")
        grant = await self._write(
            partial(store.grant, scope_key, units, reason, by, grant_key, self._now()), None
        )
        log.info("grant %d: %s to %s by %s (%s)", grant.id, LazyUsd(amount), scope_key, by, reason)
        return grant

    async def reset(self, scope_key: str, *, by: str = "admin") -> bool:
        """Drop the scope's limit overrides (back to tiers and defaults); False if it had none."""
        scope_of(scope_key)
        changed = await self._write(partial(store.reset, scope_key, by, self._now()), None)
        log.info("limits of %s reset by %s%s", scope_key, by, "" if changed else " (none set)")
        return changed

    async def set_unlimited(self, scope_key: str, unlimited: bool, *, by: str = "admin") -> bool:
        """Flag the scope as unlimited (or not); False if it already was (or was not)."""
        scope_of(scope_key)
        changed = await self._write(
            partial(store.set_unlimited, scope_key, unlimited, by, self._now()), None
        )
        log.info("unlimited %s for %s by %s", "on" if unlimited else "off", scope_key, by)
        return changed

    # -- plumbing ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the ledger clock must return aware datetimes")
        return now.astimezone(UTC)

    async def _write(self, fn: Callable[[Connection], T], tx: Tx | None) -> T:
        if not self._zone_synced:  # checked here: an awaited call costs every hold and settle
            await self._ensure_zone(tx)
        return await self._db.run(fn, tx=tx)

    async def _ensure_zone(self, tx: Tx | None) -> None:
        if not self._zone_synced:
            await self._db.run(self._sync_zone, tx=tx)
            self._zone_synced = True

    def _sync_zone(self, raw: Connection) -> None:
        previous = store.sync_zone(raw, self._quotas.timezone, self._zone)
        if previous is not None:
            log.warning("time zone changed from %s to %s: spend re-bucketed", previous, self._zone)

    def _day(self, instant: datetime) -> str:
        return local_date(instant, self._zone).isoformat()

    def _budgets(
        self, raw: Connection, identity: Identity, now: datetime
    ) -> tuple[list[Budget], list[Budget]]:
        calendar = self._calendar
        if calendar is None or not calendar.covers(now):
            calendar = self._calendar = store.Calendar.at(now, self._zone)
        current = calendar.windows
        user, pool = store.scope_states(raw, identity.user_key, identity.pool_key, calendar)
        policy = self._policy
        user_base = policy.user_base(identity.roles, user.overrides)
        user_unlimited = policy.user_unlimited(identity, user.unlimited)
        pool_base = policy.pool_base(pool.overrides, personal=identity.is_personal)
        return (
            budgets(Scope.USER, user_base, user, current, unlimited=user_unlimited),
            budgets(Scope.WORKSPACE, pool_base, pool, current, unlimited=pool.unlimited),
        )

    # -- the operations, each run whole on the writer's thread ------------------------------------

    def _hold(
        self,
        job_id: str,
        identity: Identity,
        units: int,
        model: str,
        now: datetime,
        raw: Connection,
    ) -> tuple[Hold, bool]:
        lock_scopes(raw, identity.user_key, identity.pool_key)
        try:  # a repeat is found by the insert, not by a read before it (one statement less)
            self._admit(identity, units, now, raw)
        except QuotaExceeded:
            if (held := store.held_before(raw, job_id, identity)) is None:
                raise
            return held, False
        inserted = raw.execute(
            "INSERT INTO holds (job_id, user_key, pool_key, roles, model, held, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (
                job_id,
                identity.user_key,
                identity.pool_key,
                store.roles_text(frozenset(identity.roles)),
                model,
                units,
                to_micros(now),
            ),
        )
        if inserted.rowcount == 0:
            held = store.held_before(raw, job_id, identity)
            assert held is not None  # the insert met it, in this transaction
            return held, False
        hold = Hold(
            job_id,
            identity.user_key,
            identity.pool_key,
            model,
            to_usd(units),
            HoldState.HELD,
            now,
        )
        return hold, True

    def _admit(self, identity: Identity, units: int, now: datetime, raw: Connection) -> None:
        """Raise `QuotaExceeded` unless `units` fit every limit of the member and the pool."""
        user, pool = self._budgets(raw, identity, now)
        refused = refusal(user + pool, units)
        if refused is not None:
            raise QuotaExceeded.for_budget(refused, units, self._zone)

    def _settle(
        self, job_id: str, units: int, now: datetime, raw: Connection
    ) -> tuple[Settlement, HoldState]:
        row = raw.execute("SELECT * FROM holds WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownHold(f"no hold for job {job_id}")
        state = HoldState(row["state"])
        identity = store.identity_of(row)
        lock_scopes(raw, identity.user_key, identity.pool_key)
        user, pool = self._budgets(raw, identity, now)
        held = row["held"]
        if state is HoldState.SETTLED:
            remaining = limited(user + pool)
            return Settlement.of(job_id, row["charged"], held, [], remaining), state
        raw.execute(
            "UPDATE holds SET state = 'settled', charged = ?, closed_at = ?, settled_day = ?"
            " WHERE job_id = ?",
            (units, to_micros(now), self._day(now), job_id),
        )
        released = held if state is HoldState.HELD else 0
        thresholds = self._quotas.thresholds
        return Settlement.after(job_id, units, held, released, user + pool, thresholds), state

    def _release(self, job_id: str, reason: str, now: datetime, raw: Connection) -> bool:
        cursor = raw.execute(
            "UPDATE holds SET state = 'released', closed_at = ?, reason = ?"
            " WHERE job_id = ? AND state = 'held'",
            (to_micros(now), reason, job_id),
        )
        return cursor.rowcount == 1

    def _sweep(
        self, cutoff: datetime, running: set[str], now: datetime, raw: Connection
    ) -> list[tuple[str, datetime]]:
        stale = raw.execute(
            "SELECT job_id, created_at FROM holds INDEXED BY holds_pool_active"
            " WHERE state = 'held' AND created_at < ? ORDER BY created_at",
            (to_micros(cutoff),),
        ).fetchall()
        swept = [(job, from_micros(at)) for job, at in stale if job not in running]
        for job_id, _ in swept:
            self._release(job_id, "swept: held too long with no running job", now, raw)
        return swept

    def _usage(self, identity: Identity, now: datetime, raw: Connection) -> Usage:
        user, pool = self._budgets(raw, identity, now)
        recent = store.recent_jobs(raw, identity.user_key, RECENT_JOBS)
        return Usage([b.allowance() for b in user], [b.allowance() for b in pool], recent)
