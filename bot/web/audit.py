"""The workspace's recent admin changes, as the ledger's admin log recorded them (from `/quota`
and from the admin page alike), so an admin sees on the page who changed what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.ledger.periods import from_micros
from bot.storage.sql import Store

RECENT = 20


@dataclass(frozen=True)
class Change:
    at: datetime
    actor: str  # member id of the admin
    action: str
    scope: str  # member id, or "workspace"
    detail: str


async def recent_changes(db: Store, pool_key: str) -> list[Change]:
    """The last changes to the pool's limits and to its members' (newest first)."""
    rows = await db.fetchall(
        "SELECT at, actor, action, scope_key, detail FROM admin_log"
        " WHERE scope_key = ? OR scope_key LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?",
        (pool_key, _like_prefix(pool_key) + ":%", RECENT),
    )
    return [
        Change(
            at=from_micros(row[0]),
            actor=row[1].rsplit(":", 1)[-1],
            action=row[2],
            scope="workspace" if row[3] == pool_key else row[3].rsplit(":", 1)[-1],
            detail=row[4],
        )
        for row in rows
    ]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
