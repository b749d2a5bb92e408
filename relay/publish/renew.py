"""Renewing channels' tokens before they lapse, on use: one ``Renewer`` per kind of channel
(``RENEWERS``), run before each delivery.

Threads: a delivery to a Threads channel whose token ends within ``RENEW_BEFORE`` first asks
``GET /refresh_access_token?grant_type=th_refresh_token&access_token=…`` (Threads API
"Long-Lived Access Tokens", https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/:
a token at least a day old and not expired gets 60 more days), and saves the new token
and its end (``config.token_expires_at``, seconds since the epoch, written when the channel is
connected). A renewal that fails leaves the channel as it is: the publish then says whether the
token still works (a dead one turns the channel to "reconnect needed").

The token goes in the ``Authorization`` header, never in the URL.

LinkedIn (https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens):
access tokens last 60 days; an app LinkedIn granted programmatic refresh gets a refresh token
(365 days) with each, kept sealed in the destination's secret. A LinkedIn token that ends within
``RENEW_BEFORE`` is renewed with ``POST /oauth/v2/accessToken`` (``grant_type=refresh_token``,
the app's client id and secret in the body); without a refresh token nothing can be done, and
the token's end turns the channel to "reconnect needed" (LinkedIn answers 401).

X's access tokens last two hours: a delivery to an X channel whose token ends within five
minutes first spends the channel's refresh token (``relay/publish/x.py`` ``refresh``) and keeps
the new pair at once (X's refresh tokens are single-use). One renewal per channel at a time in a
process; a refresh token another delivery already spent is followed to the row it saved.
Threads documents the token only as the ``access_token`` query parameter of this ``GET``; it
goes there and nowhere else: what is logged names the destination and the status, never the URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.db import Database, destinations
from relay.publish import google, x
from relay.publish.net import Http

log = logging.getLogger("relay.publish.renew")

RENEW_BEFORE = 7 * 86400.0
EXPIRES_AT = "token_expires_at"
GRAPH = "https://graph.threads.net"


def _expires_at(config: Mapping[str, Any]) -> float | None:
    try:
        return float(config[EXPIRES_AT])
    except (KeyError, TypeError, ValueError):
        return None


def _ends_soon(config: Mapping[str, Any]) -> bool:
    """Whether the token's known end (Threads, LinkedIn) is within ``RENEW_BEFORE``."""
    expires_at = _expires_at(config)
    return expires_at is not None and expires_at - time.time() <= RENEW_BEFORE


