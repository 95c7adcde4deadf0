"""The ledger's behaviour one operation at a time, on a real SQLite file and a real PostgreSQL
database (the `db_place` fixture)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import QuotaLimits
from bot.errors import InvalidRequest
from bot.ledger.periods import Period
from bot.ledger.quota import Scope, to_units
from bot.ledger.service import (
    Allowance,
    HoldState,
    Identity,
    QuotaExceeded,
    SqliteLedger,
    UnknownHold,
)
from bot.storage.sql import open_store
from tests.ledger.support import ALICE, BOB, CAROL, Clock, open_ledger, quota_zone, quotas, usd

pytestmark = pytest.mark.usefixtures("moved_clock")

ZERO = Decimal(0)


def allowance(allowances: list[Allowance], period: Period) -> Allowance:
    return next(a for a in allowances if a.period is period)


async def test_hold_within_limit_and_refusal_names_the_limit(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1.00")) as ledger:
        hold = await ledger.hold("j1", ALICE, usd("0.98"), model="flux")
        assert hold.state is HoldState.HELD and hold.amount == usd("0.98")
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("j2", ALICE, usd("0.05"), model="flux")
        refusal = caught.value
        assert (refusal.scope, refusal.period) == (Scope.USER, Period.DAY)
        assert refusal.limit == usd("1.00") and refusal.remaining == usd("0.02")
        zone = quota_zone()
        tomorrow = datetime.combine(datetime.now(zone).date() + timedelta(days=1), time(), zone)
        assert refusal.resets_at == tomorrow
        assert refusal.message == (
            f"Your daily limit is $1.00; $0.02 is left until {tomorrow:%Y-%m-%d %H:%M %Z}."
            " This costs about $0.05."
        )
        usage = await ledger.usage(ALICE)
        assert allowance(usage.user, Period.DAY).held == usd("0.98")  # j2 left nothing behind
        assert [job.job_id for job in usage.recent] == ["j1"]


async def test_workspace_pool_refusal(db_place: Path | str) -> None:
    settings = quotas(daily_usd="5", workspace={"monthly_usd": "1.50"})
    async with open_ledger(db_place, settings) as ledger:
        await ledger.hold("a", ALICE, usd("1.00"), model="m")
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("b", BOB, usd("1.00"), model="m")
        assert caught.value.scope is Scope.WORKSPACE and caught.value.period is Period.MONTH
        assert caught.value.message.startswith("This workspace's monthly limit is $1.50; $0.50 is")
        await ledger.hold("c", BOB, usd("0.50"), model="m")


async def test_refusal_names_the_limit_that_frees_up_last(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1", monthly_usd="1")) as ledger:
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("j", ALICE, usd("2"), model="m")
        assert caught.value.period is Period.MONTH


async def test_hold_is_idempotent_by_job_id(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        first = await ledger.hold("j1", ALICE, usd("0.60"), model="m")
        again = await ledger.hold("j1", ALICE, usd("0.60"), model="m")
        assert again == first
        usage = await ledger.usage(ALICE)
        assert allowance(usage.user, Period.DAY).held == usd("0.60")
        with pytest.raises(ValueError, match="already held for"):
            await ledger.hold("j1", BOB, usd("0.10"), model="m")
        with pytest.raises(ValueError, match="already held for"):  # not a refusal: a misuse
            await ledger.hold("j1", BOB, usd("5.00"), model="m")
        await ledger.settle("j1", usd("0.50"))
        assert (await ledger.hold("j1", ALICE, usd("0.60"), model="m")).state is HoldState.SETTLED


async def test_settle_charges_the_cost_and_frees_the_rest(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        await ledger.hold("j1", ALICE, usd("0.50"), model="m")
        settlement = await ledger.settle("j1", usd("0.20"))
        assert (settlement.charged, settlement.held, settlement.overage) == (
            usd("0.20"),
            usd("0.50"),
            Decimal(0),
        )
        assert settlement.summary() == "$0.80 left today"
        day = allowance((await ledger.usage(ALICE)).user, Period.DAY)
        assert (day.spent, day.held, day.remaining) == (usd("0.20"), ZERO, usd("0.80"))


async def test_settle_is_idempotent_and_warns_once(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        await ledger.hold("j1", ALICE, usd("0.90"), model="m")
        first = await ledger.settle("j1", usd("0.85"))
        assert [(c.percent, c.period) for c in first.crossed] == [(80, Period.DAY)]
        second = await ledger.settle("j1", usd("0.99"))
        assert second.charged == usd("0.85") and second.crossed == []
        day = allowance((await ledger.usage(ALICE)).user, Period.DAY)
        assert day.spent == usd("0.85")


async def test_settle_above_the_hold_is_recorded_in_full(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        await ledger.hold("j1", ALICE, usd("0.10"), model="m")
        settlement = await ledger.settle("j1", usd("1.30"))
        assert settlement.charged == usd("1.30") and settlement.overage == usd("1.20")
        assert [c.percent for c in settlement.crossed] == [100]  # the highest one only
        assert settlement.summary() == "$0.00 left today"
        with pytest.raises(QuotaExceeded):
            await ledger.hold("j2", ALICE, Decimal(0), model="m")


async def test_settle_without_a_hold_is_a_bug(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas()) as ledger:
        with pytest.raises(UnknownHold):
            await ledger.settle("nope", usd("0.10"))


async def test_release_is_idempotent_and_charges_nothing(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        await ledger.hold("j1", ALICE, usd("0.70"), model="m")
        assert await ledger.release("j1", reason="failed") is True
        assert await ledger.release("j1", reason="failed") is False
        assert await ledger.release("never-held", reason="x") is False
        day = allowance((await ledger.usage(ALICE)).user, Period.DAY)
        assert (day.spent, day.held) == (ZERO, ZERO)
        await ledger.hold("j2", ALICE, usd("0.40"), model="m")
        await ledger.settle("j2", usd("0.40"))
        assert await ledger.release("j2", reason="late") is False
        assert allowance((await ledger.usage(ALICE)).user, Period.DAY).spent == usd("0.40")


async def test_settle_after_release_still_records_what_runpod_billed(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        await ledger.hold("j1", ALICE, usd("0.30"), model="m")
        await ledger.release("j1", reason="swept")
        settlement = await ledger.settle("j1", usd("0.25"))
        assert settlement.charged == usd("0.25")
        day = allowance((await ledger.usage(ALICE)).user, Period.DAY)
        assert (day.spent, day.held) == (usd("0.25"), ZERO)


async def test_the_workspace_counts_every_members_active_holds_until_each_ends(
    db_place: Path | str,
) -> None:
    """The running totals kept by the database's triggers follow every way a hold ends."""
    async with open_ledger(db_place, quotas(workspace={"daily_usd": "10"})) as ledger:
        for n, member in enumerate([ALICE, BOB, CAROL] * 4):
            await ledger.hold(f"j{n}", member, usd("0.25"), model="m")
        pool = allowance((await ledger.usage(ALICE)).workspace, Period.DAY)
        assert (pool.held, pool.remaining) == (usd("3.00"), usd("7.00"))
        await ledger.settle("j0", usd("0.40"))
        await ledger.release("j1", reason="failed")
        await ledger.release("j1", reason="failed")  # a repeat ends nothing twice
        await ledger.settle("j1", usd("0.10"))  # billed after its release: held already ended
        for n in range(2, 12):
            await ledger.release(f"j{n}", reason="cancelled")
        pool = allowance((await ledger.usage(ALICE)).workspace, Period.DAY)
        assert (pool.spent, pool.held, pool.remaining) == (usd("0.50"), ZERO, usd("9.50"))
        await ledger.hold("j99", BOB, usd("1.00"), model="m")
        pool = allowance((await ledger.usage(CAROL)).workspace, Period.DAY)
        assert (pool.held, pool.remaining) == (usd("1.00"), usd("8.50"))


