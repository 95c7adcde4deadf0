"""Shared pieces of the hand-run benchmarks: FakeRunpod in its own process, and percentiles.

The fake runs in a child process (`python -m bench.common`) so that its CPU, memory and event
loop are not counted as, or mixed into, the bot's: a bench process that also served every
request would measure the server as much as the client. The child prints one JSON line with its
URLs, then serves until its stdin closes. A second, small HTTP app in the child (the control
URL) configures endpoints and reports job times and per-job request counts; it is not part of
the fake, so its traffic is never counted as a client's.

Times crossing the process boundary are `time.monotonic()`: CLOCK_MONOTONIC on Linux is one clock
for the whole machine, so a completion time stamped in the child compares with a time the bench
stamps when it sees the result.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import resource
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

API_KEY = "rp_bench_key_0123456789"
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
SCHNELL = Decimal("0.0024")
_TIMES = re.compile(r"queue=([0-9.]+) exec=([0-9.]+)")


def timed_prompt(label: str, queue_s: float, exec_s: float) -> str:
    """A prompt that tells the fake how long this job queues and runs (see `_from_prompt`)."""
    return f"bench {label} queue={queue_s:.4f} exec={exec_s:.4f}"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def forget_bot_settings() -> None:
    """Drop `BOT_*` and `RUNPOD_API_KEY` from this process: they would override the bench's."""
    for name in [n for n in os.environ if n.startswith("BOT_")] + ["RUNPOD_API_KEY"]:
        os.environ.pop(name, None)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def calibration_ms(rounds: int = 5) -> float:
    """CPU milliseconds of a fixed pure-Python workload (best of `rounds`): the unit for ratios.

    The machine is shared, so absolute CPU figures move with the load; a figure divided by this
    unit, measured in the same process just before, moves much less. The workload (JSON, dicts,
    string formatting) is the kind of work the bot's hot path does.
    """
    best = math.inf
    for _ in range(rounds):
        start = time.process_time()
        for i in range(2_000):
            body = {"id": f"job-{i}", "status": "IN_PROGRESS", "delayTime": i, "output": None}
            parsed = json.loads(json.dumps(body))
            Counter(parsed["status"] for _ in range(4))
            f"{parsed['id']}: {parsed['delayTime']:d} {sorted(parsed)!r}".encode()
        best = min(best, time.process_time() - start)
    return best * 1000


def rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class ServerJob:
    id: str
    endpoint: str
    status: str
    created: float
    started: float | None
    completed: float | None
    requests: dict[str, int]  # route -> requests naming this job id (status, status-sync, media)


async def billed(runpod_url: str, server: dict[str, ServerJob]) -> dict[str, Decimal]:
    """What FakeRunpod billed each completed job (the `cost` in its output), read back by id."""
    limit = asyncio.Semaphore(20)
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one(http: httpx.AsyncClient, job: ServerJob) -> tuple[str, Decimal]:
        async with limit:
            response = await http.get(f"{runpod_url}/{job.endpoint}/status/{job.id}")
        body = json.loads(response.text, parse_float=Decimal)
        return job.id, Decimal(body["output"]["cost"])

    done = [job for job in server.values() if job.status == "COMPLETED"]
    async with httpx.AsyncClient(headers=headers, trust_env=False, timeout=30) as http:
        return dict(await asyncio.gather(*(one(http, job) for job in done)))


class FakeProcess:
    """Client side of the child process: start, configure endpoints, read jobs and usage."""

    def __init__(self) -> None:
        self.base_url = ""
        self._control = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._http = httpx.AsyncClient(trust_env=False, timeout=60.0)

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.common",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        if not line:
            raise RuntimeError("the fake server process exited before it was ready")
        urls = json.loads(line)
        self.base_url, self._control = urls["base_url"], urls["control_url"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 10.0)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()

    async def endpoint(
        self,
        endpoint_id: str,
        *,
        queue_s: float | None = None,
        exec_s: float | None = None,
        status_sync: bool = True,
        pad_bytes: int = 0,
    ) -> None:
        """An image endpoint; times None mean "read them from the prompt" (`timed_prompt`).

        `pad_bytes` inflates each served PNG (a skippable chunk) to the size of a real image.
        """
        body = {
            "id": endpoint_id,
            "queue_s": queue_s,
            "exec_s": exec_s,
            "status_sync": status_sync,
            "pad_bytes": pad_bytes,
        }
        (await self._http.post(f"{self._control}/endpoint", json=body)).raise_for_status()

    async def jobs(self) -> dict[str, ServerJob]:
        response = await self._http.get(f"{self._control}/jobs")
        response.raise_for_status()
        return {j["id"]: ServerJob(**j) for j in response.json()["jobs"]}

    async def usage(self) -> dict[str, float]:
        """The child's CPU seconds (process_time), peak RSS in MB, requests and connections so far."""
        response = await self._http.get(f"{self._control}/usage")
        response.raise_for_status()
        return dict(response.json())


