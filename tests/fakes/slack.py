"""A local fake Slack that the real slack_sdk / slack-bolt clients talk to over loopback.

Why a server and not mocks: the adapter's bugs live in the wire details (form vs JSON bodies,
``files_upload_v2``'s three steps, 429 handling, signatures, Socket Mode acks), so tests run the
real libraries against this fake and assert on what a user would see: the messages in a channel
after all updates, the uploaded bytes, the ephemeral replies.

Usage::

    from tests.fakes.slack import FakeSlack
    from tests.fakes.slack_signing import SlackSigner, slash_command

    async with FakeSlack() as fake:
        fake.add_channel("C0IMAGINE", "imagine")
        fake.add_user("U0ALICE", "alice", is_admin=True)
        app = AsyncApp(signing_secret=SECRET,
                       client=AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        ...serve app on 127.0.0.1:0 at bot_url...
        cmd = slash_command(fake, "/imagine", "a cat", user_id="U0ALICE", channel_id="C0IMAGINE")
        await SlackSigner(SECRET).post_command(bot_url, cmd)   # HTTP mode, or:
        await fake.socket_send("slash_commands", cmd)          # Socket Mode
        (msg,) = await fake.wait_for(lambda: fake.messages_in("C0IMAGINE"))

Answers follow Slack's documented shapes (fixtures in ``tests/fixtures/slack/``) and the limits
that bite in practice: ``msg_too_long`` above 4,000 chars, ``invalid_blocks`` above 50 blocks or a
section text above 3,000 chars, ``channel_not_found`` for channels not added with
:meth:`FakeSlack.add_channel`, and ok:false with HTTP 200 for every error except the injected
faults: 429s, HTML 503s (an outage at Slack's edge) and dropped connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from tests.fakes.slack_signing import file_object, load_fixture

T = TypeVar("T")

MAX_TEXT_CHARS = 4000  # documented as 40k, but messages fail with msg_too_long around 4k
MAX_BLOCKS = 50
MAX_SECTION_TEXT_CHARS = 3000
MAX_MARKDOWN_CHARS = 12_000  # a markdown block, and the markdown_text of one streaming call
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60
BOT_SCOPES = (  # answered in x-oauth-scopes, which Bolt reads from auth.test
    "app_mentions:read,channels:read,chat:write,commands,files:read,files:write,"
    "im:write,usergroups:read,users:read"
)
_Fault = tuple[int, str, int]  # (HTTP status, error, Retry-After seconds)
DROPPED = 0  # a fault "status": the connection closes before an answer
OUTAGE_PAGE = "<html><body><h1>503 Service Unavailable</h1></body></html>"


class SlackError(Exception):
    """Raised inside a method handler; becomes ``{"ok": false, "error": ...}`` with HTTP 200."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the fake saw it (token removed from ``params``)."""

    method: str
    params: Mapping[str, Any]
    at: float
    token: str | None
    error: str | None  # None if it succeeded; "ratelimited" for an injected 429

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Message:
    """The current state of one message; ``edits`` counts chat.update / replace_original."""

    channel: str
    ts: str
    text: str
    user: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    files: tuple[str, ...] = ()
    ephemeral_to: str | None = None  # set for chat.postEphemeral and ephemeral response_url posts
    edits: int = 0
    streaming: bool = False  # between chat.startStream and chat.stopStream

    def to_json(self) -> dict[str, Any]:
        """The message as Slack shows it in API answers and in block_actions payloads."""
        data: dict[str, Any] = {"type": "message", "text": self.text, "user": self.user}
        data.update(ts=self.ts, blocks=self.blocks)
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        return data


