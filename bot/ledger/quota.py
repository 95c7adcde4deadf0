"""Quota values and policy, independent of storage: who may spend how much, and what to tell them.

Money is `Decimal` USD in every signature here and exact integer units of 1e-10 USD inside
(`to_units`), the precision Runpod bills to. Finer amounts round up, as Runpod's billing does.

Effective limit of a scope for a period: the admin's override for that scope, else (users only)
the most generous of the member's role tiers, else the configured default; plus credit granted
in the current period. A role tier or an override only replaces the periods it sets: a tier
`{daily_usd = 5}` keeps the default monthly limit. `None` means no limit. An unlimited member
skips the user limits; the workspace pool still applies unless the pool itself is unlimited.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from bot.config import MAX_ADMIN_USD as MAX_ADMIN_USD  # the adapters' maximum too
from bot.errors import BotError, InvalidRequest
from bot.ledger.periods import Period, Window

if TYPE_CHECKING:
    from bot.config import QuotaLimits, QuotaSettings

UNITS_PER_USD = 10**10
_FIELDS = {Period.DAY: "daily_usd", Period.WEEK: "weekly_usd", Period.MONTH: "monthly_usd"}
_CENT = Decimal("0.01")


def to_units(amount: Decimal) -> int:
    """Decimal USD -> integer units of 1e-10 USD, rounding finer amounts up."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"not a finite Decimal amount: {amount!r}")
    return int(amount.scaleb(10).to_integral_value(rounding=ROUND_CEILING))


def amount_units(amount: Decimal, what: str) -> int:
    """`to_units` for amounts given by callers: negative or non-finite is an `InvalidRequest`."""
    try:
        units = to_units(amount)
    except ValueError as exc:
        raise InvalidRequest(f"{what} must be a finite amount in USD") from exc
    if units < 0:
        raise InvalidRequest(f"{what} must not be negative")
    return units


def admin_amount(amount: Decimal) -> Decimal:
    """A limit or grant as an admin gave it, or InvalidRequest naming the maximum."""
    if amount.is_finite() and amount > MAX_ADMIN_USD:  # NaN is `amount_units`'s to refuse
        raise InvalidRequest(f"Amounts above {format_usd(MAX_ADMIN_USD)} are not accepted.")
    return amount


def to_usd(units: int) -> Decimal:
    return Decimal(units).scaleb(-10)


def format_usd(amount: Decimal, *, rounding: str = ROUND_HALF_EVEN) -> str:
    """Dollars and cents; under a cent keeps four decimals ("$0.0034") so it does not read as $0."""
    if amount == 0 or abs(amount) >= _CENT:
        return f"${amount.quantize(_CENT, rounding=rounding):,}"
    return f"${amount.quantize(Decimal('0.0001'), rounding=rounding).normalize():f}"


class LazyUsd:
    """An amount formatted (`format_usd`) only if the log line it is in is emitted."""

    __slots__ = ("amount",)

    def __init__(self, amount: Decimal) -> None:
        self.amount = amount

    def __str__(self) -> str:
        return format_usd(self.amount)


def describe_limits(limits: Mapping[Period, Decimal | None]) -> str:
    """E.g. "daily $2.00, monthly no limit"."""
    if not limits:
        return "nothing"
    return ", ".join(
        f"{p.adjective} {'no limit' if v is None else format_usd(v)}" for p, v in limits.items()
    )


class Scope(StrEnum):
    USER = "user"
    WORKSPACE = "workspace"


def scope_of(key: str) -> Scope:
    """Tell a user key ("platform:workspace:user") from a pool key ("platform:workspace")."""
    parts = key.split(":")
    if len(parts) in (2, 3) and all(part.strip() == part and part for part in parts):
        return Scope.USER if len(parts) == 3 else Scope.WORKSPACE
    raise InvalidRequest(
        f"{key!r} is not a scope: use platform:workspace:user or platform:workspace"
    )


PERSONAL = "personal-"  # a personal pool's workspace: "personal-<user id>"


