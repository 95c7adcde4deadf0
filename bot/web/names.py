"""Members' names as the adapters last saw them, so the pages name members rather than show ids.

Adapters report a member's display name when the member uses the bot (`bot.web.member_seen`)
and when a session is re-checked. A name is untrusted text (the templates escape it); a member
never seen shows as their id.
"""

from __future__ import annotations

import time

from bot.jobs.invocation import Community
from bot.ledger.quota import Identity
from bot.storage.sql import Connection, Store
from bot.web.access import WebAccess
from bot.web.schema import ensure_schema

MAX_NAME = 100  # characters kept: Discord's and Slack's display names are shorter


def names_in(raw: Connection, community: Community) -> dict[str, str]:
    """Member id -> name, for every member of the community the bot has seen."""
    rows = raw.execute(
        "SELECT user_id, name FROM web_names WHERE platform = ? AND workspace = ?",
        (community.platform, community.workspace),
    )
    return {row[0]: row[1] for row in rows}


class Names:
    def __init__(self, db: Store, access: WebAccess) -> None:
        self._db = db
        self._access = access
        self._ready = False

    async def seen(self, identity: Identity, name: str) -> None:
        """Keep the member's current name; written only when this process has not seen it."""
        name = name[:MAX_NAME]
        if not name or self._access.known_name(identity) == name:
            return
        if not self._ready:
            await ensure_schema(self._db)
            self._ready = True

        def write(raw: Connection) -> None:
            raw.execute(
                "INSERT INTO web_names (platform, workspace, user_id, name, seen_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, workspace, user_id)"
                " DO UPDATE SET name = excluded.name, seen_at = excluded.seen_at",
                (identity.platform, identity.workspace, identity.user, name, time.time()),
            )

        await self._db.run(write)
        self._access.stored_name(identity, name)

    async def of(self, community: Community) -> dict[str, str]:
        return await self._db.read(lambda raw: names_in(raw, community))
