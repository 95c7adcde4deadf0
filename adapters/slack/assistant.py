"""Slack's AI app surface: the bot's assistant pane (a DM thread) and plain DMs.

When a member opens the pane Slack sends `assistant_thread_started`; the bot answers with
suggested prompts. A request typed in a DM thread titles the thread with it and shows a status
while the job starts, cleared once it has started or been refused. These calls
only decorate: a DM thread that is not an assistant thread, or a workspace without the AI app
feature, answers an error that is logged and ignored, and the job goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.context import Origin
from adapters.slack.text import clip

log = logging.getLogger(__name__)

PROMPTS = (
    {"title": "Draw something", "message": "imagine a red fox in the snow, watercolor"},
    {"title": "Ask a question", "message": "ask why is the sky blue?"},
    {"title": "What would it cost?", "message": "cost video a paper boat on a river"},
    {"title": "What can you do?", "message": "help"},
)
PROMPTS_TITLE = "Runpod models, charged to your quota. Try:"
STATUS = "is working on it…"
TITLE_LIMIT = 80


async def thread_started(client: AsyncWebClient, event: Mapping[str, Any]) -> None:
    """Offer suggested prompts in a newly opened assistant thread."""
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
    if not channel or not thread_ts:
        return
    await _decorate(
        client.assistant_threads_setSuggestedPrompts(
            channel_id=str(channel),
            thread_ts=str(thread_ts),
            prompts=[dict(p) for p in PROMPTS],
            title=PROMPTS_TITLE,
        ),
        "suggested prompts",
    )


async def working(client: AsyncWebClient, origin: Origin, request: str) -> None:
    """Title a DM thread with the request and show a status while its job starts."""
    if origin.reply_thread is None:
        return  # a top-level DM, not a thread of the assistant pane
    channel, thread_ts = origin.channel, origin.reply_thread
    title = clip(request, TITLE_LIMIT) or "Runpod"
    await _decorate(
        client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=title),
        "title",
    )
    await _decorate(
        client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts, status=STATUS),
        "status",
    )


async def done(client: AsyncWebClient, origin: Origin) -> None:
    """Clear the status: the job's card is up, or the request was answered privately."""
    if origin.reply_thread is None:
        return
    await _decorate(
        client.assistant_threads_setStatus(
            channel_id=origin.channel, thread_ts=origin.reply_thread, status=""
        ),
        "status",
    )


async def _decorate(call: Any, what: str) -> None:
    try:
        await call
    except (SlackApiError, SlackClientError) as exc:
        log.info("slack assistant %s not set: %s", what, exc)
