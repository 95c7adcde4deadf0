"""The composition root: settings -> http client -> database -> ledger -> Runpod -> jobs -> adapters.

Adapters are found through the `runpod_bot.adapters` entry-point group (see pyproject.toml), so
the core names no platform: each entry point is `async def run(core: Core) -> None`, which
registers its DeliveryFactory, connects, calls `core.jobs.resume(platform)` once it can post, and
runs until cancelled. Every process that opens the core is a worker (bot/jobs/workers.py) renewing its
lease while the core is open; `serve` also takes over the jobs of workers that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import httpx

from bot import collector, memory
from bot import web as web_page
from bot.config import JobSettings, Settings
from bot.errors import BotError, ConfigError
from bot.jobs.service import JobParts, JobService
from bot.jobs.settings import EngineSettings
from bot.jobs.workers import Worker
from bot.ledger.reconcile import Reconciler
from bot.ledger.service import SqliteLedger
from bot.listener import Listener
from bot.metrics import Metrics
from bot.notices import AdminNotices
from bot.readiness import Readiness
from bot.requests import MAX_COUNT
from bot.runpod.catalog import Catalog, load_catalog
from bot.runpod.client import MAX_CONCURRENT_POLLS, RunpodClient
from bot.runpod.outputs import Downloader
from bot.runpod.transport import aiohttp_client
from bot.storage.sql import Store, db_errors, open_store, unreachable
from bot.tasks import TaskSet
from bot.web.access import WebAccess

log = logging.getLogger(__name__)

ADAPTER_GROUP = "runpod_bot.adapters"
SWEEP_INTERVAL_S = 300.0
HEADERS = {"User-Agent": "runpod-community-bot"}
# Runpod's API apart from long polls: /run, /cancel, and the /status polls, at most
# MAX_CONCURRENT_POLLS of them at once, so that the rest stay free for a new job's /run.
RUNPOD_CONNECTIONS = MAX_CONCURRENT_POLLS * 2
DOWNLOADS = 16  # results downloaded at once, each over a connection of its own


@dataclass(frozen=True)
class Core:
    """Everything an adapter may use; built once per process."""

    settings: Settings
    catalog: Catalog
    db: Store
    ledger: SqliteLedger
    runpod: RunpodClient
    jobs: JobService
    http: httpx.AsyncClient
    worker: Worker
    metrics: Metrics
    # The ledger against Runpod's bill: `serve` runs it every `reconcile.interval_hours`.
    reconciler: Reconciler
    # Adapters report their connection here; `/health/ready` reads it.
    readiness: Readiness = field(default_factory=Readiness)
    # Adapters with an admin channel register it here; the core posts operator notices to it.
    notices: AdminNotices = field(default_factory=AdminNotices)
    # Adapters tell the web page about members here (bot/web/access.py).
    web: WebAccess = field(default_factory=WebAccess)

    async def not_ready(self) -> dict[str, str]:
        """What `/health/ready` names: part -> why it is not ready."""
        return await self.readiness.problems(self.db, self.runpod, self.probe_endpoint())

    async def scrape(self) -> bytes:
        """`GET /metrics`: the Prometheus text format (bot/metrics.py)."""
        return await self.metrics.exposition(self.db, self.worker.holds_lease())

    def probe_endpoint(self) -> str:
        """The endpoint a cheap `/health` call asks when Runpod has been quiet: the default
        image model's, the one most deployments use."""
        model = self.settings.jobs.default_models.get("imagine", "flux-schnell")
        return self.catalog.get(model).endpoint


def long_poll_connections(jobs: JobSettings) -> int:
    """A connection for every job copy the engine may be long-polling, plus room for the rest.

    Each running copy holds one connection for its long poll, on a client of its own, so that a
    new job's /run never waits behind them.
    """
    return max(200, jobs.max_global * MAX_COUNT + 100)


def http_limits(jobs: JobSettings) -> httpx.Limits:
    """The shared httpx pool (downloads, platform file transfers), as large as the long polls'.

    Requests beyond an httpx pool's size queue inside httpcore, which rescans the queue against
    every connection on each request (CPU quadratic in the queue). Keep-alive stays small:
    httpcore's idle check costs idle x connections.
    """
    return httpx.Limits(max_connections=long_poll_connections(jobs), max_keepalive_connections=50)


@asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    """Build the core in dependency order and close it in reverse."""
    _check_runnable(settings)
    memory.return_large_buffers()
    collector.collect_less_often()
    catalog = load_catalog(settings.models)
    async with _http_clients(settings) as (http, api, long_poll, media):
        db = await open_store(settings.storage.database)
        worker = Worker(db, settings.workers)
        try:
            await worker.join()
            ledger = SqliteLedger(db, settings.quotas)
            metrics = Metrics(per_workspace=settings.metrics.per_workspace)
            runpod = _runpod_client(settings, api, long_poll, metrics)
            parts = JobParts(
                db=db,
                ledger=ledger,
                runpod=runpod,
                catalog=catalog,
                settings=engine_settings(settings),
                downloader=_downloader(settings, media),
                worker=worker,
                metrics=metrics,
            )
            jobs = JobService(parts)
            async with _working(worker, jobs):
                readiness = Readiness(runpod_stale_s=settings.http.ready_runpod_minutes * 60)
                notices = AdminNotices()
                reconciler = _reconciler(settings, db, runpod, metrics, notices)
                yield Core(
                    settings,
                    catalog,
                    db,
                    ledger,
                    runpod,
                    jobs,
                    http,
                    worker,
                    metrics,
                    reconciler,
                    readiness,
                    notices,
                )
        finally:
            await db.close()


def engine_settings(settings: Settings) -> EngineSettings:
    """The sections the job engine reads (bot/jobs/settings.py)."""
    return EngineSettings(
        jobs=settings.jobs,
        delivery=settings.delivery,
        storage=settings.storage,
        policy=settings.policy,
        personal_use=settings.quotas.personal.enabled,
        runpod_url=settings.runpod.base_url,
        webhook_url=settings.runpod.webhook_url,
        links_url=settings.http.public_url or settings.runpod.webhook_url,
    )


def _check_runnable(settings: Settings) -> None:
    """Refuse, before anything opens, settings the core cannot start with."""
    if settings.runpod.api_key is None:
        raise ConfigError("runpod.api_key: RUNPOD_API_KEY is not set")


@asynccontextmanager
async def _http_clients(
    settings: Settings,
) -> AsyncIterator[
    tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]
]:
    """The shared httpx client (platform files), then Runpod's API, long polls and downloads."""
    timeout = settings.runpod.request_timeout_s
    long_polls = long_poll_connections(settings.jobs)
    async with (
        httpx.AsyncClient(
            timeout=timeout,
            limits=http_limits(settings.jobs),
            headers=HEADERS,
            follow_redirects=True,
            trust_env=False,
        ) as http,
        aiohttp_client(max_connections=RUNPOD_CONNECTIONS, timeout=timeout, headers=HEADERS) as api,
        aiohttp_client(max_connections=long_polls, timeout=timeout, headers=HEADERS) as long_poll,
        aiohttp_client(max_connections=DOWNLOADS, timeout=timeout, headers=HEADERS) as media,
    ):
        yield http, api, long_poll, media


def _runpod_client(
    settings: Settings,
    api: httpx.AsyncClient,
    long_poll: httpx.AsyncClient,
    metrics: Metrics,
) -> RunpodClient:
    assert settings.runpod.api_key is not None  # _check_runnable
    return RunpodClient(
        api,
        long_poll_http=long_poll,
        base_url=settings.runpod.base_url,
        api_key=settings.runpod.api_key,
        max_retries=settings.runpod.max_retries,
        backoff_base_s=settings.runpod.backoff_base_s,
        request_timeout_s=settings.runpod.request_timeout_s,
        metrics=metrics,
    )


def _downloader(settings: Settings, media: httpx.AsyncClient) -> Downloader:
    return Downloader(
        media,
        max_bytes=int(settings.jobs.max_download_mb * 1024 * 1024),
        timeout_s=settings.jobs.download_timeout_s,
        allow_private_urls=settings.security.allow_private_urls,
        backoff_s=settings.runpod.backoff_base_s,
        max_concurrent=DOWNLOADS,
    )


