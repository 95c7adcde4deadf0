"""Property test: random hold / settle / release / grant / limit change / clock advance sequences.

A plain-Python model of the rules (computed independently: its periods come from comparing local
dates, not from `bot.ledger.periods`) predicts every admission; the ledger must agree, must never admit
a hold that takes spent + held past a limit, and its totals must equal the settled costs. On
both backends (the `db_place` fixture); each example gets an empty database of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bot.config import QuotaLimits
from bot.ledger.periods import Period
from bot.ledger.quota import to_units
from bot.ledger.service import Identity, QuotaExceeded, SqliteLedger
from bot.storage.sql import is_postgres, open_store
from tests.ledger.support import Clock, quotas
from tests.pg_support import fresh_schema

T = TypeVar("T")
ZONE = ZoneInfo("Europe/Berlin")
USERS = [Identity("discord", "g1", name) for name in ("alice", "bob", "carol")]
POOL = USERS[0].pool_key
DEFAULTS = {Period.DAY: to_units(Decimal("1.00")), Period.WEEK: None, Period.MONTH: 3 * 10**10}
POOL_DEFAULTS = {Period.DAY: None, Period.WEEK: None, Period.MONTH: 5 * 10**10}
FIELDS = {Period.DAY: "daily_usd", Period.WEEK: "weekly_usd", Period.MONTH: "monthly_usd"}

amounts = st.integers(0, 15_000).map(lambda n: Decimal(n).scaleb(-4))  # $0 .. $1.50
limits = st.one_of(st.none(), st.integers(0, 400).map(lambda n: Decimal(n).scaleb(-2)))
steps = st.sampled_from(
    [timedelta(minutes=7), timedelta(hours=5), timedelta(hours=23), timedelta(days=3)]
)


def same_period(a: datetime, b: datetime, period: Period) -> bool:
    la, lb = a.astimezone(ZONE), b.astimezone(ZONE)
    if period is Period.DAY:
        return la.date() == lb.date()
    if period is Period.WEEK:
        return la.isocalendar()[:2] == lb.isocalendar()[:2]
    return (la.year, la.month) == (lb.year, lb.month)


@dataclass
class Job:
    user: Identity
    amount: int
    state: str = "held"
    charged: int = 0
    closed_at: datetime | None = None


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, place: Path | str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.place = place
        self.clock = Clock(datetime(2026, 3, 27, 20, 0, tzinfo=UTC))  # DST change ahead
        self.db = self.run(open_store(place))
        settings_ = quotas(
            daily_usd="1.00",
            monthly_usd="3.00",
            workspace={"monthly_usd": "5.00"},
            timezone="Europe/Berlin",
            hold_max_age_minutes=60,
        )
        self.ledger = SqliteLedger(self.db, settings_, clock=self.clock)
        self.jobs: dict[str, Job] = {}
        self.grants: list[tuple[str, int, datetime]] = []
        self.overrides: dict[str, dict[Period, int | None]] = {}
        self.created: dict[str, datetime] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.close())
        self.loop.close()
        if not is_postgres(self.place):
            shutil.rmtree(Path(self.place).parent)

    # -- the model -------------------------------------------------------------------------

    def limit(self, key: str, period: Period) -> int | None:
        defaults = POOL_DEFAULTS if key == POOL else DEFAULTS
        base = self.overrides.get(key, {}).get(period, defaults[period])
        if base is None:
            return None
        now = self.clock.now
        return base + sum(
            a for k, a, at in self.grants if k == key and same_period(at, now, period)
        )

    def spent(self, key: str, period: Period) -> int:
        now = self.clock.now
        return sum(
            job.charged
            for job in self.jobs.values()
            if job.state == "settled"
            and key in (job.user.user_key, POOL)
            and job.closed_at is not None
            and same_period(job.closed_at, now, period)
        )

    def held(self, key: str) -> int:
        return sum(
            job.amount
            for job in self.jobs.values()
            if job.state == "held" and key in (job.user.user_key, POOL)
        )

    def fits(self, user: Identity, amount: int) -> bool:
        for key in (user.user_key, POOL):
            for period in Period:
                limit = self.limit(key, period)
                if limit is not None and self.spent(key, period) + self.held(key) + amount > limit:
                    return False
        return True

    # -- rules -------------------------------------------------------------------------------

    def room(self, user: Identity) -> int | None:
        """What is left under the tightest limit, None if nothing limits this member."""
        left = [
            limit - self.spent(key, period) - self.held(key)
            for key in (user.user_key, POOL)
            for period in Period
            if (limit := self.limit(key, period)) is not None
        ]
        return min(left) if left else None

    @rule(user=st.sampled_from(USERS), amount=amounts)
    def hold(self, user: Identity, amount: Decimal) -> None:
        self.try_hold(user, to_units(amount))

    @rule(user=st.sampled_from(USERS), extra=st.sampled_from([0, 1]))
    def hold_exactly_what_is_left(self, user: Identity, extra: int) -> None:
        """The boundary: the last 1e-10 USD fits, one unit more does not."""
        room = self.room(user)
        if room is not None and room + extra >= 0:
            self.try_hold(user, room + extra)

    def try_hold(self, user: Identity, units: int) -> None:
        job_id = f"j{len(self.created)}"
        amount = Decimal(units).scaleb(-10)
        expected = self.fits(user, units)
        try:
            self.run(self.ledger.hold(job_id, user, amount, model="m"))
        except QuotaExceeded:
            assert not expected, "refused a hold that fits"
            event("hold refused")
            self.created[job_id] = self.clock.now
            return
        assert expected, "admitted a hold that does not fit"
        event("hold admitted")
        self.jobs[job_id] = Job(user, units)
        self.created[job_id] = self.clock.now
        for key in (user.user_key, POOL):  # the invariant itself, stated plainly
            for period in Period:
                limit = self.limit(key, period)
                assert limit is None or self.spent(key, period) + self.held(key) <= limit

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def hold_again(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[job_id]
        hold = self.run(self.ledger.hold(job_id, job.user, Decimal(5), model="m"))
        assert to_units(hold.amount) == job.amount and hold.state == job.state

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), cost=amounts)
    def settle(self, data: st.DataObject, cost: Decimal) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[job_id]
        settlement = self.run(self.ledger.settle(job_id, cost))
        if job.state != "settled":
            job.state, job.charged, job.closed_at = "settled", to_units(cost), self.clock.now
        assert to_units(settlement.charged) == job.charged

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        job = self.jobs[job_id]
        released = self.run(self.ledger.release(job_id, reason="test"))
        assert released == (job.state == "held")
        if released:
            job.state = "released"

    @rule(key=st.sampled_from([u.user_key for u in USERS] + [POOL]), amount=amounts)
    def grant(self, key: str, amount: Decimal) -> None:
        if to_units(amount) == 0:
            return
        self.run(self.ledger.grant(key, amount, "test"))
        self.grants.append((key, to_units(amount), self.clock.now))

    @rule(
        key=st.sampled_from([u.user_key for u in USERS] + [POOL]),
        period=st.sampled_from(list(Period)),
        value=limits,
    )
    def set_limit(self, key: str, period: Period, value: Decimal | None) -> None:
        self.run(self.ledger.set_limits(key, QuotaLimits(**{FIELDS[period]: value})))
        self.overrides.setdefault(key, {})[period] = None if value is None else to_units(value)

    @rule(key=st.sampled_from([u.user_key for u in USERS] + [POOL]))
    def reset(self, key: str) -> None:
        changed = self.run(self.ledger.reset(key))
        assert changed == bool(self.overrides.pop(key, None))

    @rule(step=steps)
    def advance(self, step: timedelta) -> None:
        self.clock.advance(seconds=step.total_seconds())

    @rule()
    def sweep(self) -> None:
        swept = self.run(self.ledger.sweep(running_job_ids=()))
        cutoff = self.clock.now - timedelta(minutes=60)
        expected = {j for j, job in self.jobs.items() if job.state == "held"}
        expected = {j for j in expected if self.created[j] < cutoff}
        assert set(swept) == expected
        for job_id in swept:
            self.jobs[job_id].state = "released"

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def usage_matches_the_model(self) -> None:
        for user in USERS:
            usage = self.run(self.ledger.usage(user))
            for key, allowances in ((user.user_key, usage.user), (POOL, usage.workspace)):
                for a in allowances:
                    limit = self.limit(key, a.period)
                    assert (to_units(a.spent), to_units(a.held)) == (
                        self.spent(key, a.period),
                        self.held(key),
                    )
                    assert (None if a.limit is None else to_units(a.limit)) == limit

    @invariant()
    def totals_equal_the_settled_costs(self) -> None:
        far = timedelta(days=3650)
        report = self.run(self.ledger.report(None, self.clock.now - far, self.clock.now + far))
        settled = sum(job.charged for job in self.jobs.values() if job.state == "settled")
        assert to_units(report.total) == settled
        buckets = self.run(
            self.db.fetchone("SELECT SUM(charged) FROM daily_spend WHERE scope_key = ?", (POOL,))
        )
        assert buckets is not None and (buckets[0] or 0) == settled


# A PostgreSQL example costs a schema, five migrations and a round trip per statement (about
# 4x SQLite's time here): 25 examples take about as long as SQLite's 100; the rules are the same.
EXAMPLES = {False: 100, True: 25}


def places(place: Path | str) -> Callable[[], Path | str]:
    """An empty database per example, beside `place` (an SQLite file or PostgreSQL schema)."""
    numbers = itertools.count()
    if is_postgres(place):
        return lambda: fresh_schema(str(place).split("?", 1)[0])

    def folder() -> Path:
        made = Path(place).parent / f"example-{next(numbers)}"
        made.mkdir()
        return made / "p.db"

    return folder


def test_the_ledger_agrees_with_the_model(db_place: Path | str) -> None:
    fresh = places(db_place)
    run_state_machine_as_test(
        lambda: LedgerMachine(fresh()),
        settings=settings(
            max_examples=EXAMPLES[is_postgres(db_place)],
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
