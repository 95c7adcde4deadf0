"""Sign-in through chat: `/web` issues a one-time link; opening it starts a browser session.

A link and a session are each a random token the browser holds; the database keeps only its
SHA-256, so a copy of the database signs nobody in. A link is bound to one member of one
workspace and carries their admin flag as the platform reported it when they asked; it works
once (the redeeming UPDATE matches only an unused, unexpired row) and for `web.link_minutes`.
A session is scoped to that workspace for `web.session_hours`, and carries its own CSRF token.

The tables are the page's own (bot/web/schema.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from bot.jobs.invocation import Community
from bot.ledger.quota import Identity
from bot.storage.sql import Connection, Store
from bot.web.schema import ensure_schema

_MEMBER = "platform, workspace, user_id, roles, name, admin"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, in which workspace, whether an admin, and its CSRF token."""

    identity: Identity
    name: str
    admin: bool
    csrf: str

    @property
    def community(self) -> Community:
        return Community(self.identity.platform, self.identity.workspace)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignIns:
    def __init__(self, db: Store, *, link_minutes: float, session_hours: float) -> None:
        self._db = db
        self._link_s = link_minutes * 60
        self._session_s = session_hours * 3600
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            await ensure_schema(self._db)
            self._ready = True

    async def issue(self, identity: Identity, name: str, *, admin: bool) -> str:
        """A new one-time link token for this member; only its hash is stored."""
        await self._ensure()
        token = secrets.token_urlsafe(32)
        row = (
            _hash(token),
            identity.platform,
            identity.workspace,
            identity.user,
            json.dumps(sorted(identity.roles)),
            name,
            int(admin),
            time.time() + self._link_s,
        )

        def insert(raw: Connection) -> None:
            raw.execute(
                f"INSERT INTO web_links (token_hash, {_MEMBER}, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._db.run(insert)
        return token

    async def redeem(self, link_token: str) -> str | None:
        """The link's token -> a new session token; None when unknown, used or expired."""
        await self._ensure()
        session = secrets.token_urlsafe(32)
        now = time.time()

        def use(raw: Connection) -> bool:
            found = raw.execute(
                f"UPDATE web_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
                f" AND expires_at > ? RETURNING {_MEMBER}",
                (now, _hash(link_token), now),
            ).fetchone()
            if found is None:
                return False
            raw.execute(
                f"INSERT INTO web_sessions (token_hash, {_MEMBER}, csrf, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_hash(session), *found, secrets.token_urlsafe(24), now, now + self._session_s),
            )
            return True

        return session if await self._db.run(use) else None

    async def session(self, token: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, expired or ended)."""
        if not token:
            return None
        await self._ensure()
        row = await self._db.fetchone(
            f"SELECT {_MEMBER}, csrf FROM web_sessions"
            " WHERE token_hash = ? AND ended_at IS NULL AND expires_at > ?",
            (_hash(token), time.time()),
        )
        if row is None:
            return None
        platform, workspace, user, roles, name, admin, csrf = tuple(row)
        identity = Identity(platform, workspace, user, roles=frozenset(json.loads(roles)))
        return Session(identity, name, bool(admin), csrf)

    async def end(self, token: str) -> None:
        """Sign-out: the session stops working at once."""
        await self._update("ended_at = ?", (time.time(),), "token_hash = ?", (_hash(token),))

    async def end_member(self, identity: Identity) -> None:
        """Every session of this member in this workspace ends (revoked by an admin, or the
        member left the workspace)."""
        await self._update("ended_at = ?", (time.time(),), _OF_MEMBER, _member_key(identity))

    async def set_admin(self, identity: Identity, admin: bool) -> None:
        """The member's live sessions take the admin flag the platform reports now."""
        await self._update("admin = ?", (int(admin),), _OF_MEMBER, _member_key(identity))

    async def _update(
        self, change: str, values: tuple[object, ...], where: str, params: tuple[str, ...]
    ) -> None:
        await self._ensure()

        def update(raw: Connection) -> None:
            raw.execute(
                f"UPDATE web_sessions SET {change} WHERE ended_at IS NULL AND {where}",
                (*values, *params),
            )

        await self._db.run(update)


_OF_MEMBER = "platform = ? AND workspace = ? AND user_id = ?"


def _member_key(identity: Identity) -> tuple[str, str, str]:
    return (identity.platform, identity.workspace, identity.user)
