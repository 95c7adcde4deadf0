"""What the adapters tell the web page about members, without the core knowing any platform.

An adapter registers, per platform, how to ask the platform about a member now (`MemberCheck`)
and how to post to a member directly (a DeliveryFactory whose `Route.DIRECT` is a DM), and
reports events: a member seen with a name (names on the pages), a member gone from the
workspace (their sessions end at once). Sessions are re-checked through `MemberCheck`: on every
admin page (the admin flag from sign-in is not trusted alone) and on other pages at most every
`RECHECK_S`, so a member who left or lost admin loses the page even without the events.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.delivery import DeliveryFactory
from bot.ledger.quota import Identity

RECHECK_S = 60.0


@dataclass(frozen=True)
class Member:
    """A member as the platform reports them now."""

    name: str
    admin: bool


# The member now; None when they are no longer in the workspace. Raises LookupError when the
# platform cannot tell (then the session stands as it was).
MemberCheck = Callable[[Identity], Awaitable[Member | None]]


@dataclass
class WebAccess:
    """The adapters' registrations, held by the core (`Core.web`)."""

    checks: dict[str, MemberCheck] = field(default_factory=dict)
    direct: dict[str, DeliveryFactory] = field(default_factory=dict)
    _checked: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _names: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def register(
        self, platform: str, *, check: MemberCheck, direct: DeliveryFactory | None = None
    ) -> None:
        self.checks[platform] = check
        if direct is not None:
            self.direct[platform] = direct

    def due(self, identity: Identity, *, always: bool) -> MemberCheck | None:
        """The check to run for this member now, if one is registered and due."""
        check = self.checks.get(identity.platform)
        key = (identity.platform, identity.workspace, identity.user)
        now = time.monotonic()
        if check is None or (not always and now - self._checked.get(key, -RECHECK_S) < RECHECK_S):
            return None
        self._checked[key] = now
        return check

    def known_name(self, identity: Identity) -> str | None:
        """The name this process last stored for the member (None: none yet)."""
        return self._names.get((identity.platform, identity.workspace, identity.user))

    def stored_name(self, identity: Identity, name: str) -> None:
        self._names[(identity.platform, identity.workspace, identity.user)] = name
