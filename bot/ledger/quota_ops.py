"""`/quota`: the admin operations every surface offers, and the one way amounts are read.

Discord, Slack and the terminal each take the arguments in their own idiom, name scopes with
`Identity.user_key` / `pool_key`, and call these, so `show`, `set`, `grant`, `reset` and
`unlimited` mean the same everywhere.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from bot.errors import InvalidRequest
from bot.ledger.quota import Allowance, Identity, Scope, admin_amount, format_usd, scope_of

if TYPE_CHECKING:  # the ledger's SQL is loaded by whoever opens a ledger (`cost` starts without it)
    from bot.ledger.service import SqliteLedger

NO_LIMIT = ("none", "no", "unlimited", "off", "-")


def parse_usd(text: str, what: str = "the amount") -> Decimal:
    """`2.50` or `$2.50` -> Decimal USD; negative, non-finite or huge amounts are refused."""
    try:
        value = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        raise InvalidRequest(f"{what} is not an amount in USD (like 2.50): {text!r}") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest(f"{what} is not a non-negative amount in USD: {text!r}")
    return admin_amount(value)


def parse_limit(text: str, what: str = "the limit") -> Decimal | None:
    """An amount as `parse_usd`, or `none` (and its synonyms): no limit."""
    return None if text.strip().lower() in NO_LIMIT else parse_usd(text, what)


def describe_limit(value: Decimal | None) -> str:
    return "no limit" if value is None else format_usd(value)


async def standing(
    ledger: SqliteLedger, scope_key: str, roles: frozenset[str] = frozenset()
) -> list[Allowance]:
    """`/quota show`: a member's allowances (given their roles), or a workspace pool's."""
    platform, workspace, *user = scope_key.split(":")
    if scope_of(scope_key) is Scope.USER:
        member = Identity(platform, workspace, user[0], roles=roles)
        return list((await ledger.usage(member)).user)
    # A pool's standing is the same for every member; any member id reads it.
    return list((await ledger.usage(Identity(platform, workspace, "pool"))).workspace)
