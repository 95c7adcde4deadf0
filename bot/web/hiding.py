"""What members keep off the page: one result (its owner or an admin hides it), or every result
of a member who opted out (`/web hide-mine`, or the switch on their spend page).

A hidden result is still theirs: its owner and the workspace's admins still open its page (to
show it again); everyone else gets the same 404 as for an id never issued.
"""

from __future__ import annotations

import sqlite3
import time

from bot.db import Database
from bot.jobstore import JobRecord
from bot.quota import Identity
from bot.web.schema import ensure_schema

# The gallery's condition on `jobs` rows (parameters: platform, workspace).
LISTED = (
    "NOT EXISTS (SELECT 1 FROM web_hidden_results h WHERE h.job_id = jobs.id)"
    " AND NOT EXISTS (SELECT 1 FROM web_hidden_members m WHERE m.platform = ?"
    " AND m.workspace = ? AND m.user_id = jobs.user_id)"
)


class Hiding:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await ensure_schema(self._db)
            self._ready = True

    async def hidden(self, job: JobRecord) -> bool:
        """Kept off the page: hidden itself, or its member opted out."""
        await self._ensure()
        platform, workspace, user = job.identity
        row = await self._db.fetchone(
            "SELECT EXISTS (SELECT 1 FROM web_hidden_results WHERE job_id = ?)"
            " OR EXISTS (SELECT 1 FROM web_hidden_members"
            " WHERE platform = ? AND workspace = ? AND user_id = ?)",
            (job.id, platform, workspace, user),
        )
        return bool(row and row[0])

    async def hide_result(self, job_id: str, by: Identity, hidden: bool) -> None:
        await self._ensure()

        def write(raw: sqlite3.Connection) -> None:
            if hidden:
                raw.execute(
                    "INSERT OR IGNORE INTO web_hidden_results VALUES (?, ?, ?)",
                    (job_id, by.user_key, time.time()),
                )
            else:
                raw.execute("DELETE FROM web_hidden_results WHERE job_id = ?", (job_id,))

        await self._db.run(write)

    async def hide_member(self, member: Identity, hidden: bool) -> None:
        await self._ensure()
        key = (member.platform, member.workspace, member.user)

        def write(raw: sqlite3.Connection) -> None:
            if hidden:
                raw.execute(
                    "INSERT OR IGNORE INTO web_hidden_members VALUES (?, ?, ?, ?)",
                    (*key, time.time()),
                )
            else:
                raw.execute(
                    "DELETE FROM web_hidden_members"
                    " WHERE platform = ? AND workspace = ? AND user_id = ?",
                    key,
                )

        await self._db.run(write)

    async def member_hidden(self, member: Identity) -> bool:
        await self._ensure()
        row = await self._db.fetchone(
            "SELECT 1 FROM web_hidden_members WHERE platform = ? AND workspace = ? AND user_id = ?",
            (member.platform, member.workspace, member.user),
        )
        return row is not None
