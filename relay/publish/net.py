"""Outgoing HTTP to user-given URLs, refused when they lead to loopback, private or link-local
addresses (unless ``RELAY_ALLOW_PRIVATE_DESTINATIONS``): a destination must not become a way to
reach the relay's own network. Every name is resolved once and checked before connecting, and
redirects are not followed, so a DNS answer or a ``Location`` cannot slip past the check."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from relay.errors import PublishError, TransientPublishError

USER_AGENT = "relay (+https://github.com/relay-media/relay)"


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
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
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            if parts.hostname.lower() in ("localhost", "localhost.localdomain"):
                raise PublishError("publish.private_address", parts.hostname) from None
            return  # a name: the resolver checks what it resolves to
        if not is_public(str(literal)):
            raise PublishError("publish.private_address", parts.hostname)

    async def request(self, method: str, url: str, **kwargs: Any) -> aiohttp.ClientResponse:
        """Send a request; the caller reads the body (``await response.read()``) and releases."""
        self.check_url(url)
        kwargs.setdefault("allow_redirects", False)
        try:
            response = await self._client().request(method, url, **kwargs)
        except PublishError:
            raise
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
