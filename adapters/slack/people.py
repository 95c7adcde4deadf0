"""Who someone is to the bot: their quota identity, their roles, whether they are an admin.

Roles are the handles (and ids) of the Slack user groups a member belongs to, plus the role
names `slack.roles` gives them; `quotas.roles` tiers are keyed by those names. Admins are the
ids in `slack.admin_users` and the workspace's admins and owners (`users.info`). Both lookups
are cached for a few minutes: one click must not cost two API calls. User groups need a paid
plan; on a free workspace `usergroups.list` is refused and only the configured roles count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.quota import Identity

log = logging.getLogger(__name__)

PLATFORM = "slack"
CACHE_S = 300.0
T = TypeVar("T")


class _Cached(Generic[T]):
    """One value per key, fetched again after `ttl_s`."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._values: dict[str, tuple[float, T]] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        hit = self._values.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        value = await fetch()
        self._values[key] = (time.monotonic(), value)
        return value


class People:
    def __init__(
        self, client: AsyncWebClient, settings: SlackSettings, *, ttl_s: float = CACHE_S
    ) -> None:
        self._client = client
        self._settings = settings
        self._admins: _Cached[bool] = _Cached(ttl_s)
        self._groups: _Cached[dict[str, frozenset[str]]] = _Cached(ttl_s)

    async def identity(self, team: str, user: str) -> Identity:
        return Identity(PLATFORM, team, user, roles=await self.roles(user))

    async def roles(self, user: str) -> frozenset[str]:
        configured = {name for name, ids in self._settings.roles.items() if user in ids}
        groups = await self._groups.get("all", self._fetch_groups)
        return frozenset(configured) | groups.get(user, frozenset())

    async def is_admin(self, user: str) -> bool:
        if user in self._settings.admin_users:
            return True
        return await self._admins.get(user, lambda: self._fetch_admin(user))

    async def _fetch_admin(self, user: str) -> bool:
        try:
            answer = await self._client.users_info(user=user)
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user, exc.response.get("error"))
            return False
        profile = answer.get("user") or {}
        return bool(
            profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner")
        )

    async def _fetch_groups(self) -> dict[str, frozenset[str]]:
        try:
            answer = await self._client.usergroups_list(include_users=True)
        except SlackApiError as exc:
            log.info("user groups unavailable (%s); roles come from slack.roles only", exc)
            return {}
        members: dict[str, set[str]] = {}
        for group in answer.get("usergroups") or []:
            names = {str(group.get("id", "")), str(group.get("handle", ""))} - {""}
            for user in group.get("users") or []:
                members.setdefault(str(user), set()).update(names)
        return {user: frozenset(names) for user, names in members.items()}
