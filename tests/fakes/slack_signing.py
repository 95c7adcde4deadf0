"""What Slack sends *to* the bot: payload builders and a request signer.

The payload builders start from Slack's documented examples in ``tests/fixtures/slack/`` and only
override the fields a test cares about, so shapes stay those Slack publishes rather than ones we
invent. The same dicts serve both transports: POSTed over HTTP by :class:`SlackSigner`, or wrapped
in a Socket Mode envelope by ``FakeSlack.socket_send``. Builders take the ``FakeSlack`` first:
they read its team/app/bot ids, store the user's message an event refers to, and hand out
response_urls that the fake serves.

Fixture sources (docs.slack.dev): ``slash_command.json`` from "Implementing slash commands",
``event_callback.json`` and ``event_app_mention.json`` from the ``app_mention`` event reference
(plus ``files``/``upload`` as sent when a file is attached), ``event_message.json`` from
``message.channels``, ``file_object.json`` from "File object", ``block_actions.json`` from the
``block_actions`` payload reference, ``auth_test.json``/``users_info.json``/
``conversations_info.json`` from the method references, ``socket_hello.json`` from "Socket Mode
implementation".
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

if TYPE_CHECKING:
    from tests.fakes.slack import FakeSlack, Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slack"

#: Slack (and Bolt) reject request timestamps more than this many seconds from now.
SIGNATURE_WINDOW_SECONDS = 5 * 60


@functools.cache
def _read_fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def load_fixture(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/fixtures/slack/<name>.json`` (callers may mutate it)."""
    data: dict[str, Any] = json.loads(_read_fixture(name))
    return data


def _trigger_id() -> str:
    return f"{int(time.time() * 1000)}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex}"


def _user_name(fake: FakeSlack, user_id: str) -> str:
    return fake.users[user_id].name if user_id in fake.users else "user"


def _channel_name(fake: FakeSlack, channel_id: str) -> str:
    return fake.channels[channel_id].name if channel_id in fake.channels else "general"


def file_object(
    *, file_id: str, name: str, mimetype: str, size: int, user: str, url_private: str
) -> dict[str, Any]:
    """A file object as in an event's ``files`` or files.completeUploadExternal's answer."""
    obj = load_fixture("file_object")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
    obj.update(id=file_id, name=name, title=name, mimetype=mimetype, size=size, user=user)
    obj.update(filetype=ext, pretty_type=ext.upper(), created=int(time.time()))
    obj.update(url_private=url_private, url_private_download=url_private)
    return obj


def slash_command(
    fake: FakeSlack, command: str, text: str = "", *, user_id: str, channel_id: str
) -> dict[str, str]:
    """Form fields of a slash command (also the Socket Mode ``slash_commands`` payload); its
    ``response_url`` points at ``fake``."""
    payload = load_fixture("slash_command")
    payload.update(command=command, text=text, user_id=user_id, channel_id=channel_id)
    payload.update(team_id=fake.team_id, api_app_id=fake.app_id, trigger_id=_trigger_id())
    payload.update(
        user_name=_user_name(fake, user_id),
        channel_name=_channel_name(fake, channel_id),
        response_url=fake.new_response_url(channel=channel_id, user=user_id),
    )
    return {k: str(v) for k, v in payload.items()}


def event_callback(
    fake: FakeSlack, event: Mapping[str, Any], *, event_id: str | None = None
) -> dict[str, Any]:
    """Wrap an inner event as the Events API does. Reuse ``event_id`` to imitate Slack
    redelivering an event it thinks failed."""
    payload = load_fixture("event_callback")
    payload.update(team_id=fake.team_id, api_app_id=fake.app_id, event=dict(event))
    payload.update(event_id=event_id or f"Ev{uuid.uuid4().hex[:10].upper()}")
    payload.update(event_time=int(time.time()))
    payload["authorizations"][0].update(team_id=fake.team_id, user_id=fake.bot_user_id)
    return payload


