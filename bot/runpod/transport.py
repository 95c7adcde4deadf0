"""httpx's API over aiohttp's connection pool, for the many small calls to Runpod's API.

Why: httpcore's pool rescans every connection for every queued request, which cost a third of
the bot's CPU with 1,000 jobs in flight (docs/benchmarks.md); aiohttp's pool hands a released
connection to the next waiter directly. httpx stays the API, so `RunpodClient`, its tests and
its error tree are unchanged.

Why not the `httpx-aiohttp` package: its 0.2.0 maps every `aiohttp.ClientConnectionError`,
including a connection dropped after the request went out, to `httpx.ConnectTimeout`, which
`RunpodClient` rightly reads as "never sent" and so would resubmit a `/run` that may have
started a job. Here only the errors aiohttp raises before a byte is written (connecting, or
waiting for a free connection) become connect errors; every other failure is a read error.
aiohttp itself retries a dropped keep-alive connection only for idempotent methods (never POST).

Downloads (`bot/runpod/outputs.py`) go through it too: they pin a connection to a checked address
and keep the host's name for TLS through httpx's `sni_hostname` extension, which becomes
aiohttp's `server_hostname` (the name sent as SNI and checked against the certificate).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx

CHUNK_BYTES = 64 * 1024
PLAIN_OPTIONS = frozenset({"json", "params", "headers", "timeout"})
# What a download asks of `stream` (bot/runpod/outputs.py); anything more goes through httpx.
STREAM_OPTIONS = frozenset({"headers", "timeout", "extensions", "follow_redirects"})


class _AsHttpxErrors:
    """aiohttp's errors as the httpx errors that say whether the request may have been sent.

    A class, not `contextlib.contextmanager`: it wraps every request and every read, and a
    generator's enter and exit cost several calls each (`with _as_httpx_errors:`).
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        # waiting for a connection, or connecting
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            raise httpx.ConnectTimeout(str(exc)) from exc
        # DNS, refused, TLS handshake: nothing sent
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise httpx.ConnectError(str(exc)) from exc
        # aiohttp's socket read timeout, after the request went out
        if isinstance(exc, TimeoutError):
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            raise httpx.RemoteProtocolError(str(exc)) from exc
        # reset, broken body, bad HTTP: maybe sent
        if isinstance(exc, aiohttp.ClientError | OSError):
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


