"""FakeRunpod: a real HTTP server speaking Runpod's Public Endpoints API, for tests and benchmarks.

It follows `shared/reference/runpod-api.md` and the copied Runpod docs: `/v2/{endpoint}/run`,
`runsync`, `status`, `stream`, `cancel`, `retry`, `health`, `purge-queue` and the OpenAI-compatible
`openai/v1/chat/completions`, plus `/media/{job}/0.{png,mp4,wav}` serving the outputs as real files.
Jobs move IN_QUEUE -> IN_PROGRESS -> final on `loop.call_later` timers, so a thousand concurrent
jobs cost a few thousand timer handles and nothing else; tests wait on state-change events.

Choices where the docs are silent (clients must not depend on them beyond what is said here):
- Auth accepts `Authorization: Bearer <key>` and the raw key (the docs' curl examples send both);
  otherwise 401 with the plain-text body `401 Unauthorized`, so clients cannot assume JSON errors.
- Other errors are JSON `{"error": "..."}`: 400 bad body, 404 unknown endpoint or job (also expired,
  purged, or "vanished" jobs). `?wait=` on runsync is clamped to 1,000-300,000 ms (the floor is
  `runsync_min_wait_ms`, lowered by fast tests). Retry-After is whole seconds when the fault's value
  is whole, else a decimal such as "0.25" (a test convenience real servers would not send).
- `/status` carries `delayTime` and `workerId` once a worker picked the job, `executionTime` once it
  ended, `output` only when COMPLETED, `error` on FAILED/TIMED_OUT.
- Money is Decimal, rounded up at the 10th decimal and written as an exact JSON number.
- A FAILED Flux job reproduces the documented "width must be divisible by 64" rule.
- `/stream` answers `{"id", "status", "stream": [{"output": ...}]}` with only chunks not yet handed
  out; a text reply is released in `stream_chunks` pieces across its execution time, any other
  output as one chunk at completion. Media URLs ignore retention (Runpod keeps them 7 days).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import struct
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal, Self, get_args

import aiohttp
from aiohttp import web

from tests.fakes import media

log = logging.getLogger(__name__)

Kind = Literal["image", "video", "text", "speech", "transcription"]
Route = Literal[
    "run", "runsync", "status", "status-sync", "stream", "cancel", "retry", "health",
    "purge-queue", "openai", "media",
]  # fmt: skip
Outcome = Literal["COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED", "VANISH", "MEDIA_404"]
Seconds = float | Callable[[dict[str, Any]], float]
CostRule = Callable[[dict[str, Any], Any], Decimal | float | None]

FINAL = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED"})
RUN_LIMIT, RUNSYNC_LIMIT = 10 * 2**20, 20 * 2**20
FLUX_PER_MP = {
    "black-forest-labs-flux-1-dev": Decimal("0.02"),
    "black-forest-labs-flux-1-schnell": Decimal("0.0024"),
}
_VOCAB = (
    "amber", "bright", "cloud", "delta", "ember", "forest", "garden", "harbor", "island", "jade",
    "kettle", "lantern", "meadow", "north", "ocean", "pebble", "quiet", "river", "signal", "timber",
    "umbra", "valley", "willow", "xenon", "yonder", "zephyr", "stone", "light", "paper", "orbit",
)  # fmt: skip
_SIZE_RE = re.compile(r"(\d+)\s*[*xX×]\s*(\d+)")
_RATIO_RE = re.compile(r"(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)")
_TEN_DECIMALS = Decimal("1E-10")
_RESET = 599  # marks a reset fault's placeholder response


def bill(amount: Decimal | float | int) -> Decimal:
    """Runpod's billing rule: round up after the 10th decimal place."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return value.quantize(_TEN_DECIMALS, rounding=ROUND_CEILING)


def dumps(obj: Any) -> str:
    """json.dumps writing Decimal as an exact JSON number (not a string, not a rounded float)."""

    def mark(value: object) -> str:
        if isinstance(value, Decimal):
            return f"\x00DEC{format(value.normalize(), 'f')}\x00"
        raise TypeError(f"not JSON serializable: {type(value).__name__}")

    return re.sub(r'"\\u0000DEC([-0-9.]+)\\u0000"', r"\1", json.dumps(obj, default=mark))


