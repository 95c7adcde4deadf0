"""A model's answer streamed into Slack with `chat.startStream` / `appendStream` / `stopStream`.

Slack renders streamed text as markdown, up to 12,000 characters a message; a longer answer
continues in the next message (piece `i` of the text is the job's `stream:i` message). Each
progress update appends only what is new. Where a piece no longer extends what was streamed
(the model's text was rewritten, a stream broke, the bot restarted mid-answer), the message is
set to the piece with `chat.update` and a `markdown` block instead.

A workspace whose Slack refuses the streaming methods (`not_allowed`, `unknown_method`, ...)
raises `StreamRefused` at the first call, before anything is posted; the delivery then edits
plain messages instead, and remembers the refusal for that workspace (`StreamSupport`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.text import clip, split_text

log = logging.getLogger(__name__)

PIECE_LIMIT = 12_000  # a markdown block, and one streamed message
FALLBACK_TEXT_LIMIT = 3000  # the notification text next to a markdown block
STREAM = "stream:"
# What Slack answers where a workspace or token cannot stream (docs.slack.dev, chat.startStream).
REFUSALS = frozenset(
    {
        "not_allowed",
        "unknown_method",
        "not_allowed_token_type",
        "missing_scope",
        "feature_not_enabled",
        "method_deprecated",
    }
)
UNKNOWN = "\x00"  # what a message shows when the bot does not know (streamed before a restart)

Remember = Callable[[str, str, str], Awaitable[None]]  # kind, channel, ts


class StreamRefused(Exception):
    """Slack will not stream in this workspace; nothing was posted."""


class StreamBroken(Exception):
    """A stream stopped taking text; what it shows is fixed by the final rewrite."""


@dataclass
class StreamSupport:
    """Workspaces whose Slack refused the streaming methods (shared by every delivery)."""

    refused: set[str] = field(default_factory=set)


def markdown_message(piece: str) -> dict[str, Any]:
    """`chat.postMessage` / `chat.update` fields showing `piece` as a markdown block."""
    return {
        "text": clip(piece, FALLBACK_TEXT_LIMIT),
        "blocks": [{"type": "markdown", "text": piece}],
    }


class AnswerStream:
    """One job's answer: its streamed messages and the stream still open, if any."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread: str,
        team: str,
        user: str,
        posted: Mapping[str, tuple[str, str]],
        remember: Remember,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread = thread
        self._team = team
        self._user = user
        self._remember = remember
        earlier = sorted(
            (int(k[len(STREAM) :]), v) for k, v in posted.items() if k.startswith(STREAM)
        )
        self._messages: list[tuple[str, str]] = [where for _, where in earlier]
        self._sent: list[str] = [UNKNOWN] * len(self._messages)
        self._open: AsyncChatStream | None = None

    async def write(self, text: str, *, final: bool) -> list[tuple[str, str]]:
        """Show `text` (already escaped); returns the messages no longer needed (on `final`)."""
        shown = "".join(self._sent)
        if UNKNOWN not in shown and text.startswith(shown):
            await self._append(text[len(shown) :])
            if UNKNOWN not in self._sent:
                if final:
                    await self._stop()
                return []
        if not final:
            return []  # rewritten while running (or unknown after a restart): the end fixes it
        return await self._rewrite(text)

    async def close(self) -> None:
        """End an open stream (the job ended without a final text)."""
        await self._stop()

    async def _append(self, new: str) -> None:
        """Stream `new` after what is shown, opening a new message where one fills up."""
        while new:
            if self._open is None:
                await self._start()
            room = PIECE_LIMIT - len(self._sent[-1])
            part = new if len(new) <= room else new[: cut_point(new, room)]
            try:
                await self._send(part)
            except StreamBroken:
                return
            new = new[len(part) :]
            if new:
                await self._stop()

    async def _start(self) -> None:
        self._open = await self._client.chat_stream(
            channel=self._channel,
            thread_ts=self._thread,
            recipient_team_id=self._team,
            recipient_user_id=self._user,
            buffer_size=1,  # the core already throttles progress: send each update as it comes
        )
        self._sent.append("")

    async def _send(self, part: str) -> None:
        assert self._open is not None
        try:
            await self._open.append(markdown_text=part)
        except SlackApiError as exc:
            if not self._messages and exc.response.get("error") in REFUSALS:
                raise StreamRefused(str(exc.response.get("error"))) from exc
            if not self._messages:
                raise  # nothing posted yet: the delivery's own retries apply
            # The stream broke (expired, stopped elsewhere): the final text is set by chat.update.
            log.warning(
                "slack stream %s broke (%s); the answer is completed by an edit", self._open.ts, exc
            )
            self._open = None
            self._sent[-1] = UNKNOWN
            raise StreamBroken from exc
        index = len(self._sent) - 1
        if index == len(self._messages) and self._open.ts:
            self._messages.append((self._channel, self._open.ts))
            await self._remember(f"{STREAM}{index}", self._channel, self._open.ts)
        self._sent[index] += part

    async def _rewrite(self, text: str) -> list[tuple[str, str]]:
        """Set every message to its piece of `text` (split afresh); extra ones are returned."""
        await self._stop()
        pieces = split_text(text, PIECE_LIMIT)
        for index, piece in enumerate(pieces):
            if index < len(self._messages):
                channel, ts = self._messages[index]
                await self._client.chat_update(channel=channel, ts=ts, **markdown_message(piece))
                continue
            answer = await self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread, **markdown_message(piece)
            )
            channel, ts = str(answer["channel"]), str(answer["ts"])
            self._messages.append((channel, ts))
            await self._remember(f"{STREAM}{index}", channel, ts)
        extra = self._messages[len(pieces) :]
        del self._messages[len(pieces) :]
        self._sent = pieces
        return extra

    async def _stop(self) -> None:
        stream, self._open = self._open, None
        if stream is None or stream.ts is None:
            return
        try:
            await stream.stop()
        except (SlackApiError, SlackClientError) as exc:
            log.warning("slack stream %s could not be stopped: %s", stream.ts, exc)


def cut_point(text: str, room: int) -> int:
    """Where to end a full message: the last paragraph, line or space break within `room`,
    never inside an entity (`&amp;`)."""
    window = text[:room]
    for mark in ("\n\n", "\n", " "):
        at = window.rfind(mark)
        if at > 0:
            return at + len(mark)
    amp = window.rfind("&", max(0, room - 5))
    return amp if amp > 0 and ";" not in window[amp:] else room
