"""Connecting a YouTube channel through Google's sign-in (OAuth 2.0 for web server applications,
https://developers.google.com/identity/protocols/oauth2/web-server, read 2026-12).

The person is sent to Google's consent screen (``RELAY_YOUTUBE_AUTHORIZE_URL``) with the relay's
OAuth client id (``RELAY_YOUTUBE_CLIENT_ID``), the scopes ``youtube.upload`` (videos.insert,
thumbnails.set) and ``youtube.force-ssl`` (captions, videos.update and videos.delete),
``access_type=offline`` and ``prompt=consent`` (so that Google gives a refresh token every time,
also to a person who allowed the relay before) and an S256 PKCE challenge. The code that comes
back to ``/channels/youtube/callback`` is exchanged at the token endpoint
(``RELAY_YOUTUBE_TOKEN_URL``) with the client secret and the PKCE verifier for an access token
(one hour) and a refresh token; ``channels.list?mine=true`` names the channel.

The channel keeps the refresh token and the client's id and secret, sealed
(relay/db/destinations.py): a delivery renews the access token by itself when it ends within
five minutes (relay/publish/google.py), whichever node runs it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.publish import google
from relay.web.app import connect

SCOPES = (
    "https://www.googleapis.com/auth/youtube.upload "
    "https://www.googleapis.com/auth/youtube.force-ssl"
)
PRIVATE_AS = ("private", "unlisted")


def enabled(request: web.Request) -> bool:
    settings = request.app[RELAY].settings
    return bool(settings.youtube_client_id and settings.youtube_client_secret)


def _secret(request: web.Request) -> str:
    secret = request.app[RELAY].settings.youtube_client_secret
    return secret.get_secret_value() if secret is not None else ""


def authorize_url(request: web.Request, state: str) -> str:
    settings = request.app[RELAY].settings
    query = {
        "client_id": settings.youtube_client_id,
        "redirect_uri": connect.callback_url(request, "youtube"),
        "response_type": "code",
        "scope": SCOPES,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": connect.code_challenge(connect.code_verifier(request, state)),
        "code_challenge_method": "S256",
    }
    return f"{settings.youtube_authorize_url}?{urlencode(query)}"


async def complete(request: web.Request, pending: connect.Pending) -> dict[str, Any]:
    """The new destination's fields for the code that came back to the callback."""
    code = connect.granted_code(request)
    settings = request.app[RELAY].settings
    client = connect.http(request)
    status, answer, _text = await connect.read_json(
        client,
        "POST",
        settings.youtube_token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": connect.callback_url(request, "youtube"),
            "client_id": settings.youtube_client_id,
            "client_secret": _secret(request),
            "code_verifier": connect.code_verifier(request, pending.state),
        },
    )
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise PublishError("publish.unauthorized", f"youtube token: {status} {error}")
    if not answer.get("refresh_token"):
        # Without it the channel would stop after an hour: refuse now rather than then.
        raise PublishError("publish.unauthorized", "youtube token: no refresh_token")
    token = str(answer["access_token"])
    status, channels, text = await connect.read_json(
        client,
        "GET",
        settings.youtube_api_url.rstrip("/") + "/youtube/v3/channels",
        params={"part": "snippet", "mine": "true"},
        headers={"Authorization": f"Bearer {token}"},
    )
    if status != 200 or not isinstance(channels, dict):
        raise google.api_error(status, text, "/youtube/v3/channels")
    items = channels.get("items") or []
    if not items:
        raise connect.ConnectFailed("youtube-no-channel")
    channel = items[0]
    lasts = answer.get("expires_in")
    expires_at = time.time() + (float(lasts) if isinstance(lasts, (int, float)) else 3600.0)
    private_as = str(pending.data.get("private_as") or "private")
    return {
        "url": settings.youtube_api_url.rstrip("/"),
        "token": token,
        "config": {
            "channel_id": str(channel.get("id") or ""),
            "account": str((channel.get("snippet") or {}).get("title") or channel.get("id")),
            "refresh_token": str(answer["refresh_token"]),
            "client_id": settings.youtube_client_id,
            "client_secret": _secret(request),
            "token_url": settings.youtube_token_url,
            google.EXPIRES_AT: int(expires_at),
            "private_as": private_as if private_as in PRIVATE_AS else "private",
        },
    }