_as_httpx_errors = _AsHttpxErrors()


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body, read as httpx reads a stream; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors:
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool if read to the end, else closed


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (made on first use, inside the running loop) of `max_connections`."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_s: float = 15.0,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        # httpx's default: the CA bundle httpx would use
        self._ssl = verify or httpx.create_ssl_context(trust_env=False)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_s,
            ssl=self._ssl,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes, from the headers it is given
            trust_env=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content or None
        except httpx.RequestNotRead:
            body = await request.aread() or None
        return await self.call(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            data=body,
            timeout=request.extensions.get("timeout", {}),
            server_hostname=request.extensions.get("sni_hostname"),
        )

    async def call(
        self,
        method: str,
        url: str,
        *,
        timeout: Mapping[str, float | None],
        read: bool = False,
        **options: Any,
    ) -> httpx.Response:
        """One request, `options` as aiohttp takes them; the answer as an httpx stream, or with
        its body already read (`read`: one read, not httpx's chain of async iterators)."""
        if self._session is None:
            self._session = self._open()
        with _as_httpx_errors:
            response = await self._session.request(
                method, url, allow_redirects=False, timeout=_timeout(timeout), **options
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        if not read:
            stream = _Body(response)
            return httpx.Response(
                response.status, headers=response.raw_headers, stream=stream, extensions=extensions
            )
        try:
            with _as_httpx_errors:
                body = await response.read()
        finally:
            response.release()
        # httpx decodes the body (Content-Encoding) as it would a streamed one
        return httpx.Response(
            response.status, headers=response.raw_headers, content=body, extensions=extensions
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's pool + connect wait as aiohttp's `connect`, its read timeout per socket read."""
    pool, connect, read = timeout.get("pool"), timeout.get("connect"), timeout.get("read")
    key = (pool, connect, read)
    found = _TIMEOUTS.get(key)
    if found is None:
        found = aiohttp.ClientTimeout(
            total=None,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        if len(_TIMEOUTS) < TIMEOUTS_KEPT:
            _TIMEOUTS[key] = found
    return found


# The common timeouts, made once each (frozen, so shared): a long poll's follows its wait.
TIMEOUTS_KEPT = 64
_TIMEOUTS: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}


class AiohttpClient(httpx.AsyncClient):
    """httpx's client API sending each request straight to an `AiohttpTransport`.

    httpx's own `send` runs every request through auth flows, redirect handling and a cookie
    jar. The bot's Runpod calls and downloads use none of them, and that machinery cost as much
    CPU as aiohttp's whole request (docs/benchmarks.md). So this client never follows a
    redirect, keeps no cookie, runs no auth flow, and refuses a request that asks for either.
    """

    def __init__(self, *, transport: AiohttpTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._aiohttp = transport
        # The client's own headers (names in lower case) and timeout, read once: the plain
        # calls below send them without building httpx's models for every request.
        self._plain_headers = dict(self.headers.items())
        self._plain_timeout = self.timeout.as_dict()

    async def request(self, method: str, url: httpx.URL | str, **options: Any) -> httpx.Response:
        """A call with only `json`, `params`, `headers` or `timeout` (every Runpod call) goes
        to aiohttp as it is, without httpx's URL and Request models (a tenth of the bot's CPU)."""
        if not isinstance(url, str) or not options.keys() <= PLAIN_OPTIONS:
            return await super().request(method, url, **options)
        return await self._aiohttp.call(
            method,
            url,
            headers=self._plain(options.get("headers")),
            json=options.get("json"),
            params=options.get("params"),
            timeout=self._timeout_of(options),
            read=True,
        )

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, url: httpx.URL | str, **options: Any
    ) -> AsyncIterator[httpx.Response]:
        """A download (headers, timeout, no redirects, at most an `sni_hostname`) goes to
        aiohttp as `request` does; its body is read as the caller iterates, then released."""
        extensions = options.get("extensions") or {}
        if (
            not options.keys() <= STREAM_OPTIONS
            or options.get("follow_redirects") is not False
            or not extensions.keys() <= {"sni_hostname"}
        ):
            async with super().stream(method, url, **options) as response:
                yield response
            return
        response = await self._aiohttp.call(
            method,
            str(url),
            headers=self._plain(options.get("headers")),
            timeout=self._timeout_of(options),
            server_hostname=extensions.get("sni_hostname"),
        )
        try:
            yield response
        finally:
            await response.aclose()

    def _plain(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The client's headers with the call's own over them."""
        if not headers:
            return self._plain_headers
        merged = dict(self._plain_headers)
        merged.update((name.lower(), value) for name, value in headers.items())
        return merged

    def _timeout_of(self, options: Mapping[str, Any]) -> Mapping[str, float | None]:
        timeout = options.get("timeout", httpx.USE_CLIENT_DEFAULT)
        if timeout is httpx.USE_CLIENT_DEFAULT:
            return self._plain_timeout
        return httpx.Timeout(timeout).as_dict()

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: object = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: object = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if follow_redirects is True or auth not in (None, httpx.USE_CLIENT_DEFAULT):
            raise ValueError("AiohttpClient follows no redirects and runs no auth flow")
        request.extensions.setdefault("timeout", self.timeout.as_dict())
        response = await self._aiohttp.handle_async_request(request)
        response.request = request
        return response if stream else await _read(response)


async def _read(response: httpx.Response) -> httpx.Response:
    """The response with its body read, its connection released either way."""
    try:
        await response.aread()
    except BaseException:
        await response.aclose()
        raise
    return response


def aiohttp_client(
    *,
    max_connections: int,
    timeout: float,
    headers: Mapping[str, str],
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests go through aiohttp's pool (see `AiohttpClient`)."""
    return AiohttpClient(
        transport=AiohttpTransport(max_connections=max_connections, verify=verify),
        timeout=timeout,
        headers=dict(headers),
        trust_env=False,
    )