@dataclass(frozen=True)
class Identity:
    """Who asks: their platform, workspace (or guild) and user id, and their roles there.

    Personal use (no server's install behind it) has the member's own workspace, `personal()`,
    so its pool is theirs alone and takes the `[quotas.personal]` limits.
    """

    platform: str
    workspace: str
    user: str
    roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("platform", "workspace", "user"):
            value = getattr(self, name)
            if not value or ":" in value:
                raise ValueError(f"Identity.{name} must be non-empty without ':': {value!r}")

    @property
    def user_key(self) -> str:
        return f"{self.platform}:{self.workspace}:{self.user}"

    @property
    def pool_key(self) -> str:
        return f"{self.platform}:{self.workspace}"

    @property
    def is_personal(self) -> bool:
        return self.workspace == PERSONAL + self.user

    @classmethod
    def personal(cls, platform: str, user: str) -> Identity:
        return cls(platform, PERSONAL + user, user)


class ScopeState(NamedTuple):
    """What the database says about one scope for the current periods, in units. (A named
    tuple, as `Budget`: built on every hold and settle, where a frozen dataclass's `__init__`
    costs several times more.)"""

    held: int
    charged: Mapping[Period, int]
    granted: Mapping[Period, int]
    overrides: Mapping[Period, int | None]
    unlimited: bool


@dataclass(frozen=True)
class Allowance:
    """One scope's standing for one period, as the user is shown it."""

    scope: Scope
    period: Period
    limit: Decimal | None  # None: no limit
    spent: Decimal
    held: Decimal
    remaining: Decimal | None  # never below zero; None: no limit
    resets_at: datetime

    def describe(self) -> str:
        if self.remaining is None:
            return f"no limit {self.period.adverb}"
        left = format_usd(self.remaining, rounding=ROUND_DOWN)
        return f"{left} left {self.period.adverb}"


class Budget(NamedTuple):
    """An `Allowance` in units, for the admission arithmetic: 18 of them a hold and settle,
    hence a named tuple (2.8 against 0.4 µs to build as a frozen dataclass)."""

    scope: Scope
    period: Period
    limit: int | None
    charged: int
    held: int
    resets_at: datetime

    @property
    def available(self) -> int | None:
        return None if self.limit is None else self.limit - self.charged - self.held

    def allowance(self) -> Allowance:
        available = self.available
        return Allowance(
            scope=self.scope,
            period=self.period,
            limit=None if self.limit is None else to_usd(self.limit),
            spent=to_usd(self.charged),
            held=to_usd(self.held),
            remaining=None if available is None else to_usd(max(available, 0)),
            resets_at=self.resets_at,
        )


PERIODS = tuple(Period)
Limits = dict[Period, int | None]  # units; None: no limit


def limited(all_budgets: Collection[Budget]) -> list[Allowance]:
    """The allowances worth showing: those with a limit."""
    return [b.allowance() for b in all_budgets if b.limit is not None]


def _units_of(limits: QuotaLimits, *, only_set: bool = False) -> Limits:
    """A limits table in units; with `only_set`, just the periods written in the config."""
    result: Limits = {}
    for period, name in _FIELDS.items():
        if only_set and name not in limits.model_fields_set:
            continue
        value: Decimal | None = getattr(limits, name)
        result[period] = None if value is None else to_units(value)
    return result


def _most_generous(values: Collection[int | None]) -> int | None:
    return None if None in values else max(v for v in values if v is not None)


