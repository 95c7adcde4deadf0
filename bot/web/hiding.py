"""What is kept off the page: one result (its owner or an admin hides it), every result of a
member who opted out (`/web hide-mine`, or the switch on their spend page), and results asked
for in age-restricted channels.

A hidden result is still theirs: its owner and the workspace's admins still open its page (to
show it again); everyone else gets the same 404 as for an id never issued.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from bot.delivery import NSFW_CHANNEL
from bot.jobs.invocation import Community
from bot.jobs.store import JobRecord
from bot.ledger.quota import Identity
from bot.storage.sql import Connection, ScopeLocking, Store
from bot.web.schema import ensure_schema

# The gallery's condition on `jobs` rows (parameters: platform, workspace).
LISTED = (
    "NOT EXISTS (SELECT 1 FROM web_hidden_results h WHERE h.job_id = jobs.id)"
    " AND NOT EXISTS (SELECT 1 FROM web_hidden_members m WHERE m.platform = ?"
    " AND m.workspace = ? AND m.user_id = jobs.user_id)"
)


def nsfw_channels_clause(
    raw: Connection, slack_channels: Collection[str]
) -> tuple[str, list[object]]:
    """The gallery's condition leaving out jobs asked for in age-restricted channels: marked so
    by the adapter (Discord), or one of `slack.nsfw_channels`."""
    # The LIKE spares parsing the JSON of the rows that carry no mark at all (most of them).
    marked = _channel_field(raw, "extra", NSFW_CHANNEL)
    clause = f"""(channel_ref NOT LIKE '%"{NSFW_CHANNEL}"%' OR COALESCE({marked}, '') <> '1')"""
    if not slack_channels:
        return clause, []
    marks = ", ".join("?" for _ in slack_channels)
    clause += (
        f" AND NOT ({_channel_field(raw, 'platform')} = 'slack'"
        f" AND {_channel_field(raw, 'channel')} IN ({marks}))"
    )
    return clause, list(slack_channels)


def _channel_field(raw: Connection, *path: str) -> str:
    """A text field of the jobs row's `channel_ref` JSON, in this database's spelling."""
    if isinstance(raw, ScopeLocking):  # PostgreSQL (bot/storage/sql.py)
        return f"(CAST(channel_ref AS JSON) #>> '{{{','.join(path)}}}')"
    return f"json_extract(channel_ref, '$.{'.'.join(path)}')"


def opted_out(raw: Connection, community: Community) -> set[str]:
    """The members of the community who took all their results off the page."""
    rows = raw.execute(
        "SELECT user_id FROM web_hidden_members WHERE platform = ? AND workspace = ?",
        (community.platform, community.workspace),
    )
    return {row[0] for row in rows}


def from_nsfw_channel(job: JobRecord, slack_channels: Collection[str]) -> bool:
    """The same test for one job."""
    ref = job.channel
    return ref.extra.get(NSFW_CHANNEL) == "1" or (
        ref.platform == "slack" and ref.channel in slack_channels
    )


class Hiding:
    def __init__(self, db: Store) -> None:
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

        def write(raw: Connection) -> None:
            if hidden:
                raw.execute(
                    "INSERT INTO web_hidden_results VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (job_id, by.user_key, time.time()),
                )
            else:
                raw.execute("DELETE FROM web_hidden_results WHERE job_id = ?", (job_id,))

        await self._db.run(write)

    async def hide_member(self, member: Identity, hidden: bool) -> None:
        await self._ensure()
        key = (member.platform, member.workspace, member.user)

        def write(raw: Connection) -> None:
            if hidden:
                raw.execute(
                    "INSERT INTO web_hidden_members VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