# --- the child process ----------------------------------------------------------------------


def _from_prompt(group: int) -> Any:
    def seconds(inp: dict[str, Any]) -> float:
        found = _TIMES.search(str(inp.get("prompt", "")))
        return float(found[group]) if found else 0.0

    return seconds


def _schnell_cost(inp: dict[str, Any], output: Any) -> Decimal:
    """Flux Schnell's price, $0.0024 per megapixel, so the engine's estimates match its charges."""
    return Decimal(int(inp.get("width", 1024)) * int(inp.get("height", 1024))) / 10**6 * SCHNELL


async def _serve() -> None:
    from aiohttp import web

    from tests.fakes.runpod import FakeRunpod

    class BenchFake(FakeRunpod):
        """FakeRunpod whose `/status-sync` can be missing on some endpoints only."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.no_status_sync: set[str] = set()
            self.peers: set[Any] = set()  # client (host, port) pairs: one per TCP connection

        async def _record(self, request: web.Request, route: str) -> Any:
            if request.transport is not None:
                self.peers.add(request.transport.get_extra_info("peername"))
            return await super()._record(request, route)

        async def _status_sync(self, request: web.Request) -> web.Response:
            if request.match_info["endpoint_id"] in self.no_status_sync:
                return web.json_response({"error": "not found"}, status=404)
            return await super()._status_sync(request)

    fake = BenchFake(api_key=API_KEY)
    await fake.start()

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.json()
        queue = _from_prompt(1) if body["queue_s"] is None else float(body["queue_s"])
        run = _from_prompt(2) if body["exec_s"] is None else float(body["exec_s"])
        fake.endpoint(
            body["id"],
            kind="image",
            queue_delay=queue,
            execution_time=run,
            cost=_schnell_cost,
            pad_bytes=int(body["pad_bytes"]),
        )
        if not body["status_sync"]:
            fake.no_status_sync.add(body["id"])
        return web.json_response({"ok": True})

    async def jobs(request: web.Request) -> web.Response:
        counts: dict[str, Counter[str]] = {}
        for rec in fake.requests:
            if rec.job_id is not None:
                counts.setdefault(rec.job_id, Counter())[rec.route] += 1
        listed = [
            {
                "id": job.id,
                "endpoint": job.endpoint_id,
                "status": job.status,
                "created": job.created,
                "started": job.started,
                "completed": job.completed,
                "requests": dict(counts.get(job.id, {})),
            }
            for job in fake.jobs.values()
        ]
        return web.json_response({"jobs": listed})

    async def usage(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "cpu_s": time.process_time(),
                "maxrss_mb": rss_mb(),
                "requests": len(fake.requests),
                "connections": len(fake.peers),
            }
        )

    control = web.Application()
    control.router.add_post("/endpoint", endpoint)
    control.router.add_get("/jobs", jobs)
    control.router.add_get("/usage", usage)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(
        json.dumps({"base_url": fake.base_url, "control_url": f"http://127.0.0.1:{port}"}),
        flush=True,
    )
    try:
        await asyncio.to_thread(sys.stdin.buffer.read)  # until the parent closes our stdin
    finally:
        await runner.cleanup()
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(_serve())


@contextmanager
def throwaway_postgres(server: str) -> Iterator[str]:
    """A new empty database on the PostgreSQL server `server` (a DSN): its DSN, dropped after."""
    where = server
    name = f"bench_{secrets.token_hex(4)}"
    parts = urlsplit(where)
    with psycopg.connect(where, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def fresh_place(where: str, tmp: Path) -> Iterator[str]:
    """`storage.database` for a run: an SQLite file in `tmp` ("sqlite"), else a throwaway
    database on the PostgreSQL server `where`."""
    if where == "sqlite":
        yield str(tmp / "bot.db")
        return
    with throwaway_postgres(where) as dsn:
        yield dsn