class QuotaPolicy:
    """The configured limits, converted once; combines them with what the database holds."""

    def __init__(self, quotas: QuotaSettings) -> None:
        self._user = _units_of(quotas.user_limits())
        self._pool = _units_of(quotas.workspace)
        self._personal = _units_of(quotas.personal)
        self._tiers = {role: _units_of(t, only_set=True) for role, t in quotas.roles.items()}
        self._unlimited = frozenset(quotas.unlimited_users)

    def user_base(self, roles: Collection[str], overrides: Mapping[Period, int | None]) -> Limits:
        """Override, else the most generous tier (a tier's unset periods are the defaults)."""
        tiers = [self._tiers[role] for role in roles if role in self._tiers]
        base: Limits = {}
        for period in PERIODS:
            if period in overrides:
                base[period] = overrides[period]
            elif tiers:
                default = self._user[period]
                base[period] = _most_generous([t.get(period, default) for t in tiers])
            else:
                base[period] = self._user[period]
        return base

    def pool_base(
        self, overrides: Mapping[Period, int | None], *, personal: bool = False
    ) -> Limits:
        defaults = self._personal if personal else self._pool
        return {p: overrides[p] if p in overrides else defaults[p] for p in PERIODS}

    def user_unlimited(self, identity: Identity, flagged: bool) -> bool:
        return flagged or identity.user_key in self._unlimited or identity.user in self._unlimited


def budgets(
    scope: Scope,
    base: Mapping[Period, int | None],
    state: ScopeState,
    current: Mapping[Period, Window],
    *,
    unlimited: bool,
) -> list[Budget]:
    result = []
    for period in PERIODS:
        limit = base[period]
        if unlimited or limit is None:
            limit = None
        else:
            limit += state.granted.get(period, 0)
        charged = state.charged.get(period, 0)
        result.append(Budget(scope, period, limit, charged, state.held, current[period].end))
    return result


@dataclass(frozen=True)
class ThresholdCrossed:
    """A settle took spending past `percent` of a limit (only the highest one per limit)."""

    scope: Scope
    period: Period
    percent: int
    spent: Decimal
    limit: Decimal


def crossings(before: Budget, cost: int, thresholds: Collection[int]) -> ThresholdCrossed | None:
    if before.limit is None:
        return None
    after = before.charged + cost
    passed = [t for t in thresholds if before.charged * 100 < t * before.limit <= after * 100]
    if not passed:
        return None
    return ThresholdCrossed(
        before.scope, before.period, max(passed), to_usd(after), to_usd(before.limit)
    )


class QuotaExceeded(BotError):
    """A job would take a member or the workspace past a limit; nothing was held or charged."""

    def __init__(
        self,
        *,
        scope: Scope,
        period: Period,
        limit: Decimal,
        remaining: Decimal,
        resets_at: datetime,
        amount: Decimal,
        zone: ZoneInfo | None = None,
    ) -> None:
        self.scope = Scope(scope)
        self.period = Period(period)
        self.limit = limit
        self.remaining = remaining
        self.resets_at = resets_at
        self.amount = amount
        whose = "Your" if self.scope is Scope.USER else "This workspace's"
        when = resets_at.astimezone(zone or UTC).strftime("%Y-%m-%d %H:%M %Z")
        super().__init__(
            f"{whose} {self.period.adjective} limit is {format_usd(limit)};"
            f" {format_usd(remaining, rounding=ROUND_DOWN)} is left until {when}."
            f" This costs about {format_usd(amount, rounding=ROUND_UP)}."
        )

    @classmethod
    def for_budget(cls, budget: Budget, amount: int, zone: ZoneInfo) -> QuotaExceeded:
        allowance = budget.allowance()
        assert allowance.limit is not None and allowance.remaining is not None
        return cls(
            scope=budget.scope,
            period=budget.period,
            limit=allowance.limit,
            remaining=allowance.remaining,
            resets_at=budget.resets_at,
            amount=to_usd(amount),
            zone=zone,
        )


def refusal(candidates: Collection[Budget], amount: int) -> Budget | None:
    """The limit to name when `amount` does not fit: the one that frees up last.

    When several free up at the same instant (a month's last day ends the day, often the week,
    and the month), the longest period is named, so the answer does not depend on the date.
    """
    failing = [b for b in candidates if b.available is not None and amount > b.available]
    if not failing:
        return None
    length = list(Period)
    return max(failing, key=lambda b: (b.resets_at, b.scope is Scope.USER, length.index(b.period)))
