"""Bolt listeners: each acks at once and hands the work to a task the adapter owns.

Slash commands, `app_mention` events, messages in the bot's DM (no mention needed; a first
word that is no command asks a text model), the assistant pane's `assistant_thread_started`
and button clicks all arrive here (over HTTP or Socket
Mode alike). Events Slack redelivers (`X-Slack-Retry-Num`, the same `event_id`) are recognised
by `SlackStore.first_time` and ignored, so a slow moment never produces two answers; a retry of
an event we never saw (the bot was down) is handled as new. Slash commands and clicks are
keyed the same way by (team, trigger_id), which Slack issues once per invocation: a signed
request replayed within its 5-minute window is acknowledged and does nothing (a second paid
job otherwise).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack import assistant, blocks
from adapters.slack.buttons import Buttons, origin_of
from adapters.slack.commands import INFO_COMMANDS, JOB_COMMANDS, SLASH_COMMANDS, Commands
from adapters.slack.context import Origin, SlackContext
from adapters.slack.conversation import conversation_at, take_turn
from adapters.slack.direct import DirectDelivery
from adapters.slack.launch import Asked
from adapters.slack.people import PLATFORM, display_name
from adapters.slack.text import strip_mentions_of
from bot import web as web_page
from bot.ledger import Identity

log = logging.getLogger(__name__)

KNOWN_WORDS = frozenset(JOB_COMMANDS + INFO_COMMANDS)
PEOPLES = (None, "file_share", "thread_broadcast")  # message subtypes a person's post has


async def in_dm(body: dict[str, Any]) -> bool:
    """A message in the bot's DM (thread replies elsewhere belong to conversations)."""
    event = body.get("event") or {}
    return bool(event.get("channel_type") == "im")


def register(app: AsyncApp, ctx: SlackContext, *, bot_user_id: str) -> None:
    listeners = Listeners(ctx, bot_user_id=bot_user_id)
    for name in SLASH_COMMANDS:
        app.command(name)(listeners.on_command)
    app.event("app_mention")(listeners.on_mention)
    # first: Bolt runs one listener
    app.event("message", matchers=[in_dm])(listeners.on_direct_message)
    app.event("message")(listeners.on_message)
    app.event("assistant_thread_started")(listeners.on_thread_started)
    for action_id in blocks.ACTIONS:
        app.action(action_id)(listeners.on_click)
    direct = functools.partial(ctx.delivery, kind=DirectDelivery)
    ctx.core.web.register(PLATFORM, check=ctx.people.member_now, direct=direct)
    app.event("user_change")(listeners.on_user_change)


def retry_of(request: AsyncBoltRequest) -> str | None:
    """Slack's `X-Slack-Retry-Num`, for the log line of an ignored redelivery."""
    return request.headers.get("x-slack-retry-num", [None])[0]


