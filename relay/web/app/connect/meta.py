"""Connecting Facebook Pages and the Instagram accounts linked to them through Facebook Login.

The person is sent to the Login dialog (``RELAY_META_DIALOG_URL``) with the relay's app id
(``RELAY_META_APP_ID``) and the permissions the channels need; the code that comes back to
``/channels/facebook/callback`` is exchanged at ``/oauth/access_token`` (a POST: the app secret
goes in the body, never in a URL),
the short-lived user token for a long-lived one (``grant_type=fb_exchange_token``), and
``/me/accounts`` lists the Pages the person manages, each with its Page token (which does not
expire when it comes from a long-lived user token) and the Instagram professional account
linked to it. The person then picks which of them the relay posts to.

Between the callback and the pick, the long-lived user token rides in the flow's signed cookie
sealed (AES-GCM under the relay's key, bound to the person): the browser holds it, cannot read
it, and the relay reads the Pages again with it when the pick comes back, so no Page token
ever passes through the browser.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.sealed import Sealer, Unreadable
from relay.web.app import connect
from relay.web.app.connect import graph_login

SCOPES = (
    "pages_manage_posts,pages_read_engagement,pages_show_list,publish_video,"
    "instagram_basic,instagram_content_publish,business_management"
)


def enabled(request: web.Request) -> bool:
    settings = request.app[RELAY].settings
    return graph_login.configured(settings.meta_app_id, settings.meta_app_secret)


def _graph(request: web.Request) -> str:
    return request.app[RELAY].settings.meta_graph_url.rstrip("/")


def _secret(request: web.Request) -> str:
    return graph_login.secret_value(request.app[RELAY].settings.meta_app_secret)


def _context(user_id: str) -> str:
    return f"meta-connect:{user_id}"


def seal(request: web.Request, user_id: str, token: str) -> str:
    return Sealer.from_settings(request.app[RELAY].settings).seal(token, _context(user_id))


def unseal(request: web.Request, user_id: str, sealed: str) -> str:
    try:
        return Sealer.from_settings(request.app[RELAY].settings).open(sealed, _context(user_id))
    except Unreadable:
        raise connect.ConnectFailed("no-code") from None


def dialog_url(request: web.Request, state: str) -> str:
    settings = request.app[RELAY].settings
    query = {
        "client_id": settings.meta_app_id,
        "redirect_uri": connect.callback_url(request, "facebook"),
        "state": state,
        "scope": SCOPES,
        "response_type": "code",
    }
    return f"{settings.meta_dialog_url}?{urlencode(query)}"


async def _call(request: web.Request, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One Graph call; secrets go in the body or a header, never in the URL (URLs are logged)."""
    return await graph_login.call(request, _graph(request), method, path, **kwargs)


async def user_token(request: web.Request) -> str:
    """The long-lived user token for the code that came back to the callback."""
    code = connect.granted_code(request)
    app_id = request.app[RELAY].settings.meta_app_id
    short = await _call(
        request,
        "POST",
        "/oauth/access_token",
        data={
            "client_id": app_id,
            "client_secret": _secret(request),
            "redirect_uri": connect.callback_url(request, "facebook"),
            "code": code,
        },
    )
    if not short.get("access_token"):
        raise PublishError("publish.unauthorized", "/oauth/access_token: no access_token")
    long = await _call(
        request,
        "POST",
        "/oauth/access_token",
        data={
            "grant_type": "fb_exchange_token",
            "client_id": app_id,
            "client_secret": _secret(request),
            "fb_exchange_token": str(short["access_token"]),
        },
    )
    return str(long.get("access_token") or short["access_token"])


async def pages(request: web.Request, token: str) -> list[dict[str, Any]]:
    """The Pages the person manages: ``id``, ``name``, ``token`` and, when one is linked,
    ``instagram`` (``id``, ``username``)."""
    answer = await _call(
        request,
        "GET",
        "/me/accounts",
        params={"fields": "id,name,access_token,instagram_business_account{id,username}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    found = []
    for page in answer.get("data") or []:
        if not page.get("id") or not page.get("access_token"):
            continue
        linked = page.get("instagram_business_account") or {}
        found.append(
            {
                "id": str(page["id"]),
                "name": str(page.get("name") or page["id"]),
                "token": str(page["access_token"]),
                "instagram": (
                    {"id": str(linked["id"]), "username": str(linked.get("username") or "")}
                    if linked.get("id")
                    else None
                ),
            }
        )
    return found


def destinations_for(request: web.Request, page: dict[str, Any], kind: str) -> dict[str, Any]:
    """A picked Page (``kind`` facebook) or its Instagram account (``instagram``) as the new
    destination's fields; both post with the Page's token."""
    graph = _graph(request)
    if kind == "facebook":
        return {
            "url": graph,
            "token": page["token"],
            # The app's id opens the Resumable Upload API sessions a Page video goes through.
            "config": {
                "page_id": page["id"],
                "account": page["name"],
                "app_id": request.app[RELAY].settings.meta_app_id,
            },
        }
    instagram = page["instagram"]
    return {
        "url": graph,
        "token": page["token"],
        "config": {
            "ig_user_id": instagram["id"],
            "account": f"@{instagram['username']}" if instagram["username"] else instagram["id"],
        },
    }
