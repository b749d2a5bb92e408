"""Connecting a Threads account through Threads' own login (Threads API "Get Access Tokens").

The person is sent to the Authorization Window (``RELAY_THREADS_AUTHORIZE_URL``) with the
Threads app id (``RELAY_THREADS_APP_ID``) and the scopes ``threads_basic`` and
``threads_content_publish`` (``threads_delete`` to take posts down); the code that comes back
to ``/channels/threads/callback`` is exchanged at ``/oauth/access_token``
(``grant_type=authorization_code``) for a short-lived token and the account's id, that token
at ``/access_token`` (``grant_type=th_exchange_token``) for a long-lived one (60 days), and
``/v1.0/me`` names the account.

Request shapes as the Threads API documents them ("Get Access Tokens",
https://developers.facebook.com/docs/threads/get-started/get-access-tokens-and-permissions, and
"Long-Lived Access Tokens", https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/):
the code exchange is a ``POST`` (fields in the form body); the long-lived exchange is a ``GET``
whose query must carry ``grant_type``, ``client_secret`` and the short-lived ``access_token``, as
Threads takes no other form of it. Those values go as ``params`` of that one request and nowhere
else: the relay's errors and logs name the path only, never the query.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.web.app import connect
from relay.web.app.connect import graph_login

SCOPES = "threads_basic,threads_content_publish,threads_delete"


def enabled(request: web.Request) -> bool:
    settings = request.app[RELAY].settings
    return graph_login.configured(settings.threads_app_id, settings.threads_app_secret)


def _graph(request: web.Request) -> str:
    return request.app[RELAY].settings.threads_graph_url.rstrip("/")


def _secret(request: web.Request) -> str:
    return graph_login.secret_value(request.app[RELAY].settings.threads_app_secret)


def authorize_url(request: web.Request, state: str) -> str:
    settings = request.app[RELAY].settings
    query = {
        "client_id": settings.threads_app_id,
        "redirect_uri": connect.callback_url(request, "threads"),
        "scope": SCOPES,
        "response_type": "code",
        "state": state,
    }
    return f"{settings.threads_authorize_url}?{urlencode(query)}"


async def _call(request: web.Request, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return await graph_login.call(request, _graph(request), method, path, **kwargs)


async def complete(request: web.Request) -> dict[str, Any]:
    """The new destination's fields for the code that came back to the callback."""
    code = connect.granted_code(request)
    settings = request.app[RELAY].settings
    short = await _call(
        request,
        "POST",
        "/oauth/access_token",
        data={
            "client_id": settings.threads_app_id,
            "client_secret": _secret(request),
            "grant_type": "authorization_code",
            "redirect_uri": connect.callback_url(request, "threads"),
            "code": code,
        },
    )
    if not short.get("access_token"):
        raise PublishError("publish.unauthorized", "/oauth/access_token: no access_token")
    long = await _call(
        request,
        "GET",
        "/access_token",
        params={
            "grant_type": "th_exchange_token",
            "client_secret": _secret(request),
            "access_token": str(short["access_token"]),
        },
    )
    token = str(long.get("access_token") or short["access_token"])
    me = await _call(
        request,
        "GET",
        "/v1.0/me",
        params={"fields": "id,username"},
        headers={"Authorization": f"Bearer {token}"},
    )
    user_id = str(me.get("id") or short.get("user_id") or "")
    if not user_id.isdigit():
        raise PublishError("publish.rejected", "/v1.0/me: no account id")
    username = str(me.get("username") or "")
    lasts = long.get("expires_in")
    # When the long-lived token ends: deliveries renew it a week before (relay/publish/renew.py).
    expires_at = time.time() + (float(lasts) if isinstance(lasts, (int, float)) else 5184000)
    return {
        "url": _graph(request) + "/v1.0",
        "token": token,
        "config": {
            "threads_user_id": user_id,
            "account": f"@{username}" if username else user_id,
            "token_expires_at": int(expires_at),
        },
    }