async def test_amounts_finer_than_1e10_round_up(db_place: Path | str) -> None:
    assert to_units(Decimal("0.00000000001")) == 1
    assert to_units(Decimal("0.000000000100")) == 1
    assert to_units(Decimal("1")) == 10**10
    async with open_ledger(db_place, quotas()) as ledger:
        await ledger.hold("j1", ALICE, Decimal("0.12345678901"), model="m")
        settlement = await ledger.settle("j1", Decimal("0.000000000001"))
        assert settlement.held == Decimal("0.1234567891")
        assert settlement.charged == Decimal("0.0000000001")


async def test_negative_or_non_finite_amounts_are_refused(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas()) as ledger:
        with pytest.raises(InvalidRequest):
            await ledger.hold("j1", ALICE, usd("-0.01"), model="m")
        with pytest.raises(InvalidRequest):
            await ledger.hold("j1", ALICE, Decimal("NaN"), model="m")
        await ledger.hold("j1", ALICE, usd("0.01"), model="m")
        with pytest.raises(InvalidRequest):
            await ledger.settle("j1", usd("-1"))


async def test_grants_add_to_the_current_periods_only(db_place: Path | str) -> None:
    clock = Clock()
    settings = quotas(daily_usd="1", monthly_usd="3")
    async with open_ledger(db_place, settings, clock) as ledger:
        await ledger.hold("j1", ALICE, usd("1"), model="m")
        await ledger.settle("j1", usd("1"))
        with pytest.raises(QuotaExceeded):
            await ledger.hold("j2", ALICE, usd("0.50"), model="m")
        grant = await ledger.grant(ALICE.user_key, usd("0.50"), "birthday", by="mod")
        assert (grant.amount, grant.granted_by) == (usd("0.50"), "mod")
        await ledger.hold("j2", ALICE, usd("0.50"), model="m")
        await ledger.settle("j2", usd("0.50"))
        granted_in = clock.now.astimezone(quota_zone()).month
        clock.advance(days=1)
        usage = await ledger.usage(ALICE)
        assert allowance(usage.user, Period.DAY).limit == usd("1")  # the grant was for that day
        month = allowance(usage.user, Period.MONTH)
        if clock.now.astimezone(quota_zone()).month == granted_in:
            assert (month.limit, month.spent, month.remaining) == (
                usd("3.50"),
                usd("1.50"),
                usd("2"),
            )
        else:  # the grant and the spend belong to the month that just ended
            assert (month.limit, month.spent, month.remaining) == (usd("3"), 0, usd("3"))


