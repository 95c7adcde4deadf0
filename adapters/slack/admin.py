"""`/quota`: workspace admins read and change spend limits from Slack.

    /quota show @user | workspace
    /quota set @user | workspace [--daily USD|none] [--weekly USD|none] [--monthly USD|none]
    /quota grant @user | workspace USD reason...
    /quota reset @user | workspace
    /quota unlimited @user | workspace on|off
    /quota report [day|week|month]

Admins are `slack.admin_users` and the workspace's admins and owners. Every change is written to
the ledger's audit log as `slack:<team>:<admin>`. The same operations exist in the CLI
(`python -m bot quota ...`) for operators without Slack.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from adapters.slack.charts import send_chart
from adapters.slack.context import Origin, SlackContext
from adapters.slack.info import allowance_line
from adapters.slack.people import PLATFORM
from bot.config import QuotaLimits
from bot.errors import InvalidRequest, PolicyDenied
from bot.ledger import (
    Identity,
    Period,
    describe_limit,
    format_usd,
    member_id,
    parse_limit,
    parse_usd,
    standing,
    window,
)
from bot.runpod import exact_usd
from bot.usage_charts import REPORT_FILENAME, report_chart

USAGE = (
    "*Quota commands (admins)*\n"
    "`/quota show @user` or `/quota show workspace`\n"
    "`/quota set @user --daily 2 --monthly none` (none: no limit)\n"
    "`/quota grant @user 5 for the hackathon` extra credit this period\n"
    "`/quota reset @user` back to the defaults\n"
    "`/quota unlimited @user on|off`\n"
    "`/quota report [day|week|month]` who spent what (default: this month), with a chart in a DM"
)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
POOL_WORDS = ("workspace", "pool", "team")
REPORT_PERIODS = {
    **{name: Period.DAY for name in ("day", "today", "daily")},
    **{name: Period.WEEK for name in ("week", "weekly")},
    **{name: Period.MONTH for name in ("month", "monthly")},
}
PERIODS = {"--daily": "daily_usd", "--weekly": "weekly_usd", "--monthly": "monthly_usd"}


async def quota_text(ctx: SlackContext, origin: Origin, text: str) -> str:
    if not await ctx.people.is_admin(origin.user):
        raise PolicyDenied("Only workspace admins can see or change quotas. `/usage` shows yours.")
    words = text.split()
    if not words or words[0].lower() == "help":
        return USAGE
    action, rest = words[0].lower(), words[1:]
    if action == "report":
        return await _report(ctx, origin, rest)
    if not rest:
        raise InvalidRequest(f"Say whose quota: `/quota {action} @user` or `workspace`.\n{USAGE}")
    scope, label = _scope(origin, rest[0])
    by = Identity(PLATFORM, origin.team, origin.user).user_key
    ledger = ctx.core.ledger
    if action == "show":
        return await _show(ctx, origin, rest[0], scope, label)
    if action == "set":
        limits = _limits(rest[1:])
        await ledger.set_limits(scope, limits, by=by)
        shown = ", ".join(
            f"{name.removesuffix('_usd')} {describe_limit(getattr(limits, name))}"
            for name in sorted(limits.model_fields_set)
        )
        return f"Limits of {label} set: {shown}."
    if action == "grant":
        amount = parse_usd(rest[1] if len(rest) > 1 else "", "the amount")
        reason = " ".join(rest[2:])
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


async def _report(ctx: SlackContext, origin: Origin, words: list[str]) -> str:
    """The workspace's spend this day/week/month, by member and model; the chart goes to a DM."""
    word = words[0].lower() if words else "month"
    period = REPORT_PERIODS.get(word)
    if period is None or len(words) > 1:
        raise InvalidRequest("Say which period: `/quota report day`, `week` or `month`.")
    core = ctx.core
    span = window(period, datetime.now(UTC), ZoneInfo(core.settings.quotas.timezone))
    pool = Identity(PLATFORM, origin.team, origin.user).pool_key
    report = await core.ledger.report(pool, span.start, span.end)
    send_chart(
        ctx,
        origin.user,
        report_chart(core.db, report, span),
        filename=REPORT_FILENAME,
        title=f"Spend per day {period.adverb}",
    )
    lines = [f"*Spending {period.adverb}*: {format_usd(report.total)} over {report.jobs} job(s)."]
    if report.by_user:
        lines.append("*By member*")
        lines += [
            f"• <@{member_id(line.key)}> {format_usd(line.charged)} ({line.jobs})"
            for line in report.by_user
        ]
    if report.by_model:
        lines.append("*By model*")
        lines += [
            f"• `{line.key}` {format_usd(line.charged)} ({line.jobs})" for line in report.by_model
        ]
    return "\n".join(lines)


def _scope(origin: Origin, word: str) -> tuple[str, str]:
    """A user mention/id or `workspace` -> (ledger scope key, how to name it in a reply)."""
    if word.lower() in POOL_WORDS:
        return Identity(PLATFORM, origin.team, origin.user).pool_key, "the workspace pool"
    user = _user_of(word)
    return Identity(PLATFORM, origin.team, user).user_key, f"<@{user}>"


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


async def _show(ctx: SlackContext, origin: Origin, word: str, scope: str, label: str) -> str:
    pool = word.lower() in POOL_WORDS
    roles = frozenset() if pool else await ctx.people.roles(_user_of(word))
    allowances = await standing(ctx.core.ledger, scope, roles)
    return f"*{label}*\n" + "\n".join(f"• {allowance_line(a)}" for a in allowances)


def _limits(words: list[str]) -> QuotaLimits:
    given: dict[str, Decimal | None] = {}
    pairs = list(zip(words[::2], words[1::2], strict=False))
    if not pairs or len(words) % 2:
        raise InvalidRequest("Give limits as `--daily 2`, `--weekly none`, `--monthly 20`.")
    for flag, value in pairs:
        if flag.lower() not in PERIODS:
            raise InvalidRequest(f"Unknown limit {flag!r}; use --daily, --weekly or --monthly.")
        given[PERIODS[flag.lower()]] = parse_limit(value, flag.lstrip("-"))
    return QuotaLimits(**given)
