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

Not for downloads: `bot/outputs.py` pins connections to checked addresses through httpx's
`sni_hostname` extension, which this transport does not implement.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx

CHUNK_BYTES = 64 * 1024


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """aiohttp's errors as the httpx errors that say whether the request may have been sent."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # waiting for a connection, or connecting
        raise httpx.ConnectTimeout(str(exc)) from exc
    except aiohttp.ClientConnectorError as exc:  # DNS, refused, TLS handshake: nothing sent
        raise httpx.ConnectError(str(exc)) from exc
    except TimeoutError as exc:  # aiohttp's socket read timeout, after the request went out
        raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except (aiohttp.ClientError, OSError) as exc:  # reset, broken body, bad HTTP: maybe sent
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body, read as httpx reads a stream; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool if read to the end, else closed


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (made on first use, inside the running loop) of `max_connections`."""

    def __init__(self, *, max_connections: int, keepalive_s: float = 15.0) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_s,
            ssl=httpx.create_ssl_context(trust_env=False),  # the CA bundle httpx would use
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps cookies, if any
            auto_decompress=False,  # httpx decodes, from the headers it is given
            trust_env=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        try:
            body = request.content or None
        except httpx.RequestNotRead:
            body = await request.aread() or None
        with _as_httpx_errors():
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body,
                allow_redirects=False,
                timeout=_timeout(request.extensions.get("timeout", {})),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's pool + connect wait as aiohttp's `connect`, its read timeout per socket read."""
    pool, connect = timeout.get("pool"), timeout.get("connect")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if pool is None or connect is None else pool + connect,
        sock_connect=connect,
        sock_read=timeout.get("read"),
    )


def aiohttp_client(
    *, max_connections: int, timeout: float, headers: Mapping[str, str]
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests go through aiohttp's pool."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=max_connections),
        timeout=timeout,
        headers=dict(headers),
        trust_env=False,
    )
