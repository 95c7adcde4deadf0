"""Wire tests: the real slack_sdk and slack-bolt against tests/fakes/slack.py over loopback.

They pin down both the fake and the library behaviours the Slack adapter relies on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_signing import SlackSigner, app_mention, block_actions, slash_command

SECRET = "signing-secret"
CHANNEL = "C0IMAGINE"
ALICE = "U0ALICE"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        slack.add_channel(CHANNEL, "imagine")
        slack.add_user(ALICE, "alice", is_admin=True)
        yield slack


def web_client(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, **kwargs)


async def test_post_and_update_give_the_current_view(fake: FakeSlack) -> None:
    client = web_client(fake)
    posted = await client.chat_postMessage(channel=CHANNEL, text="queued")
    ts = posted["ts"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    await client.chat_update(channel=CHANNEL, ts=ts, text="done", blocks=blocks)
    reply = await client.chat_postMessage(channel=CHANNEL, text="detail", thread_ts=ts)

    message = fake.message(CHANNEL, ts)
    assert message is not None
    assert (message.text, message.blocks, message.edits) == ("done", blocks, 1)
    assert [m.ts for m in fake.messages_in(CHANNEL, thread_ts=ts)] == [reply["ts"]]
    assert reply["ts"] > ts and len(ts.split(".")[1]) == 6
    assert fake.calls_to("chat.update")[0].params["blocks"] == blocks


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": "x" * 4001}, "msg_too_long"),
        ({"text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {
                "text": "x",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        ({"channel": "C0NOWHERE", "text": "x"}, "channel_not_found"),
    ],
)
async def test_limits_answer_slack_errors(
    fake: FakeSlack, kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await web_client(fake).chat_postMessage(**{"channel": CHANNEL, **kwargs})
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == error
    assert fake.messages == []


async def test_tokens_are_checked(fake: FakeSlack) -> None:
    cases = [
        (None, "not_authed"),
        ("xoxb-wrong", "invalid_auth"),
        (fake.app_token, "not_allowed_token_type"),
    ]
    for token, error in cases:
        with pytest.raises(SlackApiError) as caught:
            await AsyncWebClient(token=token, base_url=fake.api_url).auth_test()
        assert caught.value.response["error"] == error
    fake.revoke_token(fake.bot_token)
    with pytest.raises(SlackApiError, match="token_revoked"):
        await web_client(fake).auth_test()


async def test_ephemeral_delete_form_bodies_and_dms(fake: FakeSlack) -> None:
    client = web_client(fake)
    await client.chat_postEphemeral(channel=CHANNEL, user=ALICE, text="only you")
    form = {"channel": CHANNEL, "text": "via form", "blocks": '[{"type": "divider"}]'}
    posted = await client.api_call("chat.postMessage", data=form)
    assert [(m.text, m.ephemeral_to) for m in fake.messages] == [
        ("only you", ALICE),
        ("via form", None),
    ]
    assert fake.messages[1].blocks == [{"type": "divider"}]
    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert fake.message(CHANNEL, posted["ts"]) is None

    dm = await client.chat_postMessage(channel=ALICE, text="psst")
    assert dm["channel"].startswith("D") and fake.channels[dm["channel"]].im_user == ALICE
    failing = [
        ("chat.postMessage", {"channel": CHANNEL}, "no_text"),
        ("chat.unknownThing", {}, "unknown_method"),
        ("chat.update", {"channel": CHANNEL, "ts": "1.000001", "text": "x"}, "message_not_found"),
    ]
    for method, body, error in failing:
        with pytest.raises(SlackApiError) as caught:
            await client.api_call(method, json=body)
        assert caught.value.response["error"] == error


async def test_files_upload_v2_into_a_thread(fake: FakeSlack) -> None:
    client = web_client(fake)
    parent = await client.chat_postMessage(channel=CHANNEL, text="rendering")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    result = await client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=parent["ts"],
        file=png,
        filename="cat.png",
        title="a cat",
        initial_comment="here it is",
    )

    (upload,) = fake.uploads
    assert (upload.data, upload.filename, upload.title) == (png, "cat.png", "a cat")
    assert (upload.channel_id, upload.thread_ts, upload.initial_comment) == (
        CHANNEL,
        parent["ts"],
        "here it is",
    )
    assert result["file"]["id"] == upload.file_id
    (share,) = fake.messages_in(CHANNEL, thread_ts=parent["ts"])
    assert share.files == (upload.file_id,)
    assert [c.method for c in fake.calls][-3:] == [
        "files.getUploadURLExternal",
        "upload_url",
        "files.completeUploadExternal",
    ]


async def test_rate_limit_is_retried_by_slack_sdk(fake: FakeSlack) -> None:
    fake.rate_limit_next("chat.postMessage", retry_after=0)
    with pytest.raises(SlackApiError) as caught:
        await web_client(fake).chat_postMessage(channel=CHANNEL, text="no retry handler")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "0"

    fake.rate_limit_next("chat.postMessage", retry_after=0)
    client = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    await client.chat_postMessage(channel=CHANNEL, text="retried")
    assert [c.error for c in fake.calls_to("chat.postMessage")] == [
        "ratelimited",
        "ratelimited",
        None,
    ]
    assert [m.text for m in fake.messages] == ["retried"]


async def test_fail_next_and_lookups(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.fail_next("chat.postMessage", "is_archived")
    with pytest.raises(SlackApiError, match="is_archived"):
        await client.chat_postMessage(channel=CHANNEL, text="x")
    await client.chat_postMessage(channel=CHANNEL, text="x")

    user = (await client.users_info(user=ALICE))["user"]
    assert (user["id"], user["is_admin"], user["is_owner"]) == (ALICE, True, False)
    channel = (await client.conversations_info(channel=CHANNEL))["channel"]
    assert (channel["id"], channel["name"]) == (CHANNEL, "imagine")
    fake.add_usergroup("S0ADMINS", "bot-admins", [ALICE])
    assert (await client.usergroups_users_list(usergroup="S0ADMINS"))["users"] == [ALICE]
    groups = (await client.usergroups_list(include_users=True))["usergroups"]
    assert groups[0]["handle"] == "bot-admins" and groups[0]["users"] == [ALICE]


async def test_an_outage_answers_html_and_a_dropped_call_posts_nothing(fake: FakeSlack) -> None:
    client = web_client(fake, retry_handlers=[])  # every fault reaches the caller
    fake.unavailable_next("chat.postMessage")
    with pytest.raises(SlackApiError) as outage:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert outage.value.response.status_code == 503
    assert outage.value.response.get("error") is None  # an HTML page: nothing to read
    fake.drop_next("chat.postMessage")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel=CHANNEL, text="y")
    await client.chat_postMessage(channel=CHANNEL, text="z")
    assert [m.text for m in fake.messages] == ["z"]
    assert [c.error for c in fake.calls_to("chat.postMessage")] == ["unavailable", "dropped", None]


async def test_response_url_honours_five_uses(fake: FakeSlack) -> None:
    url = slash_command(fake, "/imagine", "cat", user_id=ALICE, channel_id=CHANNEL)["response_url"]
    webhook = AsyncWebhookClient(url)
    statuses = [(await webhook.send(text=f"try {i}")).status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert fake.response_posts[-1].status == 404
    assert [m.ephemeral_to for m in fake.messages_in(CHANNEL)] == [ALICE] * 5

    fresh = AsyncWebhookClient(
        slash_command(fake, "/imagine", user_id=ALICE, channel_id=CHANNEL)["response_url"]
    )
    fake.expire_response_urls()
    expired = await fresh.send(text="too late")
    assert (expired.status_code, expired.body) == (404, "expired_url")


# ---------------------------------------------------------------- Bolt in HTTP mode


def bolt_app(fake: FakeSlack) -> AsyncApp:
    return AsyncApp(signing_secret=SECRET, client=web_client(fake))


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """Serve a Bolt app behind a minimal aiohttp handler, as the bot's adapter will."""
    runners: list[web.AppRunner] = []

    async def start(app: AsyncApp) -> str:
        async def handle(request: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await app.async_dispatch(await to_bolt_request(request))
            )

        web_app = web.Application()
        web_app.router.add_post("/slack/events", handle)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/slack/events"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_bolt_runs_a_signed_slash_command(fake: FakeSlack, serve: Any) -> None:
    app = bolt_app(fake)
    seen: list[dict[str, Any]] = []

    @app.command("/imagine")
    async def imagine(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack("On it")
        seen.append(command)
        await client.chat_postMessage(
            channel=command["channel_id"], text=f"Imagining {command['text']}"
        )

    url = await serve(app)
    signer = SlackSigner(SECRET)
    reply = await signer.post_command(
        url, slash_command(fake, "/imagine", "a cat", user_id=ALICE, channel_id=CHANNEL)
    )
    assert (reply.status, reply.body) == (200, "On it")
    (message,) = await fake.wait_for(lambda: fake.messages_in(CHANNEL))
    assert message.text == "Imagining a cat"
    assert seen[0]["user_id"] == ALICE and seen[0]["team_id"] == fake.team_id
    assert [c.method for c in fake.calls] == ["auth.test", "chat.postMessage"]

    payload = slash_command(fake, "/imagine", "a dog", user_id=ALICE, channel_id=CHANNEL)
    assert (await signer.post_command(url, payload, bad_signature=True)).status == 401
    assert (await signer.post_command(url, payload, stale=True)).status == 401
    assert (await SlackSigner("wrong-secret").post_command(url, payload)).status == 401
    assert len(seen) == 1


async def test_bolt_receives_events_and_button_clicks(fake: FakeSlack, serve: Any) -> None:
    app = bolt_app(fake)
    retries: list[str | None] = []

    @app.event("app_mention")
    async def mention(
        event: dict[str, Any], request: AsyncBoltRequest, client: AsyncWebClient
    ) -> None:
        retries.append(request.headers.get("x-slack-retry-num", [None])[0])
        names = ", ".join(f["name"] for f in event.get("files", []))
        await client.chat_postMessage(
            channel=event["channel"], thread_ts=event["ts"], text=f"got {names}"
        )

    @app.action("cancel")
    async def cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await respond(text=f"Cancelled {body['actions'][0]['value']}", replace_original=True)

    url = await serve(app)
    signer = SlackSigner(SECRET)
    image = fake.add_user_file("in.png", b"png-bytes", user_id=ALICE)
    event = app_mention(
        fake, f"<@{fake.bot_user_id}> edit this", user_id=ALICE, channel_id=CHANNEL, files=[image]
    )
    assert (await signer.post_event(url, event)).status == 200
    mention_ts = event["event"]["ts"]
    (reply,) = await fake.wait_for(lambda: fake.messages_in(CHANNEL, thread_ts=mention_ts))
    assert reply.text == "got in.png"
    assert (
        await signer.post_event(url, event, retry_num=1, retry_reason="http_timeout")
    ).status == 200
    await fake.wait_for(lambda: len(retries) == 2)
    assert retries == [None, "1"]

    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {fake.bot_token}"}
        async with session.get(image["url_private"], headers=auth) as resp:
            assert await resp.read() == b"png-bytes"
        async with session.get(image["url_private"]) as resp:  # Slack's login page, not a 401
            assert (resp.status, resp.content_type) == (200, "text/html")

    client = web_client(fake)
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="working", blocks=[{"type": "divider"}]
    )
    message = fake.message(CHANNEL, posted["ts"])
    assert message is not None
    click = block_actions(fake, message, action_id="cancel", value="job-7", user_id=ALICE)
    assert (await signer.post_interaction(url, click)).status == 200
    await fake.wait_for(lambda: fake.response_posts)
    updated = fake.message(CHANNEL, posted["ts"])
    assert updated is not None and (updated.text, updated.edits) == ("Cancelled job-7", 1)


