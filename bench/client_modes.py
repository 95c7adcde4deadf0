"""How each mode of `bench.client_vs_sdk` runs one job: the SDK, its `run_sync`, our client
(long poll, polling) and the job engine with webhooks, each timed the same way."""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import API_KEY, timed_prompt
from bot.app import engine_settings
from bot.config import Settings
from bot.delivery import ChannelRef, MediaFile, Result, Route
from bot.jobs.invocation import Community, Invocation
from bot.jobs.service import JobParts, JobService
from bot.jobs.workers import Worker
from bot.ledger.quota import Identity
from bot.ledger.service import SqliteLedger
from bot.listener import Listener
from bot.metrics import Metrics
from bot.policy import Where
from bot.requests import parse_text
from bot.runpod.catalog import load_catalog
from bot.runpod.client import RunpodClient
from bot.runpod.outputs import Downloader
from bot.storage.sqlite import Database
from tests.fakes.delivery import RecordingDelivery

JOB_TIMEOUT_S = 900.0
IMAGE = {"width": 256, "height": 256}
MODES = ("SDK", "run_sync", "long-poll", "polling", "webhook")
ENDPOINTS = {mode: f"bench-{mode}" for mode in MODES}


@dataclass(frozen=True)
class Draw:
    """One job's times, identical for every mode."""

    cls: str
    index: int
    arrival_s: float
    queue_s: float
    exec_s: float

    @property
    def prompt(self) -> str:
        return timed_prompt(f"{self.cls}-{self.index}", self.queue_s, self.exec_s)


@dataclass
class Seen:
    draw: Draw
    job_id: str
    seen: float  # time.monotonic() when the caller held the final job
    delivered: float | None = None  # engine only: the Delivery got the result
    download_s: float = 0.0  # engine only
    via_webhook: bool = False


# --- the modes -------------------------------------------------------------------------------

JobRunner = Callable[[Draw], Awaitable[Seen]]


def import_sdk() -> Any:
    """`import runpod`, undoing its import-time `logging.basicConfig(level=INFO)`
    (runpod/serverless/utils/rp_upload.py), which would print every INFO line of every library."""
    import runpod  # type: ignore[import-untyped]

    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    return runpod


@asynccontextmanager
async def sdk_mode(base_url: str) -> AsyncIterator[JobRunner]:
    runpod = import_sdk()
    runpod.endpoint_url_base = base_url  # read by AsyncioEndpoint/AsyncioJob when constructed
    async with aiohttp.ClientSession() as session:  # as in the SDK's README
        endpoint = runpod.AsyncioEndpoint(ENDPOINTS["SDK"], session, api_key=API_KEY)

        async def one(draw: Draw) -> Seen:
            job = await endpoint.run({"prompt": draw.prompt, **IMAGE})
            await job.output(timeout=int(JOB_TIMEOUT_S))  # the default 0 times out at once
            return Seen(draw, job.job_id, time.monotonic())

        yield one


@asynccontextmanager
async def run_sync_mode(base_url: str, threads: int) -> AsyncIterator[JobRunner]:
    """`Endpoint.run_sync`, blocking: a thread per job in flight, as a caller of it needs."""
    runpod = import_sdk()
    runpod.endpoint_url_base = base_url  # read by Endpoint's client when constructed
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # "pool is full" for each extra thread
    endpoint = runpod.Endpoint(ENDPOINTS["run_sync"], api_key=API_KEY)
    loop = asyncio.get_running_loop()

    def blocking(draw: Draw) -> tuple[Any, float]:
        output = endpoint.run_sync({"prompt": draw.prompt, **IMAGE}, timeout=int(JOB_TIMEOUT_S))
        return output, time.monotonic()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="run_sync") as pool:

        async def one(draw: Draw) -> Seen:
            output, seen = await loop.run_in_executor(pool, blocking, draw)
            # run_sync returns only the output; the job id is in its media URL (.../<id>/0.png)
            return Seen(draw, output["image_url"].rsplit("/", 2)[-2], seen)

        yield one


@asynccontextmanager
async def client_mode(base_url: str, endpoint: str) -> AsyncIterator[JobRunner]:
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50), trust_env=False
    ) as http:  # the limits open_core uses
        rp = RunpodClient(http, base_url=base_url, api_key=API_KEY)

        async def one(draw: Draw) -> Seen:
            job = await rp.run(endpoint, {"prompt": draw.prompt, **IMAGE})
            final = await rp.wait(endpoint, job.id, timeout_s=JOB_TIMEOUT_S)
            seen = time.monotonic()
            assert final.status == "COMPLETED", final
            return Seen(draw, job.id, seen)

        yield one


