"""Notices for the people who run the bot, posted where they look: each platform's admin channel.

The core knows what is worth an operator's attention (the ledger drifting from Runpod's bill);
adapters know how to post. An adapter with an admin channel configured (`discord.admin_channel`,
`slack.admin_channel`) registers a `Post` here; `AdminNotices.post` sends to every registered
channel and never raises: a channel that refuses is logged, and every notice is logged anyway,
so nothing is lost where no channel is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Post = Callable[[str], Awaitable[None]]


class AdminNotices:
    def __init__(self) -> None:
        self._channels: dict[str, Post] = {}

    def register(self, platform: str, post: Post) -> None:
        self._channels[platform] = post

    async def post(self, text: str) -> list[str]:
        """Send `text` to every admin channel; the platforms that took it."""
        reached = []
        for platform, post in self._channels.items():
            try:
                await post(text)
            except Exception as exc:  # a notice must never stop the check that raised it
                log.warning("admin notice to %s failed: %s", platform, exc)
                continue
            reached.append(platform)
        return reached
