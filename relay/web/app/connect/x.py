"""Connecting an X account: OAuth 2.0 Authorization Code with PKCE (docs.x.com "OAuth 2.0
Authorization Code Flow with PKCE"), the relay being a confidential client.

The person is sent to X's authorization page (``RELAY_X_AUTHORIZE_URL``) with the relay's
client id (``RELAY_X_CLIENT_ID``), the scopes ``tweet.read tweet.write users.read media.write
offline.access`` and an S256 ``code_challenge`` (the verifier is derived from the state:
relay/web/app/connect/__init__.py). The code that comes back to ``/channels/x/callback`` is
exchanged at ``POST /2/oauth2/token`` with the client id and secret as HTTP Basic (never in a
URL), for a two-hour access token and a refresh token (``offline.access``); ``GET
/2/users/me`` names the account. The refresh token is kept in the channel's config, sealed at
rest (relay/db/destinations.py seals every ``*token*`` key); deliveries renew the access token
with it (relay/publish/renew.py) and keep the new one X gives each time, since X's refresh
tokens are single-use.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.publish import Destination
from relay.publish.x import XClient, client_from, x_error
from relay.web.app import connect

SCOPES = "tweet.read tweet.write users.read media.write offline.access"


def enabled(request: web.Request) -> bool:
    return client_from(request.app[RELAY].settings) is not None


def _client(request: web.Request) -> XClient:
    client = client_from(request.app[RELAY].settings)
    if client is None:
        raise web.HTTPNotFound()
    return client


def authorize_url(request: web.Request, state: str) -> str:
    settings = request.app[RELAY].settings
    query = {
        "response_type": "code",
        "client_id": settings.x_client_id,
        "redirect_uri": connect.callback_url(request, "x"),
        "scope": SCOPES,
        "state": state,
        "code_challenge": connect.code_challenge(connect.code_verifier(request, state)),
        "code_challenge_method": "S256",
    }
    return f"{settings.x_authorize_url}?{urlencode(query)}"


async def complete(request: web.Request, pending: connect.Pending) -> dict[str, Any]:
    """The new destination's fields for the code that came back to the callback."""
    code = connect.granted_code(request)
    client = _client(request)
    http = connect.http(request)
    api = client.api.rstrip("/")
    status, token, text = await connect.read_json(
        http,
        "POST",
        api + "/2/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": connect.callback_url(request, "x"),
            "code_verifier": connect.code_verifier(request, pending.state),
            "client_id": client.client_id,
        },
        headers={"Authorization": client.basic()},
    )
    if status != 200 or not isinstance(token, dict) or not token.get("access_token"):
        said = (token or {}).get("error_description") if isinstance(token, dict) else text
        raise PublishError("publish.unauthorized", f"/2/oauth2/token answered {status}", str(said))
    access = str(token["access_token"])
    status, me, text = await connect.read_json(
        http, "GET", api + "/2/users/me", headers={"Authorization": f"Bearer {access}"}
    )
    data = me.get("data") if isinstance(me, dict) else None
    if status != 200 or not isinstance(data, dict) or not data.get("id"):
        raise x_error(status, text, {}, "/2/users/me")
    lasts = token.get("expires_in")
    username = str(data.get("username") or "")
    return {
        "url": api,
        "token": access,
        "config": {
            "user_id": str(data["id"]),
            "username": username,
            "account": f"@{username}" if username else str(data["id"]),
            "refresh_token": str(token.get("refresh_token") or ""),
            # When the access token ends: deliveries renew it five minutes before.
            "token_expires_at": int(
                time.time() + (float(lasts) if isinstance(lasts, int | float) else 7200)
            ),
        },
    }


async def revoke(request: web.Request, destination: Destination) -> None:
    """Give the tokens back when the channel is removed (``POST /2/oauth2/revoke``, the refresh
    token and the access token); a failure there does not keep the channel: the person asked
    for it gone."""
    client = client_from(request.app[RELAY].settings)
    if client is None:
        return
    tokens = [
        (str(destination.config.get("refresh_token") or ""), "refresh_token"),
        (destination.token or "", "access_token"),
    ]
    for token, hint in tokens:
        if not token:
            continue
        with contextlib.suppress(PublishError):
            await connect.read_json(
                connect.http(request),
                "POST",
                client.api.rstrip("/") + "/2/oauth2/revoke",
                data={"token": token, "token_type_hint": hint, "client_id": client.client_id},
                headers={"Authorization": client.basic()},
            )
