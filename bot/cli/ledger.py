"""`backup`, `usage` and `quota ...`: the ledger for operators without chat access.

They work on the file named by `storage.database`, also while the bot runs (WAL readers never
wait; writes take the same `BEGIN IMMEDIATE` lock the bot does).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.config import QuotaLimits, load_settings
from bot.errors import BotError, InvalidRequest
from bot.ledger.periods import Period, local_date, local_midnight, utc_now
from bot.ledger.quota import format_usd, scope_of
from bot.ledger.quota_ops import describe_limit, parse_limit, parse_usd, standing
from bot.ledger.service import Report, SqliteLedger
from bot.ledger.spend_history import member_id, workspace_spend
from bot.storage.sql import (
    Store,
    display_place,
    exists,
    is_postgres,
    open_existing,
    open_store,
    sqlite_path,
)
from bot.storage.sqlite_backup import backup_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = subparsers.add_parser("backup", help="copy the database to PATH, safe while running")
    backup.add_argument("path", type=Path, metavar="PATH")
    backup.set_defaults(handler=_backup)

    usage = subparsers.add_parser("usage", help="spend per user (or model) over a date range")
    usage.add_argument("--workspace", help="platform:workspace, or a bare workspace id")
    usage.add_argument("--since", type=_date, help="first day, YYYY-MM-DD (default: 1st of month)")
    usage.add_argument("--until", type=_date, help="last day, inclusive (default: today)")
    usage.add_argument("--by", choices=("user", "model"), default="user")
    usage.add_argument("--csv", action="store_true", help="machine-readable output")
    usage.add_argument(
        "--chart", type=Path, metavar="PNG", help="also draw spend per day by model to this file"
    )
    usage.set_defaults(handler=_usage)

    quota = subparsers.add_parser("quota", help="set limits, grant credit, mark unlimited")
    actions = quota.add_subparsers(dest="action", required=True, metavar="ACTION")
    scope_help = "platform:workspace:user (a member) or platform:workspace (the shared pool)"

    show = actions.add_parser("show", help="a scope's limits, spend and what is left")
    show.add_argument("scope", type=_scope, help=scope_help)
    show.set_defaults(handler=_quota_show)

    set_ = actions.add_parser("set", help='override a scope\'s limits ("none": no limit)')
    set_.add_argument("scope", type=_scope, help=scope_help)
    for period in Period:
        # SUPPRESS: an absent flag leaves no attribute, so "--daily none" (None) is told apart.
        set_.add_argument(
            f"--{period.adjective}", type=_limit, metavar="USD|none", default=argparse.SUPPRESS
        )
    set_.set_defaults(handler=_quota_set)

    grant = actions.add_parser("grant", help="add credit for the current day, week and month")
    grant.add_argument("scope", type=_scope, help=scope_help)
    grant.add_argument("amount", type=_positive_usd, metavar="USD")
    grant.add_argument("--reason", required=True)
    grant.add_argument("--id", dest="grant_key", help="idempotency key: a repeat is ignored")
    grant.set_defaults(handler=_quota_grant)

    reset = actions.add_parser("reset", help="drop a scope's overrides (back to defaults)")
    reset.add_argument("scope", type=_scope, help=scope_help)
    reset.set_defaults(handler=_quota_reset)

    unlimited = actions.add_parser("unlimited", help="turn a scope's unlimited flag on or off")
    unlimited.add_argument("scope", type=_scope, help=scope_help)
    unlimited.add_argument("state", choices=("on", "off"))
    unlimited.set_defaults(handler=_quota_unlimited)

    for sub in (set_, grant, reset, unlimited):
        sub.add_argument("--by", default=_operator(), help="who does this (for the audit log)")


# -- argument types: a bad value is an argparse error (usage text, exit 2) -------------------


def _usd(text: str) -> Decimal:
    try:
        return parse_usd(text, "USD")
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _positive_usd(text: str) -> Decimal:
    value = _usd(text)
    if value == 0:
        raise argparse.ArgumentTypeError("the amount must be more than 0")
    return value


def _limit(text: str) -> Decimal | None:
    try:
        return parse_limit(text, "USD")
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _scope(text: str) -> str:
    try:
        scope_of(text)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


# -- handlers ----------------------------------------------------------------------------------


@asynccontextmanager
async def _ledger(args: argparse.Namespace, *, must_exist: bool) -> AsyncIterator[SqliteLedger]:
    settings = load_settings(args.config)
    async with _database(settings.storage.database, must_exist) as db:
        yield SqliteLedger(db, settings.quotas)


@asynccontextmanager
async def _database(place: Path | str, must_exist: bool) -> AsyncIterator[Store]:
    db = await (open_existing(place) if must_exist else open_store(place))
    try:
        yield db
    finally:
        await db.close()


def _backup(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    source = settings.storage.database
    if is_postgres(source):
        raise BotError(
            "storage.database is on PostgreSQL: back it up with the server's tools, e.g."
            f" pg_dump --format=custom --file {args.path} '{display_place(source)}'"
        )
    if not exists(source):
        raise BotError(f"no database at {source} (storage.database)")
    try:
        backup_file(sqlite_path(source), args.path)
    except (sqlite3.Error, OSError) as exc:
        raise BotError(f"backup to {args.path} failed: {exc}") from None
    print(f"backed up {source} to {args.path}")
    return 0


async def _usage(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    zone = ZoneInfo(settings.quotas.timezone)
    today = local_date(utc_now(), zone)
    first: date = args.since or today.replace(day=1)
    last: date = args.until or today
    if last < first:
        raise InvalidRequest(f"--until {last} is before --since {first}")
    since, until = local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone)
    span = f"{first} .. {last} ({settings.quotas.timezone})"
    async with _database(settings.storage.database, True) as db:
        report = await SqliteLedger(db, settings.quotas).report(args.workspace, since, until)
        chart = None
        if args.chart:
            spend = await workspace_spend(db, args.workspace, report, first, last, span)
            from bot.charts import report_png  # Pillow: only when a chart is asked for

            chart = await asyncio.to_thread(report_png, spend, member_id)
    if args.csv:
        _print_csv(report, args.by)
    else:
        _print_table(report, args.by, span)
    if chart is not None:
        try:
            args.chart.write_bytes(chart)
        except OSError as exc:
            raise BotError(f"--chart {args.chart}: {exc.strerror or exc}") from None
        if not args.csv:
            print(f"chart written to {args.chart}")
    return 0


def _print_csv(report: Report, by: str) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([by, "jobs", "charged_usd"])
    for line in report.by_user if by == "user" else report.by_model:
        writer.writerow([line.key, line.jobs, f"{line.charged:f}"])


def _print_table(report: Report, by: str, span: str) -> None:
    lines = report.by_user if by == "user" else report.by_model
    print(f"spend {span}, workspace {report.workspace or 'all'}")
    width = max([len(line.key) for line in lines] + [len(by), 5])
    print(f"{by:<{width}}  {'jobs':>6}  {'charged':>12}")
    for line in lines:
        print(f"{line.key:<{width}}  {line.jobs:>6}  {format_usd(line.charged):>12}")
    print(f"{'total':<{width}}  {report.jobs:>6}  {format_usd(report.total):>12}")
    if report.overage_jobs:
        print(
            f"charged above their hold: {report.overage_jobs} job(s),"
            f" {format_usd(report.overage)} in all (see the WARNING lines of the log)"
        )


async def _quota_show(args: argparse.Namespace) -> int:
    async with _ledger(args, must_exist=True) as ledger:
        allowances = await standing(ledger, args.scope)
    print(args.scope)
    for a in allowances:
        limit = describe_limit(a.limit)
        held = f", {format_usd(a.held)} held" if a.held else ""
        print(
            f"  {a.period.adjective:<8} {format_usd(a.spent)} spent{held} of {limit}, {a.describe()},"
            f" resets {a.resets_at.isoformat(timespec='minutes')}"
        )
    return 0


async def _quota_set(args: argparse.Namespace) -> int:
    given = {
        f"{p.adjective}_usd": getattr(args, p.adjective) for p in Period if p.adjective in args
    }
    if not given:
        raise InvalidRequest("say which limits to set: --daily, --weekly and/or --monthly")
    async with _ledger(args, must_exist=False) as ledger:
        await ledger.set_limits(args.scope, QuotaLimits(**given), by=args.by)
    shown = ", ".join(
        f"{name.removesuffix('_usd')} {describe_limit(v)}" for name, v in given.items()
    )
    print(f"{args.scope}: {shown}")
    return 0


async def _quota_grant(args: argparse.Namespace) -> int:
    async with _ledger(args, must_exist=False) as ledger:
        grant = await ledger.grant(
            args.scope, args.amount, args.reason, by=args.by, grant_key=args.grant_key
        )
    print(f"grant {grant.id}: {format_usd(grant.amount)} to {grant.scope_key} ({grant.reason})")
    return 0


async def _quota_reset(args: argparse.Namespace) -> int:
    async with _ledger(args, must_exist=False) as ledger:
        changed = await ledger.reset(args.scope, by=args.by)
    print(f"{args.scope}: " + ("back to defaults" if changed else "had no overrides"))
    return 0


async def _quota_unlimited(args: argparse.Namespace) -> int:
    async with _ledger(args, must_exist=False) as ledger:
        changed = await ledger.set_unlimited(args.scope, args.state == "on", by=args.by)
    print(f"{args.scope}: unlimited {args.state}" + ("" if changed else " (unchanged)"))
    return 0
