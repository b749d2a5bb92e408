"""The web app's first pages: the sign-in form and, once signed in, the user's posts.

JavaScript only enhances (``/static/app.js`` polls the posts that are still processing and
updates them in place).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode, urlparse
from zoneinfo import ZoneInfo

from aiohttp import web

from relay.context import RELAY, Relay
from relay.db import queries
from relay.model import DeliveryStatus, Item, ItemStatus, Post
from relay.web import auth
from relay.web.app import i18n
from relay.web.app.page import (
    Signed,
    error,
    gettext_for,
    html_page,
    read_form,
    render,
    safe_back,
    signed_in,
)
from relay.web.client import client_address

log = logging.getLogger("relay.web.app")

PAGE_SIZE = 20


# --- sign in, sign out ------------------------------------------------------------------------


@html_page
async def front(request: web.Request) -> web.Response:
    user = await signed_in(request)
    if user is None:
        return render(
            request,
            "app/signin.html",
            {"name": "", "failed": False, "next": safe_back(request.query.get("next", "/"))},
        )
    return await posts_page(request, user)


@html_page
async def sign_in(request: web.Request) -> web.Response:
    form = await read_form(request)
    relay = request.app[RELAY]
    _ = gettext_for(request)
    name = str(form.get("name", "")).strip()[:200]
    password = str(form.get("password", ""))
    throttle = request.config_dict[auth.LOGIN_THROTTLE]
    by_name = "user:" + name.casefold()
    address = client_address(request)  # behind a trusted proxy: the client, not the proxy
    try:
        # Both counted: one address guessing many names, and many addresses guessing one.
        throttle.check(address)
        throttle.check(by_name)
    except auth.Throttled as exc:
        response = error(
            request,
            429,
            _("Too many tries"),
            _(
                "Sign-in is paused after several wrong passwords. Wait a few minutes, then try "
                "again."
            ),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    found = await relay.db.read(queries.user_login, name) if name else None
    user_id, password_hash, generation = found if found else ("", None, 0)
    # argon2 is slow on purpose; a thread keeps the event loop (and every other door) moving.
    ok = await asyncio.to_thread(auth.verify_password, password_hash, password)
    if not ok:
        throttle.failed(address)
        throttle.failed(by_name)
        log.info("web sign-in failed for a user name from %s", address)
        return render(
            request,
            "app/signin.html",
            {"name": name, "failed": True, "next": safe_back(str(form.get("next", "/")))},
            status=401,
        )
    response = web.HTTPSeeOther(safe_back(str(form.get("next", "/"))))
    request.config_dict[auth.SESSIONS].set_cookie(
        response, request.config_dict[auth.SESSIONS].issue(user_id, generation)
    )
    raise response


@html_page
async def sign_out(request: web.Request) -> web.Response:
    form = await read_form(request)
    user = await signed_in(request)
    if user is not None and form.get("everywhere"):
        await request.app[RELAY].db.run(queries.end_sessions, user.user_id)
    response = web.HTTPSeeOther("/")
    request.config_dict[auth.SESSIONS].clear_cookie(response)
    raise response


@html_page
async def language(request: web.Request) -> web.Response:
    form = await read_form(request)
    lang = str(form.get("lang", ""))
    response = web.HTTPSeeOther(safe_back(str(form.get("back", "/"))))
    if lang in i18n.LANGUAGES:
        user = await signed_in(request)
        if user is not None:  # the relay's mail to them (the reply) speaks it too
            await request.app[RELAY].db.run(queries.set_user_language, user.user_id, lang)
        response.set_cookie(
            i18n.LANG_COOKIE,
            lang,
            max_age=365 * 86400,
            path="/",
            samesite="Lax",
            httponly=True,
            secure=request.config_dict[auth.SESSIONS].secure,
        )
    raise response


# --- posts ------------------------------------------------------------------------------------


def _thumbnail(relay: Relay, post: Post) -> str | None:
    for item in post.items:
        if item.status == ItemStatus.READY:
            by_name = {r.name: r for r in item.renditions}
            for name in ("small", "medium", "preview", "poster"):
                found = by_name.get(name)
                if found is not None and found.mime.startswith("image/"):
                    return relay.media_url(found.key, private=post.private or post.draft)
    return None


def _item_view(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "filename": item.filename,
        "status": item.status.value,
        "error": (item.error or {}).get("message") if item.error else None,
    }


CHANNEL_NAMES = {
    "webhook": "Webhook",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "wordpress": "WordPress",
    "micropub": "Micropub",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "threads": "Threads",
    "linkedin": "LinkedIn",
    "x": "X",
    "youtube": "YouTube",
}


def channel_name(labels: dict[str, tuple[str, str | None]], destination_id: str) -> str:
    """The channel as a person knows it: the service, and the site's host (never the URL's
    path or query, where a webhook may carry a token)."""
    kind, url = labels.get(destination_id, ("", None))
    name = CHANNEL_NAMES.get(kind, kind.capitalize() or destination_id)
    host = urlparse(url).hostname if url else None
    return f"{name} ({host})" if host else name


def local_time(when: datetime | None, zone: tzinfo) -> str | None:
    """A time as the reader's clock shows it (their time zone in settings), with the zone's
    abbreviation so nobody wonders which."""
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if when else None


def post_view(
    relay: Relay,
    post: Post,
    labels: dict[str, tuple[str, str | None]] | None = None,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """What the posts page (and its polling) shows of a post; times also in ``zone``."""
    return {
        "id": post.id,
        "title": post.title or (post.items[0].filename if post.items else ""),
        "state": post.state.value,
        "status": post.status.value,
        "publish_at": post.publish_at.isoformat() if post.publish_at else None,
        "created_at": post.created_at.isoformat() if post.created_at else None,
        "publish_at_local": local_time(post.publish_at, zone),
        "created_local": local_time(post.created_at, zone),
        "url": relay.page_url(post.id),
        "thumbnail": _thumbnail(relay, post),
        "items": [_item_view(item) for item in post.items],
        "deliveries": [
            {
                "destination": d.destination_id,
                "channel": channel_name(labels or {}, d.destination_id),
                "status": d.status.value,
                "remote_url": d.remote_url,
                "error": (d.error or {}).get("message")
                if d.error and d.status == DeliveryStatus.FAILED
                else None,
            }
            for d in post.deliveries
        ],
    }


def reader_zone(name: str) -> tzinfo:
    """The reader's time zone: theirs (settings), else the relay's (``RELAY_TIMEZONE``)."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return UTC