async def test_grant_with_a_key_is_made_once(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas(daily_usd="1")) as ledger:
        first = await ledger.grant(ALICE.user_key, usd("2"), "refund", grant_key="ticket-7")
        again = await ledger.grant(ALICE.user_key, usd("2"), "refund", grant_key="ticket-7")
        assert again == first
        day = allowance((await ledger.usage(ALICE)).user, Period.DAY)
        assert day.limit == usd("3")
        with pytest.raises(InvalidRequest):
            await ledger.grant(BOB.user_key, usd("2"), "refund", grant_key="ticket-7")
        with pytest.raises(InvalidRequest):
            await ledger.grant(ALICE.user_key, usd("0"), "nothing")
        with pytest.raises(InvalidRequest):
            await ledger.grant("not a scope", usd("1"), "x")


async def test_set_limits_overrides_only_the_periods_given(db_place: Path | str) -> None:
    settings = quotas(daily_usd="1", monthly_usd="10")
    async with open_ledger(db_place, settings) as ledger:
        await ledger.set_limits(ALICE.user_key, QuotaLimits(daily_usd=usd("5")), by="mod")
        await ledger.set_limits(ALICE.user_key, QuotaLimits(daily_usd=usd("5")), by="mod")
        usage = await ledger.usage(ALICE)
        limits = {a.period: a.limit for a in usage.user}
        assert limits == {Period.DAY: usd("5"), Period.WEEK: None, Period.MONTH: usd("10")}
        await ledger.set_limits(ALICE.user_key, QuotaLimits(monthly_usd=None))
        assert allowance((await ledger.usage(ALICE)).user, Period.MONTH).limit is None
        assert allowance((await ledger.usage(BOB)).user, Period.DAY).limit == usd("1")
        assert await ledger.reset(ALICE.user_key) is True
        assert await ledger.reset(ALICE.user_key) is False
        limits = {a.period: a.limit for a in (await ledger.usage(ALICE)).user}
        assert limits == {Period.DAY: usd("1"), Period.WEEK: None, Period.MONTH: usd("10")}


async def test_workspace_override(db_place: Path | str) -> None:
    settings = quotas(workspace={"monthly_usd": "100"})
    async with open_ledger(db_place, settings) as ledger:
        await ledger.set_limits(ALICE.pool_key, QuotaLimits(daily_usd=usd("0.10")))
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("j", BOB, usd("0.20"), model="m")
        assert (caught.value.scope, caught.value.period) == (Scope.WORKSPACE, Period.DAY)


