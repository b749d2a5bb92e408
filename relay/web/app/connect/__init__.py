"""Connecting a channel through the service's own sign-in: what the services' flows share.

A flow leaves the relay for the service's page and comes back to a callback. The way out is a
page with a link to the service (followed at once by ``/static/channels.js``), not a redirect
from the form's POST: the pages' CSP (``form-action 'self'``) rightly stops a form whose answer
redirects to another site. What the callback
needs (which service, where, the ``state`` it must see again, a registered app's client id) is
kept in a short-lived cookie, ``relay_connect``, signed with a subkey of the relay's secret key
and bound to the signed-in user: nothing is stored per flow, so any node can take the callback,
and a callback in another user's browser (or with another ``state``) is refused.

The cookie is signed, not encrypted: what it carries may be seen by the person whose browser
holds it (HttpOnly keeps it from scripts), and no more than that is in it. A Mastodon app's
client secret rides in it between the two halves of the flow; that app was registered for this
one connection, and the secret is useless without a code the person's own sign-in gives.
The PKCE ``code_verifier`` is never in the cookie nor anywhere else: it is derived from the
state under another subkey, so only the relay can compute it, even from a stolen cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relay.config import derive_key, secret_key
from relay.context import RELAY
from relay.errors import PublishError
from relay.publish.net import Http
from relay.web import auth

COOKIE = "relay_connect"
LIFETIME = 15 * 60
"""Seconds a person has to sign in at the service and come back."""


class ConnectFailed(Exception):
    """A connection that cannot be made, for a ``reason`` the channels page words for people
    (``denied``, ``no-code``, ``wordpress-no-passwords``, ``indieauth-…``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Pending:
    """One flow under way: what its callback checks and needs."""

    user_id: str
    service: str
    state: str
    data: dict[str, Any]


def _key(request: web.Request, purpose: str) -> bytes:
    return derive_key(secret_key(request.app[RELAY].settings), purpose)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_state() -> str:
    return secrets.token_urlsafe(24)


def remember(
    request: web.Request,
    response: web.StreamResponse,
    user_id: str,
    service: str,
    state: str,
    data: dict[str, Any],
) -> None:
    """Keep a flow under way in the signed cookie, set on ``response``."""
    payload = {
        "u": user_id,
        "s": service,
        "st": state,
        "exp": int(time.time()) + LIFETIME,
        "d": data,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_key(request, "web-connect"), body.encode(), hashlib.sha256).digest())
    response.set_cookie(
        COOKIE,
        f"{body}.{mac}",
        max_age=LIFETIME,
        path="/channels/",
        httponly=True,
        samesite="Lax",  # the service sends the browser back with a top-level GET: Lax allows it
        secure=request.config_dict[auth.SESSIONS].secure,
    )


def finish(request: web.Request, user_id: str, service: str, state: str | None) -> Pending | None:
    """The flow this callback ends, or None when the cookie is missing, forged, expired, of
    another user or service, or its state is not the one that came back."""
    cookie = request.cookies.get(COOKIE, "")
    body, _, mac = cookie.partition(".")
    if not body or not mac:
        return None
    expected = _b64(hmac.new(_key(request, "web-connect"), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    if (
        payload.get("u") != user_id
        or payload.get("s") != service
        or int(payload.get("exp", 0)) < time.time()
        or not state
        or not hmac.compare_digest(str(payload.get("st", "")), state)
    ):
        return None
    return Pending(user_id, service, state, dict(payload.get("d") or {}))


def forget(request: web.Request, response: web.StreamResponse) -> None:
    """A flow ends once, whatever its outcome: its state cannot be used again."""
    response.del_cookie(COOKIE, path="/channels/", secure=request.config_dict[auth.SESSIONS].secure)


def code_verifier(request: web.Request, state: str) -> str:
    """The PKCE verifier of this flow (RFC 7636: 43 characters of base64url)."""
    return _b64(hmac.new(_key(request, "web-connect-pkce"), state.encode(), "sha256").digest())


def code_challenge(verifier: str) -> str:
    """S256: base64url of the verifier's SHA-256, without padding."""
    return _b64(hashlib.sha256(verifier.encode()).digest())


def http(request: web.Request) -> Http:
    """The guarded client deliveries use: no private addresses unless the operator allows."""
    publisher = request.app[RELAY].publisher
    assert publisher is not None
    return publisher.http


def callback_url(request: web.Request, service: str) -> str:
    return f"{request.app[RELAY].settings.public_url}/channels/{service}/callback"


def granted_code(request: web.Request) -> str:
    """The authorization code the service sent back to the callback (RFC 6749 4.1.2);
    ``denied`` when the person said no (``error``), ``no-code`` when none came."""
    if request.query.get("error"):
        raise ConnectFailed("denied")
    code = request.query.get("code", "")
    if not code:
        raise ConnectFailed("no-code")
    return code


async def read_json(client: Http, method: str, url: str, **kwargs: Any) -> tuple[int, Any, str]:
    """(status, parsed JSON or None, text) of one request through the guard."""
    response = await client.request(method, url, **kwargs)
    async with response:
        text = await response.text(errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return response.status, parsed, text


def normal_site(given: str) -> str:
    """A site or instance as a person types it (``mastodon.social``, ``https://x.org/``) as a
    base URL without a trailing slash; ``https://`` when no scheme is given."""
    site = given.strip()
    if not site:
        raise PublishError("publish.rejected", "empty address")
    if "://" not in site:
        site = "https://" + site
    return site.rstrip("/")
