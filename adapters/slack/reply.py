"""Telling one person something only they see (errors, refusals, confirmations, usage).

The `response_url` of a command or click is tried first: it works even where the bot is not a
member, but only for 30 minutes and 5 posts. After that (or after a restart, when jobs end long
after the click) `chat.postEphemeral` in the channel, and as a last resort a DM from the bot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.text import escape
from bot.errors import BotError

log = logging.getLogger(__name__)

RESPONSE_URL_TTL_S = 29 * 60  # Slack's is 30 minutes; a minute of margin
# Said from an exception path, which cannot know whether a job was held or ran: no word on money
# here (a job's own messages say what it cost, from its committed state).
APOLOGY = "Sorry, something went wrong on my side (it has been logged)."


@dataclass(frozen=True)
class Audience:
    """Who to tell, and where: the user, their channel and thread, and a response_url if any."""

    channel: str
    user: str
    thread: str | None = None
    response_url: str | None = None
    response_url_at: float = 0.0

    def fresh_response_url(self) -> str | None:
        if self.response_url and time.time() - self.response_url_at < RESPONSE_URL_TTL_S:
            return self.response_url
        return None


class Replies:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def outcome(self, to: Audience, what: str, work: Awaitable[str | None]) -> None:
        """Run one request's work and tell `to` how it went; the one place errors become replies.

        A `BotError`'s message is shown as it is (escaped: it may quote user text); anything
        else is a bug, logged with its traceback, and the user gets a short apology.
        """
        try:
            reply = await work
        except BotError as exc:
            reply = escape(exc.message)
        except Exception:
            log.exception("slack %s from %s failed", what, to.user)
            reply = APOLOGY
        if reply:
            await self.ephemeral(to, reply)

    async def ephemeral(
        self, to: Audience, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        """Best effort: a reply that cannot be delivered anywhere is logged, never raised."""
        url = to.fresh_response_url()
        if url and await self._via_response_url(url, text, blocks):
            return
        try:
            await self._client.chat_postEphemeral(
                channel=to.channel, user=to.user, text=text, blocks=blocks, thread_ts=to.thread
            )
            return
        except SlackApiError as exc:
            log.info("ephemeral reply in %s failed (%s); trying a DM", to.channel, _error(exc))
        try:
            await self._client.chat_postMessage(channel=to.user, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("could not reply to %s anywhere: %s", to.user, _error(exc))

    async def respond(self, url: str, **body: Any) -> bool:
        """Post to a response_url (replace or delete the clicked message); False if refused."""
        try:
            response = await AsyncWebhookClient(url).send_dict(body)
        except (SlackClientError, aiohttp.ClientError, OSError) as exc:
            log.info("response_url post failed: %s", exc)
            return False
        return response.status_code == 200

    async def _via_response_url(
        self, url: str, text: str, blocks: Sequence[dict[str, Any]] | None
    ) -> bool:
        body: dict[str, Any] = {"response_type": "ephemeral", "text": text}
        if blocks:
            body["blocks"] = list(blocks)
        return await self.respond(url, **body)


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "error")) if exc.response is not None else str(exc)