class Listeners:
    """Bolt's entry points (Bolt passes the arguments each names): ack, then a task does the work."""

    def __init__(self, ctx: SlackContext, *, bot_user_id: str) -> None:
        self._ctx = ctx
        self._bot_user_id = bot_user_id
        self._commands = Commands(ctx)
        self._buttons = Buttons(ctx)

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack()
        origin = Origin(
            team=str(command["team_id"]),
            channel=str(command["channel_id"]),
            user=str(command["user_id"]),
            response_url=command.get("response_url"),
        )
        name = str(command["command"]).lstrip("/")
        asked = Asked(name, str(command.get("text", "")))
        run = functools.partial(self._commands.run, origin, asked)
        work = self._once("command", origin.team, command.get("trigger_id"), run)
        self._ctx.tasks.spawn(work, name=f"slack-/{name}-{origin.user}")

    async def on_mention(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        work = self._mention(body, retry_of(request))
        self._ctx.tasks.spawn(work, name=f"slack-mention-{body.get('event_id')}")

    async def on_direct_message(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        work = self._mention(body, retry_of(request), dm=True)
        self._ctx.tasks.spawn(work, name=f"slack-dm-{body.get('event_id')}")

    async def on_thread_started(self, body: dict[str, Any]) -> None:
        work = assistant.thread_started(self._ctx.client, body["event"])
        self._ctx.tasks.spawn(work, name=f"slack-assistant-{body.get('event_id')}")

    async def on_message(self, body: dict[str, Any]) -> None:
        event = body["event"]
        if event.get("subtype") not in (None, "file_share") or event.get("bot_id"):
            return  # edits, joins, other apps' and our own posts
        if not event.get("user") or not event.get("thread_ts"):
            return
        if f"<@{self._bot_user_id}" in str(event.get("text", "")):
            return  # `app_mention` handles it
        self._ctx.tasks.spawn(self._reply(body), name=f"slack-reply-{body.get('event_id')}")

    async def on_click(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = functools.partial(self._buttons.click, body)
        work = self._once("click", origin_of(body).team, body.get("trigger_id"), click)
        self._ctx.tasks.spawn(work, name=f"slack-click-{body.get('trigger_id')}")

    async def _mention(self, body: dict[str, Any], retry: str | None, *, dm: bool = False) -> None:
        ctx = self._ctx
        event = body["event"]
        if not event.get("user") or event.get("bot_id") or event.get("subtype") not in PEOPLES:
            return  # another app's post, an edit or a join; only people's messages start jobs
        keys = (
            f"event:{body.get('event_id')}",
            f"mention:{event.get('channel')}:{event.get('ts')}",
        )
        if not await ctx.store.first_time(*keys):
            log.info("slack event %s already handled (retry %s); ignored", keys[0], retry)
            return
        text = strip_mentions_of(str(event.get("text", "")), self._bot_user_id)
        word, rest = ([*text.split(maxsplit=1), "", ""])[:2]
        origin = Origin(
            team=str(body.get("team_id") or event.get("team")),
            channel=str(event["channel"]),
            user=str(event["user"]),
            thread=str(event.get("thread_ts") or event["ts"]),
            reply_thread=event.get("thread_ts"),
        )
        name = word.strip().lower().lstrip("/")
        files = event.get("files") or []
        conversation = await conversation_at(ctx, origin)
        if conversation is not None and name not in KNOWN_WORDS:  # a turn, mention or not
            await take_turn(ctx, origin, conversation, text, files)
            return
        if dm:
            if name not in KNOWN_WORDS:
                name, rest = "ask", text  # a plain question to the bot
            await assistant.working(ctx.client, origin, text)
        await self._commands.run(origin, Asked(name, rest, files, kind="mention"))
        if dm:
            await assistant.done(ctx.client, origin)

    async def _reply(self, body: dict[str, Any]) -> None:
        """A message in a thread: the next turn, if the thread is a conversation."""
        ctx = self._ctx
        event = body["event"]
        origin = Origin(
            team=str(body.get("team_id") or event.get("team")),
            channel=str(event["channel"]),
            user=str(event["user"]),
            thread=str(event["thread_ts"]),
            reply_thread=str(event["thread_ts"]),
        )
        conversation = await conversation_at(ctx, origin)
        if conversation is None:
            return
        keys = (f"event:{body.get('event_id')}", f"mention:{origin.channel}:{event.get('ts')}")
        if not await ctx.store.first_time(*keys):
            return
        text = str(event.get("text", ""))
        await take_turn(ctx, origin, conversation, text, event.get("files") or [])

    async def _once(
        self, kind: str, team: str, trigger_id: object, work: Callable[[], Awaitable[None]]
    ) -> None:
        """`work`, unless this is a second delivery of the same invocation (same team and
        trigger_id); after the ack, so the answer to Slack never waits for the database."""
        if trigger_id and not await self._ctx.store.first_time(f"{kind}:{team}:{trigger_id}"):
            log.warning("slack %s %s in %s delivered again; ignored", kind, trigger_id, team)
            return
        await work()

    async def on_user_change(self, event: dict[str, Any]) -> None:
        """A member deactivated loses the web page at once; names follow Slack's."""
        user = event.get("user") or {}
        who = Identity(PLATFORM, str(user.get("team_id", "")), str(user.get("id", "")))
        if user.get("deleted"):
            work = web_page.member_left(self._ctx.core, who)
        else:
            work = web_page.member_seen(self._ctx.core, who, display_name(user))
        self._ctx.tasks.spawn(work, name=f"slack-user-change-{who.user}")
