"""Who the client is when the relay sits behind a reverse proxy.

Behind nginx every request comes from the proxy's address, so anything counted per address (the
failed-token throttle) would count every client as one. ``RELAY_TRUSTED_PROXIES`` names the
proxies (IPs or CIDRs). When the peer is one of them, the client is the right-most address in
``X-Forwarded-For`` that is not itself a trusted proxy: each trusted proxy appends the address it
was connected from, so the entries right of the first untrusted one were written by our proxies,
and everything left of it was written by the client (who can put anything there). Never the
left-most. With no trusted proxies (the default) the header is ignored and the client is the
peer, as without a proxy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from aiohttp import web

from relay.context import RELAY

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_networks(value: str) -> tuple[Network, ...]:
    """``RELAY_TRUSTED_PROXIES``: comma-separated IPs or CIDRs (ValueError on anything else)."""
    found = []
    for part in value.split(","):
        part = part.strip()
        if part:
            found.append(ipaddress.ip_network(part, strict=False))
    return tuple(found)


def parse_address(text: str) -> Address | None:
    """One ``X-Forwarded-For`` entry as an address, or None for anything else ("unknown", an
    obfuscated name, garbage). Tolerates ``[v6]``, ``[v6]:port`` and ``v4:port`` (some
    proxies add the port) and an IPv4-mapped IPv6 address (given as its IPv4 address)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two colons or more
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def resolve(peer: str | None, forwarded: Iterable[str], networks: Sequence[Network]) -> str | None:
    """The client's address, given the peer's, the ``X-Forwarded-For`` headers in the order
    received, and the trusted proxies. The walk goes right to left over trusted hops; the first
    untrusted hop is the client. A garbled entry ends the walk at the hop that sent it (a
    trusted proxy, so never a name the client chose). Every hop trusted: the farthest one."""
    if not networks or peer is None:
        return peer
    current = parse_address(peer)
    if current is None or not _trusted(current, networks):
        return peer  # not from our proxy: its headers are the client's word
    # Empty list elements ("a, , b") are allowed by HTTP's list syntax and mean nothing.
    hops = [hop for header in forwarded for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, networks):
            break
    return str(current)


def client_address(request: web.Request) -> str | None:
    """The address of the client that sent ``request`` (see the module's text); the peer's
    when the relay trusts no proxy."""
    relay = request.config_dict.get(RELAY)
    networks = parse_networks(relay.settings.trusted_proxies) if relay is not None else ()
    return resolve(request.remote, request.headers.getall("X-Forwarded-For", ()), networks)