# ---------------------------------------------------------------- Bolt in Socket Mode


async def test_bolt_socket_mode_acks_and_reconnects(fake: FakeSlack) -> None:
    app = bolt_app(fake)

    @app.command("/imagine")
    async def imagine(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_postMessage(
            channel=command["channel_id"], text=f"socket {command['text']}"
        )

    @app.event("app_mention")
    async def mention(event: dict[str, Any], say: Any) -> None:
        await say(text="mentioned", thread_ts=event["ts"])

    @app.action("cancel")
    async def cancel(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(text="Cancelled", replace_original=True)

    handler = AsyncSocketModeHandler(app, app_token=fake.app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        command = slash_command(fake, "/imagine", "owl", user_id=ALICE, channel_id=CHANNEL)
        ack = await fake.wait_for_ack(await fake.socket_send("slash_commands", command))
        assert ack.payload is None
        (posted,) = await fake.wait_for(lambda: fake.messages_in(CHANNEL))
        assert posted.text == "socket owl"

        mention_event = app_mention(fake, "<@bot> hi", user_id=ALICE, channel_id=CHANNEL)
        await fake.wait_for_ack(await fake.socket_send("events_api", mention_event))
        thread_ts = mention_event["event"]["ts"]
        (reply,) = await fake.wait_for(lambda: fake.messages_in(CHANNEL, thread_ts=thread_ts))
        assert reply.text == "mentioned"

        click = block_actions(fake, posted, action_id="cancel", value="v", user_id=ALICE)
        await fake.wait_for_ack(await fake.socket_send("interactive", click))
        await fake.wait_for(lambda: fake.response_posts)
        cancelled = fake.message(CHANNEL, posted.ts)
        assert cancelled is not None and cancelled.text == "Cancelled"

        await fake.socket_disconnect()
        await fake.wait_for(lambda: fake.socket_connects == 2 and fake.socket_connections == 1)
        command = slash_command(fake, "/imagine", "bat", user_id=ALICE, channel_id=CHANNEL)
        await fake.wait_for_ack(await fake.socket_send("slash_commands", command))
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    await fake.wait_for(lambda: fake.socket_connections == 0)
    assert len(fake.calls_to("apps.connections.open")) == 2
