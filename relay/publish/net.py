"""Outgoing HTTP to user-given URLs, refused when they lead to loopback, private or link-local
addresses (unless ``RELAY_ALLOW_PRIVATE_DESTINATIONS``): a destination must not become a way to
reach the relay's own network. Every name is resolved once and checked before connecting, and
aiohttp never follows redirects itself (it would connect to an address literal in a ``Location``
without asking the resolver): a caller that wants them followed asks ``request(follow=N)``, which
checks every hop like the first.

IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo,
ISATAP) are judged by that IPv4 address too: ``ipaddress`` calls ``64:ff9b::7f00:1`` global,
although a NAT64 gateway takes it to 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from relay.errors import PublishError, TransientPublishError

USER_AGENT = "relay (+https://github.com/relay-media/relay)"


REDIRECTS = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, local use: never public
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated)
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 SIIT IPv4-translated


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a packet to ``ip`` may end up at, by the IPv6 forms that carry one."""
    last32 = ipaddress.IPv4Address(ip.packed[12:])
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _COMPATIBLE or ip in _TRANSLATED or ip in _NAT64:
        found.append(last32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client); the client's address comes un-XORed
    if ip.packed[8:12] in (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe"):  # ISATAP identifier
        found.append(last32)
    return found


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal, with or without a zone) is one the relay may post to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        if not all(v4.is_global and not v4.is_multicast for v4 in embedded_ipv4(ip)):
            return False
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if not is_public(entry["host"]):
                raise PublishError("publish.private_address", f"{host} → {entry['host']}")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Http:
    """The one client adapters use; maps network failures to transient publish errors."""

    def __init__(self, allow_private: bool, timeout: float = 30.0) -> None:
        self.allow_private = allow_private
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=None if self.allow_private else GuardedResolver(), limit=20
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PublishError("publish.rejected", f"not an http(s) URL: {url}")
        if self.allow_private:
            return
        try:
            literal = ipaddress.ip_address(parts.hostname.split("%", 1)[0])
        except ValueError:
            if parts.hostname.lower() in ("localhost", "localhost.localdomain"):
                raise PublishError("publish.private_address", parts.hostname) from None
            return  # a name: the resolver checks what it resolves to
        if not is_public(str(literal)):
            raise PublishError("publish.private_address", parts.hostname)

    async def request(
        self, method: str, url: str, *, follow: int = 0, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        """Send a request; the caller reads the body (``await response.read()``) and releases.
        ``follow``: how many redirects of a GET or HEAD to follow, each target checked like the
        first URL; the last answer is returned, a redirect too when there are more."""
        if kwargs.pop("allow_redirects", False):
            raise ValueError("redirects are followed by follow=N, which checks every hop")
        if follow and method not in ("GET", "HEAD"):
            raise ValueError("only GET and HEAD follow redirects")
        response = await self._request_once(method, url, **kwargs)
        for _ in range(follow):
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                break
            response.release()
            url = urljoin(str(response.url), location)
            kwargs.pop("params", None)  # the query was the first URL's; the target has its own
            response = await self._request_once(method, url, **kwargs)
        return response

    async def _request_once(self, method: str, url: str, **kwargs: Any) -> aiohttp.ClientResponse:
        self.check_url(url)
        try:
            response = await self._client().request(method, url, allow_redirects=False, **kwargs)
        except PublishError:
            raise
        except aiohttp.InvalidURL as exc:
            # yarl refuses hosts such as "2130706433" or "0x7f.1" (127.0.0.1 in other
            # spellings); retrying cannot help
            raise PublishError("publish.rejected", f"{url}: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.__cause__, PublishError):
                raise exc.__cause__ from None
            raise TransientPublishError("publish.unreachable", f"{url}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientPublishError("publish.unreachable", f"{url}: {exc!r}") from exc
        return response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def raise_for_status(status: int, body: str, url: str) -> None:
    """The usual meaning of an HTTP answer for a delivery."""
    if status < 300:
        return
    remote = body.strip()[:300]
    if status in (401, 403):
        raise PublishError("publish.unauthorized", f"{url}: {status}", remote)
    if status == 429:
        raise TransientPublishError("publish.rate_limited", f"{url}: {status}", remote)
    if status in (408, 409, 425) or status >= 500:
        raise TransientPublishError("publish.unreachable", f"{url}: {status}", remote)
    raise PublishError("publish.rejected", f"{url}: {status}", remote)
