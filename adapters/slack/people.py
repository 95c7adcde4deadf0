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
from typing import Any, Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import SlackSettings
from bot.ledger import Identity
from bot.web import Member

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
        self._profiles: _Cached[dict[str, Any] | str] = _Cached(ttl_s)
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
        profile = await self._profile(user)
        return isinstance(profile, dict) and _is_admin(profile)

    async def name(self, user: str) -> str | None:
        """How Slack shows the member (None when users.info did not say)."""
        profile = await self._profile(user)
        return (display_name(profile) or None) if isinstance(profile, dict) else None

    async def _profile(self, user: str) -> dict[str, Any] | str:
        """users.info's `user`, or why there is none; one call serves the admin check and the
        name for `ttl_s`."""
        return await self._profiles.get(user, lambda: self._fetch_profile(user))

    async def _fetch_profile(self, user: str) -> dict[str, Any] | str:
        answer = await _answer(self._client.users_info(user=user))
        profile = answer.get("user") if isinstance(answer, dict) else answer
        if not isinstance(profile, dict):
            log.warning("users.info for %s failed (%s); not an admin, name unknown", user, answer)
            return str(profile)
        return profile

    async def member_now(self, identity: Identity) -> Member | None:
        """The web page's re-check (uncached): deactivated is gone, admin as Slack says now."""
        answer = await _answer(self._client.users_info(user=identity.user))
        if answer == "user_not_found":
            return None
        profile = answer.get("user") if isinstance(answer, dict) else None
        if not isinstance(profile, dict):
            raise LookupError(f"users.info for {identity.user}: {answer}")
        if profile.get("deleted"):
            return None
        admin = identity.user in self._settings.admin_users or _is_admin(profile)
        return Member(display_name(profile), admin)

    async def _fetch_groups(self) -> dict[str, frozenset[str]]:
        answer = await _answer(self._client.usergroups_list(include_users=True))
        if isinstance(answer, str):
            log.info("usergroups.list failed (%s); roles come from slack.roles only", answer)
            return {}
        members: dict[str, set[str]] = {}
        for group in answer.get("usergroups") or []:
            names = {str(group.get("id", "")), str(group.get("handle", ""))} - {""}
            for user in group.get("users") or []:
                members.setdefault(str(user), set()).update(names)
        return {user: frozenset(names) for user, names in members.items()}


def _is_admin(profile: dict[str, Any]) -> bool:
    return bool(
        profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner")
    )


def display_name(user: dict[str, Any]) -> str:
    """How Slack shows a member: their display name, else real name, else handle."""
    profile = user.get("profile") or {}
    return str(profile.get("display_name") or user.get("real_name") or user.get("name") or "")


async def _answer(call: Awaitable[AsyncSlackResponse]) -> dict[str, Any] | str:
    """Slack's JSON answer to a lookup, or why there is none (an error code, or "not JSON").

    A proxy's HTML page instead of Slack's JSON makes slack_sdk raise a SlackApiError whose
    `response` is the raw HTTP response, or (served as text/plain) an AttributeError from its
    own `validate()`; a lookup that fails either way must not fail the command.
    """
    try:
        answer = await call
    except SlackApiError as exc:
        data = getattr(exc.response, "data", None)  # absent on the raw HTTP response
        error = data.get("error") if isinstance(data, dict) else None
        return str(error or "not JSON")
    except AttributeError:
        return "not JSON"
    return answer.data if isinstance(answer.data, dict) else "not JSON"
