"""Downloads through aiohttp's pool, as the bot wires them: a pinned connection keeps the name.

`open_core` gives the Downloader an `aiohttp_client`. The Downloader connects to the address it
checked and names the host only in `Host` and in httpx's `sni_hostname` extension; the
transport must hand that name to TLS (SNI and the certificate check), or every https result
would fail its certificate check, or be checked against the wrong name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from bot.runpod.outputs import Downloader, OutputError
from bot.runpod.transport import aiohttp_client
from tests.runpod.test_private_urls import SECRET_PNG, Server, localhost_tls, serve_secret


@asynccontextmanager
async def named_server() -> AsyncIterator[tuple[Server, httpx.AsyncClient, list[str | None]]]:
    """An https server on 127.0.0.1 with a certificate for "localhost" only, the bot's download
    client trusting it, and the names clients asked it for (SNI), one per handshake."""
    server_tls, client_tls, names = localhost_tls()
    async with (
        Server("127.0.0.1", serve_secret, tls=server_tls) as named,
        aiohttp_client(max_connections=4, timeout=5, headers={}, verify=client_tls) as http,
    ):
        yield named, http, names


def loopback_downloader(http: httpx.AsyncClient) -> Downloader:
    """A Downloader that takes loopback addresses for public ones."""
    return Downloader(
        http, max_bytes=1 << 20, timeout_s=5, backoff_s=0, is_public=lambda a: a.is_loopback
    )


async def test_https_to_the_resolved_address_keeps_the_name_for_tls_over_aiohttp() -> None:
    async with named_server() as (named, http, names):
        fetched = await loopback_downloader(http).fetch(
            named.url("/0.png", host="localhost"), kind="image", name="r"
        )
        any_address = Downloader(
            http, max_bytes=1 << 20, timeout_s=5, backoff_s=0, is_public=lambda a: True
        )
        with pytest.raises(OutputError) as by_address:
            await any_address.fetch(named.url("/0.png"), kind="image", name="r")
    assert fetched.data == SECRET_PNG
    assert named.seen == [{"path": "/0.png", "host": f"localhost:{named.port}"}]
    assert names[0] == "localhost"
    # The same certificate does not cover the bare address: the name is what made it pass.
    assert "CERTIFICATE_VERIFY_FAILED" in by_address.value.message


async def test_results_from_one_host_share_a_connection_and_one_tls_handshake() -> None:
    """A busy hour brings many results from the same storage host: each must not pay a new
    connection and TLS handshake. A connection made for one name still never carries another
    name's request (the first test: the bare address gets a handshake of its own, and fails)."""
    async with named_server() as (named, http, names):
        loopback = loopback_downloader(http)
        for n in range(3):
            fetched = await loopback.fetch(
                named.url(f"/{n}.png", host="localhost"), kind="image", name="r"
            )
            assert fetched.data == SECRET_PNG
    assert [seen["path"] for seen in named.seen] == ["/0.png", "/1.png", "/2.png"]
    assert names == ["localhost"]
