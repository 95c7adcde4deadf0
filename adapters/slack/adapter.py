"""`SlackAdapter`: builds the Web API client, Bolt app and transport, and carries on old jobs.

Socket Mode when `slack.app_token` is set (no public address needed), else HTTP mode serving
`POST /slack/events` on `slack.host`:`slack.port`. The Web API client is pointed at
`slack.api_url` and retries 429s after Slack's `Retry-After` (slack_sdk's retry handler; it is
not on by default) and dropped connections; nothing else is retried, so a message is never
posted twice by a blind retry.
"""

from __future__ import annotations

import logging

import aiohttp
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import listeners
from adapters.slack.context import SlackContext
from adapters.slack.files import FileLinks
from adapters.slack.people import PLATFORM, People
from adapters.slack.reply import Replies
from adapters.slack.server import EVENTS_PATH, SlackServer
from adapters.slack.store import SlackStore
from adapters.slack.text import escape
from bot.app import Core
from bot.config import SlackSettings
from bot.errors import ConfigError
from bot.notices import Post
from bot.tasks import TaskSet

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 5


class SlackAdapter:
    def __init__(self, core: Core, *, settings: SlackSettings | None = None) -> None:
        self.core = core
        self.settings = settings or core.settings.slack
        self.tasks = TaskSet()
        self.context: SlackContext | None = None
        self._server: SlackServer | None = None
        self._socket: AsyncSocketModeHandler | None = None
        # One connection pool for every Web API call (else each call is a new TLS handshake).
        self._session: aiohttp.ClientSession | None = None

    @property
    def socket_mode(self) -> bool:
        return self.settings.app_token is not None

    @property
    def port(self) -> int | None:
        """The port the HTTP listener is bound to (the OS picks one for `slack.port = 0`)."""
        return self._server.port if self._server else None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{EVENTS_PATH}"

    async def start(self) -> None:
        """Connect, then carry on this platform's unfinished jobs; raises ConfigError early."""
        token = _secret(self.settings.bot_token, "slack.bot_token (SLACK_BOT_TOKEN)")
        # No trust_env: slack_sdk applies HTTPS_PROXY itself; aiohttp's trust_env would re-read
        # the environment and ~/.netrc, on a thread, on every call. The trace feeds /metrics.
        self._session = aiohttp.ClientSession(
            trace_configs=[self.core.metrics.platform_trace(PLATFORM)]
        )
        client = AsyncWebClient(
            token=token,
            base_url=self.settings.api_url,
            session=self._session,
            logger=_level_in_effect("slack_sdk.web.async_base_client"),
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ],
        )
        bot_user_id = await _authenticate(client)
        store = SlackStore(self.core.db)
        await store.open()
        jobs_settings = self.core.settings.jobs
        links = FileLinks(
            http=self.core.http,
            token=token,
            public_url=self.settings.public_url,
            max_bytes=int(jobs_settings.max_download_mb * 1024 * 1024),
        )
        ctx = SlackContext(
            core=self.core,
            settings=self.settings,
            client=client,
            replies=Replies(client),
            store=store,
            people=People(client, self.settings),
            links=links,
            tasks=self.tasks,
        )
        self.context = ctx
        self.core.jobs.register_platform(PLATFORM, ctx.delivery)
        await self._connect(ctx, client, bot_user_id)
        self.core.readiness.connected(PLATFORM)
        if self.settings.admin_channel:
            self.core.notices.register(
                PLATFORM, self._notice_poster(client, self.settings.admin_channel)
            )
        resumed = await self.core.jobs.resume(PLATFORM)
        log.info("slack adapter running (%s); %d job(s) resumed", self._mode(), resumed)

    @staticmethod
    def _notice_poster(client: AsyncWebClient, channel: str) -> Post:
        """Operator notices go to `slack.admin_channel`, escaped so they ping no one."""

        async def post(text: str) -> None:
            await client.chat_postMessage(channel=channel, text=escape(text), unfurl_links=False)

        return post

    async def _connect(self, ctx: SlackContext, client: AsyncWebClient, bot_user_id: str) -> None:
        secret = self.settings.signing_secret
        if not self.socket_mode and secret is None:
            raise ConfigError(
                "slack: HTTP mode needs slack.signing_secret (SLACK_SIGNING_SECRET);"
                " or set slack.app_token (SLACK_APP_TOKEN) for Socket Mode"
            )
        bolt = AsyncApp(
            client=client,
            signing_secret=secret.get_secret_value() if secret else "",
            logger=_level_in_effect("slack_bolt"),
            # Our listeners ack and hand the work to a task at once, so Bolt may answer when
            # they return: otherwise it runs them aside and looks for the ack every 10 ms.
            process_before_response=True,
        )
        listeners.register(bolt, ctx, bot_user_id=bot_user_id)
        if not self.socket_mode or self.settings.public_url:
            self._server = SlackServer(
                host=self.settings.host,
                port=self.settings.port,
                bolt=None if self.socket_mode else bolt,
                links=ctx.links,
            )
            await self._server.start()
        if self.socket_mode:
            app_token = _secret(self.settings.app_token, "slack.app_token (SLACK_APP_TOKEN)")
            self._socket = AsyncSocketModeHandler(bolt, app_token=app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            self.core.readiness.watch(PLATFORM, self._socket_state)

    async def _socket_state(self) -> str | None:
        """Socket Mode reconnects by itself; readiness asks it whether it is connected now."""
        if self._socket is not None and await self._socket.client.is_connected():
            return None
        return "Socket Mode connection lost; reconnecting"

    def _mode(self) -> str:
        return "Socket Mode" if self.socket_mode else f"HTTP mode on port {self.port}"

    async def idle(self) -> None:
        """Until every handler task and every job has finished (tests)."""
        await self.tasks.idle()
        await self.core.jobs.wait_idle()
        await self.tasks.idle()

    async def stop(self) -> None:
        """Stop taking requests, then stop the work in flight; jobs resume at the next start."""
        self.core.readiness.disconnected(PLATFORM, "stopped")
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.tasks.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None
        log.info("slack adapter stopped")


def _level_in_effect(name: str) -> logging.Logger:
    """slack_sdk and Bolt build their debug lines whenever `logger.level <= DEBUG`, the logger's
    own level, which is NOTSET (0) unless set: so every Web API call formatted its request and
    Slack's whole answer, and every event the middleware it ran, into strings nobody logged.
    The level in effect now is set on the logger (`bot.logs` configures logging before the
    adapters start), which changes nothing that is logged."""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logger.getEffectiveLevel())
    return logger


def _secret(value: SecretStr | None, name: str) -> str:
    if value is None or not value.get_secret_value():
        raise ConfigError(f"{name} is not set")
    return value.get_secret_value()


async def _authenticate(client: AsyncWebClient) -> str:
    """Check the bot token once at start (a bad token fails here, not on the first command)."""
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(f"slack.bot_token was refused: {exc.response.get('error')}") from None
    log.info("slack: signed in as %s in team %s", answer.get("user"), answer.get("team_id"))
    return str(answer["user_id"])
