"""What the ledger hands back: holds, settlements, usage and reports, all in `Decimal` USD."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.ledger.quota import (
    Allowance,
    Budget,
    Scope,
    ThresholdCrossed,
    crossings,
    limited,
    to_usd,
)


class HoldState(StrEnum):
    HELD = "held"
    SETTLED = "settled"
    RELEASED = "released"


class UnknownHold(LookupError):
    """`settle` for a job id that was never held: a bug in the caller, not a user error."""


@dataclass(frozen=True)
class Hold:
    job_id: str
    user_key: str
    pool_key: str
    model: str
    amount: Decimal
    state: HoldState
    created_at: datetime


@dataclass(frozen=True)
class Settlement:
    """What a settle charged, and what the member can be told about it."""

    job_id: str
    charged: Decimal
    held: Decimal
    overage: Decimal  # charged above the hold (Runpod's bill beat the estimate)
    crossed: list[ThresholdCrossed]  # empty when repeated: warn once
    remaining: list[Allowance]  # limited periods only, user first

    @classmethod
    def of(
        cls,
        job_id: str,
        charged: int,
        held: int,
        crossed: list[ThresholdCrossed],
        remaining: list[Allowance],
    ) -> Settlement:
        """Build one from amounts in units."""
        overage = to_usd(max(charged - held, 0))
        return cls(job_id, to_usd(charged), to_usd(held), overage, crossed, remaining)

    @classmethod
    def after(
        cls,
        job_id: str,
        charged: int,
        held: int,
        released: int,
        before: Sequence[Budget],
        thresholds: Collection[int],
    ) -> Settlement:
        """Charging `charged` and releasing `released` (units) against the `before` budgets:
        the thresholds crossed and what is left."""
        limits = [b for b in before if b.limit is not None]  # the others cross nothing
        crossed = [c for b in limits if (c := crossings(b, charged, thresholds)) is not None]
        after = [
            Budget(b.scope, b.period, b.limit, b.charged + charged, b.held - released, b.resets_at)
            for b in limits
        ]
        return cls.of(job_id, charged, held, crossed, limited(after))

    def summary(self) -> str:
        return describe_remaining(self.remaining)


def describe_remaining(allowances: Sequence[Allowance]) -> str:
    """E.g. "$0.98 left today, $9.50 left this month; the workspace has $80.00 left ..."."""
    user = [a.describe() for a in allowances if a.scope is Scope.USER]
    pool = [a.describe() for a in allowances if a.scope is Scope.WORKSPACE]
    parts = [", ".join(user)] if user else []
    if pool:
        parts.append("the workspace has " + ", ".join(pool))
    return "; ".join(parts)


@dataclass(frozen=True)
class RecentJob:
    job_id: str
    model: str
    cost: Decimal  # charged if settled, the hold if still held, 0 if released
    time: datetime  # when the job was held
    state: HoldState


@dataclass(frozen=True)
class Usage:
    user: list[Allowance]  # day, week, month
    workspace: list[Allowance]
    recent: list[RecentJob]


@dataclass(frozen=True)
class ReportLine:
    key: str  # user key or model
    jobs: int
    charged: Decimal


@dataclass(frozen=True)
class Report:
    workspace: str | None
    since: datetime
    until: datetime
    by_user: list[ReportLine]
    by_model: list[ReportLine]
    total: Decimal
    jobs: int
    # Jobs charged above their hold (Runpod billed above its published price, or no bound was
    # known before the run), and by how much in all.
    overage_jobs: int = 0
    overage: Decimal = Decimal(0)


@dataclass(frozen=True)
class Grant:
    id: int
    scope_key: str
    amount: Decimal
    reason: str
    granted_by: str
    granted_at: datetime
