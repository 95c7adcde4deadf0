"""Async client for Runpod Public Endpoints (and Serverless endpoints with the same API).

Errors are the tree in `bot.runpod.errors`, a job's status is `bot.runpod.status.RunpodStatus`;
both are re-exported here.

Retries. Idempotent calls (status, stream, cancel, health) retry 429, 5xx, connection errors and
timeouts with exponential backoff and full jitter, honouring Retry-After. `run` starts
work that Runpod bills, so it retries only when the request provably did not start a job: a 429
(rejected before queueing) or a connection that was never established. Any other failure after
the request may have been sent raises with `maybe_started=True`; the caller must not blindly
resubmit (the job engine releases the hold and tells the user).

Waiting. `wait()` long-polls `GET /status-sync/{id}?wait=ms`, the route Runpod's own JavaScript
SDK uses: one request per `long_poll_s` (default 20 s, so progress stays fresh) while the job
runs, answered within one round trip of completion. Through an API outage it keeps asking
(backing off to every 30 s) until the job's own deadline: the job runs on at Runpod meanwhile.
Where an endpoint does not serve that route (404 while `/status` knows the job), it polls
`/status` every 0.25 s growing by 1.5x to 2 s (about 10 requests for a 10 s job, seen at most
2 s after completion); each pause is shortened by up to 20 % at random so that jobs started
together do not poll in lockstep, and at most `MAX_CONCURRENT_POLLS` polls are in flight.
With a webhook configured, waiting is only a backstop (`wait(backstop=True)`): a 90 s long poll,
or a /status every 30 s. Long polls may go through their own client (`long_poll_http`), so that
the connection each running job holds never starves a new job's `/run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from bot.metrics import Metrics
from bot.runpod.errors import (
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    NotFound,
    RateLimited,
    RunpodError,
    RunpodTimeout,
    Unauthorized,
    UpstreamError,
    error_for,
    json_body,
    preview,
    retryable,
    transport_error,
)
from bot.runpod.status import FINAL_STATES, RunpodStatus

__all__ = [
    "FINAL_STATES",
    "BadRequest",
    "ConnectionFailed",
    "MalformedResponse",
    "NotFound",
    "RateLimited",
    "RunpodClient",
    "RunpodError",
    "RunpodStatus",
    "RunpodTimeout",
    "Unauthorized",
    "UpstreamError",
]

log = logging.getLogger(__name__)

LONG_POLL_MAX_S = 90.0
BACKSTOP_POLL_S = 30.0
POLL_JITTER = 0.2  # each pause between /status polls is its interval x (1 - up to this)
MAX_CONCURRENT_POLLS = 64


StatusCallback = Callable[[RunpodStatus], Awaitable[None]]


class RunpodClient:
    """Public Endpoints over an injected `httpx.AsyncClient` (its pool, proxies and limits).

    `long_poll_http`, when given, carries the long polls (`/status-sync`) apart from `http`.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        long_poll_http: httpx.AsyncClient | None = None,
        base_url: str,
        api_key: SecretStr | str,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        request_timeout_s: float = 30.0,
        long_poll_s: float = 20.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._metrics = metrics or Metrics()
        self._long_poll_http = long_poll_http or http
        self._polls = asyncio.Semaphore(MAX_CONCURRENT_POLLS)
        self._base = base_url.rstrip("/")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._headers = {"Authorization": f"Bearer {key}"}
        self._max_retries = max_retries
        self._backoff_base = backoff_base_s
        self._backoff_max = backoff_max_s
        self._timeout = request_timeout_s
        self._long_poll = min(long_poll_s, LONG_POLL_MAX_S)
        self._no_status_sync: set[str] = set()
        # time.monotonic() of Runpod's last answer that was not a 5xx or a refused key
        # (readiness asks whether Runpod is reachable).
        self.last_answer_at: float | None = None

    # --- the routes -------------------------------------------------------------------------

    async def run(
        self,
        endpoint: str,
        input: Mapping[str, Any],
        *,
        webhook: str | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> RunpodStatus:
        body = _job_body(input, webhook, policy)
        return RunpodStatus.parse(
            await self._call("POST", f"{endpoint}/run", json=body, starts_job=True)
        )

    async def status(self, endpoint: str, job_id: str) -> RunpodStatus:
        return RunpodStatus.parse(await self._call("GET", f"{endpoint}/status/{job_id}"))

    async def status_sync(self, endpoint: str, job_id: str, *, wait_s: float) -> RunpodStatus:
        """The job once it is final, or as it stands after `wait_s` seconds."""
        wait_ms = int(min(max(wait_s, 1.0), LONG_POLL_MAX_S) * 1000)
        body = await self._call(
            "GET",
            f"{endpoint}/status-sync/{job_id}",
            params={"wait": wait_ms},
            timeout=wait_ms / 1000 + self._timeout,
            http=self._long_poll_http,
        )
        return RunpodStatus.parse(body)

    async def cancel(self, endpoint: str, job_id: str) -> RunpodStatus:
        return RunpodStatus.parse(await self._call("POST", f"{endpoint}/cancel/{job_id}"))

    async def health(self, endpoint: str) -> dict[str, Any]:
        body = await self._call("GET", f"{endpoint}/health")
        if not isinstance(body, dict):
            raise MalformedResponse(f"expected a health object, got {preview(body)}")
        return body

    async def ping(self, endpoint: str, *, timeout_s: float) -> None:
        """One `/health` call, never retried: readiness wants an answer now, not a retry plan."""
        await self._call("GET", f"{endpoint}/health", timeout=timeout_s, retries=0)

    async def endpoint_billing(
        self, rest_url: str, *, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Runpod's REST `GET /billing/endpoints`: the account's Public Endpoint spend per UTC day.

        `rest_url` is the REST API's base (`https://api.runpod.io/v2`), not the endpoints'.
        Records are `{"startTime", "endTime", "totalAmount"}` for the whole account, all
        Public Endpoints together (the API does not split them per endpoint).
        """
        params = {"startTime": _rfc3339(start), "endTime": _rfc3339(end), "bucketSize": "day"}
        body = await self._call("GET", "billing/endpoints", params=params, base=rest_url)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise MalformedResponse(f"expected billing records, got {preview(body)}")
        return records

    async def stream(self, endpoint: str, job_id: str) -> tuple[str, list[Any]]:
        """One poll of `/stream/{id}`: the job status and the chunks produced since the last poll."""
        body = await self._call("GET", f"{endpoint}/stream/{job_id}")
        if not isinstance(body, dict):
            raise MalformedResponse(f"expected a stream object, got {preview(body)}")
        chunks = body.get("stream") or []
        outputs = [c.get("output") if isinstance(c, dict) else c for c in chunks]
        return str(body.get("status") or "UNKNOWN").upper(), outputs

    async def chat_stream(
        self, endpoint: str, *, model: str, messages: list[dict[str, str]], **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The OpenAI-compatible route with `stream: true`: yields each SSE chunk as parsed JSON.

        Not durable (no job id to resume), so the job engine uses `run` + `stream` instead; this
        is for callers that want the lowest latency and can simply retry.
        """
        body = {"model": model, "messages": messages, "stream": True, **params}
        url = f"{self._base}/{endpoint}/openai/v1/chat/completions"
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_for(response, starts_job=True)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise MalformedResponse(f"bad stream chunk {preview(data)}") from exc
        except httpx.TimeoutException as exc:
            raise RunpodTimeout("the stream stalled", maybe_started=True) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"stream broken: {exc}", maybe_started=True) from exc

    # --- waiting ----------------------------------------------------------------------------

    async def wait(
        self,
        endpoint: str,
        job_id: str,
        *,
        timeout_s: float,
        on_status: StatusCallback | None = None,
        backstop: bool = False,
    ) -> RunpodStatus:
        """The job's final state, seen as soon after completion as the API allows.

        `on_status` gets every non-final answer (each long poll, or each poll) for progress.
        `backstop=True` is for jobs a webhook will report: then only an occasional request
        checks on them (long polls of 90 s, or a /status every 30 s), in case the push is lost.
        Raises RunpodTimeout when `timeout_s` passes first.
        """
        deadline = time.monotonic() + timeout_s
        interval, longest = (5.0, BACKSTOP_POLL_S) if backstop else (0.25, 2.0)
        long_poll = LONG_POLL_MAX_S if backstop else self._long_poll
        outage = 0  # answers missed in a row, beyond each call's own retries
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunpodTimeout(f"job {job_id} not finished after {timeout_s:.0f} s")
            try:
                state = await self._poll_once(endpoint, job_id, min(remaining, long_poll))
                polled = state is None
                if state is None:
                    async with self._polls:
                        state = await self.status(endpoint, job_id)
            except (UpstreamError, ConnectionFailed, RunpodTimeout, RateLimited, MalformedResponse):
                # The job runs on at Runpod through an API outage: keep asking until its deadline.
                pause = min(BACKSTOP_POLL_S, self._backoff_base * 2 ** min(outage, 8))
                if time.monotonic() + pause >= deadline:
                    raise
                if outage == 0:
                    log.warning("job %s: Runpod is not answering; still waiting for it", job_id)
                outage += 1
                await asyncio.sleep(pause)
                continue
            outage = 0
            if polled and not state.final:
                pause = interval * random.uniform(1 - POLL_JITTER, 1)
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                interval = min(interval * 1.5, longest)
            if on_status is not None and not state.final:
                await on_status(state)
            if state.final:
                return state

    async def _poll_once(self, endpoint: str, job_id: str, wait_s: float) -> RunpodStatus | None:
        """A long poll where the endpoint serves one; None means "ask /status instead"."""
        if endpoint in self._no_status_sync:
            return None
        return await self._long_poll_once(endpoint, job_id, wait_s)

    async def _long_poll_once(
        self, endpoint: str, job_id: str, wait_s: float
    ) -> RunpodStatus | None:
        """A long poll, or None once the endpoint is known not to serve `/status-sync`."""
        try:
            return await self.status_sync(endpoint, job_id, wait_s=max(wait_s, 1.0))
        except NotFound:
            # Either the route is missing or the job is gone; /status tells which.
            state = await self.status(endpoint, job_id)
            log.info("endpoint %s has no /status-sync; polling /status instead", endpoint)
            self._no_status_sync.add(endpoint)
            return state if state.final else None

    # --- transport --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        starts_job: bool = False,
        retries: int | None = None,
        base: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Any:
        url = f"{(base or self._base).rstrip('/')}/{path}"
        max_retries = self._max_retries if retries is None else retries
        route = _route(path)
        client = http or self._http
        attempt = 0
        while True:
            try:
                response = await client.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=self._headers,
                    timeout=timeout or self._timeout,
                )
            except httpx.TransportError as exc:
                self._metrics.runpod_answer(route, 0)
                error = transport_error(exc, starts_job=starts_job)
            else:
                self._metrics.runpod_answer(route, response.status_code)
                if response.status_code < 500 and response.status_code not in (401, 403):
                    self.last_answer_at = time.monotonic()
                if response.status_code == 200:
                    try:
                        return json_body(response)
                    except MalformedResponse as malformed:
                        malformed.maybe_started = starts_job
                        error = malformed
                else:
                    error = error_for(response, starts_job=starts_job)
            if not retryable(error, starts_job=starts_job) or attempt >= max_retries:
                raise error
            delay = self._backoff(attempt, error.retry_after)
            self._metrics.runpod_retries.labels(route).inc()
            log.warning(
                "runpod %s %s failed (%s); retry %d in %.2f s",
                method,
                route,
                type(error).__name__,
                attempt + 1,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._backoff_max * 3)
        return random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))


def _route(path: str) -> str:
    """The route of a path, without endpoint or job ids: run, status, status-sync, billing..."""
    parts = path.split("/")
    return parts[1] if len(parts) > 1 and parts[0] != "billing" else parts[0]


def _job_body(
    input: Mapping[str, Any], webhook: str | None, policy: Mapping[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": dict(input)}
    if webhook:
        body["webhook"] = webhook
    if policy:
        body["policy"] = dict(policy)
    return body


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