def app_mention(
    fake: FakeSlack,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    thread_ts: str | None = None,
    files: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """An ``app_mention`` event_callback. The mention is also stored in ``fake`` as the user's
    message, so the bot can reply in its thread (``payload["event"]["ts"]``). Make ``files``
    with ``fake.add_user_file``."""
    return _user_post(fake, "event_app_mention", text, user_id, channel_id, thread_ts, files)


def message(
    fake: FakeSlack,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    thread_ts: str | None = None,
    files: Sequence[Mapping[str, Any]] = (),
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A ``message`` event_callback (``channel_type="im"`` for a DM), stored like app_mention."""
    payload = _user_post(fake, "event_message", text, user_id, channel_id, thread_ts, files)
    payload["event"]["channel_type"] = channel_type
    return payload


def assistant_thread_started(
    fake: FakeSlack, *, user_id: str, channel_id: str, thread_ts: str
) -> dict[str, Any]:
    """An ``assistant_thread_started`` event_callback: `user_id` opened the bot's assistant
    pane, a thread in their DM with the bot (docs.slack.dev, events/assistant_thread_started)."""
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user_id,
            "context": {"channel_id": None, "team_id": fake.team_id, "enterprise_id": None},
            "channel_id": channel_id,
            "thread_ts": thread_ts,
        },
        "event_ts": thread_ts,
    }
    return event_callback(fake, event)


def _user_post(
    fake: FakeSlack,
    fixture: str,
    text: str,
    user_id: str,
    channel_id: str,
    thread_ts: str | None,
    files: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    posted = fake.post_as_user(text, user_id=user_id, channel_id=channel_id, thread_ts=thread_ts)
    event = load_fixture(fixture)
    event.update(user=user_id, channel=channel_id, text=text, team=fake.team_id)
    event.update(ts=posted.ts, event_ts=posted.ts, client_msg_id=str(uuid.uuid4()))
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    event["blocks"] = [
        {"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}
    ]
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.pop("files", None)
    event.pop("upload", None)
    if files:
        event.update(files=[dict(f) for f in files], upload=False)
    return event_callback(fake, event)


def block_actions(
    fake: FakeSlack,
    clicked: Message,
    *,
    action_id: str,
    value: str,
    user_id: str,
    block_id: str = "actions",
) -> dict[str, Any]:
    """A button click on message ``clicked``. Its response_url can replace or delete that
    message (``replace_original`` / ``delete_original``), as Slack's does."""
    payload = load_fixture("block_actions")
    name = _user_name(fake, user_id)
    payload["user"].update(id=user_id, username=name, name=name, team_id=fake.team_id)
    payload["team"]["id"] = fake.team_id
    payload["channel"].update(id=clicked.channel, name=_channel_name(fake, clicked.channel))
    payload["container"].update(message_ts=clicked.ts, channel_id=clicked.channel)
    payload["container"]["is_ephemeral"] = clicked.ephemeral_to is not None
    if clicked.thread_ts:
        payload["container"]["thread_ts"] = clicked.thread_ts
    shown = {**clicked.to_json(), "bot_id": fake.bot_id, "team": fake.team_id}
    payload.update(api_app_id=fake.app_id, message=shown, trigger_id=_trigger_id())
    payload["response_url"] = fake.new_response_url(
        channel=clicked.channel, user=user_id, message=(clicked.channel, clicked.ts)
    )
    payload["actions"][0].update(action_id=action_id, block_id=block_id, value=value)
    payload["actions"][0]["action_ts"] = f"{time.time():.6f}"
    return payload


@dataclass(frozen=True)
class SignedResponse:
    """What the bot's HTTP endpoint answered (Bolt answers the ack before handlers finish)."""

    status: int
    body: str
    headers: Mapping[str, str]


class SlackSigner:
    """Signs and POSTs requests exactly as Slack does, so Bolt's verification runs for real.

    The signature is ``v0=`` + HMAC-SHA256(secret, ``v0:{timestamp}:{raw body}``) over the exact
    bytes sent. ``stale``/``bad_signature`` produce the two rejections a bot must handle;
    ``retry_num``/``retry_reason`` add the headers Slack puts on redelivered events;
    ``timestamp`` replaces the ``X-Slack-Request-Timestamp`` header (and what is signed) as is.
    """

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self.signing_secret = signing_secret
        self._clock = clock

    def signature(self, timestamp: str, body: bytes) -> str:
        base = b"v0:" + timestamp.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return f"v0={digest}"

    def headers(
        self,
        body: bytes,
        *,
        content_type: str,
        stale: bool = False,
        bad_signature: bool = False,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: str | None = None,
    ) -> dict[str, str]:
        """Request headers for ``body``; see the class docstring for the options."""
        now = int(self._clock())
        if timestamp is None:
            timestamp = str(now - SIGNATURE_WINDOW_SECONDS - 60 if stale else now)
        signature = self.signature(timestamp, body)
        if bad_signature:
            signature = self.signature(timestamp, body + b"tampered")
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return headers

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        content_type: str,
        stale: bool = False,
        bad_signature: bool = False,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: str | None = None,
    ) -> SignedResponse:
        """POST raw ``body`` signed; a fresh session each time keeps tests free of cleanup."""
        headers = self.headers(
            body,
            content_type=content_type,
            stale=stale,
            bad_signature=bad_signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
            timestamp=timestamp,
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as resp,
        ):
            return SignedResponse(resp.status, await resp.text(), dict(resp.headers))

    async def post_command(
        self,
        url: str,
        payload: Mapping[str, str],
        *,
        stale: bool = False,
        bad_signature: bool = False,
        timestamp: str | None = None,
    ) -> SignedResponse:
        """A slash command: ``application/x-www-form-urlencoded`` fields."""
        body = urlencode(payload).encode()
        return await self.post(
            url,
            body,
            content_type="application/x-www-form-urlencoded",
            stale=stale,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    async def post_event(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        stale: bool = False,
        bad_signature: bool = False,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> SignedResponse:
        """An Events API ``event_callback``: a JSON body."""
        return await self.post(
            url,
            json.dumps(payload).encode(),
            content_type="application/json",
            stale=stale,
            bad_signature=bad_signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
        )

    async def post_interaction(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        stale: bool = False,
        bad_signature: bool = False,
    ) -> SignedResponse:
        """An interaction (``block_actions``...): one form field ``payload`` holding JSON."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(
            url,
            body,
            content_type="application/x-www-form-urlencoded",
            stale=stale,
            bad_signature=bad_signature,
        )