async def test_role_tiers_most_generous_wins_and_unset_periods_keep_defaults(
    db_place: Path | str,
) -> None:
    settings = quotas(
        daily_usd="1",
        monthly_usd="10",
        roles={
            "helper": {"daily_usd": "3"},
            "vip": {"daily_usd": "2", "monthly_usd": None},
            "guest": {"daily_usd": "0.10"},
        },
    )
    async with open_ledger(db_place, settings) as ledger:

        async def limits(*roles: str) -> dict[Period, Decimal | None]:
            who = Identity("discord", "g1", "x", frozenset(roles))
            return {a.period: a.limit for a in (await ledger.usage(who)).user}

        assert await limits("helper") == {Period.DAY: 3, Period.WEEK: None, Period.MONTH: 10}
        assert await limits("helper", "vip") == {
            Period.DAY: 3,
            Period.WEEK: None,
            Period.MONTH: None,
        }
        assert (await limits("guest"))[Period.DAY] == usd("0.10")
        assert (await limits("guest", "unknown-role"))[Period.DAY] == usd("0.10")
        assert (await limits("unknown-role"))[Period.DAY] == 1
        # An override beats the tier.
        await ledger.set_limits("discord:g1:x", QuotaLimits(daily_usd=usd("0.50")))
        assert (await limits("helper"))[Period.DAY] == usd("0.50")


async def test_roles_at_hold_time_set_the_thresholds_at_settle(db_place: Path | str) -> None:
    settings = quotas(daily_usd="1", roles={"vip": {"daily_usd": "10"}})
    vip = Identity("discord", "g1", "v", frozenset({"vip"}))
    async with open_ledger(db_place, settings) as ledger:
        await ledger.hold("j", vip, usd("5"), model="m")
        settlement = await ledger.settle("j", usd("5"))
        assert settlement.crossed == []
        assert settlement.summary() == "$5.00 left today"


async def test_unlimited_members_still_draw_on_the_pool(db_place: Path | str) -> None:
    settings = quotas(
        daily_usd="1", workspace={"daily_usd": "10"}, unlimited_users=["discord:g1:bob", "carol"]
    )
    async with open_ledger(db_place, settings) as ledger:
        assert await ledger.set_unlimited(ALICE.user_key, True) is True
        assert await ledger.set_unlimited(ALICE.user_key, True) is False
        await ledger.hold("a", ALICE, usd("4"), model="m")
        await ledger.hold("b", BOB, usd("4"), model="m")
        await ledger.hold("c", CAROL, usd("1.5"), model="m")
        with pytest.raises(QuotaExceeded) as caught:
            await ledger.hold("d", ALICE, usd("1"), model="m")
        assert caught.value.scope is Scope.WORKSPACE
        assert await ledger.set_unlimited(ALICE.pool_key, True) is True
        await ledger.hold("d", ALICE, usd("100"), model="m")
        assert await ledger.set_unlimited(ALICE.user_key, False) is True
        assert await ledger.set_unlimited(ALICE.user_key, False) is False
        with pytest.raises(QuotaExceeded):
            await ledger.hold("e", ALICE, usd("0.01"), model="m")
        other_workspace = Identity("discord", "g2", "carol")
        await ledger.hold("f", other_workspace, usd("5"), model="m")  # bare id: any workspace