async def posts_page(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    show = request.query.get("show")
    if show not in queries.POST_FILTERS:
        show = None
    after = request.query.get("after") or None

    def read(conn: Any) -> tuple[list[Post], dict[str, tuple[str, str | None]], str | None]:
        # One trip to a database thread, not three: on a busy machine each trip costs more
        # than the queries (bench/ web-posts-*).
        return (
            queries.posts_page(conn, user.user_id, PAGE_SIZE + 1, after, show),
            queries.destination_labels(conn, user.user_id),
            queries.user_timezone(conn, user.user_id),
        )

    found, labels, zone_name = await relay.db.read(read)
    zone = reader_zone(zone_name or relay.settings.timezone)
    more = len(found) > PAGE_SIZE
    shown = found[:PAGE_SIZE]
    older = None
    if more:
        query = {"after": shown[-1].id, **({"show": show} if show else {})}
        older = "/?" + urlencode(query)
    return render(
        request,
        "app/posts.html",
        {
            "user": user,
            "posts": [post_view(relay, post, labels, zone) for post in shown],
            "show": show,
            "filters": queries.POST_FILTERS,
            "older": older,
            "first_page": after is None,
            "here": request.path_qs,
            "room": "posts",
        },
    )


async def posts_json(request: web.Request) -> web.Response:
    """The posts the page shows that are still changing, for ``app.js`` to poll."""
    user = await signed_in(request)
    if user is None:
        return web.json_response(
            {"error": {"code": "auth.required", "message": "Sign in again."}},
            status=401,
            headers={"Cache-Control": "no-store"},
        )
    relay = request.app[RELAY]
    ids = [i for i in request.query.get("ids", "").split(",") if i][:PAGE_SIZE]
    found = await relay.db.read(queries.posts_by_ids, user.user_id, ids)
    labels = await relay.db.read(queries.destination_labels, user.user_id)
    return web.json_response(
        {"posts": [post_view(relay, post, labels) for post in found]},
        headers={"Cache-Control": "no-store"},
    )


# --- wiring -----------------------------------------------------------------------------------


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", front)
    app.router.add_post("/signin", sign_in)
    app.router.add_post("/signout", sign_out)
    app.router.add_post("/language", language)
    app.router.add_get("/app/posts.json", posts_json)