class TimingDownloader(Downloader):
    """Notes when the engine starts and ends each download, keyed by the Runpod job id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans: dict[str, tuple[float, float]] = {}

    async def fetch(self, url: str, *, kind: str, name: str) -> MediaFile:
        start = time.monotonic()
        file = await super().fetch(url, kind=kind, name=name)
        self.spans[url.rsplit("/", 2)[-2]] = (start, time.monotonic())  # .../media/<id>/0.png
        return file


@dataclass
class TimedDelivery(RecordingDelivery):
    delivered_at: float | None = None

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        await super().deliver(result, route)
        self.delivered_at = time.monotonic()


class WebhookLog(logging.Handler):
    """Counts the engine's "finished (webhook)" lines: which jobs the webhook (not a poll) ended."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.jobs: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if "(webhook)" in str(record.msg) and record.args:
            self.jobs.add(str(record.args[0]))  # type: ignore[index]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(base_url: str, folder: Path, webhook_port: int) -> Settings:
    sections: dict[str, Any] = {
        "runpod": {
            "api_key": API_KEY,
            "base_url": base_url,
            "webhook_url": f"http://127.0.0.1:{webhook_port}",
        },
        "storage": {"database": str(folder / "bench.db")},
        "jobs": {"max_global": 1000, "max_per_user": 1000, "confirm_above_usd": "1000"},
        "quotas": {"daily_usd": None, "monthly_usd": None, "workspace": {"monthly_usd": None}},
        "http": {"host": "127.0.0.1", "port": webhook_port},
        "security": {"allow_private_urls": True},  # FakeRunpod's results are on 127.0.0.1
        "workers": {"heartbeat_s": 3600, "lease_s": 86400},  # one lease outlasts the run
        "models": {"flux-schnell": {"endpoint": ENDPOINTS["webhook"]}},
    }
    return Settings(**sections)


@asynccontextmanager
async def webhook_mode(base_url: str) -> AsyncIterator[JobRunner]:
    """The engine wired as `open_core` wires it, with a downloader that notes its times."""
    port = _free_port()
    webhooks = WebhookLog()
    tracking_log = logging.getLogger("bot.jobs.tracking")  # where "finished (webhook)" is logged
    tracking_log.addHandler(webhooks)
    tracking_log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        settings = bench_settings(base_url, Path(folder), port)
        catalog = load_catalog(settings.models)
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            trust_env=False,
            follow_redirects=True,
        ) as http:
            db = await Database.open(settings.storage.database)
            worker = Worker(db, settings.workers)
            await worker.join()  # no heartbeat: the lease outlasts the run
            downloader = TimingDownloader(
                http,
                max_bytes=50 * 2**20,
                timeout_s=60,
                allow_private_urls=settings.security.allow_private_urls,
            )
            parts = JobParts(
                db=db,
                ledger=SqliteLedger(db, settings.quotas),
                runpod=RunpodClient(http, base_url=base_url, api_key=API_KEY),
                catalog=catalog,
                settings=engine_settings(settings),
                downloader=downloader,
                worker=worker,
                metrics=Metrics(),
            )
            jobs = JobService(parts)
            listener = Listener(jobs, host="127.0.0.1", port=port)
            await listener.start()
            try:
                yield _engine_runner(jobs, catalog, downloader, webhooks)
            finally:
                await listener.stop()
                await jobs.aclose()
                await db.close()
                tracking_log.removeHandler(webhooks)


def _engine_runner(
    jobs: JobService, catalog: Any, downloader: TimingDownloader, webhooks: WebhookLog
) -> JobRunner:
    who = Identity("bench", "w1", "u1")

    async def one(draw: Draw) -> Seen:
        request = parse_text(
            "imagine", f"{draw.prompt} --size 256x256", catalog, default_model="flux-schnell"
        )
        delivery = TimedDelivery()
        ref = ChannelRef("bench", who.workspace, "c1", who.user)
        submitted = await jobs.submit(Invocation(request, who, ref, delivery, Where("c1")))
        await delivery.wait_for(lambda: delivery.delivered_at or delivery.failures, JOB_TIMEOUT_S)
        assert not delivery.failures, delivery.failures
        record = await jobs.job(submitted.job_id, Community(who.platform, who.workspace))
        assert record is not None and record.copies[0].runpod_id is not None
        runpod_id = record.copies[0].runpod_id
        start, end = downloader.spans[runpod_id]
        return Seen(
            draw,
            runpod_id,
            start,
            delivered=delivery.delivered_at,
            download_s=end - start,
            via_webhook=submitted.job_id in webhooks.jobs,
        )

    return one