async def test_sweeper_releases_only_old_holds_of_jobs_not_running(
    db_place: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    settings = quotas(daily_usd="1", hold_max_age_minutes=30)
    async with open_ledger(db_place, settings, clock) as ledger:
        await ledger.hold("old-stuck", ALICE, usd("0.3"), model="m")
        await ledger.hold("old-running", ALICE, usd("0.3"), model="m")
        await ledger.hold("old-settled", ALICE, usd("0.1"), model="m")
        await ledger.settle("old-settled", usd("0.1"))
        clock.advance(minutes=31)
        await ledger.hold("young", ALICE, usd("0.3"), model="m")
        with caplog.at_level(logging.WARNING, logger="bot.ledger.service"):
            swept = await ledger.sweep(running_job_ids={"old-running"})
        assert swept == ["old-stuck"]
        assert "old-stuck" in caplog.text
        assert await ledger.sweep(running_job_ids={"old-running"}) == []
        usage = await ledger.usage(ALICE)
        states = {job.job_id: job.state for job in usage.recent}
        assert states == {
            "old-stuck": HoldState.RELEASED,
            "old-running": HoldState.HELD,
            "old-settled": HoldState.SETTLED,
            "young": HoldState.HELD,
        }
        assert allowance(usage.user, Period.DAY).held == usd("0.6")


async def test_usage_lists_recent_jobs_newest_first(db_place: Path | str) -> None:
    clock = Clock()
    async with open_ledger(db_place, quotas(), clock) as ledger:
        for n in range(12):
            await ledger.hold(f"j{n:02}", ALICE, usd("0.10"), model=f"m{n % 2}")
            clock.advance(seconds=1)
        await ledger.settle("j11", usd("0.07"))
        await ledger.release("j10", reason="failed")
        recent = (await ledger.usage(ALICE)).recent
        assert [j.job_id for j in recent] == [f"j{n:02}" for n in range(11, 1, -1)]
        assert [(j.state, j.cost) for j in recent[:3]] == [
            (HoldState.SETTLED, usd("0.07")),
            (HoldState.RELEASED, 0),
            (HoldState.HELD, usd("0.10")),
        ]
        assert recent[0].model == "m1" and recent[0].time == clock.now - timedelta(seconds=1)


async def test_report_totals_per_user_and_model(db_place: Path | str) -> None:
    clock = Clock()
    other = Identity("slack", "T9", "dave")
    async with open_ledger(db_place, quotas(), clock) as ledger:
        costs = [(ALICE, "flux", "0.10"), (ALICE, "wan", "0.50"), (BOB, "flux", "0.20")]
        costs += [(other, "flux", "1.00")]
        for n, (who, model, cost) in enumerate(costs):
            await ledger.hold(f"j{n}", who, usd(cost), model=model)
            await ledger.settle(f"j{n}", usd(cost))
        await ledger.hold("held-only", ALICE, usd("9"), model="flux")
        since, until = clock.now - timedelta(days=1), clock.now + timedelta(seconds=1)
        everyone = await ledger.report(None, since, until)
        assert (everyone.total, everyone.jobs) == (usd("1.80"), 4)
        assert [(line.key, line.jobs, line.charged) for line in everyone.by_model] == [
            ("flux", 3, usd("1.30")),
            ("wan", 1, usd("0.50")),
        ]
        g1 = await ledger.report("discord:g1", since, until)
        assert [(line.key, line.charged) for line in g1.by_user] == [
            ("discord:g1:alice", usd("0.60")),
            ("discord:g1:bob", usd("0.20")),
        ]
        assert (await ledger.report("T9", since, until)).total == usd("1.00")
        assert (await ledger.report(None, until, until + timedelta(days=1))).jobs == 0


async def test_operations_join_the_callers_transaction(db_place: Path | str) -> None:
    db = await open_store(db_place)
    ledger = SqliteLedger(db, quotas(daily_usd="1"), clock=Clock())
    try:
        with pytest.raises(RuntimeError, match="boom"):
            async with db.transaction() as tx:
                await ledger.hold("j1", ALICE, usd("0.50"), model="m", tx=tx)
                raise RuntimeError("boom")
        assert await db.fetchone("SELECT * FROM holds") is None  # rolled back with the caller
        async with db.transaction() as tx:
            await ledger.hold("j1", ALICE, usd("0.50"), model="m", tx=tx)
            await db.run(lambda raw: raw.execute("CREATE TABLE marker (x INTEGER)"), tx=tx)
            await ledger.settle("j1", usd("0.40"), tx=tx)
        row = await db.fetchone("SELECT state, charged FROM holds WHERE job_id = 'j1'")
        assert row is not None and tuple(row) == ("settled", to_units(usd("0.40")))
        async with db.transaction():
            with pytest.raises(RuntimeError, match="pass the open transaction"):
                await ledger.release("j1", reason="forgot tx=")
        with pytest.raises(RuntimeError, match="tx must be"):
            await ledger.release("j1", reason="stale tx", tx=tx)
    finally:
        await db.close()


async def test_changing_the_time_zone_rebuckets_spend(db_place: Path | str) -> None:
    # 23:30 UTC on the 25th is already the 26th in Berlin.
    clock = Clock(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    utc = quotas(daily_usd="1", timezone="UTC")
    async with open_ledger(db_place, utc, clock) as ledger:
        await ledger.hold("j", ALICE, usd("0.40"), model="m")
        await ledger.settle("j", usd("0.40"))
    berlin = quotas(daily_usd="1", timezone="Europe/Berlin")
    clock.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    async with open_ledger(db_place, berlin, clock) as ledger:
        assert allowance((await ledger.usage(ALICE)).user, Period.DAY).spent == usd("0.40")
    async with open_ledger(db_place, utc, clock) as ledger:
        assert allowance((await ledger.usage(ALICE)).user, Period.DAY).spent == 0


async def test_the_clock_must_be_aware(db_place: Path | str) -> None:
    async with open_ledger(db_place, quotas()) as ledger:
        naive = SqliteLedger(ledger._db, quotas(), clock=lambda: datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="aware"):
            await naive.hold("j", ALICE, usd("0.1"), model="m")
