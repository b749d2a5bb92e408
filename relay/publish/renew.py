"""Renewing a long-lived Threads token before it lapses, on use: a delivery to a Threads
channel whose token ends within ``RENEW_BEFORE`` first asks
``GET /refresh_access_token?grant_type=th_refresh_token&access_token=…`` (Threads API
"Long-Lived Access Tokens", https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/:
a token at least a day old and not expired gets 60 more days), and saves the new token
and its end (``config.token_expires_at``, seconds since the epoch, written when the channel is
connected). A renewal that fails leaves the channel as it is: the publish then says whether the
token still works (a dead one turns the channel to "reconnect needed").

Threads documents the token only as the ``access_token`` query parameter of this ``GET``; it
goes there and nowhere else: what is logged names the destination and the status, never the URL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from relay.db import Database, destinations
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


async def fresh(db: Database, http: Http, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The destination row, with its token renewed first when it is a Threads token that ends
    soon; the row as it was when it needs nothing or the renewal fails."""
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
            params={"grant_type": "th_refresh_token", "access_token": row["token"]},
        )
        async with response:
            status = response.status
            answer = json.loads(await response.text(errors="replace")) if status == 200 else None
    except Exception as exc:  # the renewal is a courtesy: the publish goes on with the old one
        # The class and code only: the request's query holds the token.
        said = getattr(exc, "code", "") or type(exc).__name__
        log.warning("renewing the token of destination %s failed: %s", row["id"], said)
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
