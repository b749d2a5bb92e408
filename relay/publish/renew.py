"""Renewing a long-lived Threads token before it lapses, on use: a delivery to a Threads
channel whose token ends within ``RENEW_BEFORE`` first asks
``GET /refresh_access_token?grant_type=th_refresh_token`` (Threads API "Long-Lived Access
Tokens": a token at least a day old and not expired gets 60 more days), and saves the new token
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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.db import Database, destinations
from relay.publish import google
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


async def fresh(
    db: Database, http: Http, row: Mapping[str, Any], linkedin: OAuthApp | None = None
) -> Mapping[str, Any]:
    """The destination row, with its token renewed first when it is a Threads or LinkedIn token
    that ends soon; the row as it was when it needs nothing or the renewal fails."""
    if row["type"] == "youtube":  # Google's access tokens last an hour: relay/publish/google.py
        return await google.fresh(db, http, row)
    if row["type"] == "linkedin":
        return await _linkedin(db, http, row, linkedin)
    if row["type"] != "threads" or not row["token"]:
        return row
    config = json.loads(row["config"] or "{}")
    expires_at = _expires_at(config)
    if expires_at is None or expires_at - time.time() > RENEW_BEFORE:
        return row
    base = (row["url"] or GRAPH).rstrip("/").removesuffix("/v1.0")
    try:
        response = await http.request(
            "GET",
            base + "/refresh_access_token",
            params={"grant_type": "th_refresh_token"},
            headers={"Authorization": f"Bearer {row['token']}"},
        )
        async with response:
            status = response.status
            answer = json.loads(await response.text(errors="replace")) if status == 200 else None
    except Exception as exc:  # the renewal is a courtesy: the publish goes on with the old one
        log.warning("renewing the token of destination %s failed: %r", row["id"], exc)
        return row
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        log.warning("renewing the token of destination %s failed: %s", row["id"], status)
        return row
    lasts = answer.get("expires_in")
    renewed = {
        **config,
        EXPIRES_AT: time.time() + (float(lasts) if isinstance(lasts, (int, float)) else 5184000),
    }
    await db.run(destinations.update_destination, row["id"], token=str(token), config=renewed)
    log.info("renewed the token of destination %s", row["id"])
    return await db.read(destinations.destination_row, row["id"]) or row


async def _linkedin(
    db: Database, http: Http, row: Mapping[str, Any], app: OAuthApp | None
) -> Mapping[str, Any]:
    config = json.loads(row["config"] or "{}")
    expires_at = _expires_at(config)
    if expires_at is None or expires_at - time.time() > RENEW_BEFORE:
        return row
    if app is None or not row["secret"]:
        log.info("destination %s: its LinkedIn token ends soon and cannot be renewed", row["id"])
        return row
    try:
        response = await http.request(
            "POST",
            app.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": row["secret"],
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
        async with response:
            status = response.status
            answer = json.loads(await response.text(errors="replace")) if status == 200 else None
    except Exception as exc:  # the renewal is a courtesy: the publish goes on with the old one
        log.warning("renewing the token of destination %s failed: %r", row["id"], exc)
        return row
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        log.warning("renewing the token of destination %s failed: %s", row["id"], status)
        return row
    lasts = answer.get("expires_in")
    renewed = {
        **config,
        EXPIRES_AT: int(time.time() + (lasts if isinstance(lasts, (int, float)) else 5184000)),
    }
    refresh = str(answer.get("refresh_token") or row["secret"])
    await db.run(
        destinations.update_destination, row["id"], token=str(token), secret=refresh,
        config=renewed,
    )  # fmt: skip
    log.info("renewed the LinkedIn token of destination %s", row["id"])
    return await db.read(destinations.destination_row, row["id"]) or row
