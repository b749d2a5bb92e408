"""``/settings`` → Stream keys: a user makes a key to go live from a phone (README "Going
live"), sees it once with QR codes of its push addresses (RTMP, and SRT when the relay takes
SRT), and revokes keys.

The QR code is an SVG made on the server by segno (an ``<img>`` with a ``data:`` URI, which the
web app's CSP allows for images): no script, and the key never leaves the page that shows it.
Larix Broadcaster scans it as a connection URL; OBS and Streamlabs take the server and the key
apart, shown as text beside it.
"""

from __future__ import annotations

from typing import Any

import segno
from aiohttp import web

from relay.context import RELAY
from relay.db import live as db_live
from relay.live_cli import key_urls
from relay.web.app.page import Signed, error, gettext_for, read_form, render, signed_page
from relay.web.app.settings import confirm_page

MAX_TITLE = 200


def qr_code(text: str) -> str:
    """A ``data:`` URI of an SVG QR code of ``text`` (error correction M: scannable off a
    screen with glare)."""
    return segno.make(text, error="m").svg_data_uri(scale=5, border=4, light="#fff")


def keys_of(conn: Any, user_id: str) -> list[Any]:
    """For the settings page's list."""
    return db_live.keys_of(conn, user_id)


@signed_page
async def add_key(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    title = " ".join(str(form.get("title", "")).split())[:MAX_TITLE]
    relay = request.app[RELAY]
    _, key = await relay.db.run(db_live.add_key, user.user_id, title)
    urls = key_urls(relay.settings, key)
    # Answered here, not redirected: the key exists only in this answer.
    return render(
        request,
        "app/stream_key.html",
        {
            "user": user,
            "room": "settings",
            "here": "/settings",
            "key": urls,
            "title": title,
            "qr": qr_code(urls["rtmp_url"]),
            "qr_srt": qr_code(urls["srt_url"]) if urls["srt_url"] else None,
        },
    )


@signed_page
async def confirm_revoke(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    key_id = request.match_info["key_id"]
    rows = await relay.db.read(db_live.keys_of, user.user_id)
    row = next((r for r in rows if r["id"] == key_id), None)
    _ = gettext_for(request)
    if row is None:
        return error(
            request,
            404,
            _("There is no such stream key"),
            _("It may be revoked already. Go back to your settings."),
        )
    return confirm_page(
        request,
        user,
        room="settings",
        heading=_("Revoke the stream key %(key)s?") % {"key": f"{row['hint']}…"},
        consequence=_(
            "Broadcasting apps that use it will be refused from now on. This cannot be undone; "
            "you can make a new key at any time."
        ),
        action=request.path,
        yes=_("Yes, revoke it"),
        back="/settings#stream-keys",
    )


@signed_page
async def revoke(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    relay = request.app[RELAY]
    key_id = request.match_info["key_id"]
    if not await relay.db.run(db_live.revoke_own_key, user.user_id, key_id):
        _ = gettext_for(request)
        raise web.HTTPNotFound(reason=_("There is no such stream key"))
    raise web.HTTPSeeOther("/settings?saved=stream-keys#stream-keys")


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/settings/stream-keys", add_key)
    app.router.add_get("/settings/stream-keys/{key_id}/revoke", confirm_revoke)
    app.router.add_post("/settings/stream-keys/{key_id}/revoke", revoke)