def _seconds(value: Seconds, inp: dict[str, Any]) -> float:
    return float(value(inp) if callable(value) else value)


def _flux_size_ok(width: int, height: int) -> bool:
    """Flux's documented input rule: each side a multiple of 64 in 256-1536."""
    return all(side % 64 == 0 and 256 <= side <= 1536 for side in (width, height))


def _even(value: float) -> int:
    return min(media.MAX_SIDE, max(2, round(value / 2) * 2))


def dimensions(inp: dict[str, Any], default: tuple[int, int] = (1024, 1024)) -> tuple[int, int]:
    """Output size from width/height, "W*H"/"WxH" size, or aspect_ratio + resolution ("2k")."""
    if "width" in inp or "height" in inp:
        return int(inp.get("width", default[0])), int(inp.get("height", default[1]))
    if match := _SIZE_RE.fullmatch(str(inp.get("size", "")).strip()):
        return int(match[1]), int(match[2])
    ratio = _RATIO_RE.fullmatch(str(inp.get("aspect_ratio", "")).strip())
    rw, rh = (float(ratio[1]), float(ratio[2])) if ratio else (float(default[0]), default[1])
    res = str(inp.get("resolution") or inp.get("size") or "").lower()
    if res.endswith("p") and res[:-1].isdigit():
        short = int(res[:-1])
        return (_even(short * rw / rh), short) if rw >= rh else (short, _even(short * rh / rw))
    long = {"1k": 1024, "2k": 2048, "4k": 4096}.get(res, max(default))
    return (long, _even(long * rh / rw)) if rw >= rh else (_even(long * rw / rh), long)


@dataclass
class FakeEndpoint:
    """One registered endpoint. Tests may change any field; the next job step reads it afresh."""

    endpoint_id: str
    kind: Kind = "image"
    queue_delay: Seconds = 0.0
    execution_time: Seconds = 0.0
    cost: CostRule | None = None  # (input, output without cost) -> amount; None result omits "cost"
    reply: str | Callable[[dict[str, Any]], str] | None = None  # text/transcription content
    reply_tokens: int = 24  # words in a generated reply (before max_tokens)
    think: bool = False  # prefix text replies with a <think>...</think> block, as Qwen3 does
    text_list: bool = True  # Qwen3/gpt-oss answer a list of batches; Granite a bare object
    stream_chunks: int = 4  # how many /stream chunks a text job's reply is split into
    segments: bool = False  # transcription output carries timed segments
    video_field: str = "video_url"  # Runpod's tutorial reads "result"
    pad_bytes: int = 0  # inflate served media files (upload-limit tests)
    output: Callable[[dict[str, Any], str], Any] | None = None  # (input, media url) -> output as is


@dataclass
class WebhookAttempt:
    """One POST of a final job status to its webhook."""

    at: float
    status: int | None  # None: connection error
    error: str | None = None


@dataclass(eq=False)
class FakeJob:
    """A job as the server sees it; times are time.monotonic(), `output` is set on COMPLETED."""

    id: str
    endpoint_id: str
    input: dict[str, Any]
    webhook: str | None
    policy: dict[str, Any]
    sync: bool
    created: float
    outcome: Outcome = "COMPLETED"
    error: str | None = None
    status: str = "IN_QUEUE"
    started: float | None = None
    completed: float | None = None
    output: Any = None
    cost: Decimal | None = None
    worker_id: str | None = None
    vanished: bool = False
    purged: bool = False
    retries: int = 0
    stream_sent: int = 0  # /stream chunks already handed out
    stream_ready: int = 0  # chunks released so far while IN_PROGRESS
    expired: bool = False  # past retention: /status answers 404
    webhook_attempts: list[WebhookAttempt] = field(default_factory=list)
    media: tuple[str, str, Callable[[], bytes]] | None = None  # name, content type, bytes
    result: Any = None  # the output it will have if it completes
    chunks: list[Any] = field(default_factory=list)  # what /stream hands out
    exec_s: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list, repr=False)
    done: asyncio.Future[None] | None = field(default=None, repr=False)


