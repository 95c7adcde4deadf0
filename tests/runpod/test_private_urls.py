"""Result downloads reach public addresses only: nothing inside the bot's network is fetched.

A Runpod output names the URL the bot downloads; if it names 127.0.0.1 (or redirects there), an
internal service's answer would be posted into a channel. Here an "internal" server on 127.0.0.1
stands for such a service and counts the requests it gets: with `[security]
allow_private_urls = false` it must get none, the member is told, and nothing is charged.

Tests never send traffic beyond loopback: 10.0.0.1 and 169.254.169.254 appear only as redirect
targets that must be refused before any connection. A public host cannot exist without a
network, so the redirect tests run the Downloader with `is_public` counting 127.0.0.2 as public,
and serve the "public" first hop there.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web

from bot.app import open_core
from bot.config import Settings
from bot.runpod.addresses import IPAddress, is_public
from bot.runpod.outputs import Downloader, OutputError
from tests.conftest import make_settings
from tests.fakes import media
from tests.fakes.runpod import FakeRunpod
from tests.jobs.support import spent, submit

SECRET_PNG = media.png(8, 8)
FLUX = "black-forest-labs-flux-1-schnell"


class Server:
    """A small HTTP server on one loopback address that records every request it answers."""

    def __init__(
        self,
        host: str,
        handler: Callable[[web.Request], web.Response],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.handler = handler
        self.tls = tls
        self.seen: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        async def record(request: web.Request) -> web.Response:
            self.seen.append({"path": request.path_qs, "host": request.headers.get("Host", "")})
            return self.handler(request)

        app = web.Application()
        app.router.add_get("/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"


def serve_secret(_: web.Request) -> web.Response:
    return web.Response(body=SECRET_PNG, content_type="image/png")


def redirect_to_query(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


@pytest.fixture
async def internal() -> AsyncIterator[Server]:
    """An internal service on 127.0.0.1 that must never be reached."""
    async with Server("127.0.0.1", serve_secret) as server:
        yield server


def private_settings(tmp_path: Path, runpod: FakeRunpod, *, allow: bool) -> Settings:
    return make_settings(tmp_path, runpod, security={"allow_private_urls": allow})


def output_url(runpod: FakeRunpod, url: str) -> None:
    runpod.endpoints[FLUX].output = lambda _input, _media: {"image_url": url, "cost": 0.001}


# --- the whole job: refused, told, not charged --------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_result_url_on_loopback_is_refused_told_and_not_charged(
    tmp_path: Path, runpod_fake: FakeRunpod, internal: Server, host: str
) -> None:
    output_url(runpod_fake, internal.url("/secret.png", host))
    async with open_core(private_settings(tmp_path, runpod_fake, allow=False)) as core:
        _, delivery = await submit(core, "a red fox --size 256x256")
        await delivery.wait_for(lambda: delivery.ended)
        await core.jobs.wait_idle(10)
        assert await spent(core) == (Decimal(0), Decimal(0))
    assert internal.seen == []
    assert delivery.results == []
    (failure,) = delivery.failures
    assert f"its host {host} is not a public internet address" in failure.message
    assert "Nothing was charged" in failure.message


async def test_the_fake_runpod_media_on_loopback_is_refused_by_default(
    tmp_path: Path, runpod_fake: FakeRunpod
) -> None:
    settings = make_settings(tmp_path, runpod_fake)
    settings = settings.model_copy(update={"security": Settings().security})
    assert settings.security.allow_private_urls is False
    async with open_core(settings) as core:
        _, delivery = await submit(core, "a red fox --size 256x256")
        await delivery.wait_for(lambda: delivery.ended)
    assert (
        delivery.results == [] and "not a public internet address" in delivery.failures[0].message
    )
    assert runpod_fake.count("media") == 0


async def test_a_private_deployment_follows_redirects_to_its_own_network(
    tmp_path: Path, runpod_fake: FakeRunpod, internal: Server
) -> None:
    async with Server("127.0.0.1", redirect_to_query) as front:
        output_url(runpod_fake, front.url("/r?to=" + internal.url("/secret.png")))
        async with open_core(private_settings(tmp_path, runpod_fake, allow=True)) as core:
            _, delivery = await submit(core, "a red fox --size 256x256")
            await delivery.wait_for(lambda: delivery.ended)
            await core.jobs.wait_idle(10)
            assert await spent(core) == (Decimal("0.001"), Decimal(0))
    (result,) = delivery.results
    assert result.files[0].data == SECRET_PNG
    assert [s["path"] for s in internal.seen] == ["/secret.png"]


# --- every redirect hop ---------------------------------------------------------------------


def public_stand_in(address: IPAddress) -> bool:
    """127.0.0.2 plays a public host; every other address is judged as in production."""
    return address == ipaddress.ip_address("127.0.0.2") or is_public(address)


async def download(
    url: str,
    *,
    public: Callable[[IPAddress], bool] = public_stand_in,
    verify: ssl.SSLContext | bool = True,
) -> Any:
    """Downloader.fetch over real sockets; the file, or the OutputError a member would see."""
    async with httpx.AsyncClient(trust_env=False, verify=verify) as http:
        downloader = Downloader(http, max_bytes=1 << 20, timeout_s=5, backoff_s=0, is_public=public)
        try:
            return await downloader.fetch(url, kind="image", name="r")
        except OutputError as exc:
            return exc


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://127.0.0.1:{port}/secret.png", "127.0.0.1"),
        ("http://localhost:{port}/secret.png", "localhost"),
        ("http://[::ffff:127.0.0.1]:{port}/secret.png", "::ffff:7f00:1"),  # mapped
        ("http://10.0.0.1/secret.png", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ],
)
async def test_a_redirect_from_a_public_host_into_the_network_is_refused(
    internal: Server, target: str, host: str
) -> None:
    async with Server("127.0.0.2", redirect_to_query) as front:
        location = target.format(port=internal.port)
        outcome = await download(str(httpx.URL(front.url("/r"), params={"to": location})))
    assert isinstance(outcome, OutputError), outcome
    assert outcome.message == (
        f"the result was not downloaded: its host {host} is not a public internet address"
    )
    assert len(front.seen) == 1 and internal.seen == []


async def test_a_public_redirect_is_followed() -> None:
    async with Server("127.0.0.2", serve_secret) as media_host:
        async with Server("127.0.0.2", redirect_to_query) as front:
            location = media_host.url("/0.png")
            fetched = await download(str(httpx.URL(front.url("/r"), params={"to": location})))
    assert fetched.data == SECRET_PNG and len(media_host.seen) == 1


async def test_the_request_goes_to_the_resolved_address_under_its_own_name() -> None:
    async with Server("127.0.0.1", serve_secret) as named:
        fetched = await download(
            named.url("/0.png", host="localhost"), public=lambda address: address.is_loopback
        )
    assert fetched.data == SECRET_PNG
    assert named.seen == [{"path": "/0.png", "host": f"localhost:{named.port}"}]


def localhost_tls() -> tuple[ssl.SSLContext, ssl.SSLContext, list[str | None]]:
    """A server's TLS for the name "localhost" only (no IP in the certificate), noting each name
    a client asks for (SNI), and a client's TLS that trusts it."""
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_tls)
    names: list[str | None] = []

    def note_name(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    server_tls.sni_callback = note_name  # type: ignore[assignment]
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    return server_tls, client_tls, names


async def test_https_to_the_resolved_address_keeps_the_name_for_tls() -> None:
    """Connecting to the checked address must not lose the name TLS checks the certificate for."""
    server_tls, client_tls, names = localhost_tls()
    async with Server("127.0.0.1", serve_secret, tls=server_tls) as named:
        fetched = await download(
            named.url("/0.png", host="localhost"),
            public=lambda address: address.is_loopback,
            verify=client_tls,
        )
        by_address = await download(named.url("/0.png"), public=lambda a: True, verify=client_tls)
    assert fetched.data == SECRET_PNG
    assert named.seen == [{"path": "/0.png", "host": f"localhost:{named.port}"}]
    assert names[0] == "localhost"
    # The same certificate does not cover the bare address: the name is what made it pass.
    assert isinstance(by_address, OutputError) and "CERTIFICATE_VERIFY_FAILED" in by_address.message


async def test_a_host_that_does_not_resolve_is_a_clear_error() -> None:
    outcome = await download("http://media.invalid/0.png")
    assert isinstance(outcome, OutputError)
    assert "its host media.invalid could not be resolved" in outcome.message


async def test_redirect_loops_end_with_a_clear_error() -> None:
    def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/again")

    async with Server("127.0.0.2", loop) as front:
        outcome = await download(front.url("/start"))
    assert isinstance(outcome, OutputError)
    assert outcome.message == "the result's address redirected more than 5 times"
    assert len(front.seen) == 6


# --- the address check itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),  # IPv4-mapped public
        ("127.0.0.1", False),  # loopback
        ("127.8.9.10", False),
        ("10.0.0.1", False),  # private
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("0.0.0.0", False),  # unspecified
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("192.0.2.1", False),  # documentation
        ("::1", False),
        ("::", False),
        ("fe80::1", False),  # IPv6 link-local
        ("fd00::1", False),  # IPv6 unique local
        ("ff02::1", False),  # IPv6 multicast
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
    ],
)
def test_the_address_check(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_the_setting_defaults_to_off_and_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().security.allow_private_urls is False
    monkeypatch.setenv("BOT_SECURITY__ALLOW_PRIVATE_URLS", "true")
    assert Settings().security.allow_private_urls is True
