"""`/quota`: workspace admins read and change spend limits from Slack.

    /quota show @user | workspace
    /quota set @user | workspace [--daily USD|none] [--weekly USD|none] [--monthly USD|none]
    /quota grant @user | workspace USD reason...
    /quota reset @user | workspace
    /quota unlimited @user | workspace on|off

Admins are `slack.admin_users` and the workspace's admins and owners. Every change is written to
the ledger's audit log as `slack:<team>:<admin>`. The same operations exist in the CLI
(`python -m bot quota ...`) for operators without Slack.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from adapters.slack.context import Origin, SlackContext
from adapters.slack.info import allowance_line
from adapters.slack.people import PLATFORM
from bot.config import QuotaLimits
from bot.errors import InvalidRequest, PolicyDenied
from bot.pricing import format_usd as exact_usd
from bot.quota import admin_amount, format_usd

USAGE = (
    "*Quota commands (admins)*\n"
    "`/quota show @user` or `/quota show workspace`\n"
    "`/quota set @user --daily 2 --monthly none` (none: no limit)\n"
    "`/quota grant @user 5 for the hackathon` extra credit this period\n"
    "`/quota reset @user` back to the defaults\n"
    "`/quota unlimited @user on|off`"
)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
POOL_WORDS = ("workspace", "pool", "team")
PERIODS = {"--daily": "daily_usd", "--weekly": "weekly_usd", "--monthly": "monthly_usd"}


async def quota_text(ctx: SlackContext, origin: Origin, text: str) -> str:
    if not await ctx.people.is_admin(origin.user):
        raise PolicyDenied("Only workspace admins can see or change quotas. `/usage` shows yours.")
    words = text.split()
    if not words or words[0].lower() == "help":
        return USAGE
    action, rest = words[0].lower(), words[1:]
    if not rest:
        raise InvalidRequest(f"Say whose quota: `/quota {action} @user` or `workspace`.\n{USAGE}")
    scope, label = _scope(origin, rest[0])
    by = f"{PLATFORM}:{origin.team}:{origin.user}"
    ledger = ctx.core.ledger
    if action == "show":
        return await _show(ctx, origin, rest[0], label)
    if action == "set":
        limits = _limits(rest[1:])
        await ledger.set_limits(scope, limits, by=by)
        shown = ", ".join(
            f"{name.removesuffix('_usd')} {_limit(getattr(limits, name))}"
            for name in sorted(limits.model_fields_set)
        )
        return f"Limits of {label} set: {shown}."
    if action == "grant":
        amount, reason = _usd(rest[1] if len(rest) > 1 else ""), " ".join(rest[2:])
        grant = await ledger.grant(scope, amount, reason, by=by)
        return f"Granted {exact_usd(grant.amount)} to {label} for this period ({reason})."
    if action == "reset":
        changed = await ledger.reset(scope, by=by)
        return f"{label}: back to the defaults." if changed else f"{label} had no overrides."
    if action == "unlimited":
        state = rest[1].lower() if len(rest) > 1 else ""
        if state not in ("on", "off"):
            raise InvalidRequest("Say `on` or `off`: `/quota unlimited @user on`.")
        await ledger.set_unlimited(scope, state == "on", by=by)
        return f"{label}: unlimited {state}."
    raise InvalidRequest(f"Unknown quota action {action!r}.\n{USAGE}")


def _scope(origin: Origin, word: str) -> tuple[str, str]:
    """A user mention/id or `workspace` -> (ledger scope key, how to name it in a reply)."""
    if word.lower() in POOL_WORDS:
        return f"{PLATFORM}:{origin.team}", "the workspace pool"
    user = _user_of(word)
    return f"{PLATFORM}:{origin.team}:{user}", f"<@{user}>"


def _user_of(word: str) -> str:
    mention = _MENTION.match(word)
    if mention:
        return mention.group(1)
    if _USER_ID.match(word):
        return word
    raise InvalidRequest(
        f"{word!r} is not a member: mention them (pick the name Slack suggests) or give their"
        " user id, or say `workspace`."
    )


async def _show(ctx: SlackContext, origin: Origin, word: str, label: str) -> str:
    if word.lower() in POOL_WORDS:
        identity = await ctx.people.identity(origin.team, origin.user)
        allowances = (await ctx.core.ledger.usage(identity)).workspace
    else:
        identity = await ctx.people.identity(origin.team, _user_of(word))
        allowances = (await ctx.core.ledger.usage(identity)).user
    return f"*{label}*\n" + "\n".join(f"• {allowance_line(a)}" for a in allowances)


def _limits(words: list[str]) -> QuotaLimits:
    given: dict[str, Decimal | None] = {}
    pairs = list(zip(words[::2], words[1::2], strict=False))
    if not pairs or len(words) % 2:
        raise InvalidRequest("Give limits as `--daily 2`, `--weekly none`, `--monthly 20`.")
    for flag, value in pairs:
        if flag.lower() not in PERIODS:
            raise InvalidRequest(f"Unknown limit {flag!r}; use --daily, --weekly or --monthly.")
        given[PERIODS[flag.lower()]] = None if value.lower() == "none" else _usd(value)
    return QuotaLimits(**given)


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        raise InvalidRequest(f"{text!r} is not an amount in USD.") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest(f"{text!r} is not an amount in USD.")
    return admin_amount(value)


def _limit(value: Decimal | None) -> str:
    return "no limit" if value is None else format_usd(value)
