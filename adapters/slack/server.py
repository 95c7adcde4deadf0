"""The adapter's HTTP listener: Slack's requests in HTTP mode, and the signed file links.

`POST /slack/events` takes slash commands, events and interactivity; Bolt verifies each
request's signature and timestamp (never turned off) before any handler runs. In Socket Mode the
route is not served at all (there is no signing secret to check against); the listener only
runs there when `slack.public_url` needs the file links.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from adapters.slack.files import ROUTE, FileLinks

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1024 * 1024
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


class SlackServer:
    def __init__(self, *, host: str, port: int, bolt: AsyncApp | None, links: FileLinks) -> None:
        self._host = host
        self._port = port
        self._bolt = bolt
        self._links = links
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        if self._bolt is not None:
            app.router.add_post(EVENTS_PATH, self._events)
        app.router.add_get(ROUTE, self._links.serve)
        app.router.add_get("/slack/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("slack listener on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _events(self, request: web.Request) -> web.Response:
        assert self._bolt is not None
        if not _readable_timestamp(request.headers.get(TIMESTAMP_HEADER, "0")):
            log.info("slack request refused: unreadable %s", TIMESTAMP_HEADER)
            return web.json_response({"error": "invalid request"}, status=401)
        answer = await self._bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(answer)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


def _readable_timestamp(value: str) -> bool:
    """Whether slack_sdk's signature check can read it: it calls int() on it, unguarded, and a
    ValueError there would answer HTTP 500 with a traceback instead of Bolt's 401."""
    try:
        int(value)
    except ValueError:
        return False
    return True