@dataclass(frozen=True)
class UploadedFile:
    """A file completed through files_upload_v2 (``data`` is exactly the uploaded bytes)."""

    file_id: str
    filename: str
    title: str
    data: bytes
    channel_id: str | None
    thread_ts: str | None
    initial_comment: str | None
    alt_txt: str | None


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response_url; ``status`` is what the fake answered (404 once used up)."""

    url: str
    body: Mapping[str, Any]
    at: float
    status: int


@dataclass(frozen=True)
class SocketAck:
    """A Socket Mode acknowledgement (``payload`` is set when the ack carried a response)."""

    envelope_id: str
    payload: Mapping[str, Any] | None
    at: float


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    is_private: bool = False
    im_user: str | None = None  # set for a DM channel


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False


@dataclass
class _ResponseUrl:
    url: str
    channel: str
    user: str
    message: tuple[str, str] | None  # (channel, ts) of the message a block action came from
    expires_at: float
    uses: int = 0


@dataclass
class _PendingUpload:
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None


class FakeSlack:
    """A fake Slack workspace served on 127.0.0.1 with an OS-chosen port.

    Faults: :meth:`rate_limit_next`, :meth:`fail_next`, :meth:`garble_next`, :meth:`drop_next`
    :meth:`unavailable_next` and :meth:`outage`. Recordings: :attr:`calls`,
    :attr:`uploads`, :attr:`response_posts`, :attr:`socket_acks`, and the current messages via
    :meth:`messages_in` / :meth:`message`. Wait on any of them with :meth:`wait_for`.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        team_id: str = "T0FAKETEAM",
        bot_user_id: str = "U0FAKEBOT",
        bot_id: str = "B0FAKEBOT",
        app_id: str = "A0FAKEAPP",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        #: The bot token's scopes, sent in every answer's x-oauth-scopes header.
        self.scopes = BOT_SCOPES
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.calls: list[RecordedCall] = []
        self.uploads: list[UploadedFile] = []
        self.response_posts: list[ResponsePost] = []
        self.socket_acks: list[SocketAck] = []
        self.socket_connects = 0  # total Socket Mode connections accepted (reconnects included)
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, tuple[str, list[str]]] = {}  # id -> (handle, user ids)
        self.revoked_tokens: set[str] = set()
        self._messages: dict[tuple[str, str], Message] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._garbled: dict[str, deque[tuple[str, str]]] = {}  # method -> (body, content type)
        self._outages: dict[str, int] = {}  # method -> HTTP status, until end_outage
        #: Set to "not_allowed" (or any error) for a workspace that cannot stream: chat.*Stream
        #: then answer ok:false with it.
        self.streaming_refusal: str | None = None
        #: assistant.threads.* calls by thread: (channel, thread_ts) -> latest status/title/prompts
        self.assistant_threads: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending: dict[str, _PendingUpload] = {}
        self._files: dict[str, tuple[str, bytes]] = {}  # file id -> (mimetype, bytes)
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._last_ts = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._base = ""
        self.add_user(bot_user_id, "runpod-bot", is_bot=True)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_post("/hooks/{kind}/{key}", self._response_url)
        app.router.add_get("/socket/link/", self._socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Close Socket Mode connections first so clients see a clean close, then the server."""
        for ws in list(self._sockets):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def api_url(self) -> str:
        """For ``AsyncWebClient(base_url=...)``: the only hook the Web API client needs."""
        return f"{self._base}/api/"

    # ---------------------------------------------------------------- workspace setup

    def add_channel(self, channel_id: str, name: str, *, is_private: bool = False) -> Channel:
        self.channels[channel_id] = Channel(channel_id, name, is_private)
        return self.channels[channel_id]

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
    ) -> User:
        self.users[user_id] = User(user_id, name, real_name or name, is_admin, is_owner, is_bot)
        return self.users[user_id]

    def add_usergroup(self, group_id: str, handle: str, user_ids: Sequence[str]) -> None:
        self.usergroups[group_id] = (handle, list(user_ids))

    def add_user_file(
        self, name: str, data: bytes, *, user_id: str, mimetype: str | None = None
    ) -> dict[str, Any]:
        """Store a file a user attached; returns the file object to put in an event's ``files``.

        Its ``url_private`` is served by the fake and, like Slack's, needs the bot token.
        """
        mime = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        file_id = _new_id("F")
        self._files[file_id] = (mime, data)
        return file_object(
            file_id=file_id,
            name=name,
            mimetype=mime,
            size=len(data),
            user=user_id,
            url_private=f"{self._base}/files-pri/{self.team_id}-{file_id}/{name}",
        )

    def revoke_token(self, token: str) -> None:
        self.revoked_tokens.add(token)

    # ---------------------------------------------------------------- faults

    def rate_limit_next(self, method: str, *, times: int = 1, retry_after: int = 0) -> None:
        """The next ``times`` calls to ``method`` answer HTTP 429 with ``Retry-After``."""
        self._faults.setdefault(method, deque()).extend([(429, "ratelimited", retry_after)] * times)

    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer ok:false with ``error``."""
        self._faults.setdefault(method, deque()).extend([(200, error, 0)] * times)

    def garble_next(
        self,
        method: str,
        body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>",
        *,
        content_type: str = "text/html",
        times: int = 1,
    ) -> None:
        """The next ``times`` calls to ``method`` answer HTTP 200 with ``body``, not Slack's JSON.

        What a proxy or captive portal in front of slack.com answers: an HTML page, under its
        own content type or mislabelled as ``application/json`` or ``text/plain``.
        """
        self._garbled.setdefault(method, deque()).extend([(body, content_type)] * times)

    def drop_next(self, method: str, *, times: int = 1) -> None:
        """The next ``times`` calls to ``method`` lose their connection before Slack acts on
        them: nothing is posted and no answer comes (slack_sdk's connection retry handler sends
        a call again once, so ``times=2`` makes the caller see the error)."""
        self._faults.setdefault(method, deque()).extend([(DROPPED, "dropped", 0)] * times)

    def unavailable_next(self, method: str, *, times: int = 1) -> None:
        """The next ``times`` calls to ``method`` get HTTP 503 with an HTML page, as Slack's
        edge answers in an outage: no JSON body, so no ``error`` field for the client to read."""
        self._faults.setdefault(method, deque()).extend([(503, "unavailable", 0)] * times)

    def outage(self, method: str, status: int = 503) -> None:
        """Every call to ``method`` answers HTTP ``status`` until :meth:`end_outage`."""
        self._outages[method] = status

    def end_outage(self, method: str) -> None:
        self._outages.pop(method, None)

    # ---------------------------------------------------------------- queries

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    def message(self, channel: str, ts: str) -> Message | None:
        return self._messages.get((channel, ts))

    @property
    def messages(self) -> list[Message]:
        """Every live message (deleted ones are gone), in the order they were posted."""
        return list(self._messages.values())

    def messages_in(self, channel: str, *, thread_ts: str | None = None) -> list[Message]:
        """Messages in ``channel``; with ``thread_ts``, only the replies in that thread."""
        return [
            m
            for m in self._messages.values()
            if m.channel == channel and (thread_ts is None or m.thread_ts == thread_ts)
        ]

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        Re-evaluated whenever the fake records something, so tests never sleep; handlers in Bolt
        keep running after the HTTP ack, which is why tests wait here rather than on a response.
        """
        async with self._changed:
            try:
                return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                recent = ", ".join(f"{c.method}:{c.error or 'ok'}" for c in self.calls[-8:])
                raise TimeoutError(f"not met in {timeout}s; last calls: {recent}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- incoming side

    def new_response_url(
        self, *, channel: str, user: str, message: tuple[str, str] | None = None
    ) -> str:
        """A response_url that records posts; usable 5 times within 30 minutes, like Slack's."""
        key = uuid.uuid4().hex
        kind = "actions" if message else "commands"
        url = f"{self._base}/hooks/{kind}/{key}"
        expires = time.time() + RESPONSE_URL_TTL_SECONDS
        self._response_urls[key] = _ResponseUrl(url, channel, user, message, expires)
        return url

    def expire_response_urls(self) -> None:
        """Make every response_url handed out so far answer ``expired_url``."""
        for entry in self._response_urls.values():
            entry.expires_at = 0.0

    def dm_channel(self, user_id: str) -> str:
        """The id of the bot's DM with `user_id` (opened on first use, as in Slack)."""
        return self._channel(user_id).id

    def post_as_user(
        self, text: str, *, user_id: str, channel_id: str, thread_ts: str | None = None
    ) -> Message:
        """Store a message a user posted (what an incoming event refers to) and return it."""
        return self._store(Message(channel_id, self._next_ts(), text, user_id, [], thread_ts))

    # ---------------------------------------------------------------- Socket Mode

    @property
    def socket_connections(self) -> int:
        """Open Socket Mode connections (a reconnect briefly shows two)."""
        return len(self._open_sockets())

    def _open_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self._sockets if not ws.closed]

    async def socket_send(
        self,
        envelope_type: str,
        payload: Mapping[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
        connection: int = -1,
    ) -> str:
        """Deliver an envelope (``events_api``, ``slash_commands`` or ``interactive``) to the
        newest connection, waiting up to ``timeout`` for one; returns the ``envelope_id``.

        ``connection`` picks another open connection, by the order they connected (Slack
        spreads envelopes over an app's connections; tests choose which process gets one)."""
        sockets = await self.wait_for(self._open_sockets, timeout)
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": dict(payload),
            "type": envelope_type,
            "accepts_response_payload": envelope_type == "slash_commands",
        }
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        await sockets[connection].send_json(envelope)
        return envelope_id

    async def wait_for_ack(
        self,
        envelope_id: str,
        timeout: float = 5.0,
    ) -> SocketAck:
        def find() -> SocketAck | None:
            return next((a for a in self.socket_acks if a.envelope_id == envelope_id), None)

        ack = await self.wait_for(find, timeout)
        assert ack is not None
        return ack

    async def socket_disconnect(self, reason: str = "warning") -> None:
        """Send Slack's ``disconnect`` message; slack_sdk then opens a new connection."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}
        for ws in self._open_sockets():
            await ws.send_json(message)

    async def socket_close_all(self) -> None:
        """Close every Socket Mode connection from Slack's side (a network drop, a deploy)."""
        for ws in self._open_sockets():
            await ws.close()

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connects += 1
        hello = load_fixture("socket_hello")
        hello["num_connections"] = len(self._sockets)
        hello["connection_info"]["app_id"] = self.app_id
        await ws.send_json(hello)
        await self._notify()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                if "envelope_id" in data:
                    self.socket_acks.append(
                        SocketAck(data["envelope_id"], data.get("payload"), time.time())
                    )
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws

    # ---------------------------------------------------------------- Web API plumbing

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else None
        token = token or params.pop("token", None)
        params.pop("token", None)
        status, headers = 200, {"x-oauth-scopes": self.scopes}
        error = self._auth_error(method, token)
        if error is None and self._garbled.get(method):
            text, content_type = self._garbled[method].popleft()
            self.calls.append(RecordedCall(method, params, time.time(), token, "garbled"))
            await self._notify()
            return web.Response(text=text, content_type=content_type, headers=headers)
        if error is None and method in self._outages:
            status, error = self._outages[method], "internal_error"
        if error is None and self._faults.get(method):
            status, error, retry_after = self._faults[method].popleft()
            if status == 429:
                headers["Retry-After"] = str(retry_after)
        if status in (DROPPED, 503):
            self.calls.append(RecordedCall(method, params, time.time(), token, error))
            await self._notify()
            if status == 503:
                return web.Response(status=503, text=OUTAGE_PAGE, content_type="text/html")
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        body: dict[str, Any]
        if error is None:
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            try:
                if handler is None:
                    raise SlackError("unknown_method")
                body = handler(params)
            except SlackError as exc:
                error = exc.error
                body = {"ok": False, "error": exc.error}
                if exc.messages:
                    body["response_metadata"] = {"messages": list(exc.messages)}
        else:
            body = {"ok": False, "error": error}
        self.calls.append(RecordedCall(method, params, time.time(), token, error))
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    def _auth_error(self, method: str, token: str | None) -> str | None:
        """Slack's answers: no token -> not_authed; wrong kind -> not_allowed_token_type."""
        if not token:
            return "not_authed"
        if token in self.revoked_tokens:
            return "token_revoked"
        wanted, other = self.bot_token, self.app_token
        if method == "apps.connections.open":
            wanted, other = other, wanted
        if token == wanted:
            return None
        return "not_allowed_token_type" if token == other else "invalid_auth"

    def _next_ts(self) -> str:
        micros = max(self._last_ts + 1, int(time.time() * 1_000_000))
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, ref: Any) -> Channel:
        """Resolve a channel id or a user id (posting to a user opens a DM, as in Slack)."""
        if isinstance(ref, str) and ref in self.channels:
            return self.channels[ref]
        if isinstance(ref, str) and ref in self.users:
            dm = next((c for c in self.channels.values() if c.im_user == ref), None)
            if dm is None:
                dm = Channel(_new_id("D"), ref, is_private=True, im_user=ref)
                self.channels[dm.id] = dm
            return dm
        raise SlackError("channel_not_found")

    def _store(self, message: Message) -> Message:
        self._messages[(message.channel, message.ts)] = message
        return message

    def _own_message(self, params: dict[str, Any], verb: str) -> Message:
        channel = self._channel(params.get("channel"))
        found = self._messages.get((channel.id, str(params.get("ts", ""))))
        if found is None:
            raise SlackError("message_not_found")
        if found.user != self.bot_user_id:
            raise SlackError(f"cant_{verb}_message")
        return found

    # ---------------------------------------------------------------- Web API methods
    # ``_api_<method with dots as underscores>`` answers that method; anything else is
    # unknown_method. Raise SlackError for ok:false.

    def _api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        body = load_fixture("auth_test")
        body.update(
            url="https://fake-workspace.slack.com/",
            team="Fake Workspace",
            user=self.users[self.bot_user_id].name,
            team_id=self.team_id,
            user_id=self.bot_user_id,
            bot_id=self.bot_id,
        )
        return body

    def _api_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        ws_base = self._base.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket/link/?ticket={ticket}&app_id={self.app_id}"}

    def _api_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        text, blocks = _checked_content(params)
        thread_ts = params.get("thread_ts") or None
        msg = self._store(
            Message(channel.id, self._next_ts(), text, self.bot_user_id, blocks, thread_ts)
        )
        shown = msg.to_json() | {"bot_id": self.bot_id, "app_id": self.app_id, "team": self.team_id}
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": shown}

    def _api_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fields left out keep their value (text or blocks alone may be changed)."""
        old = self._own_message(params, "update")
        text, blocks = _checked_content(params, old.text, old.blocks)
        msg = self._store(replace(old, text=text, blocks=blocks, edits=old.edits + 1))
        shown = msg.to_json()
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": text, "message": shown}

    # chat.startStream / appendStream / stopStream (docs.slack.dev, 2025-10): a streamed reply
    # in a thread; markdown_text (or markdown_text chunks) up to 12,000 characters a call;
    # recipient_user_id and recipient_team_id are required outside DMs.

    def _api_chat_startStream(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_streaming()
        channel = self._channel(params.get("channel"))
        thread_ts = params.get("thread_ts")
        if not thread_ts:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: thread_ts")
        if channel.im_user is None and not (
            params.get("recipient_user_id") and params.get("recipient_team_id")
        ):
            raise SlackError("invalid_arguments", "[ERROR] missing recipient_user_id")
        text = _streamed_text(params)
        msg = Message(channel.id, self._next_ts(), text, self.bot_user_id, [], str(thread_ts))
        self._store(replace(msg, streaming=True))
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _api_chat_appendStream(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._streaming_message(params)
        self._store(replace(msg, text=msg.text + _streamed_text(params)))
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _api_chat_stopStream(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._streaming_message(params)
        blocks = params.get("blocks") or []
        text = msg.text + _streamed_text(params)
        msg = self._store(replace(msg, text=text, blocks=blocks, streaming=False))
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": msg.to_json()}

    def _check_streaming(self) -> None:
        if self.streaming_refusal:
            raise SlackError(self.streaming_refusal)

    def _streaming_message(self, params: dict[str, Any]) -> Message:
        self._check_streaming()
        msg = self._own_message(params, "update")
        if not msg.streaming:
            raise SlackError("message_not_in_streaming_state")
        return msg

    # assistant.threads.* (the AI app surface): the latest value of each per thread.

    def _api_assistant_threads_setStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        """An empty status clears it; every status set is kept in order under "statuses"."""
        answer = self._assistant_thread(params, "status", params.get("status", ""))
        key = (self._channel(params.get("channel_id")).id, str(params.get("thread_ts")))
        self.assistant_threads[key].setdefault("statuses", []).append(params.get("status", ""))
        return answer

    def _api_assistant_threads_setTitle(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._assistant_thread(params, "title", params.get("title", ""))

    def _api_assistant_threads_setSuggestedPrompts(self, params: dict[str, Any]) -> dict[str, Any]:
        prompts = params.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            raise SlackError("invalid_arguments", "[ERROR] prompts: 1 to 4 items")
        return self._assistant_thread(params, "prompts", prompts)

    def _assistant_thread(self, params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
        channel = self._channel(params.get("channel_id"))
        thread_ts = params.get("thread_ts")
        if not thread_ts:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: thread_ts")
        self.assistant_threads.setdefault((channel.id, str(thread_ts)), {})[key] = value
        return {"ok": True}

    def _api_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        user = params.get("user")
        if not user:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: user")
        text, blocks = _checked_content(params)
        thread_ts = params.get("thread_ts") or None
        msg = Message(channel.id, self._next_ts(), text, self.bot_user_id, blocks, thread_ts)
        self._store(replace(msg, ephemeral_to=str(user)))
        return {"ok": True, "message_ts": msg.ts}

    def _api_chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(params, "delete")
        del self._messages[(msg.channel, msg.ts)]
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length is None:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: filename/length")
        file_id = _new_id("F")
        self._pending[file_id] = _PendingUpload(str(filename), int(length), params.get("alt_txt"))
        return {"ok": True, "upload_url": f"{self._base}/upload/v1/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        """Shares the files in the channel (or thread) as one message, as Slack does."""
        items = params.get("files")
        items = json.loads(items) if isinstance(items, str) else items
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: files")
        target = params.get("channel_id") or str(params.get("channels", "")).split(",")[0] or None
        channel = self._channel(target) if target else None
        pending = [(item, self._pending.get(str(item.get("id")))) for item in items]
        if any(p is None or p.data is None for _, p in pending):
            raise SlackError("file_not_found")
        thread_ts, comment = params.get("thread_ts") or None, params.get("initial_comment")
        answers = []
        for item, upload in pending:
            assert upload is not None and upload.data is not None
            file_id = str(item["id"])
            title = str(item.get("title") or upload.filename)
            del self._pending[file_id]
            mime = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
            self._files[file_id] = (mime, upload.data)
            self.uploads.append(
                UploadedFile(
                    file_id,
                    upload.filename,
                    title,
                    upload.data,
                    channel.id if channel else None,
                    thread_ts,
                    comment,
                    upload.alt_txt,
                )
            )
            answer = file_object(
                file_id=file_id,
                name=upload.filename,
                mimetype=mime,
                size=len(upload.data),
                user=self.bot_user_id,
                url_private=f"{self._base}/files-pri/{self.team_id}-{file_id}/{upload.filename}",
            )
            answers.append({**answer, "title": title})
        if channel is not None:
            ids = tuple(a["id"] for a in answers)
            self._store(
                Message(
                    channel.id, self._next_ts(), comment or "", self.bot_user_id, [], thread_ts, ids
                )
            )
        return {"ok": True, "files": answers}

    def _api_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            raise SlackError("user_not_found")
        body = load_fixture("users_info")
        body["user"].update(
            id=user.id,
            team_id=self.team_id,
            name=user.name,
            real_name=user.real_name,
            is_admin=user.is_admin,
            is_owner=user.is_owner,
            is_primary_owner=user.is_owner,
            is_bot=user.is_bot,
        )
        body["user"]["profile"].update(
            real_name=user.real_name, display_name=user.name, team=self.team_id
        )
        return body

    def _api_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self.channels.get(str(params.get("channel")))
        if found is None:
            raise SlackError("channel_not_found")
        body = load_fixture("conversations_info")
        body["channel"].update(
            id=found.id,
            name=found.name,
            name_normalized=found.name,
            is_private=found.is_private,
            is_channel=found.im_user is None and not found.is_private,
            is_group=found.im_user is None and found.is_private,
            is_im=found.im_user is not None,
            is_general=False,
        )
        if found.im_user:
            body["channel"]["user"] = found.im_user
        return body

    def _api_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """The bot's DM with one user, as Slack documents the answer without `return_im`."""
        users = str(params.get("users", "")).split(",")
        if len(users) != 1 or users[0] not in self.users:
            raise SlackError("user_not_found")
        known = any(c.im_user == users[0] for c in self.channels.values())
        dm = self._channel(users[0])
        return {"ok": True, "no_op": known, "already_open": known, "channel": {"id": dm.id}}

    def _api_usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        with_users = str(params.get("include_users", "")).lower() in ("1", "true")
        groups = []
        for group_id, (handle, members) in self.usergroups.items():
            group: dict[str, Any] = {"id": group_id, "team_id": self.team_id, "is_usergroup": True}
            group.update(name=handle, handle=handle, description="", user_count=len(members))
            if with_users:
                group["users"] = list(members)
            groups.append(group)
        return {"ok": True, "usergroups": groups}

    def _api_usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(str(params.get("usergroup")))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(group[1])}

    # ---------------------------------------------------------------- non-API endpoints

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload_url step: raw bytes, no token; Slack answers ``OK - <size>`` as text."""
        file_id = request.match_info["file_id"]
        pending = self._pending.get(file_id)
        data = await request.read()
        self.calls.append(RecordedCall("upload_url", {"file_id": file_id}, time.time(), None, None))
        if pending is None:
            raise web.HTTPNotFound(text="file not found")
        pending.data = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    async def _download(self, request: web.Request) -> web.Response:
        """url_private: without the bot token Slack serves its HTML login page with HTTP 200."""
        file_id = request.match_info["team_file"].split("-", 1)[-1]
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(
                text="<!DOCTYPE html><title>Slack</title>", content_type="text/html"
            )
        if file_id not in self._files:
            raise web.HTTPNotFound()
        mime, data = self._files[file_id]
        return web.Response(body=data, content_type=mime)

    async def _response_url(self, request: web.Request) -> web.Response:
        entry = self._response_urls.get(request.match_info["key"])
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = json.loads(str((await request.post()).get("payload", "{}")))
        status, answer = 200, "ok"
        if entry is None:
            status, answer = 404, "invalid_token"
        elif time.time() > entry.expires_at:
            status, answer = 404, "expired_url"
        elif entry.uses >= RESPONSE_URL_MAX_USES:
            status, answer = 404, "used_url"
        else:
            entry.uses += 1
            self._apply_response(entry, body)
        self.response_posts.append(ResponsePost(str(request.url), body, time.time(), status))
        await self._notify()
        return web.Response(status=status, text=answer)

    def _apply_response(self, entry: _ResponseUrl, body: dict[str, Any]) -> None:
        """What the user sees after a response_url post: replaced/deleted original or a new
        message (in channel, or ephemeral to the user who acted)."""
        original = self._messages.get(entry.message) if entry.message else None
        if original is not None and body.get("delete_original"):
            del self._messages[(original.channel, original.ts)]
            return
        text, blocks = str(body.get("text", "")), list(body.get("blocks") or [])
        if original is not None and body.get("replace_original"):
            self._store(replace(original, text=text, blocks=blocks, edits=original.edits + 1))
            return
        ephemeral = None if body.get("response_type") == "in_channel" else entry.user
        thread_ts = body.get("thread_ts") or None
        msg = Message(entry.channel, self._next_ts(), text, self.bot_user_id, blocks, thread_ts)
        self._store(replace(msg, ephemeral_to=ephemeral))


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string (files.* and GET methods) merged with a JSON or form body."""
    params: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _checked_content(
    params: Mapping[str, Any],
    text_default: str | None = None,
    blocks_default: list[dict[str, Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Text and blocks of a post/update, with the limits Slack enforces in practice."""
    text = str(params["text"]) if "text" in params else text_default or ""
    blocks: Any = params.get("blocks", blocks_default)
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise SlackError("invalid_blocks_format") from None
    blocks = blocks or []
    if not text and not blocks and not params.get("attachments"):
        raise SlackError("no_text")
    if len(text) > MAX_TEXT_CHARS:
        raise SlackError("msg_too_long")
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks", f"[ERROR] no more than {MAX_BLOCKS} items allowed")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise SlackError(
                "invalid_blocks", f"[ERROR] missing required field: type [json-pointer:/blocks/{i}]"
            )
        if block["type"] == "markdown" and len(str(block.get("text", ""))) > MAX_MARKDOWN_CHARS:
            raise SlackError(
                "invalid_blocks", f"[ERROR] markdown text too long [json-pointer:/blocks/{i}]"
            )
        section_text = block.get("text") if block["type"] == "section" else None
        if (
            isinstance(section_text, dict)
            and len(str(section_text.get("text", ""))) > MAX_SECTION_TEXT_CHARS
        ):
            raise SlackError(
                "invalid_blocks",
                f"[ERROR] must be less than {MAX_SECTION_TEXT_CHARS + 1} characters "
                f"[json-pointer:/blocks/{i}/text/text]",
            )
    return text, blocks


def _streamed_text(params: Mapping[str, Any]) -> str:
    """A streaming call's text: its markdown_text, then its markdown_text chunks in order."""
    text = str(params.get("markdown_text") or "")
    chunks = params.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    text += "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")
    if len(text) > MAX_MARKDOWN_CHARS:
        raise SlackError("msg_too_long")
    return text


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10].upper()
