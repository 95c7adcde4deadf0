"""A fake Discord on 127.0.0.1 that the real discord.py client logs in to, for wire tests.

It serves the REST API under `/api/v10` and the gateway websocket at `/gateway`, delivers slash
commands, autocomplete and button clicks the way Discord does, and records every message the bot
creates or edits (with the exact uploaded bytes) so tests assert on what a user would see.

Typical test (see tests/discord/test_fake_discord.py for complete ones)::

    async with FakeDiscord() as fake:
        with point_discord_py_at(fake):
            client = MyBot(intents=discord.Intents.default(), guild_ready_timeout=0.05)
            async with client:
                task = asyncio.create_task(client.start(fake.bot_token))
                await asyncio.wait_for(client.wait_until_ready(), 5)
                sent = await fake.slash_command("imagine", {"prompt": "a cat"})
                assert (await sent.response())["type"] == 5        # deferred
                done = await sent.wait_for_message(lambda m: bool(m.attachments))
                assert done.attachments[0].content_type == "image/png"
                await client.close()
                await task

What Discord behaviour is modelled, because the bot must cope with it:
- Bot routes need `Authorization: Bot <token>` (401 `{"message": "401: Unauthorized", "code": 0}`);
  interaction callbacks and webhooks do not.
- An interaction must be acknowledged within `callback_window` seconds (3, as on Discord), else
  404 10062 "Unknown interaction"; acknowledging twice is 400 40060. Its token then works for
  `token_lifetime` seconds (15 minutes); after that, or after `expire_token()`, every webhook call
  answers 401 `{"message": "Invalid Webhook Token", "code": 50027}`. `advance_clock()` ages all.
- The first follow-up after a deferred response edits the "thinking" message instead of adding one.
- Files above the guild's `upload_limit` (default 10 MiB) are refused with 413 code 40005; the same
  number is sent as the interaction's `attachment_size_limit`. Content over 2,000 characters,
  more than 10 embeds or an embed description over 4,096, more than 5 rows of 5 components, and
  empty messages are refused as Discord does (400 with code 50035 or 50006). A Components V2
  message (flag 1 << 15) is checked as `discord_components` says (no content or embeds, the
  documented nesting, gallery URLs naming its own files); the flag, once set, stays.
- `rate_limit(route, times=n)` makes the next n calls to a route answer 429 with the headers and
  body discord.py needs to wait and retry.
- Commands must have been synced (`tree.sync()`) before a user can run them; a command the user
  may not see (contexts, `default_member_permissions`) cannot be run either.
- A channel message sent with a `nonce` and `enforce_nonce` repeats nothing: if the bot sent one
  with the same nonce to the same channel within `nonce_window` seconds (Discord says "the past
  few minutes"; 5 here), that message is returned and no new one is created.
- `POST /users/@me/channels` opens the DM channel with a user (one per user, the same id each
  time, `dm_channel(user)` in tests); the bot's messages there are stored like a channel's.
  A guild channel refuses the bot's messages with 403 50013 when the guild's permissions lack
  View Channel or Send Messages (or Attach Files for uploads).
- `user_message()` posts a member's message (a reply with `reply_to`, as Discord's reply with its
  default ping: the replied-to author is in `mentions`) and sends MESSAGE_CREATE to a session
  with the GUILD_MESSAGES intent. As on Discord, `content` (and attachments) arrive empty unless
  the session has MESSAGE_CONTENT or the bot is mentioned. In the member's DM with the bot it
  goes to a session with DIRECT_MESSAGES (no `guild_id`), content included, as Discord sends
  "content in DMs with the app"; from a group DM the bot hears nothing (it is never a member).
  `start_thread(message)` opens a public thread on a message (its id is the message's) and
  sends THREAD_CREATE.
Not modelled: channel permission overwrites, private threads, thread members, select menus and
modals beyond recording the callback, replay of missed events on RESUME.

Two things tests must do: wait for the last thing the bot does (its final follow-up, say) before
closing the client, or that request meets a stopped server; and leave `async with FakeDiscord()`
normally, which re-raises any exception the fake hit while serving (`fake.errors`), because
discord.py silently retries the resulting 500s.

discord.py 2.7 imports the stdlib `audioop`, which warns with DeprecationWarning on Python 3.11+;
with `filterwarnings = error` a test module must import discord under `warnings.catch_warnings()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import mimetypes
import re
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import yarl
from aiohttp import BodyPartReader, web

from tests.fakes.discord_components import IS_COMPONENTS_V2, gallery, texts, v2_problems
from tests.fakes.discord_gateway import (
    ATTACH_FILES,
    DEFAULT_UPLOAD_LIMIT,
    DIRECT_MESSAGES_INTENT,
    DM,
    GROUP_DM,
    GUILD_MEMBERS_INTENT,
    GUILD_MESSAGES_INTENT,
    MESSAGE_CONTENT_INTENT,
    PUBLIC_THREAD,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeChannel,
    FakeGuild,
    FakeRole,
    FakeUser,
    Gateway,
    Upload,
    channel_payload,
    command_data,
    guild_payload,
    interaction_payload,
    iso,
    load_fixture,
    member_payload,
    snowflake,
    thread_payload,
    usable_command,
)

__all__ = [
    "Attachment",
    "Button",
    "DiscordPyPatch",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeRole",
    "FakeUser",
    "Message",
    "MessageEvent",
    "RecordedRequest",
    "SentInteraction",
    "Upload",
    "point_discord_py_at",
]

API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6
LOADING = 1 << 7
_FILE_FIELD = re.compile(r"files\[(\d+)\]")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Files = dict[int, tuple[str, bytes, str | None]]


@dataclass(frozen=True)
class Attachment:
    """A stored file: exactly the bytes that were uploaded, and the type Discord would report."""

    id: int
    filename: str
    content_type: str | None
    data: bytes = field(repr=False)
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Button:
    custom_id: str | None = None
    label: str | None = None
    style: int = 1
    disabled: bool = False
    url: str | None = None


@dataclass(frozen=True)
class Message:
    """One version of a message as Discord holds it; edits produce a new `version`.

    `payload` is the JSON the fake answered the bot with (and sends along with a button click).
    `interaction_id` is the interaction whose token created it (None for plain channel messages).
    """

    id: int
    channel_id: int
    guild_id: int | None
    content: str
    embeds: tuple[dict[str, Any], ...]
    components: tuple[dict[str, Any], ...]
    attachments: tuple[Attachment, ...]
    flags: int
    allowed_mentions: dict[str, Any] | None
    interaction_id: int | None
    created_at: datetime
    edited_at: datetime | None = None
    version: int = 0
    nonce: str | None = None
    payload: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred response's "Bot is thinking..." placeholder."""
        return bool(self.flags & LOADING)

    @property
    def buttons(self) -> list[Button]:
        """Every button, in display order, inside action rows or other containers."""

        def walk(components: Sequence[dict[str, Any]]) -> Iterator[Button]:
            for c in components:
                if c.get("type") == 2:
                    fields = ("custom_id", "label", "style", "disabled", "url")
                    yield Button(**{k: c[k] for k in fields if k in c})
                yield from walk(c.get("components", []))

        return list(walk(self.components))

    @property
    def texts(self) -> list[str]:
        """A Components V2 message's text displays, in display order."""
        return texts(self.components)

    @property
    def gallery(self) -> list[str]:
        """A Components V2 message's media gallery URLs (`attachment://name` for its files)."""
        return gallery(self.components)

    def button(self, custom_id: str) -> Button:
        for candidate in self.buttons:
            if candidate.custom_id == custom_id:
                return candidate
        raise LookupError(f"message {self.id} has no button {custom_id!r}: {self.buttons}")

    def attachment(self, filename: str) -> Attachment:
        for candidate in self.attachments:
            if candidate.filename == filename:
                return candidate
        raise LookupError(f"message {self.id} has no attachment {filename!r}")


