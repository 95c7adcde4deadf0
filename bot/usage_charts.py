"""The charts beside `/usage` and `/quota report`, the same on Discord and Slack.

Each is drawn off the event loop (`asyncio.to_thread`); a chart takes tens of milliseconds
(docs/benchmarks.md), so the reply is not held up. The text answer is always sent too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.charts import member_png, report_png
from bot.ledger.periods import Window, local_date
from bot.ledger.quota import Identity
from bot.ledger.records import Report
from bot.ledger.service import SqliteLedger
from bot.ledger.spend_history import member_id, member_spend, workspace_spend
from bot.storage.sql import Store

USAGE_FILENAME = "usage.png"
REPORT_FILENAME = "spend-report.png"


async def usage_chart(
    db: Store, ledger: SqliteLedger, identity: Identity, zone: ZoneInfo, now: datetime
) -> bytes:
    """A member's spend per day this period (their longest limited one) against its limit."""
    usage = await ledger.usage(identity)
    spend = await member_spend(db, identity.user_key, usage, now, zone)
    today = spend.days.index(local_date(now, zone))
    return await asyncio.to_thread(member_png, spend, today_index=today)


async def report_chart(
    db: Store, report: Report, span: Window, name_of: Callable[[str], str] = member_id
) -> bytes:
    """The report's period: spend per day by model, and the top spenders named by `name_of`."""
    spend = await workspace_spend(
        db, report.workspace, report, span.first_day, span.last_day, span.period.adverb
    )
    return await asyncio.to_thread(report_png, spend, name_of)
