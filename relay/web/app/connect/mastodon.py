"""Connecting a Mastodon account: the relay registers an app on the person's instance
(``POST /api/v1/apps``), sends them to the instance's ``/oauth/authorize`` (authorization code
with PKCE, S256), takes the code at ``/channels/mastodon/callback``, exchanges it at
``/oauth/token`` and asks ``verify_credentials`` whose account it is.

The app is registered anew for each connection: its client secret belongs to that one
destination (kept as its secret, so removing the channel can revoke the token with it).
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.web.app import connect

SCOPES = "read:accounts read:statuses write:media write:statuses"
APP_NAME = "Relay"


async def begin(request: web.Request, instance: str, state: str) -> tuple[str, dict[str, Any]]:
    """Register the app; the instance's consent page and what the callback needs."""
    client = connect.http(request)
    base = connect.normal_site(instance)
    redirect_uri = connect.callback_url(request, "mastodon")
    status, app, _ = await connect.read_json(
        client,
        "POST",
        base + "/api/v1/apps",
        data={
            "client_name": APP_NAME,
            "redirect_uris": redirect_uri,
            "scopes": SCOPES,
            "website": request.app[RELAY].settings.public_url,
        },
    )
    if status != 200 or not isinstance(app, dict) or not app.get("client_id"):
        raise PublishError("publish.rejected", f"{base}/api/v1/apps answered {status}")
    query = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": state,
        "code_challenge": connect.code_challenge(connect.code_verifier(request, state)),
        "code_challenge_method": "S256",
    }
    kept = {
        "instance": base,
        "client_id": app["client_id"],
        "client_secret": app.get("client_secret", ""),
    }
    return f"{base}/oauth/authorize?{urlencode(query)}", kept


async def complete(request: web.Request, pending: connect.Pending) -> dict[str, Any]:
    """Exchange the code; the new destination's fields (``url``, ``token``, ``secret``,
    ``config``, and ``account`` to show)."""
    code = connect.granted_code(request)
    data = pending.data
    client = connect.http(request)
    status, token, _ = await connect.read_json(
        client,
        "POST",
        data["instance"] + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": data["client_id"],
            "client_secret": data["client_secret"],
            "redirect_uri": connect.callback_url(request, "mastodon"),
            "code_verifier": connect.code_verifier(request, pending.state),
            "scope": SCOPES,
        },
    )
    if status != 200 or not isinstance(token, dict) or not token.get("access_token"):
        raise PublishError("publish.unauthorized", f"/oauth/token answered {status}")
    access = str(token["access_token"])
    status, account, _ = await connect.read_json(
        client,
        "GET",
        data["instance"] + "/api/v1/accounts/verify_credentials",
        headers={"Authorization": f"Bearer {access}"},
    )
    if status != 200 or not isinstance(account, dict):
        raise PublishError("publish.unauthorized", f"verify_credentials answered {status}")
    acct = str(account.get("acct") or account.get("username") or "")
    host = urlsplit(data["instance"]).netloc
    return {
        "url": data["instance"],
        "token": access,
        "secret": data["client_secret"] or None,
        "config": {"account": f"@{acct}@{host}", "client_id": data["client_id"]},
        "account": f"@{acct}@{host}",
    }


async def revoke(
    request: web.Request, url: str, token: str, config: dict[str, Any], secret: str | None
) -> None:
    """Give the token back when the channel is removed (``POST /oauth/revoke``); a failure
    there does not keep the channel: the person asked for it gone."""
    client_id = config.get("client_id")
    if not client_id or not secret:
        return
    with contextlib.suppress(PublishError):
        await connect.read_json(
            connect.http(request),
            "POST",
            url.rstrip("/") + "/oauth/revoke",
            data={"client_id": client_id, "client_secret": secret, "token": token},
        )