async def _ask(http: Http, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """The renewal's status, and its JSON answer when that is 200 (else None)."""
    response = await http.request(method, url, **kwargs)
    async with response:
        status = response.status
        answer = json.loads(await response.text(errors="replace")) if status == 200 else None
    return status, answer


def _lasts_until(answer: Mapping[str, Any]) -> float:
    """When the new token ends: its ``expires_in`` from now, 60 days when not given."""
    lasts = answer.get("expires_in")
    return time.time() + (float(lasts) if isinstance(lasts, (int, float)) else 5184000)


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """An OAuth client the relay is registered as, and where its tokens are renewed."""

    client_id: str
    client_secret: str
    token_url: str

    @classmethod
    def linkedin(cls, settings: Any) -> OAuthApp | None:
        secret = settings.linkedin_client_secret
        if not settings.linkedin_client_id or secret is None:
            return None
        return cls(
            settings.linkedin_client_id,
            secret.get_secret_value(),
            settings.linkedin_oauth_url.rstrip("/") + "/oauth/v2/accessToken",
        )


@dataclass(frozen=True, slots=True)
class Apps:
    """The relay's own apps at the services whose renewals need one."""

    linkedin: OAuthApp | None = None
    x: x.XClient | None = None


Renewer = Callable[[Database, Http, Mapping[str, Any], Apps], Awaitable[Mapping[str, Any]]]
"""Renews one kind of channel's token when it ends soon: the row as saved afterwards, or the
row as it was when it needs nothing or the renewal fails (the publish then says whether the old
token still works)."""


async def fresh(
    db: Database,
    http: Http,
    row: Mapping[str, Any],
    linkedin: OAuthApp | None = None,
    x_client: x.XClient | None = None,
) -> Mapping[str, Any]:
    """The destination row, with its token renewed first when it ends soon (``linkedin`` and
    ``x_client`` are the relay's apps there); channels with no renewer come back as they were."""
    renewer = RENEWERS.get(row["type"])
    if renewer is None:
        return row
    return await renewer(db, http, row, Apps(linkedin, x_client))


async def _saved(
    db: Database, row: Mapping[str, Any], what: str, **values: Any
) -> Mapping[str, Any]:
    """Keeps a renewed token (and what came with it) and reads the row back."""
    await db.run(destinations.update_destination, row["id"], **values)
    log.info("renewed the %s of destination %s", what, row["id"])
    return await db.read(destinations.destination_row, row["id"]) or row


async def _threads(
    db: Database, http: Http, row: Mapping[str, Any], apps: Apps
) -> Mapping[str, Any]:
    config = json.loads(row["config"] or "{}")
    if not row["token"] or not _ends_soon(config):
        return row
    base = (row["url"] or GRAPH).rstrip("/").removesuffix("/v1.0")
    try:
        status, answer = await _ask(
            http,
            "GET",
            base + "/refresh_access_token",
            params={"grant_type": "th_refresh_token", "access_token": row["token"]},
        )
    except Exception as exc:  # the renewal is a courtesy: the publish goes on with the old one
        # The class and code only: the request's query holds the token.
        said = getattr(exc, "code", "") or type(exc).__name__
        log.warning("renewing the token of destination %s failed: %s", row["id"], said)
        return row
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        log.warning("renewing the token of destination %s failed: %s", row["id"], status)
        return row
    renewed = {**config, EXPIRES_AT: _lasts_until(answer)}
    return await _saved(db, row, "Threads token", token=str(token), config=renewed)


async def _linkedin(
    db: Database, http: Http, row: Mapping[str, Any], apps: Apps
) -> Mapping[str, Any]:
    app = apps.linkedin
    config = json.loads(row["config"] or "{}")
    if not _ends_soon(config):
        return row
    if app is None or not row["secret"]:
        log.info("destination %s: its LinkedIn token ends soon and cannot be renewed", row["id"])
        return row
    try:
        status, answer = await _ask(
            http,
            "POST",
            app.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": row["secret"],
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
    except Exception as exc:  # the renewal is a courtesy: the publish goes on with the old one
        log.warning("renewing the token of destination %s failed: %r", row["id"], exc)
        return row
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        log.warning("renewing the token of destination %s failed: %s", row["id"], status)
        return row
    renewed = {**config, EXPIRES_AT: int(_lasts_until(answer))}
    refresh = str(answer.get("refresh_token") or row["secret"])
    return await _saved(db, row, "LinkedIn token", token=str(token), secret=refresh, config=renewed)


_x_locks: dict[str, asyncio.Lock] = {}


async def _x(db: Database, http: Http, row: Mapping[str, Any], apps: Apps) -> Mapping[str, Any]:
    client = apps.x
    if not x.needs_renewal(json.loads(row["config"] or "{}")):
        return row
    if client is None:
        log.warning("destination %s: X token ends, and RELAY_X_CLIENT_ID is unset", row["id"])
        return row
    async with _x_locks.setdefault(row["id"], asyncio.Lock()):
        # Another delivery of this process may have renewed it while this one waited.
        row = await db.read(destinations.destination_row, row["id"]) or row
        config = json.loads(row["config"] or "{}")
        if not x.needs_renewal(config):
            return row
        spent = str(config[x.REFRESH])
        try:
            status, answer = await x.refresh(http, client, spent)
        except Exception as exc:  # the publish says whether the old token still works
            log.warning("renewing the X token of destination %s failed: %r", row["id"], exc)
            return row
        token = answer.get("access_token") if answer else None
        if not token or answer is None:
            # Spent by another node in the meantime? Then its row has the new pair.
            again = await db.read(destinations.destination_row, row["id"]) or row
            if json.loads(again["config"] or "{}").get(x.REFRESH) != spent:
                return again
            log.warning(
                "renewing the X token of destination %s failed: %s %s",
                row["id"],
                status,
                (answer or {}).get("error", ""),
            )
            return row
        renewed = x.renewed_config(config, answer)
        return await _saved(db, row, "X token", token=str(token), config=renewed)


async def _youtube(
    db: Database, http: Http, row: Mapping[str, Any], apps: Apps
) -> Mapping[str, Any]:
    return await google.fresh(db, http, row)  # Google's tokens last an hour: its own module


RENEWERS: dict[str, Renewer] = {
    "threads": _threads,
    "linkedin": _linkedin,
    "x": _x,
    "youtube": _youtube,
}