@dataclass(frozen=True)
class MessageEvent:
    """One entry of `FakeDiscord.history`: what happened to a message, through which route."""

    action: Literal["create", "edit", "delete"]
    message: Message
    route: str
    interaction_id: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    route: str | None
    path: str
    status: int


@dataclass(eq=False)
class SentInteraction:
    """An interaction the fake delivered to the bot. Await its outcome; never sleep for it."""

    id: int
    token: str = field(repr=False)
    type: int
    user: FakeUser = field(repr=False)
    guild: FakeGuild | None = field(repr=False)
    channel: FakeChannel = field(repr=False)
    payload: dict[str, Any] = field(repr=False)
    fake: FakeDiscord = field(repr=False)
    issued_at: float = field(default=0.0, repr=False)
    #: `{"type": ..., "data": ...}` exactly as the bot posted it to the callback route.
    callback: dict[str, Any] | None = None
    original_message_id: int | None = None

    @property
    def upload_limit(self) -> int:
        return int(self.payload["attachment_size_limit"])

    async def response(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """The interaction callback (respond, defer, update, autocomplete result...)."""
        return await self.fake._wait(lambda: self.callback, timeout, f"callback to {self}")

    async def choices(self, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The choices an autocomplete interaction was answered with."""
        callback = await self.response(timeout=timeout)
        return list(callback["data"]["choices"])

    async def original(
        self, predicate: Callable[[Message], bool] = lambda m: True, *, timeout: float = 5.0
    ) -> Message:
        """Current state of the original response (for a click: the clicked message)."""

        def check() -> Message | None:
            message = self.fake.messages.get(self.original_message_id or 0)
            return message if message is not None and predicate(message) else None

        return await self.fake._wait(check, timeout, f"original response of {self}")

    @property
    def messages(self) -> list[Message]:
        """Current state of the original response and every follow-up, oldest first."""
        return [
            m
            for m in self.fake.messages.values()
            if m.interaction_id == self.id or m.id == self.original_message_id
        ]

    async def wait_for_message(
        self, predicate: Callable[[Message], bool] = lambda m: True, *, timeout: float = 5.0
    ) -> Message:
        """Newest message of this interaction that satisfies `predicate`, waiting if needed."""

        def check() -> Message | None:
            return next((m for m in reversed(self.messages) if predicate(m)), None)

        return await self.fake._wait(check, timeout, f"matching message of {self}")


class _ApiError(Exception):
    """Raised by handlers; becomes Discord's JSON error body."""

    def __init__(self, status: int, message: str, code: int, errors: Any = None) -> None:
        super().__init__(message)
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors is not None:
            self.body["errors"] = errors
        self.status = status


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    # discord.py only parses JSON when Content-Type is exactly "application/json" (no charset).
    data = json.dumps(body).encode()
    return web.Response(status=status, body=data, content_type="application/json", headers=headers)


def _id(request: web.Request, name: str) -> int:
    """A snowflake path parameter; 0 (which matches nothing) when it is not a number."""
    value = request.match_info[name]
    return int(value) if value.isdigit() else 0


def _route_of(request: web.Request) -> str | None:
    """The route's name as `rate_limit` and `RecordedRequest` spell it, e.g. "GET /users/@me"."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return f"{request.method} {resource.canonical.removeprefix(API_PREFIX)}"


def _parse_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise _ApiError(400, "The request body contains invalid JSON.", 50109) from exc


async def _read_body(request: web.Request) -> tuple[dict[str, Any], _Files]:
    """JSON body, or multipart `payload_json` + `files[n]` as discord.py sends uploads."""
    if not request.content_type.startswith("multipart/"):
        return _parse_json(await request.read()), {}
    payload: dict[str, Any] = {}
    files: _Files = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            payload = _parse_json(await part.text())
        elif match := _FILE_FIELD.fullmatch(part.name or ""):
            data = bytes(await part.read())
            files[int(match[1])] = (part.filename or "file", data, part.headers.get("Content-Type"))
    return payload, files


def _check_message(
    body: dict[str, Any], files: _Files, upload_limit: int, *, creating: bool
) -> None:
    """Refuse what Discord refuses: files over the limit, over-long text, too many embeds or
    components (platforms.md's table), empty messages."""
    if any(len(data) > upload_limit for _, data, _ in files.values()):
        raise _ApiError(413, "Request entity too large", 40005)
    content, embeds, rows = (
        body.get("content") or "",
        body.get("embeds") or [],
        body.get("components") or [],
    )
    problems = {}
    if len(content) > 2000:
        problems["content"] = "Must be 2000 or fewer in length."
    if len(embeds) > 10 or any(len(e.get("description") or "") > 4096 for e in embeds):
        problems["embeds"] = "At most 10 embeds, each description 4096 or fewer in length."
    if int(body.get("flags") or 0) & IS_COMPONENTS_V2:
        names = {name for name, _, _ in files.values()}
        names |= {str(a["filename"]) for a in body.get("attachments") or [] if "filename" in a}
        problems.update(v2_problems(body, names))
    elif len(rows) > 5 or any(len(row.get("components", [])) > 5 for row in rows):
        problems["components"] = "At most 5 action rows of 5 components."
    if problems:
        errors = {
            key: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": text}]}
            for key, text in problems.items()
        }
        raise _ApiError(400, "Invalid Form Body", 50035, errors)
    if creating and not (content or embeds or rows or files or body.get("attachments")):
        raise _ApiError(400, "Cannot send an empty message", 50006)


class FakeDiscord:
    """Discord's REST API and gateway on an OS-chosen 127.0.0.1 port.

    Everything a test may read is a public attribute: `messages` (current state by id),
    `history` (every create/edit/delete), `requests` (every REST call with its status),
    `interactions`, `commands` (synced, by guild id or None for global) and `gateway.identifies`.
    State changes wake `wait_for_message` and the `SentInteraction` waiters; nothing polls.
    """

    def __init__(
        self,
        *,
        bot_token: str = "fake-bot-token",
        application_id: int | None = None,
        guilds: Sequence[FakeGuild] | None = None,
        user: FakeUser | None = None,
        privileged_intents: int = 0,
        recommended_shards: int = 1,
        token_lifetime: float = 15 * 60,
        callback_window: float | None = 3.0,
        dm_upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        self.bot_token = bot_token
        self.application_id = application_id or snowflake()
        self.application_flags = 0
        #: The bot's own account; on Discord its id equals the application id.
        self.bot_user = FakeUser("fake-bot", id=self.application_id, bot=True)
        #: The person who runs commands and clicks buttons unless a test names another user.
        self.user = user or FakeUser("tester", global_name="Tester")
        self.guilds = list(guilds) if guilds is not None else [FakeGuild()]
        for guild in self.guilds:
            guild.add_member(self.bot_user)
            guild.add_member(self.user)
        #: Privileged intent bits "switched on in the developer portal"; others close with 4014.
        self.privileged_intents = privileged_intents
        self.recommended_shards = recommended_shards
        self.token_lifetime = token_lifetime
        self.callback_window = callback_window
        self.dm_upload_limit = dm_upload_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms

        self.messages: dict[int, Message] = {}
        self.history: list[MessageEvent] = []
        self.requests: list[RecordedRequest] = []
        #: How often each attachment (by id) was downloaded from the CDN route.
        self.downloads: dict[int, int] = {}
        #: Exceptions raised while serving the bot; leaving `async with` re-raises the first.
        self.errors: list[Exception] = []
        self.interactions: dict[int, SentInteraction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.gateway = Gateway(self)
        self._dms: dict[int, FakeChannel] = {}
        self._threads: dict[int, tuple[FakeChannel, FakeGuild]] = {}
        self._by_token: dict[str, SentInteraction] = {}
        self._files: dict[int, Attachment] = {}
        self._rate_limits: dict[str, tuple[int, float, bool]] = {}
        self._outages: dict[str, int] = {}  # route -> HTTP status, until end_outage
        #: (channel id, nonce) -> (message id, when) of messages sent with `enforce_nonce`.
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self.nonce_window = 5 * 60.0
        self._clock_offset = 0.0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ----- lifecycle and addresses -------------------------------------------------------------

    async def start(self) -> None:
        # aiohttp refuses bodies over 1 MiB by default, multipart parts included.
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        for method, template, handler in self._routes():
            app.router.add_route(method, API_PREFIX + template, handler)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._get_attachment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc is None and self.errors:
            raise RuntimeError(f"fake Discord failed {len(self.errors)} time(s)") from self.errors[
                0
            ]

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """What discord.py's `Route.BASE` must be, e.g. http://127.0.0.1:PORT/api/v10."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def guild(self) -> FakeGuild:
        """The first guild: where commands run unless a test says otherwise."""
        return self.guilds[0]

    @property
    def route_keys(self) -> list[str]:
        """Names accepted by `rate_limit`, e.g. "POST /channels/{channel_id}/messages"."""
        return [f"{method} {template}" for method, template, _ in self._routes()]

    # ----- test controls -----------------------------------------------------------------------

    def advance_clock(self, seconds: float) -> None:
        """Age every interaction, as if `seconds` passed (token lifetime, 3 s callback window)."""
        self._clock_offset += seconds

    def expire_token(self, token: str) -> None:
        """Make one interaction token as old as Discord's 15-minute limit, and past it."""
        self._by_token[token].issued_at = self._now() - self.token_lifetime - 1

    def expire_attachment(self, url: str) -> None:
        """The signed CDN link of an attachment expired (about a day on Discord): it answers 404."""
        attachment_id = int(url.split("/attachments/", 1)[1].split("/", 1)[0])
        del self._files[attachment_id]

    def rate_limit(
        self, route: str, *, times: int = 1, retry_after: float = 0.05, is_global: bool = False
    ) -> None:
        """Answer the next `times` calls to `route` (see `route_keys`) with a 429."""
        if route not in self.route_keys:
            raise KeyError(f"unknown route {route!r}; known: {self.route_keys}")
        self._rate_limits[route] = (times, retry_after, is_global)

    def outage(self, route: str, status: int = 502) -> None:
        """Answer every call to `route` (see `route_keys`) with `status` until `end_outage`."""
        if route not in self.route_keys:
            raise KeyError(f"unknown route {route!r}; known: {self.route_keys}")
        self._outages[route] = status

    def end_outage(self, route: str) -> None:
        self._outages.pop(route, None)

    async def wait_for_message(
        self, predicate: Callable[[Message], bool] = lambda m: True, *, timeout: float = 5.0
    ) -> Message:
        """Newest current (not deleted) message satisfying `predicate`, waiting for it if needed."""

        def check() -> Message | None:
            return next((m for m in reversed(self.messages.values()) if predicate(m)), None)

        return await self._wait(check, timeout, "message matching the predicate")

    def versions(self, message_id: int) -> list[Message]:
        """Every version of one message, oldest first (the last is the current one)."""
        return [e.message for e in self.history if e.message.id == message_id]

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between the bot and `user` (created on first use)."""
        for channel in self._dms.values():
            if channel.recipient is user:
                return channel
        channel = FakeChannel("", type=DM, recipient=user)
        self._dms[channel.id] = channel
        return channel

    def group_dm(self, name: str = "friends") -> FakeChannel:
        """A group DM of members (the bot is never in one; a user install is used there)."""
        channel = FakeChannel(name, type=GROUP_DM)
        self._dms[channel.id] = channel
        return channel

    def find_channel(self, channel_id: int) -> tuple[FakeChannel, FakeGuild | None] | None:
        """A guild channel with its guild, or a DM channel with None."""
        for guild in self.guilds:
            for channel in guild.channels:
                if channel.id == channel_id:
                    return channel, guild
        if channel_id in self._threads:
            return self._threads[channel_id]
        return (self._dms[channel_id], None) if channel_id in self._dms else None

    # ----- members' messages and threads ------------------------------------------------------

    async def start_thread(
        self, message: Message, name: str = "thread", *, user: FakeUser | None = None
    ) -> FakeChannel:
        """`user` opens a public thread on `message`; like Discord, the thread's id is the
        message's, and THREAD_CREATE goes to the guild's session."""
        parent, guild = self._where(message.channel_id, None, False, user or self.user)
        if guild is None:
            raise LookupError(f"message {message.id} is not in a guild channel")
        thread = FakeChannel(name, id=message.id, type=PUBLIC_THREAD, parent_id=parent.id)
        thread.nsfw = parent.nsfw
        self._threads[thread.id] = (thread, guild)
        session = self.gateway.live_session(guild)
        if session is None:
            raise ConnectionError("no gateway session to send THREAD_CREATE on")
        await session.dispatch("THREAD_CREATE", thread_payload(thread, guild, user or self.user))
        return thread

    async def user_message(
        self,
        content: str,
        *,
        user: FakeUser | None = None,
        channel_id: int | None = None,
        reply_to: Message | None = None,
        mention_bot: bool = False,
        attachments: Sequence[Upload] = (),
    ) -> Message:
        """`user` posts `content` in `channel_id` (default: the first guild's text channel; a DM
        channel from `dm_channel(user)` or `group_dm()` works too); `reply_to` makes it a reply
        (pinging the replied-to author, Discord's default); `mention_bot` starts it with the
        bot's mention; `attachments` are its files. MESSAGE_CREATE goes out as `_send_created`
        says."""
        user = user or self.user
        if reply_to is not None and channel_id is None:
            channel_id = reply_to.channel_id
        channel, guild = self._where(channel_id, None, False, user)
        mentions = [self.bot_user.payload()] if mention_bot else []
        if mention_bot:
            content = f"<@{self.bot_user.id}> {content}"
        replied = reply_to.payload.get("author") if reply_to is not None else None
        if replied is not None and replied not in mentions:
            mentions.append(replied)
        message = Message(
            id=snowflake(),
            channel_id=channel.id,
            guild_id=guild.id if guild else None,
            content=content,
            embeds=(),
            components=(),
            attachments=(),
            flags=0,
            allowed_mentions=None,
            interaction_id=None,
            created_at=datetime.now(UTC),
        )
        payload = {
            "id": str(message.id),
            "channel_id": str(channel.id),
            **self._author_fields(user, channel, guild),
            "content": content,
            "timestamp": iso(message.created_at),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [],
            "attachments": [self._stored(upload) for upload in attachments],
            "embeds": [],
            "components": [],
            "pinned": False,
            "flags": 0,
            "type": 0,
        }
        if reply_to is not None:
            payload["type"] = 19  # REPLY
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(reply_to.id),
                "channel_id": str(reply_to.channel_id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            payload["referenced_message"] = self.messages[reply_to.id].payload
        message = replace(message, payload=payload)
        self.messages[message.id] = message
        await self._send_created(payload, channel, guild)
        return message

    @staticmethod
    def _author_fields(
        user: FakeUser, channel: FakeChannel, guild: FakeGuild | None
    ) -> dict[str, Any]:
        """`author`, and in a guild `guild_id` and the author's `member` (as Discord sends)."""
        if guild is None:
            if channel.type == DM and channel.recipient is not user:
                raise ValueError(f"{user.username} is not in DM channel {channel.id}")
            return {"author": user.payload()}
        member = guild.member(user)
        if member is None:
            raise LookupError(f"{user.username} is not a member of {guild.name}")
        member_data = member_payload(member)
        del member_data["user"]
        return {"guild_id": str(guild.id), "author": user.payload(), "member": member_data}

    async def _send_created(
        self, payload: dict[str, Any], channel: FakeChannel, guild: FakeGuild | None
    ) -> None:
        """MESSAGE_CREATE as Discord sends it to the bot: a guild's to a session with
        GUILD_MESSAGES, `content` and attachments empty unless it has MESSAGE_CONTENT or the bot
        is mentioned; its DM's (no `guild_id`) to a session with DIRECT_MESSAGES, content
        included ("Content in DMs with the app" is one of the intent's documented exceptions);
        a group DM's to nobody, the bot not being a member."""
        if channel.type == GROUP_DM:
            return
        session = self.gateway.live_session(guild)
        if session is None:
            raise ConnectionError("no gateway session to send MESSAGE_CREATE on")
        if not session.intents & (GUILD_MESSAGES_INTENT if guild else DIRECT_MESSAGES_INTENT):
            return
        mentioned = any(m["id"] == str(self.bot_user.id) for m in payload["mentions"])
        if guild is None or session.intents & MESSAGE_CONTENT_INTENT or mentioned:
            await session.dispatch("MESSAGE_CREATE", payload)
            return
        await session.dispatch("MESSAGE_CREATE", {**payload, "content": "", "attachments": []})

    # ----- delivering interactions -------------------------------------------------------------

    async def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        dm: bool = False,
        attachments: Mapping[str, Upload] | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
        user_install: bool = False,
    ) -> SentInteraction:
        """Run `/name` (or "/group sub" as "group sub") as a user would.

        `user_install`: through the app the user installed on their account (a user install),
        not a server's: only global commands offering it (`integration_types` with 1) can run,
        and the interaction's `authorizing_integration_owners` name the user alone.

        `options` maps option names to values: str/int/float/bool, a FakeUser for user options,
        an Upload for attachment options (or pass those as `attachments`). Runs in `channel_id`,
        else in the text channel of `guild_id` (default: the first guild), else in the user's DM
        with the bot when `dm=True`. Waits (up to `timeout`) for the command to be synced and for
        a gateway session to deliver it on; the bot's answer is awaited on the result.
        """
        values = {**(options or {}), **(attachments or {})}
        return await self._command_interaction(
            2, name, values, None, user, guild_id, channel_id, dm, locale, timeout, user_install
        )

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        *,
        focused: str,
        user: FakeUser | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        dm: bool = False,
        locale: str = "en-US",
        timeout: float = 5.0,
    ) -> SentInteraction:
        """Type into option `focused` of `/name`; `await result.choices()` gives the suggestions."""
        return await self._command_interaction(
            4, name, dict(options), focused, user, guild_id, channel_id, dm, locale, timeout
        )

    async def click_button(
        self,
        message: Message | int,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
        timeout: float = 5.0,
    ) -> SentInteraction:
        """Click a button on the current version of `message`, carrying the whole message."""
        message_id = message if isinstance(message, int) else message.id
        current = self.messages.get(message_id)
        if current is None:
            raise LookupError(f"message {message_id} does not exist (deleted?)")
        if current.button(custom_id).disabled:
            raise ValueError(f"button {custom_id!r} is disabled; a user cannot click it")
        channel, guild = self._where(current.channel_id, None, False, self.user)
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._deliver(
            3, data, user or self.user, guild, channel, locale, timeout, message=current
        )

    async def _command_interaction(
        self,
        kind: int,
        name: str,
        values: dict[str, Any],
        focused: str | None,
        user: FakeUser | None,
        guild_id: int | None,
        channel_id: int | None,
        dm: bool,
        locale: str,
        timeout: float,
        user_install: bool = False,
    ) -> SentInteraction:
        user = user or self.user
        channel, guild = self._where(channel_id, guild_id, dm, user)
        root, *path = name.split()
        what = f"/{root} synced and usable by {user.username} in {guild.name if guild else 'a DM'}"
        command = await self._wait(
            lambda: usable_command(
                self.commands,
                root,
                guild,
                user,
                user_install=user_install,
                group_dm=channel.type == GROUP_DM,
            ),
            timeout,
            what,
        )
        data = command_data(command, path, values, focused, guild, self._upload)
        return await self._deliver(
            kind, data, user, guild, channel, locale, timeout, user_install=user_install
        )

    def _where(
        self, channel_id: int | None, guild_id: int | None, dm: bool, user: FakeUser
    ) -> tuple[FakeChannel, FakeGuild | None]:
        if channel_id is not None:
            found = self.find_channel(channel_id)
            if found is None:
                raise LookupError(f"no channel {channel_id} in the fake")
            return found
        if dm:
            return self.dm_channel(user), None
        guild = next((g for g in self.guilds if guild_id in (None, g.id)), None)
        if guild is None:
            raise LookupError(f"no guild {guild_id} in the fake")
        return guild.text_channel, guild

    def _upload(self, upload: Upload) -> dict[str, Any]:
        """A slash command's attachment option (Discord marks those ephemeral)."""
        return {**self._stored(upload), "ephemeral": True}

    def _stored(self, upload: Upload) -> dict[str, Any]:
        stored = self._store_file((upload.filename, upload.data, upload.content_type), {})
        return self._attachment_payload(stored)

    async def _deliver(
        self,
        kind: int,
        data: dict[str, Any],
        user: FakeUser,
        guild: FakeGuild | None,
        channel: FakeChannel,
        locale: str,
        timeout: float,
        *,
        message: Message | None = None,
        user_install: bool = False,
    ) -> SentInteraction:
        what = f"a READY gateway session for {guild.name if guild else 'DMs'}"
        session = await self._wait(lambda: self.gateway.live_session(guild), timeout, what)
        interaction_id, token = snowflake(), "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(96)
        payload = interaction_payload(
            kind=kind,
            interaction_id=interaction_id,
            token=token,
            application_id=self.application_id,
            data=data,
            user=user,
            bot=self.bot_user,
            guild=guild,
            channel=channel,
            upload_limit=self._upload_limit(guild),
            locale=locale,
            message=message.payload if message is not None else None,
            user_install=user_install,
        )
        sent = SentInteraction(
            interaction_id, token, kind, user, guild, channel, payload, self, self._now()
        )
        if message is not None:
            sent.original_message_id = message.id
        self.interactions[interaction_id] = sent
        self._by_token[token] = sent
        await session.dispatch("INTERACTION_CREATE", payload)
        return sent

    # ----- waiting -----------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wait(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    while (found := check()) is None:
                        await self._changed.wait()
            except TimeoutError:
                seen = [(m.id, m.content[:60], len(m.attachments)) for m in self.messages.values()]
                raise TimeoutError(
                    f"fake Discord: no {what} within {timeout}s; messages: {seen}"
                ) from None
        return found

    # ----- HTTP plumbing -----------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Handler]]:
        commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        webhook = "/webhooks/{application_id}/{webhook_token}"
        channel_message = "/channels/{channel_id}/messages/{message_id}"
        return [
            ("GET", "/users/@me", self._get_me),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway),
            ("GET", commands, self._get_commands),
            ("PUT", commands, self._put_commands),
            ("GET", guild_commands, self._get_commands),
            ("PUT", guild_commands, self._put_commands),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self._callback),
            ("POST", webhook, self._post_followup),
            ("GET", webhook + "/messages/{message_id}", self._get_webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", self._patch_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", self._delete_webhook_message),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._post_channel_message),
            ("POST", "/channels/{channel_id}/typing", self._post_typing),
            ("GET", channel_message, self._get_channel_message),
            ("PATCH", channel_message, self._patch_channel_message),
            ("DELETE", channel_message, self._delete_channel_message),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        route = _route_of(request)
        try:
            response = await self._api_call(request, handler, route)
        except _ApiError as exc:
            response = _json(exc.status, exc.body)
        except Exception as exc:  # a bug in the fake: discord.py would retry a 500 silently
            self.errors.append(exc)
            response = _json(500, {"message": "500: Internal Server Error", "code": 0})
        self.requests.append(
            RecordedRequest(request.method, route, request.path_qs, response.status)
        )
        await self._notify()
        return response

    async def _api_call(
        self, request: web.Request, handler: Handler, route: str | None
    ) -> web.StreamResponse:
        if route is None:
            error = request.match_info.http_exception or web.HTTPNotFound()
            raise _ApiError(error.status, f"{error.status}: {error.reason}", 0)
        times, retry_after, is_global = self._rate_limits.get(route, (0, 0.0, False))
        if times > 0:
            self._rate_limits[route] = (times - 1, retry_after, is_global)
            return _too_many_requests(route, retry_after, is_global)
        if route in self._outages:
            status = self._outages[route]
            raise _ApiError(status, f"{status}: Bad Gateway", 0)
        token_route = route.split(" ", 1)[1].startswith(("/webhooks/", "/interactions/"))
        if not token_route and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            raise _ApiError(401, "401: Unauthorized", 0)
        return await handler(request)

    # ----- REST handlers: session ----------------------------------------------------------------

    async def _get_me(self, request: web.Request) -> web.Response:
        return _json(200, {**self.bot_user.payload(), "verified": True, "flags": 0})

    async def _create_dm(self, request: web.Request) -> web.Response:
        """Create DM: the DM channel object (type 1, `recipients`), the same one for the same
        user each time; messages posted to it are stored like any channel's."""
        body = _parse_json(await request.read())
        wanted = str(body.get("recipient_id", ""))
        known = [self.user, *(m.user for g in self.guilds for m in g.members)]
        user = next((u for u in known if str(u.id) == wanted and not u.bot), None)
        if user is None:
            raise _ApiError(400, "Invalid Recipient(s)", 50033)
        return _json(200, channel_payload(self.dm_channel(user), None))

    async def _get_application(self, request: web.Request) -> web.Response:
        payload = load_fixture("application.json")
        del payload["team"]
        owner = self.guild.owner if self.guilds else self.user
        payload.update(
            id=str(self.application_id),
            name=self.bot_user.username,
            description="",
            cover_image=None,
            guild_id=None,
            primary_sku_id=None,
            owner=owner.payload(),
            flags=self.application_flags,
            interactions_endpoint_url=None,
        )
        return _json(200, payload)

    async def _get_gateway(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"url": self.gateway_url}
        if request.path.endswith("/bot"):
            limit = {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            }
            body.update(shards=self.recommended_shards, session_start_limit=limit)
        return _json(200, body)

    def _scope(self, request: web.Request) -> int | None:
        if _id(request, "application_id") != self.application_id:
            raise _ApiError(403, "Missing Access", 50001)
        if "guild_id" not in request.match_info:
            return None
        guild_id = _id(request, "guild_id")
        if not any(g.id == guild_id for g in self.guilds):
            raise _ApiError(403, "Missing Access", 50001)
        return guild_id

    async def _get_commands(self, request: web.Request) -> web.Response:
        return _json(200, self.commands.get(self._scope(request), []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = _parse_json(await request.read())
        previous = {(c["name"], c["type"]): c["id"] for c in self.commands.get(scope, [])}
        stored = []
        for command in body:  # PUT replaces the whole scope; unchanged names keep their ids.
            kind = command.get("type", 1)
            stored.append(
                {
                    "description": "",
                    "default_member_permissions": None,
                    "nsfw": False,
                    **command,
                    "id": previous.get((command["name"], kind)) or str(snowflake()),
                    "type": kind,
                    "application_id": str(self.application_id),
                    "version": str(snowflake()),
                    **({"guild_id": str(scope)} if scope is not None else {}),
                }
            )
        self.commands[scope] = stored
        return _json(200, stored)

    # ----- REST handlers: interactions -----------------------------------------------------------

    async def _callback(self, request: web.Request) -> web.Response:
        sent = self.interactions.get(_id(request, "interaction_id"))
        if sent is None or sent.token != request.match_info["interaction_token"]:
            raise _ApiError(404, "Unknown interaction", 10062)
        if sent.callback is not None:
            raise _ApiError(400, "Interaction has already been acknowledged.", 40060)
        if self.callback_window is not None and self._now() - sent.issued_at > self.callback_window:
            raise _ApiError(404, "Unknown interaction", 10062)
        body, files = await _read_body(request)
        kind, data = int(body["type"]), body.get("data") or {}
        _check_message(data, files, sent.upload_limit, creating=kind == 4)
        sent.callback = {"type": kind, "data": data}
        message = None
        if kind == 5:  # the "Bot is thinking..." placeholder
            data = {"content": "", "flags": LOADING | (data.get("flags", 0) & EPHEMERAL)}
        if kind in (4, 5):
            message = await self._create(
                request, sent.channel, sent.guild, data, files, sent, original=True
            )
        elif kind == 7 and sent.original_message_id is not None:
            message = await self._edit(
                request, self.messages[sent.original_message_id], data, files, sent
            )
        await self._notify()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        return _json(200, self._callback_response(sent, kind, message))

    def _callback_response(
        self, sent: SentInteraction, kind: int, message: Message | None
    ) -> dict[str, Any]:
        body = load_fixture("interaction_callback_response.json")
        answered = self.messages.get(sent.original_message_id or 0)
        body["interaction"] = {"id": str(sent.id), "type": sent.type}
        if kind in (4, 5, 6, 7) and answered is not None:
            body["interaction"].update(
                response_message_id=str(answered.id),
                response_message_loading=answered.loading,
                response_message_ephemeral=answered.ephemeral,
            )
        body["resource"] = {"type": kind}
        if kind in (4, 7) and message is not None:
            body["resource"]["message"] = message.payload
        return body

    def _token_interaction(self, request: web.Request) -> SentInteraction:
        sent = self._by_token.get(request.match_info["webhook_token"])
        if _id(request, "application_id") != self.application_id:
            raise _ApiError(404, "Unknown Webhook", 10015)
        if sent is None or self._now() - sent.issued_at > self.token_lifetime:
            raise _ApiError(401, "Invalid Webhook Token", 50027)
        if sent.callback is None:  # never acknowledged: not usable yet, or invalidated for good
            window = self.callback_window
            if window is not None and self._now() - sent.issued_at > window:
                raise _ApiError(401, "Invalid Webhook Token", 50027)
            raise _ApiError(404, "Unknown Webhook", 10015)
        return sent

    def _token_message(self, request: web.Request, sent: SentInteraction) -> Message:
        raw = request.match_info["message_id"]
        message_id = sent.original_message_id if raw == "@original" else _id(request, "message_id")
        message = self.messages.get(message_id or 0)
        if message is None or message not in sent.messages:
            raise _ApiError(404, "Unknown Message", 10008)
        return message

    async def _post_followup(self, request: web.Request) -> web.Response:
        sent = self._token_interaction(request)
        body, files = await _read_body(request)
        _check_message(body, files, sent.upload_limit, creating=True)
        original = self.messages.get(sent.original_message_id or 0)
        if original is not None and original.loading:
            # Right after a deferred response Discord turns a follow-up into an edit of the
            # loading message, whose ephemeral state cannot change.
            body.pop("flags", None)
            message = await self._edit(request, original, body, files, sent)
        else:
            message = await self._create(request, sent.channel, sent.guild, body, files, sent)
        return _json(200, message.payload)

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        return _json(200, self._token_message(request, self._token_interaction(request)).payload)

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        sent = self._token_interaction(request)
        message = self._token_message(request, sent)
        body, files = await _read_body(request)
        _check_message(body, files, sent.upload_limit, creating=False)
        return _json(200, (await self._edit(request, message, body, files, sent)).payload)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        sent = self._token_interaction(request)
        await self._delete(request, self._token_message(request, sent), sent)
        return web.Response(status=204)

    # ----- REST handlers: channels and guilds ----------------------------------------------------

    def _channel(self, request: web.Request) -> tuple[FakeChannel, FakeGuild | None]:
        found = self.find_channel(_id(request, "channel_id"))
        if found is None:
            raise _ApiError(404, "Unknown Channel", 10003)
        return found

    def _channel_message(self, request: web.Request) -> Message:
        channel, _ = self._channel(request)
        message = self.messages.get(_id(request, "message_id"))
        if message is None or message.channel_id != channel.id or message.ephemeral:
            raise _ApiError(404, "Unknown Message", 10008)
        return message

    def _upload_limit(self, guild: FakeGuild | None) -> int:
        return guild.upload_limit if guild is not None else self.dm_upload_limit

    async def _get_channel(self, request: web.Request) -> web.Response:
        return _json(200, channel_payload(*self._channel(request)))

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        channel, guild = self._channel(request)
        body, files = await _read_body(request)
        needed = VIEW_CHANNEL | SEND_MESSAGES | (ATTACH_FILES if files else 0)
        if guild is not None and guild.permissions_for(self.bot_user) & needed != needed:
            raise _ApiError(403, "Missing Permissions", 50013)
        if channel.type == GROUP_DM:  # a user install answers there through interactions only
            raise _ApiError(403, "Missing Access", 50001)
        _check_message(body, files, self._upload_limit(guild), creating=True)
        body["flags"] = int(body.get("flags") or 0) & ~(EPHEMERAL | LOADING)
        nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        if nonce is not None and body.get("enforce_nonce"):
            earlier_id, sent_at = self._nonces.get((channel.id, nonce), (0, float("-inf")))
            earlier = self.messages.get(earlier_id)
            if earlier is not None and self._now() - sent_at <= self.nonce_window:
                return _json(200, earlier.payload)
        message = await self._create(request, channel, guild, body, files, None)
        if nonce is not None:
            self._nonces[(channel.id, nonce)] = (message.id, self._now())
        return _json(200, message.payload)

    async def _post_typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        return _json(200, self._channel_message(request).payload)

    async def _patch_channel_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        body, files = await _read_body(request)
        _check_message(body, files, self._upload_limit(self._channel(request)[1]), creating=False)
        return _json(200, (await self._edit(request, message, body, files, None)).payload)

    async def _delete_channel_message(self, request: web.Request) -> web.Response:
        await self._delete(request, self._channel_message(request), None)
        return web.Response(status=204)

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = next((g for g in self.guilds if g.id == _id(request, "guild_id")), None)
        if guild is None:
            raise _ApiError(404, "Unknown Guild", 10004)
        return _json(200, guild_payload(guild, members=[], gateway=False))

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = next((g for g in self.guilds if g.id == _id(request, "guild_id")), None)
        if guild is None:
            raise _ApiError(404, "Unknown Guild", 10004)
        member = next((m for m in guild.members if m.user.id == _id(request, "user_id")), None)
        if member is None:
            raise _ApiError(404, "Unknown Member", 10007)
        return _json(200, member_payload(member))

    async def remove_member(self, user: FakeUser, guild: FakeGuild | None = None) -> None:
        """The user leaves the server; GUILD_MEMBER_REMOVE reaches a session that asked for the
        Server Members intent, as on Discord."""
        guild = guild or self.guild
        guild.members = [m for m in guild.members if m.user.id != user.id]
        session = self.gateway.live_session(guild)
        if session is not None and session.intents & GUILD_MEMBERS_INTENT:
            data = {"guild_id": str(guild.id), "user": user.payload()}
            await session.dispatch("GUILD_MEMBER_REMOVE", data)

    async def _get_attachment(self, request: web.Request) -> web.Response:
        attachment_id = _id(request, "attachment_id")
        self.downloads[attachment_id] = self.downloads.get(attachment_id, 0) + 1
        stored = self._files.get(attachment_id)
        if stored is None:
            return web.Response(status=404, text="Not Found")
        content_type = stored.content_type or "application/octet-stream"
        return web.Response(body=stored.data, content_type=content_type)

    # ----- message store -------------------------------------------------------------------------

    def _store_file(self, file: tuple[str, bytes, str | None], entry: dict[str, Any]) -> Attachment:
        filename = entry.get("filename") or file[0]
        # Discord reports a type from the file's name and content, not the multipart header
        # (discord.py always sends application/octet-stream).
        content_type = mimetypes.guess_type(filename)[0] or file[2]
        stored = Attachment(snowflake(), filename, content_type, file[1], entry.get("description"))
        self._files[stored.id] = stored
        return stored

    def _attachment_payload(self, stored: Attachment) -> dict[str, Any]:
        url = f"{self.base_url}/attachments/{stored.id}/{quote(stored.filename)}"
        payload = {"id": str(stored.id), "filename": stored.filename, "size": stored.size}
        payload.update(url=url, proxy_url=url, content_type=stored.content_type)
        if stored.description is not None:
            payload["description"] = stored.description
        return payload

    def _attachments(
        self, body: dict[str, Any], files: _Files, existing: tuple[Attachment, ...]
    ) -> tuple[Attachment, ...]:
        """API v10 semantics: a given `attachments` list is the full set to keep (by id) plus new
        uploads (by `files[n]` index); without it, uploads are appended."""
        entries = body.get("attachments")
        if entries is None:
            return existing + tuple(self._store_file(files[i], {}) for i in sorted(files))
        kept = {str(a.id): a for a in existing}
        result: list[Attachment] = []
        for entry in entries:
            ref = str(entry.get("id"))
            if ref in kept:
                result.append(kept[ref])
            elif ref.isdigit() and int(ref) in files:
                result.append(self._store_file(files.pop(int(ref)), entry))
        result += [self._store_file(files[i], {}) for i in sorted(files)]
        return tuple(result)

    def _with_payload(self, message: Message, via: SentInteraction | None) -> Message:
        """Attach the message object Discord would return, shaped like the documented one."""
        payload = load_fixture("message_component_interaction.json")["message"]
        payload.update(
            id=str(message.id),
            channel_id=str(message.channel_id),
            type=0,
            content=message.content,
            embeds=list(message.embeds),
            components=list(message.components),
            attachments=[self._attachment_payload(a) for a in message.attachments],
            flags=message.flags,
            timestamp=iso(message.created_at),
            edited_timestamp=iso(message.edited_at) if message.edited_at else None,
            author=self.bot_user.payload(),
            mentions=[],
            mention_roles=[],
            mention_everyone=False,
        )
        if message.nonce is not None:
            payload["nonce"] = message.nonce
        if via is not None:
            app_id = str(self.application_id)
            payload.update(webhook_id=app_id, application_id=app_id)
            if message.id == via.original_message_id and via.type == 2:
                payload["type"] = 20  # CHAT_INPUT_COMMAND: the response to a slash command
            payload["interaction_metadata"] = {
                "id": str(via.id),
                "type": via.type,
                "user": via.user.payload(),
                "authorizing_integration_owners": via.payload["authorizing_integration_owners"],
            }
        return replace(message, payload=payload)

    async def _create(
        self,
        request: web.Request,
        channel: FakeChannel,
        guild: FakeGuild | None,
        body: dict[str, Any],
        files: _Files,
        via: SentInteraction | None,
        *,
        original: bool = False,
    ) -> Message:
        message = Message(
            id=snowflake(),
            channel_id=channel.id,
            guild_id=guild.id if guild is not None else None,
            content=body.get("content") or "",
            embeds=tuple(body.get("embeds") or ()),
            components=tuple(body.get("components") or ()),
            attachments=self._attachments(body, files, ()),
            flags=int(body.get("flags") or 0),
            allowed_mentions=body.get("allowed_mentions"),
            interaction_id=via.id if via is not None else None,
            created_at=datetime.now(UTC),
            nonce=str(body["nonce"]) if body.get("nonce") is not None else None,
        )
        if original and via is not None:
            via.original_message_id = message.id
        shaped = self._with_payload(message, via)
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id"):  # a reply
            shaped.payload.update(
                type=19,
                message_reference={
                    "type": 0,
                    "message_id": str(reference["message_id"]),
                    "channel_id": str(channel.id),
                    **({"guild_id": str(guild.id)} if guild is not None else {}),
                },
            )
        return await self._record(request, "create", shaped, via)

    async def _edit(
        self,
        request: web.Request,
        message: Message,
        body: dict[str, Any],
        files: _Files,
        via: SentInteraction | None,
    ) -> Message:
        flags = int(body.get("flags") or 0) & ~(EPHEMERAL | LOADING)
        changes: dict[str, Any] = {
            "version": message.version + 1,
            "edited_at": datetime.now(UTC),
            "attachments": self._attachments(body, files, message.attachments),
            # An edit ends the "thinking" state; the ephemeral and V2 bits can never be removed.
            "flags": (message.flags & (EPHEMERAL | IS_COMPONENTS_V2)) | flags,
        }
        if "content" in body:
            changes["content"] = body["content"] or ""
        for key in ("embeds", "components"):
            if key in body:
                changes[key] = tuple(body[key] or ())
        if "allowed_mentions" in body:
            changes["allowed_mentions"] = body["allowed_mentions"]
        owner = self.interactions.get(message.interaction_id or 0)
        edited = self._with_payload(replace(message, **changes), owner)
        return await self._record(request, "edit", edited, via)

    async def _delete(
        self, request: web.Request, message: Message, via: SentInteraction | None
    ) -> None:
        del self.messages[message.id]
        await self._record(request, "delete", message, via)

    async def _record(
        self,
        request: web.Request,
        action: Literal["create", "edit", "delete"],
        message: Message,
        via: SentInteraction | None,
    ) -> Message:
        if action != "delete":
            self.messages[message.id] = message
        route = _route_of(request) or request.path
        self.history.append(MessageEvent(action, message, route, via.id if via else None))
        await self._notify()
        return message


def _too_many_requests(route: str, retry_after: float, is_global: bool) -> web.Response:
    """A 429 as Discord sends it. discord.py retries only when `Via` is present (otherwise it
    takes the 429 for a Cloudflare ban) and reads `retry_after` from the JSON body."""
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": f"{abs(hash(route)):x}",
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return _json(429, body, headers)


class DiscordPyPatch(contextlib.ExitStack):
    """Undo handle of `point_discord_py_at`: call it, or leave its `with` block."""

    def __call__(self) -> None:
        self.close()


def point_discord_py_at(fake: FakeDiscord) -> DiscordPyPatch:
    """Send discord.py's REST calls and gateway connections to `fake` (a started FakeDiscord).

    discord.py has no per-client setting for this: it reads the class attributes
    `discord.http.Route.BASE` and `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`, so this
    changes them for the whole process. The result restores them: use it as a context manager
    (`with point_discord_py_at(fake): ...`) or call it. Webhook follow-ups use the same
    `Route.BASE`, so they reach the fake too.
    """
    http, gateway = _discord_modules()
    restore = DiscordPyPatch()
    restore.callback(setattr, http.Route, "BASE", http.Route.BASE)
    restore.callback(
        setattr,
        gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    http.Route.BASE = fake.api_base
    gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    return restore


def _discord_modules() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        # discord.py 2.7 imports the stdlib audioop module, deprecated since Python 3.11.
        warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
        import discord.gateway
        import discord.http
    return discord.http, discord.gateway
