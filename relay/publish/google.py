"""What the YouTube channel needs from Google besides the upload itself: the OAuth 2.0 token
endpoint (refreshing an access token, which lasts an hour) and the meaning of Google's JSON
errors.

Sources (read 2026-12):
- "Using OAuth 2.0 for Web Server Applications",
  https://developers.google.com/identity/protocols/oauth2/web-server: ``POST
  https://oauth2.googleapis.com/token`` with ``grant_type=refresh_token``, ``refresh_token``,
  ``client_id``, ``client_secret`` gives ``{"access_token", "expires_in", "scope",
  "token_type"}``; a refresh token that was revoked, expired (unused for six months, or a
  "Testing" app's seven days) or issued to another client is ``400 {"error": "invalid_grant"}``.
- "YouTube Data API Errors", https://developers.google.com/youtube/v3/docs/errors: every error
  is ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``; the
  ``reason`` tells more than the status (403 is both "no permission" and "quota used up").
- "Quota costs", https://developers.google.com/youtube/v3/determine_quota_cost: a project has
  100 ``videos.insert`` a day in a bucket of their own and 10,000 units for the rest; quotas
  reset at midnight Pacific Time.

Tokens go in the ``Authorization`` header or a POST body, never in a URL.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from relay.db import Database, destinations
from relay.errors import PublishError, TransientPublishError
from relay.publish.net import Http

log = logging.getLogger("relay.publish.google")

TOKEN_URL = "https://oauth2.googleapis.com/token"
AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
RECONNECT = "destination.reconnect_needed"
QUOTA = "publish.quota_exceeded"
EXPIRES_AT = "token_expires_at"
REFRESH_BEFORE = 300.0
"""Seconds before an access token's end at which a delivery gets a new one first."""
PACIFIC = ZoneInfo("America/Los_Angeles")

QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})
PERMISSION_REASONS = frozenset({"insufficientPermissions", "forbidden", "youtubeSignupRequired"})


def quota_resets(now: datetime | None = None) -> str:
    """When the day's quota comes back, in words: the next midnight Pacific Time, in UTC."""
    now = now or datetime.now(UTC)
    pacific = now.astimezone(PACIFIC)
    midnight = (pacific + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    # replace() on an aware datetime keeps the offset of ``pacific``: re-localise across DST.
    midnight = datetime(midnight.year, midnight.month, midnight.day, tzinfo=PACIFIC)
    at = midnight.astimezone(UTC)
    hours = max(0.0, (at - now).total_seconds() / 3600)
    return f"it resets at midnight Pacific Time ({at:%Y-%m-%d %H:%M} UTC, in about {hours:.0f} h)"


def reasons(body: str) -> tuple[list[str], str]:
    """The ``errors[].reason`` values and the message of a Google error body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return [], body.strip()[:300]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return [], body.strip()[:300]
    found = [str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict)]
    # Google puts HTML in some messages (the quota one links its docs): text only.
    return found, re.sub(r"<[^>]*>", "", str(error.get("message") or ""))[:300]


def api_error(status: int, body: str, path: str) -> PublishError:
    """The publish error for a YouTube Data API answer that is not a success."""
    found, message = reasons(body)
    detail = f"{path}: {status} {','.join(found) or 'no reason'}"
    if status == 401:
        return PublishError(RECONNECT, detail, message)
    if QUOTA_REASONS & set(found):
        # Not retried: the quota comes back at midnight Pacific, usually after the delivery's
        # retries would have run out; the owner is told when, and publishes again.
        return PublishError(QUOTA, detail, f"YouTube: {message}; {quota_resets()}")
    if status == 429 or RATE_REASONS & set(found):
        return TransientPublishError("publish.rate_limited", detail, message)
    if status >= 500:
        return TransientPublishError("publish.unreachable", detail, message)
    if status == 403 and (PERMISSION_REASONS & set(found) or not found):
        return PublishError("publish.unauthorized", detail, message)
    return PublishError("publish.rejected", detail, message)


async def refresh(
    http: Http, config: Mapping[str, Any], token_url: str | None = None
) -> tuple[str, float]:
    """A new access token and when it ends (epoch seconds), from the destination's refresh
    token and client. A refusal of the refresh token means a new sign-in is needed."""
    refresh_token = str(config.get("refresh_token") or "")
    client_id = str(config.get("client_id") or "")
    client_secret = str(config.get("client_secret") or "")
    if not (refresh_token and client_id and client_secret):
        raise PublishError(
            RECONNECT,
            "youtube: the access token was refused and there is no refresh token and client",
        )
    url = token_url or str(config.get("token_url") or TOKEN_URL)
    response = await http.request(
        "POST",
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    async with response:
        status = response.status
        text = await response.text(errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if status == 200 and isinstance(answer, dict) and answer.get("access_token"):
        lasts = answer.get("expires_in")
        seconds = float(lasts) if isinstance(lasts, (int, float)) else 3600.0
        return str(answer["access_token"]), time.time() + seconds
    error = str(answer.get("error") or "") if isinstance(answer, dict) else ""
    said = str(answer.get("error_description") or error) if isinstance(answer, dict) else ""
    if error == "invalid_grant":
        return_error: PublishError = PublishError(RECONNECT, f"token: {status} {error}", said)
    elif status >= 500 or status == 429:
        return_error = TransientPublishError("publish.unreachable", f"token: {status}", said)
    else:  # invalid_client, unauthorized_client: the operator's app settings
        return_error = PublishError("publish.unauthorized", f"token: {status} {error}", said)
    raise return_error


def expires_soon(config: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether a refreshable token should be renewed before use: its end unknown or near."""
    if not config.get("refresh_token"):
        return False
    try:
        ends = float(config[EXPIRES_AT])
    except (KeyError, TypeError, ValueError):
        return True
    return ends - (now if now is not None else time.time()) < REFRESH_BEFORE


async def fresh(db: Database, http: Http, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The destination row, its access token renewed first when it ends within five minutes
    (relay/publish/renew.py calls this for YouTube channels before each delivery). A refused
    refresh token raises ``destination.reconnect_needed``; any other failure leaves the row as
    it is, and the publish says whether the old token still works."""
    config = json.loads(row["config"] or "{}")
    if not expires_soon(config):
        return row
    try:
        token, ends = await refresh(http, config)
    except PublishError as exc:
        if exc.code == RECONNECT:
            raise
        log.warning("refreshing the token of destination %s failed: %s", row["id"], exc.code)
        return row
    renewed = {**config, EXPIRES_AT: int(ends)}
    await db.run(destinations.update_destination, row["id"], token=token, config=renewed)
    log.info("refreshed the access token of destination %s", row["id"])
    return await db.read(destinations.destination_row, row["id"]) or row
