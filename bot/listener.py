"""The bot's own small HTTP listener: Runpod webhooks (push instead of poll), health checks,
and spooled results behind signed links (`bot.jobs.links`, the last delivery route).

Metrics: `GET /metrics` is the Prometheus text format (`bot.metrics`).

Health: `/health/live` answers while the process serves HTTP; `/health/ready` answers 200 when
every part is ready and 503 with `{"ready": false, "not_ready": {part: why}}` otherwise
(`bot.readiness`); `/health` stays the plain liveness answer it always was.

A webhook URL carries the job id, the copy index and an unguessable per-job token; calls for
unknown or finished jobs, or with a wrong token, are answered (so Runpod stops retrying) and
ignored. A result link with a bad or expired signature is refused with 403.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.jobs.links import ROUTE as RESULT_ROUTE
from bot.jobs.service import JobService
from bot.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 25 * 1024 * 1024

NotReady = Callable[[], Awaitable[dict[str, str]]]
Scrape = Callable[[], Awaitable[bytes]]


class Listener:
    def __init__(
        self,
        jobs: JobService,
        *,
        host: str,
        port: int,
        ready: NotReady | None = None,
        metrics: Scrape | None = None,
    ) -> None:
        self._jobs = jobs
        self._scrape = metrics
        self._not_ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.mounts: dict[str, web.Application] = {}  # prefix -> sub-app (the web page)

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
        app.router.add_post("/runpod/webhook/{job}/{index}/{token}", self._webhook)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._health)
        app.router.add_get("/health/ready", self._ready)
        app.router.add_get(RESULT_ROUTE, self._result)
        if self._scrape is not None:
            app.router.add_get("/metrics", self._metrics)
        for prefix, sub_app in self.mounts.items():
            app.add_subapp(prefix, sub_app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("HTTP listener on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _webhook(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job"]
        try:
            index = int(request.match_info["index"])
            body = json.loads(await request.read())
        except (ValueError, json.JSONDecodeError):
            self._jobs.metrics.webhooks.labels("malformed").inc()
            log.warning("job %s: malformed webhook ignored", job_id)
            return web.json_response({"ok": False, "error": "malformed"}, status=400)
        used = await self._jobs.on_webhook(job_id, index, request.match_info["token"], body)
        self._jobs.metrics.webhooks.labels("used" if used else "ignored").inc()
        if not used:
            log.info("job %s: webhook for no waiting job ignored", job_id)
        return web.json_response({"ok": True, "used": used})

    async def _result(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        job_id, name = info["job"], info["name"]
        if not self._jobs.kept.links.valid(job_id, name, info["expires"], info["signature"]):
            raise web.HTTPForbidden(text="bad or expired link")
        path = self._jobs.kept.path(job_id, name)
        if path is None:
            raise web.HTTPNotFound(text="this result is no longer kept")
        return web.FileResponse(path)

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self._scrape is not None
        body = await self._scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _ready(self, request: web.Request) -> web.Response:
        problems = await self._not_ready() if self._not_ready is not None else {}
        if problems:
            return web.json_response({"ready": False, "not_ready": problems}, status=503)
        return web.json_response({"ready": True})