def _reconciler(
    settings: Settings, db: Store, runpod: RunpodClient, metrics: Metrics, notices: AdminNotices
) -> Reconciler:
    return Reconciler(
        db=db,
        runpod=runpod,
        rest_url=settings.runpod.rest_url,
        settings=settings.reconcile,
        metrics=metrics,
        notices=notices,
    )


@asynccontextmanager
async def _working(worker: Worker, jobs: JobService) -> AsyncIterator[None]:
    """Keep the worker's lease while the core is open; then stop the jobs and leave."""
    heartbeat = TaskSet()
    heartbeat.spawn(_keep_lease(worker, jobs), name="worker-heartbeat")
    try:
        yield
    finally:
        await jobs.aclose()
        await heartbeat.cancel_all()
        if worker.id:
            await worker.leave()


async def _keep_lease(worker: Worker, jobs: JobService) -> None:
    """Renew the lease every heartbeat; when it lapsed, stop this worker's jobs and rejoin."""
    while True:
        await asyncio.sleep(worker.settings.heartbeat_s)
        try:
            renewed = await worker.renew()
        except db_errors() as exc:  # not the store away (`renew` rides that out): next beat
            log.warning("worker %s: lease not renewed: %s", worker.id, exc)
            renewed = worker.holds_lease()
        if not renewed:
            try:
                await jobs.lease_lost()
            except db_errors() as exc:  # could not rejoin: the next beat tries again
                log.error("worker %s could not rejoin: %s", worker.id, exc)


AdapterRun = Callable[[Core], Coroutine[Any, Any, None]]


def load_adapters(names: list[str]) -> dict[str, AdapterRun]:
    found = {ep.name: ep for ep in entry_points(group=ADAPTER_GROUP)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ConfigError(f"adapter not installed: {', '.join(missing)} (pip install -e .)")
    return {name: found[name].load() for name in names}


async def serve(settings: Settings) -> None:
    """Run every configured adapter until SIGINT/SIGTERM; unfinished jobs resume next start."""
    adapters = load_adapters(settings.enabled_adapters())
    async with open_core(settings) as core:
        for name in adapters:
            core.readiness.expect(name)
        listener = Listener(
            core.jobs,
            host=settings.http.host,
            port=settings.http.port,
            ready=core.not_ready,
            metrics=core.scrape,
        )
        listener.mounts[web_page.PREFIX] = web_page.web_app(core)
        await listener.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            swept = await core.jobs.sweep()
            if swept:
                log.info("released %d stale holds at start", len(swept))
            async with asyncio.TaskGroup() as group:
                tasks: list[asyncio.Task[None]] = [
                    group.create_task(run(core), name=f"adapter-{name}")
                    for name, run in adapters.items()
                ]
                tasks.append(group.create_task(_sweep_forever(core), name="sweeper"))
                if settings.reconcile.interval_hours:
                    tasks.append(group.create_task(core.reconciler.forever(), name="reconcile"))
                tasks.append(group.create_task(_recover_forever(core), name="recovery"))
                log.info("running: %s", ", ".join(adapters))
                await stop.wait()
                log.info("shutting down; unfinished jobs resume at next start")
                for task in tasks:
                    task.cancel()
        except* BotError as failed:
            # An adapter that cannot start (a refused token...) says why; the others stop too.
            raise failed.exceptions[0] from None
        finally:
            await listener.stop()


async def _recover_forever(core: Core) -> None:
    """Take over, every heartbeat, the jobs of workers that died (their lease lapsed)."""
    while True:
        await asyncio.sleep(core.settings.workers.heartbeat_s)
        try:
            await core.jobs.recover()
        except Exception as exc:
            if unreachable(exc):  # said once per outage (bot/storage/outage.py), not every beat
                core.worker.outage.gone(exc)
            else:
                log.exception("taking over jobs of dead workers failed")


async def _sweep_forever(core: Core) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            await core.jobs.sweep()
        except Exception:
            log.exception("hold sweep failed")
