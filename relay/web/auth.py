"""Who is calling: bearer tokens, and the throttle on failed ones (sessions and CSRF come later).

Every door and API route that takes a token goes through ``bearer_token`` (which refuses an
address that failed too often before anything is looked up) and ``authenticate``. A token
that is no one's counts against the client's address; after ``RELAY_AUTH_MAX_FAILURES`` of
them within ``RELAY_AUTH_FAILURE_WINDOW_SECONDS`` every token attempt from that address gets
``429 auth.throttled`` with ``Retry-After`` until the window ends. The check comes before the
lookup, so a guesser learns nothing while throttled; other addresses are never slowed. The
client's address is ``client_address``'s: behind a trusted reverse proxy (``RELAY_TRUSTED_PROXIES``)
the one it forwarded, else the peer's.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

from aiohttp import web

from relay.context import RELAY, USER
from relay.db import queries
from relay.errors import AuthError, RelayError
from relay.web.client import client_address

MAX_TRACKED = 100_000
"""Addresses remembered at most; the least recently failed are forgotten first, so a flood of
spoofed-looking sources cannot grow memory without bound."""

_FAILED = "relay.auth.failed"  # request key: this request's failure is counted already


class Throttled(RelayError):
    default_code = "auth.throttled"

    def __init__(self, retry_after: int, detail: str = "") -> None:
        super().__init__(None, detail)
        self.retry_after = retry_after


class FailureThrottle:
    """Failed attempts per client address in fixed windows (IPv6 by /64: one host has many)."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key → (start, count)

    @staticmethod
    def key(address: str | None) -> str:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return address or "?"
        if ip.version == 6 and ip.ipv4_mapped is None:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)

    def check(self, address: str | None, now: float | None = None) -> None:
        """Throttled if the address used up its failures in the current window."""
        now = time.monotonic() if now is None else now
        found = self._seen.get(self.key(address))
        if found is None:
            return
        start, count = found
        left = start + self.window - now
        if left <= 0:
            del self._seen[self.key(address)]
        elif count >= self.max_failures:
            raise Throttled(max(1, math.ceil(left)), f"{count} failed tokens from {address}")

    def failed(self, address: str | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = self.key(address)
        start, count = self._seen.pop(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._seen[key] = (start, count + 1)  # re-inserted: most recent last
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)


AUTH_THROTTLE = web.AppKey("auth_throttle", FailureThrottle)


def setup(app: web.Application, max_failures: int, window: float) -> None:
    """Give the app its throttle (one per process: failures are counted where they land)."""
    app[AUTH_THROTTLE] = FailureThrottle(max_failures, window)


def throttle(request: web.Request) -> FailureThrottle:
    return request.config_dict[AUTH_THROTTLE]


def bearer_token(request: web.Request) -> str:
    """The request's ``Authorization: Bearer`` token, not yet checked; AuthError if none,
    Throttled if its address failed too often."""
    throttle(request).check(client_address(request))
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError()
    return token.strip()


def failed(request: web.Request) -> None:
    """Count a token that was no one's against the request's address (once a request; a
    request without a token guessed nothing)."""
    scheme = request.headers.get("Authorization", "").partition(" ")[0]
    if request.get(_FAILED) or scheme.lower() != "bearer":
        return
    request[_FAILED] = True
    throttle(request).failed(client_address(request))


async def authenticate(request: web.Request) -> str:
    token = bearer_token(request)
    relay = request.app[RELAY]
    user_id = await relay.db.read_by_key(queries.user_for_token, token)
    if user_id is None:
        failed(request)
        raise AuthError()
    request[USER] = user_id
    return user_id
