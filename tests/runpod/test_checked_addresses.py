"""A checked address is kept for a minute: one lookup for many results from one host, never a
kept refusal, and a new lookup once the minute is over. Lookups are real (the system resolver
on loopback names); `is_public` is the stand-in tests give for "public", counted per call."""

from __future__ import annotations

import ipaddress

import pytest

from bot.runpod.addresses import AddressRefused, CheckedAddresses, IPAddress
from bot.runpod.outputs import Downloader
from bot.runpod.transport import aiohttp_client
from tests.runpod.test_private_urls import SECRET_PNG, Server, serve_secret


class Judge:
    """Loopback plays "public"; notes every address it is asked about."""

    def __init__(self, *, public: bool = True) -> None:
        self.asked: list[IPAddress] = []
        self.public = public

    def __call__(self, address: IPAddress) -> bool:
        self.asked.append(address)
        return self.public and address.is_loopback


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_results_from_one_host_look_its_name_up_once() -> None:
    judge = Judge()
    async with (
        Server("127.0.0.1", serve_secret) as server,
        aiohttp_client(max_connections=4, timeout=5, headers={}) as http,
    ):
        downloader = Downloader(http, max_bytes=1 << 20, timeout_s=5, backoff_s=0, is_public=judge)
        first = await downloader.fetch(server.url("/0.png"), kind="image", name="r")
        after_first = len(judge.asked)
        for n in range(1, 4):
            fetched = await downloader.fetch(server.url(f"/{n}.png"), kind="image", name="r")
            assert fetched.data == SECRET_PNG
    assert first.data == SECRET_PNG
    assert len(server.seen) == 4
    assert after_first == 1
    assert judge.asked == [ipaddress.ip_address("127.0.0.1")]


async def test_the_name_is_looked_up_again_once_its_minute_is_over() -> None:
    judge, clock = Judge(), Clock()
    addresses = CheckedAddresses(judge, keep_s=60, clock=clock)
    assert str(await addresses.address("127.0.0.1", 80)) == "127.0.0.1"
    clock.now += 59
    await addresses.address("127.0.0.1", 80)
    assert len(judge.asked) == 1
    clock.now += 2
    await addresses.address("127.0.0.1", 80)
    assert len(judge.asked) == 2


async def test_a_refusal_is_never_kept() -> None:
    judge = Judge(public=False)
    addresses = CheckedAddresses(judge)
    for _ in range(2):
        with pytest.raises(AddressRefused):
            await addresses.address("127.0.0.1", 80)
    assert len(judge.asked) == 2


async def test_kept_answers_are_bounded() -> None:
    judge = Judge()
    addresses = CheckedAddresses(judge, most=2)
    for port in (1, 2, 3, 1):
        await addresses.address("127.0.0.1", port)
    # Room for two: the third (port 3) made room by dropping them, so port 1 is asked again.
    assert len(judge.asked) == 4
