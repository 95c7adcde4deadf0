"""How a workspace's jobs ended this month, for the admin page: delivered, failed, refunded.

A job that failed, timed out or was cancelled released its hold (nothing was charged), so these
counts are the "failures and refunds" next to the ledger's settled spend.
"""

from __future__ import annotations

from datetime import datetime

from bot.jobs.invocation import Community
from bot.jobs.states import JobState
from bot.storage.sql import Store

LABELS = {
    JobState.DELIVERED: "delivered",
    JobState.UNDELIVERABLE: "charged, not delivered yet",
    JobState.FAILED: "failed (nothing charged)",
    JobState.TIMED_OUT: "timed out (nothing charged)",
    JobState.CANCELLED: "cancelled (nothing charged)",
}


async def outcomes(db: Store, community: Community, since: datetime) -> list[tuple[str, int]]:
    """(what happened, how many jobs) since `since`, for the states above that occurred."""
    rows = await db.fetchall(
        "SELECT state, COUNT(*) FROM jobs WHERE platform = ? AND workspace = ?"
        " AND created_at >= ? GROUP BY state",
        (community.platform, community.workspace, since.timestamp()),
    )
    counts = {row[0]: row[1] for row in rows}
    return [(label, counts[state]) for state, label in LABELS.items() if counts.get(state)]
