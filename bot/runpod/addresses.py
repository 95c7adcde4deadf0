"""Which network addresses the bot may download from: public ones, unless told otherwise.

A result URL comes from a Runpod output, which a model (or any server redirecting on the way)
chooses. Fetched from inside the bot's network it could reach the bot's own listener, a cloud
metadata service or anything else on the LAN, and what answered would be posted into a channel.
So before each download hop the host is resolved here, every address it resolves to must be
public, and the caller connects to the address returned: no second lookup that a DNS server
could answer differently. `[security] allow_private_urls = true` turns the check off (private
deployments, local tests).

A checked answer is kept for a minute (`CheckedAddresses`): results come from a few storage
hosts, and a lookup on a thread for every result cost more CPU than its download. Keeping it
opens no door: the bot connects to the address that was checked, whatever the name resolves
to meanwhile, and only an answer that passed is kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable

from bot.errors import BotError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address in their last 32 bits, which is what they reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressRefused(BotError):
    """A download's host is not a public address; nothing was sent to it."""


class Unresolved(BotError):
    """A download's host did not resolve (DNS may be down for a moment: worth a retry)."""


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet; false for anything local or special-use."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def public_address(
    host: str, port: int, *, is_public: Callable[[IPAddress], bool] = is_public
) -> IPAddress:
    """The address to connect to for `host`: refused unless everything it resolves to is public.

    Every answer is checked, not just the first: a name resolving to one public and one private
    address would otherwise reach the private one whenever the first does not answer.
    """
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolved(f"its host {host} could not be resolved") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    if not addresses:
        raise Unresolved(f"its host {host} could not be resolved")
    for address in addresses:
        if not is_public(address):
            raise AddressRefused(f"its host {host} is not a public internet address")
    return addresses[0]


class CheckedAddresses:
    """`public_address`, its answers kept for `keep_s` seconds per (host, port).

    Refusals and failed lookups are not kept: a refusal ends the download anyway, and a name
    that did not resolve is looked up again on the retry.
    """

    def __init__(
        self,
        is_public: Callable[[IPAddress], bool] = is_public,
        *,
        keep_s: float = 60.0,
        most: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._is_public = is_public
        self._keep_s = keep_s
        self._most = most
        self._clock = clock
        self._kept: dict[tuple[str, int], tuple[IPAddress, float]] = {}

    async def address(self, host: str, port: int) -> IPAddress:
        key = (host, port)
        kept = self._kept.get(key)
        now = self._clock()
        if kept is not None and kept[1] > now:
            return kept[0]
        address = await public_address(host, port, is_public=self._is_public)
        if len(self._kept) >= self._most:
            self._kept = {k: v for k, v in self._kept.items() if v[1] > now}
            if len(self._kept) >= self._most:
                self._kept.clear()
        self._kept[key] = (address, now + self._keep_s)
        return address
