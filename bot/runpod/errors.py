"""The errors of talking to Runpod, and how an HTTP answer or a transport failure maps to them.

    RunpodError                 any failure talking to Runpod; fields status, retry_after, maybe_started
    ├── Unauthorized            401/403: the API key is wrong or lacks access
    ├── BadRequest              400: the API rejected the input (message is the API's own)
    ├── NotFound                404: unknown endpoint, or a job past its retention
    ├── RateLimited             429: retry_after from the Retry-After header when sent
    ├── UpstreamError           5xx: the endpoint or a worker failed
    ├── ConnectionFailed        the connection could not be made or was reset
    ├── RunpodTimeout           no answer in time
    └── MalformedResponse       an answer that is not the JSON the API documents

`maybe_started` is the fact `/run`'s retry rests on: True once the request may have reached
Runpod (so it may have started a billed job), False only when it provably did not.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class RunpodError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_started: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.maybe_started = maybe_started


class Unauthorized(RunpodError):
    pass


class BadRequest(RunpodError):
    pass


class NotFound(RunpodError):
    pass


class RateLimited(RunpodError):
    pass


class UpstreamError(RunpodError):
    pass


class ConnectionFailed(RunpodError):
    pass


class RunpodTimeout(RunpodError):
    pass


class MalformedResponse(RunpodError):
    pass


def retryable(error: RunpodError, *, starts_job: bool) -> bool:
    """Whether a call may be sent again: for `/run`, only if it provably started nothing."""
    if starts_job:
        return isinstance(error, RateLimited) or (
            isinstance(error, ConnectionFailed | RunpodTimeout) and not error.maybe_started
        )
    return isinstance(
        error,
        RateLimited | UpstreamError | ConnectionFailed | RunpodTimeout | MalformedResponse,
    )


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"HTTP 200 with a body that is not JSON: {preview(response.text)}"
        ) from exc


def error_for(response: httpx.Response, *, starts_job: bool) -> RunpodError:
    status = response.status_code
    message = api_message(response)
    if status in (401, 403):
        return Unauthorized(f"Runpod refused the API key ({status})", status=status)
    if status == 400:
        return BadRequest(message or "bad request", status=status)
    if status == 404:
        return NotFound(message or "not found", status=status)
    if status == 429:
        return RateLimited(
            "rate limited by Runpod", status=status, retry_after=retry_after_s(response)
        )
    if status >= 500:
        return UpstreamError(
            f"Runpod answered {status}: {message or response.reason_phrase}",
            status=status,
            retry_after=retry_after_s(response),
            maybe_started=starts_job,
        )
    return RunpodError(f"unexpected HTTP {status}: {message}", status=status)


def transport_error(exc: httpx.TransportError, *, starts_job: bool) -> RunpodError:
    # A connect error means nothing reached Runpod; anything later may have started a job.
    # (A pool timeout is a wait for a free connection of our own: nothing was sent either.)
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    maybe = starts_job and not never_sent
    if isinstance(exc, httpx.TimeoutException):
        return RunpodTimeout(
            f"no answer from Runpod in time ({type(exc).__name__})", maybe_started=maybe
        )
    return ConnectionFailed(
        f"connection to Runpod failed ({type(exc).__name__})", maybe_started=maybe
    )


def api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300].strip()
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])[:300]
    return preview(body)


def retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def preview(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