@dataclass
class RecordedRequest:
    """Every request that matched a route, recorded before faults or auth, in arrival order."""

    method: str
    path: str
    route: str
    endpoint_id: str | None
    job_id: str | None
    json: Any  # None when the body is empty or not JSON
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]
    at: float  # time.monotonic()
    status: int | None = None  # the answer's status; None for a reset


@dataclass
class _Fault:
    kind: Literal["status", "reset", "slow", "malformed"]
    remaining: int
    endpoint_id: str | None
    status: int = 0
    retry_after: float | None = None
    delay_s: float = 0.0


def _sent_text(inp: dict[str, Any]) -> str:
    """The text a text job bills as input: its prompt, or every chat message's content."""
    messages = inp.get("messages")
    if isinstance(messages, list):
        return " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return str(inp.get("prompt", ""))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json(data: Any) -> web.Response:
    return web.json_response(data, dumps=dumps)


class FakeRunpod:
    """The fake server: construct, `await start()` (or `async with`), point clients at base_url."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        retention_s: float = 1800.0,
        runsync_retention_s: float = 60.0,
        runsync_min_wait_ms: int = 1000,
        webhook_retry_s: float = 10.0,
        webhook_retries: int = 2,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key, self.host = api_key, host
        self.retention_s, self.runsync_retention_s = retention_s, runsync_retention_s
        self.runsync_min_wait_ms = runsync_min_wait_ms  # Runpod's floor; tests lower it for speed
        self.webhook_retry_s, self.webhook_retries = webhook_retry_s, webhook_retries
        self.requests: list[RecordedRequest] = []
        self.status_sync = True  # serve the /status-sync long poll
        self.jobs: dict[str, FakeJob] = {}
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.root_url = ""
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._outcomes: dict[str, deque[tuple[Outcome, str | None]]] = defaultdict(deque)
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._workers = 0
        self._closing: asyncio.Future[None] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware()], client_max_size=64 * 2**20)
        v2 = "/v2/{endpoint_id}"
        for method, path, name, handler in (
            ("POST", "/run", "run", self._run),
            ("POST", "/runsync", "runsync", self._runsync),
            ("GET", "/status/{job_id}", "status", self._status),
            ("GET", "/status-sync/{job_id}", "status-sync", self._status_sync),
            ("GET", "/stream/{job_id}", "stream", self._stream),
            ("POST", "/cancel/{job_id}", "cancel", self._cancel),
            ("POST", "/retry/{job_id}", "retry", self._retry),
            ("GET", "/health", "health", self._health),
            ("POST", "/purge-queue", "purge-queue", self._purge),
            ("POST", "/openai/v1/chat/completions", "openai", self._openai),
        ):
            app.router.add_route(method, v2 + path, handler, name=name)
        app.router.add_get("/media/{job_id}/{name}", self._media, name="media")
        self._runner = web.AppRunner(app, shutdown_timeout=0.25, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.root_url = f"http://{self.host}:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._closing = asyncio.get_running_loop().create_future()

    async def stop(self) -> None:
        """Cancel timers and webhook deliveries; waiting runsync calls answer what they have."""
        if self._closing and not self._closing.done():
            self._closing.set_result(None)
        for job in self.jobs.values():
            self._cancel_timers(job)
            if job.done and not job.done.done():
                job.done.set_result(None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def _pause(self, seconds: float) -> None:
        """Sleep inside a handler, but end early when the server stops (no slow shutdowns)."""
        if self._closing is not None and seconds > 0:
            await asyncio.wait({self._closing}, timeout=seconds)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- configuration ---------------------------------------------------------------------
    def endpoint(
        self,
        endpoint_id: str,
        *,
        kind: Kind = "image",
        queue_delay: Seconds = 0.0,
        execution_time: Seconds = 0.0,
        cost: CostRule | None = None,
        **options: Any,
    ) -> FakeEndpoint:
        """Register (or replace) an endpoint; unknown ids answer 404. `options`: FakeEndpoint."""
        if kind not in get_args(Kind):
            raise ValueError(f"unknown kind {kind!r}")
        ep = FakeEndpoint(endpoint_id, kind, queue_delay, execution_time, cost, **options)
        self.endpoints[endpoint_id] = ep
        return ep

    def retire(self, endpoint_id: str) -> None:
        """Runpod removed this Public Endpoint: every route of it answers 404 from now on."""
        self.endpoints.pop(endpoint_id)

    def _add_fault(self, route: str, fault: _Fault) -> None:
        if route not in get_args(Route):
            raise ValueError(f"unknown route {route!r}")
        self._faults[route].append(fault)

    def fail_next(
        self,
        route: Route,
        status: int = 503,
        *,
        count: int = 1,
        retry_after: float | None = None,
        endpoint_id: str | None = None,
    ) -> None:
        """Answer the next `count` requests on `route` with `status` (and Retry-After if given)."""
        self._add_fault(route, _Fault("status", count, endpoint_id, status, retry_after))

    def reset_next(self, route: Route, count: int = 1, *, endpoint_id: str | None = None) -> None:
        """Abort the TCP connection (RST) instead of answering: httpx raises ReadError."""
        self._add_fault(route, _Fault("reset", count, endpoint_id))

    def slow_next(
        self, route: Route, delay_s: float, count: int = 1, *, endpoint_id: str | None = None
    ) -> None:
        """Hold the request `delay_s` before handling it normally (client-timeout tests)."""
        self._add_fault(route, _Fault("slow", count, endpoint_id, delay_s=delay_s))

    def malformed_next(
        self, route: Route, count: int = 1, *, endpoint_id: str | None = None
    ) -> None:
        """Answer 200, content-type application/json, with a truncated body that is not JSON."""
        self._add_fault(route, _Fault("malformed", count, endpoint_id))

    def job_outcome(
        self, endpoint_id: str, outcome: Outcome, *, error: str | None = None, count: int = 1
    ) -> None:
        """Force the outcome of the endpoint's next `count` jobs (a retry takes one too)."""
        if outcome not in get_args(Outcome):
            raise ValueError(f"unknown outcome {outcome!r}")
        self._outcomes[endpoint_id].extend([(outcome, error)] * count)

    def next_job(self, endpoint_id: str, *, outcome: Outcome, error: str | None = None) -> None:
        self.job_outcome(endpoint_id, outcome, error=error)

    # --- observation -----------------------------------------------------------------------
    def count(self, route: Route, endpoint_id: str | None = None) -> int:
        return sum(
            1 for r in self.requests if r.route == route and endpoint_id in (None, r.endpoint_id)
        )

    def completed_at(self, job_id: str) -> float | None:
        """time.monotonic() when the job reached a final state on the server, else None."""
        return self.jobs[job_id].completed

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109, RUF100 - callers want a deadline
    ) -> None:
        """Wake on every request, job transition and webhook attempt until `predicate()` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    async def wait_status(
        self,
        job_id: str,
        status: str,
        timeout: float = 5.0,  # noqa: ASYNC109, RUF100 - the agreed API
    ) -> FakeJob:
        job = self.jobs[job_id]
        try:
            await self.wait_until(lambda: job.status == status, timeout)
        except TimeoutError:
            raise TimeoutError(f"job {job_id} is {job.status}, not {status}") from None
        return job

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- request plumbing ------------------------------------------------------------------
    def _middleware(self) -> Any:
        @web.middleware
        async def middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            route = request.match_info.route.name
            if route is None:  # aiohttp's own 404/405
                return await handler(request)
            rec = await self._record(request, route)
            response = await self._guard(request, rec) or await handler(request)
            if response.status != _RESET:
                rec.status = response.status
            return response

        return middleware

    async def _record(self, request: web.Request, route: str) -> RecordedRequest:
        body = await request.read() if request.can_read_body else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        job_id = request.match_info.get("job_id")
        endpoint_id = request.match_info.get("endpoint_id")
        if route == "media" and job_id in self.jobs:
            endpoint_id = self.jobs[job_id].endpoint_id
        rec = RecordedRequest(
            request.method,
            request.path,
            route,
            endpoint_id,
            job_id,
            parsed,
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query),
            time.monotonic(),
        )
        self.requests.append(rec)
        self._notify()
        return rec

    async def _guard(self, request: web.Request, rec: RecordedRequest) -> web.Response | None:
        """Injected faults first (like a rate limiter in front), then auth, then the endpoint."""
        fault = self._take_fault(rec.route, rec.endpoint_id)
        if fault and fault.kind == "status":
            response = _error(fault.status, f"fake fault {fault.status}")
            if (after := fault.retry_after) is not None:  # whole seconds, else a decimal number
                response.headers["Retry-After"] = str(int(after) if after == int(after) else after)
            return response
        if fault and fault.kind == "reset":
            if transport := request.transport:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # linger 0: close() sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            return web.Response(status=_RESET)  # never reaches the client
        if fault and fault.kind == "malformed":
            return web.Response(body=b'{"id": "trunc', content_type="application/json")
        if fault and fault.kind == "slow":
            await self._pause(fault.delay_s)
        if rec.route == "media":
            return None
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ").strip() != self.api_key:
            return web.Response(status=401, text="401 Unauthorized")
        if rec.endpoint_id not in self.endpoints:
            return _error(404, f"endpoint {rec.endpoint_id} not found")
        return None

    def _take_fault(self, route: str, endpoint_id: str | None) -> _Fault | None:
        queue = self._faults.get(route, [])
        for fault in queue:
            if fault.endpoint_id in (None, endpoint_id):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.remove(fault)
                return fault
        return None

    async def _payload(self, request: web.Request, limit: int) -> dict[str, Any] | web.Response:
        body = await request.read()
        if len(body) > limit:
            return _error(400, f"payload of {len(body)} bytes exceeds {limit}")
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "body is not valid JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
            return _error(400, 'body must be an object with an "input" object')
        return payload

    def _job(self, request: web.Request) -> FakeJob | None:
        """The job a route names, if the client may still see it (else the route answers 404)."""
        job = self.jobs.get(request.match_info["job_id"])
        if job is None or job.endpoint_id != request.match_info["endpoint_id"]:
            return None
        return None if job.vanished or job.purged or job.expired else job

    def status_body(self, job: FakeJob) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job.id, "status": job.status}
        if job.started is not None:
            body["delayTime"] = round((job.started - job.created) * 1000)
            body["workerId"] = job.worker_id
            if job.completed is not None:
                body["executionTime"] = round((job.completed - job.started) * 1000)
        if job.status == "COMPLETED":
            body["output"] = job.output
        if job.error is not None:
            body["error"] = job.error
        return body

    # --- routes ----------------------------------------------------------------------------
    async def _run(self, request: web.Request) -> web.Response:
        payload = await self._payload(request, RUN_LIMIT)
        if isinstance(payload, web.Response):
            return payload
        job = self._submit(request.match_info["endpoint_id"], payload, sync=False)
        return _json({"id": job.id, "status": "IN_QUEUE"})

    async def _runsync(self, request: web.Request) -> web.Response:
        payload = await self._payload(request, RUNSYNC_LIMIT)
        if isinstance(payload, web.Response):
            return payload
        try:
            wait = int(request.query.get("wait", "90000"))
            wait_ms = min(300_000, max(self.runsync_min_wait_ms, wait))
        except ValueError:
            return _error(400, "wait must be an integer number of milliseconds")
        job = self._submit(request.match_info["endpoint_id"], payload, sync=True)
        assert job.done is not None
        await asyncio.wait({job.done}, timeout=wait_ms / 1000)
        return _json(self.status_body(job))

    async def _status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        return _json(self.status_body(job)) if job else _error(404, "job not found")

    async def _status_sync(self, request: web.Request) -> web.Response:
        """`GET /status-sync/{id}?wait=ms`: the long poll Runpod's JavaScript SDK uses.

        Undocumented in the public pages; set `status_sync = False` to fake an endpoint that
        lacks it (the route then answers 404 like an unknown path).
        """
        if not self.status_sync:
            return _error(404, "not found")
        job = self._job(request)
        if job is None:
            return _error(404, "job not found")
        try:
            wait_ms = min(90_000, max(1000, int(request.query.get("wait", "90000"))))
        except ValueError:
            return _error(400, "wait must be an integer number of milliseconds")
        if job.done is not None and job.status not in FINAL:
            await asyncio.wait({job.done}, timeout=wait_ms / 1000)
        return _json(self.status_body(job))

    async def _stream(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _error(404, "job not found")
        ready = len(job.chunks) if job.status == "COMPLETED" else job.stream_ready
        fresh = job.chunks[job.stream_sent : max(ready, job.stream_sent)]
        job.stream_sent += len(fresh)
        body: dict[str, Any] = {"id": job.id, "status": job.status, "stream": fresh}
        if job.error is not None:
            body["error"] = job.error
        return _json(body)

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _error(404, "job not found")
        if job.status not in FINAL:
            self._finish(job, "CANCELLED")
        return _json({"id": job.id, "status": job.status})

    async def _retry(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _error(404, "job not found")
        if job.status not in ("FAILED", "TIMED_OUT"):
            return _error(400, f"only FAILED or TIMED_OUT jobs can be retried, not {job.status}")
        job.retries += 1
        job.status, job.started, job.completed = "IN_QUEUE", None, None
        job.output = job.error = job.cost = None
        job.stream_sent = 0
        self._schedule(job)
        return _json({"id": job.id, "status": "IN_QUEUE"})

    async def _health(self, request: web.Request) -> web.Response:
        jobs = [j for j in self.jobs.values() if j.endpoint_id == request.match_info["endpoint_id"]]
        running = sum(j.status == "IN_PROGRESS" for j in jobs)
        counts = {
            "completed": sum(j.status == "COMPLETED" for j in jobs),
            "failed": sum(j.status in ("FAILED", "TIMED_OUT") for j in jobs),
            "inProgress": running,
            "inQueue": sum(j.status == "IN_QUEUE" for j in jobs),
            "retried": sum(j.retries for j in jobs),
        }
        return _json({"jobs": counts, "workers": {"idle": 0 if running else 1, "running": running}})

    async def _purge(self, request: web.Request) -> web.Response:
        endpoint_id = request.match_info["endpoint_id"]
        queued = [
            j for j in self.jobs.values() if j.endpoint_id == endpoint_id and j.status == "IN_QUEUE"
        ]
        for job in queued:
            job.purged = True
            self._finish(job, "CANCELLED", webhook=False)
        return _json({"removed": len(queued), "status": "completed"})

    async def _media(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None or job.media is None or job.status != "COMPLETED":
            return _error(404, "no such file")
        name, content_type, make = job.media
        if job.outcome == "MEDIA_404" or request.match_info["name"] != name:
            return _error(404, "no such file")
        return web.Response(body=make(), content_type=content_type)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        ep = self.endpoints[request.match_info["endpoint_id"]]
        if ep.kind != "text":
            return _error(404, "this endpoint has no OpenAI-compatible route")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, '"messages" must be a list')
        prompt = "\n".join(
            str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict)
        )
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 512
        words, finish = self._words(ep, {**body, "prompt": prompt, "max_tokens": max_tokens})
        await self._pause(_seconds(ep.queue_delay, body))
        exec_s = _seconds(ep.execution_time, body)
        n_in = len(prompt.split())
        usage = {"prompt_tokens": n_in, "completion_tokens": len(words)}
        usage["total_tokens"] = n_in + len(words)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time())}
        head["model"] = body.get("model", "")
        if not body.get("stream"):
            await self._pause(exec_s)
            message = {"role": "assistant", "content": " ".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return _json({**head, "object": "chat.completion", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> None:
            choices = [{"index": 0, "delta": delta, "finish_reason": reason}] if delta else []
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            await response.write(f"data: {dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for i, word in enumerate(words):
            if exec_s:
                await self._pause(exec_s / len(words))
            await send({"content": word if i == 0 else " " + word})
        await send({"content": ""}, finish)
        await send({}, usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- jobs ------------------------------------------------------------------------------
    def _submit(self, endpoint_id: str, payload: dict[str, Any], *, sync: bool) -> FakeJob:
        prefix = "sync-" if sync else ""
        job = FakeJob(
            id=f"{prefix}{uuid.uuid4()}-u1",
            endpoint_id=endpoint_id,
            input=payload["input"],
            webhook=payload.get("webhook"),
            policy=payload["policy"] if isinstance(payload.get("policy"), dict) else {},
            sync=sync,
            created=time.monotonic(),
        )
        self.jobs[job.id] = job
        self._schedule(job)
        return job

    def _schedule(self, job: FakeJob) -> None:
        outcomes = self._outcomes[job.endpoint_id]
        job.outcome, job.error = outcomes.popleft() if outcomes else ("COMPLETED", None)
        job.done = asyncio.get_running_loop().create_future()
        job.stream_ready = 0
        self._cancel_timers(job)
        delay = _seconds(self.endpoints[job.endpoint_id].queue_delay, job.input)
        self._later(job, delay, self._start, job)
        log.debug("job %s IN_QUEUE for %.3fs (outcome %s)", job.id, delay, job.outcome)
        self._notify()

    def _start(self, job: FakeJob) -> None:
        if job.status != "IN_QUEUE":
            return
        ep = self.endpoints[job.endpoint_id]
        self._workers += 1
        job.status, job.started = "IN_PROGRESS", time.monotonic()
        job.worker_id = f"fakeworker{self._workers % 7}"
        if job.outcome == "VANISH":
            job.vanished = True
        else:
            job.exec_s = _seconds(ep.execution_time, job.input)
            final, job.exec_s = self._plan(job, ep, job.exec_s)
            self._later(job, job.exec_s, self._finish, job, final)
            if final == "COMPLETED":  # text replies trickle out through /stream
                for k in range(1, len(job.chunks)):
                    self._later(job, job.exec_s * k / len(job.chunks), self._release, job)
        log.debug("job %s IN_PROGRESS", job.id)
        self._notify()

    def _plan(self, job: FakeJob, ep: FakeEndpoint, exec_s: float) -> tuple[str, float]:
        """Decide the final state and precompute the output, honouring policy.executionTimeout."""
        limit = job.policy.get("executionTimeout")
        if isinstance(limit, int | float) and limit / 1000 < exec_s:
            job.error = job.error or f"execution exceeded {limit} ms"
            return "TIMED_OUT", limit / 1000
        if job.outcome in ("FAILED", "TIMED_OUT", "CANCELLED"):
            if job.outcome == "FAILED":
                job.error = job.error or "fake worker error"
            return job.outcome, exec_s
        try:
            self._build_output(job, ep)
        except (ValueError, TypeError) as exc:
            job.error = str(exc)
            return "FAILED", exec_s
        return "COMPLETED", exec_s

    def _later(self, job: FakeJob, delay: float, callback: Callable[..., None], *args: Any) -> None:
        job.timers.append(asyncio.get_running_loop().call_later(delay, callback, *args))

    def _cancel_timers(self, job: FakeJob) -> None:
        for timer in job.timers:
            timer.cancel()
        job.timers.clear()

    def _release(self, job: FakeJob) -> None:
        job.stream_ready += 1
        self._notify()

    def _expire(self, job: FakeJob) -> None:
        job.expired = True
        log.debug("job %s expired", job.id)
        self._notify()

    def _finish(self, job: FakeJob, status: str, *, webhook: bool = True) -> None:
        self._cancel_timers(job)
        job.status, job.completed = status, time.monotonic()
        keep = self.runsync_retention_s if job.sync else self.retention_s
        self._later(job, keep, self._expire, job)
        if status == "COMPLETED":
            job.output = job.result
        if job.done and not job.done.done():
            job.done.set_result(None)
        log.debug("job %s %s", job.id, status)
        self._notify()
        if job.webhook and webhook:
            task = asyncio.get_running_loop().create_task(self._deliver(job, job.webhook))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook delivery crashed", exc_info=task.exception())

    async def _deliver(self, job: FakeJob, url: str) -> None:
        """POST the final status like Runpod: expect 200, retry `webhook_retries` times."""
        assert self._session is not None
        body = dumps(self.status_body(job))
        for attempt in range(1 + self.webhook_retries):
            if attempt:
                await asyncio.sleep(self.webhook_retry_s)
            try:
                async with self._session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    job.webhook_attempts.append(WebhookAttempt(time.monotonic(), response.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                job.webhook_attempts.append(WebhookAttempt(time.monotonic(), None, repr(exc)))
            self._notify()
            if job.webhook_attempts[-1].status == 200:
                return
        log.info("webhook for job %s gave up after %d attempts", job.id, attempt + 1)

    # --- outputs ---------------------------------------------------------------------------
    def _words(self, ep: FakeEndpoint, inp: dict[str, Any]) -> tuple[list[str], str]:
        """A reply deterministic in the prompt, cut at max_tokens (one word is one token)."""
        if ep.reply is not None:
            words = (ep.reply(inp) if callable(ep.reply) else ep.reply).split()
        else:
            rng = random.Random(str(inp.get("prompt", "")))
            words = [rng.choice(_VOCAB) for _ in range(ep.reply_tokens)]
        if ep.think:
            words = ["<think>", "weighing", "the", "request", "</think>", *words]
        limit = int(inp.get("max_tokens", 512))
        return words[:limit], "length" if len(words) > limit else "stop"

    def _build_output(self, job: FakeJob, ep: FakeEndpoint) -> None:
        inp, kind = job.input, ep.kind
        ext = {"image": "png", "video": "mp4", "speech": "wav"}.get(kind)
        url = f"{self.root_url}/media/{job.id}/0.{ext}" if ext else ""
        if ep.output is not None:
            job.result = ep.output(inp, url)
            if isinstance(job.result, dict) and job.result.get("cost") is not None:
                job.cost = bill(job.result["cost"])
            job.chunks = [{"output": job.result}]
            return
        out: dict[str, Any]
        pad = ep.pad_bytes
        if kind == "image":
            width, height = dimensions(inp)
            price = FLUX_PER_MP.get(ep.endpoint_id)
            if price is not None and not _flux_size_ok(width, height):
                raise ValueError("Invalid parameter: width must be divisible by 64")
            job.media = ("0.png", "image/png", lambda: media.png(width, height, pad=pad))
            out = {"image_url": url}
            cost = Decimal(width * height) / 1_000_000 * price if price else Decimal("0.01")
        elif kind == "video":
            width, height = dimensions(inp, (1280, 720))
            seconds = float(inp.get("duration", 5))
            job.media = ("0.mp4", "video/mp4", lambda: media.mp4(width, height, seconds, pad))
            out = {ep.video_field: url}
            cost = Decimal("0.30") * Decimal(str(seconds)) / 5
        elif kind == "speech":
            text = str(inp.get("prompt") or inp.get("text") or "")
            seconds = min(300.0, max(0.5, len(text) * 0.06))
            job.media = ("0.wav", "audio/wav", lambda: media.wav(seconds, pad=pad))
            out = {"audio_url": url}
            cost = Decimal(len(text)) * Decimal("0.05") / 1000
        elif kind == "transcription":
            words, _ = self._words(ep, {"prompt": str(inp.get("audio", ""))})
            out = {"transcription": " ".join(words)}
            if ep.segments:
                groups = [words[i : i + 6] for i in range(0, len(words), 6)]
                out["segments"] = [
                    {"start": 2.0 * i, "end": 2.0 * i + 2.0, "text": " ".join(g)}
                    for i, g in enumerate(groups)
                ]
            cost = Decimal(len(out["transcription"])) * Decimal("0.05") / 1000
        else:
            self._text_output(job, ep)
            return
        amount = ep.cost(inp, out) if ep.cost is not None else cost
        if amount is not None:
            job.cost = out["cost"] = bill(amount)
        job.result, job.chunks = out, [{"output": out}]

    def _text_output(self, job: FakeJob, ep: FakeEndpoint) -> None:
        words, _ = self._words(ep, job.input)
        n_in = len(_sent_text(job.input).split())
        batch: dict[str, Any] = {
            "choices": [{"tokens": [" ".join(words)]}],
            "usage": {"input": n_in, "output": len(words)},
        }
        cost: Decimal | float | None = Decimal(n_in + len(words)) * 10 / 1_000_000
        if ep.cost is not None:
            cost = ep.cost(job.input, batch)
        if cost is not None:
            job.cost = batch["cost"] = bill(cost)
        job.result = [batch] if ep.text_list else batch
        step = max(1, -(-len(words) // max(1, ep.stream_chunks)))
        pieces = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        job.chunks = [
            {"output": {"choices": [{"tokens": [piece if i == 0 else " " + piece]}]}}
            for i, piece in enumerate(pieces)
        ]
