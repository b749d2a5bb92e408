"""The SSRF guard of relay/publish/net.py: IPv6 forms that carry an IPv4 address are judged by
that address, and redirects are checked hop by hop, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from relay.errors import PublishError
from relay.publish import net
from relay.publish.net import Http, is_public
from tests.fakes import serve

# Each of these reaches 127.0.0.1 or a private network through a gateway or tunnel.
HIDDEN_PRIVATE = [
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "64:ff9b::7f00:1",  # NAT64 well-known prefix
    "64:ff9b::a00:1",  # NAT64 to 10.0.0.1
    "64:ff9b:1::7f00:1",  # NAT64 local-use prefix
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1 (XORed)
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1 (XORed)
    "2001:4860:4860::5efe:7f00:1",  # ISATAP identifier carrying 127.0.0.1
    "fe80::1%eth0",
    "::1",
    "::",
]
PUBLIC = [
    "8.8.8.8",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("address", HIDDEN_PRIVATE)
def test_ipv4_carrying_ipv6_forms_are_judged_by_their_ipv4(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_stay_public(address: str) -> None:
    assert is_public(address)


@pytest.fixture
def site() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 whose ``/go?to=URL`` redirects to URL; records every path."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        if request.path == "/go":
            raise web.HTTPFound(request.query["to"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    with serve(app) as url:
        yield url, seen


def _refused(url: str, **kwargs: object) -> PublishError:
    async def go() -> None:
        http = Http(allow_private=False)
        try:
            response = await http.request("GET", url, **kwargs)
            response.release()
        finally:
            await http.close()

    with pytest.raises(PublishError) as caught:
        asyncio.run(go())
    return caught.value


@pytest.mark.parametrize("address", ["::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"])
def test_literal_ipv6_forms_are_refused_before_connecting(site, address: str) -> None:
    url, seen = site
    port = url.rsplit(":", 1)[1]
    assert _refused(f"http://[{address}]:{port}/").code == "publish.private_address"
    assert seen == []


def test_names_are_checked_by_what_they_resolve_to(site) -> None:
    url, seen = site
    port = url.rsplit(":", 1)[1]
    # this machine's own name resolves to one of its own (loopback or private) addresses
    name = socket.gethostname()
    assert not any(is_public(info[4][0]) for info in socket.getaddrinfo(name, None))
    assert _refused(f"http://{name}:{port}/").code == "publish.private_address"
    assert seen == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "017700000001"])
def test_other_spellings_of_loopback_are_refused_for_good(site, host: str) -> None:
    url, seen = site
    port = url.rsplit(":", 1)[1]
    assert _refused(f"http://{host}:{port}/").code in (
        "publish.rejected",
        "publish.private_address",
    )
    assert seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://[::127.0.0.1]:{port}/inside",
        "http://[64:ff9b::7f00:1]:{port}/inside",
        "http://[2002:7f00:1::1]:{port}/inside",
        "http://[::ffff:127.0.0.1]:{port}/inside",
        "http://localhost:{port}/inside",
    ],
)
def test_every_redirect_hop_is_checked(site, monkeypatch, target: str) -> None:
    url, seen = site
    port = url.rsplit(":", 1)[1]
    # The site itself stands for a public one: exactly the address "127.0.0.1" passes the
    # guard; every other form (the IPv6 ones carrying 127.0.0.1 included) meets the real check.
    real = net.is_public
    monkeypatch.setattr(net, "is_public", lambda a: a == "127.0.0.1" or real(a))
    error = _refused(f"{url}/go", params={"to": target.format(port=port)}, follow=3)
    assert error.code == "publish.private_address"
    assert [p.split("?")[0] for p in seen] == ["/go"]  # the inside was never reached


def test_redirects_are_not_followed_unless_asked(site, monkeypatch) -> None:
    url, seen = site
    real = net.is_public
    monkeypatch.setattr(net, "is_public", lambda a: a == "127.0.0.1" or real(a))

    async def go() -> int:
        http = Http(allow_private=False)
        try:
            async with await http.request(
                "GET", f"{url}/go", params={"to": f"{url}/inside"}
            ) as response:
                return response.status
        finally:
            await http.close()

    assert asyncio.run(go()) == 302
    with pytest.raises(ValueError):
        asyncio.run(Http(allow_private=False).request("GET", url, allow_redirects=True))
