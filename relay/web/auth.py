"""Who is calling: bearer tokens and the throttle on failed ones; web app sessions and CSRF.

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

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections import OrderedDict

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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


# --- web app: passwords, sessions, CSRF (relay/web/app) ---------------------------------------
#
# A session is a cookie ``user_id.generation.expires.mac``, HMAC-SHA256 under a subkey of the
# relay's secret key: nothing is stored per session, so any node can check it. "Sign out
# everywhere" raises the user's generation in the database; every cookie issued before then no
# longer matches it. CSRF is double-submit: a random token in its own cookie, repeated in a
# hidden field of every form, compared on every POST (SameSite=Lax covers the rest).

SESSION_COOKIE = "relay_session"
CSRF_COOKIE = "relay_csrf"
CSRF_FIELD = "csrf_token"

_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed. With no hash (unknown user, or one without a
    password) the same argon2 verification runs against a dummy hash, so the answer takes as
    long either way and timing tells no one which user names exist."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
    try:
        matched = _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return bool(matched and password_hash)


class Sessions:
    """Signs and checks session cookies under the relay's ``web-session`` subkey."""

    def __init__(self, key: bytes, lifetime: float, secure: bool) -> None:
        self._key = key
        self.lifetime = lifetime
        self.secure = secure

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: str, generation: int, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.lifetime)
        message = f"{user_id}.{generation}.{expires}"
        return f"{message}.{self._mac(message)}"

    def check(self, cookie: str | None, now: float | None = None) -> tuple[str, int] | None:
        """(user id, generation) of a well-signed, unexpired cookie; the caller compares the
        generation with the database's."""
        parts = (cookie or "").split(".")
        if len(parts) != 4:
            return None
        user_id, generation, expires, mac = parts
        if not hmac.compare_digest(self._mac(f"{user_id}.{generation}.{expires}"), mac):
            return None
        try:
            if int(expires) < (time.time() if now is None else now):
                return None
            return user_id, int(generation)
        except ValueError:
            return None

    def set_cookie(self, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self.lifetime),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure,
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/", samesite="Lax", secure=self.secure)


SESSIONS = web.AppKey("web_sessions", Sessions)
LOGIN_THROTTLE = web.AppKey("web_login_throttle", FailureThrottle)


def setup_sessions(
    app: web.Application, key: bytes, lifetime: float, secure: bool, throttle: FailureThrottle
) -> None:
    app[SESSIONS] = Sessions(key, lifetime, secure)
    app[LOGIN_THROTTLE] = throttle


def csrf_token(request: web.Request) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (then the response must set it)."""
    found = request.cookies.get(CSRF_COOKIE, "")
    if len(found) == 43 and found.replace("-", "").replace("_", "").isalnum():
        return found, False
    return secrets.token_urlsafe(32), True


def set_csrf_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    # Not HttpOnly would be needed only for script-sent forms; ours are plain forms.
    response.set_cookie(CSRF_COOKIE, token, path="/", httponly=True, samesite="Lax", secure=secure)


def csrf_ok(request: web.Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, submitted or "")


# --- the web app's scripts on the API's doors (the upload page on tus) ------------------------
#
# A page's script sends the session cookie, which a cross-site request would carry too; what a
# cross-site request cannot send is a header of our choosing with the CSRF token in it (the
# CSRF cookie is HttpOnly, so only a page of ours, which has the token in its form, knows it).

CSRF_HEADER = "X-CSRF-Token"


async def session_user(request: web.Request) -> str | None:
    """The user of a request from one of the web app's scripts: a valid, current session
    cookie and the CSRF token repeated in ``X-CSRF-Token``. None for a request that carries a
    bearer token or no session cookie (a script's or a program's: the token decides); AuthError
    for a session cookie without the header, with a wrong one, or ended."""
    sessions = request.config_dict.get(SESSIONS)
    cookie = request.cookies.get(SESSION_COOKIE)
    if sessions is None or cookie is None or "Authorization" in request.headers:
        return None
    if not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        raise AuthError("auth.session_invalid", "a session cookie without the CSRF header")
    found = sessions.check(cookie)
    user = await request.app[RELAY].db.read(queries.user_session, found[0]) if found else None
    # Ended everywhere (or the password changed or was removed) since the cookie was issued.
    if found is None or user is None or user[1] != found[1] or not user[3]:
        raise AuthError("auth.session_invalid", "session ended")
    request[USER] = found[0]
    return found[0]


async def session_or_token(request: web.Request) -> str:
    """``session_user``, else the bearer token's user (``authenticate``)."""
    user_id = await session_user(request)
    return user_id if user_id is not None else await authenticate(request)
