"""The channels room (``/channels``): the person's channels (destinations), each checked with a
real call to its service and removed after a confirmation; new ones added by signing in at the
service (Mastodon and Micropub with OAuth 2 / IndieAuth, WordPress with its application-password
flow: relay/web/app/connect/), by a Bluesky handle and app password (tried before it is kept),
or a webhook's URL (its signing secret made here and shown once).

Every page works without JavaScript. Secrets and tokens go to relay/db/destinations.py and
are never shown again, logged, or put in a URL by the relay.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import Connection

from relay.context import RELAY
from relay.db import destinations
from relay.errors import PublishError
from relay.publish import Destination, adapter_for
from relay.publish.deliver import destination_from_row
from relay.publish.webhook import new_secret
from relay.publish.x import LINK_PLACES
from relay.web.app import connect
from relay.web.app.connect import (
    linkedin,
    mastodon,
    meta,
    threads,
    youtube,
)
from relay.web.app.connect import x as x_connect
from relay.web.app.page import Signed, gettext_for, read_form, render, signed_page
from relay.web.app.views import CHANNEL_NAMES

log = logging.getLogger("relay.web.app.channels")

# --- what the page says -----------------------------------------------------------------------


def _account(row: Any) -> str:
    """Whose account, or which site, as a person knows it (never a URL's path or query, where
    a webhook may carry a token)."""
    config = json.loads(row["config"] or "{}")
    for key in ("account", "handle", "me"):
        if config.get(key):
            return str(config[key])
    host = urlsplit(row["url"]).hostname if row["url"] else None
    if config.get("user") and host:
        return f"{config['user']} ({host})"
    return host or ""


def _channel_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "service": CHANNEL_NAMES.get(row["type"], row["type"].capitalize()),
        "account": _account(row),
        "added": datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d"),
        "reconnect": destinations.needs_reconnect(row),
        # Where "Connect again" starts: the service's own sign-in, when the web app has one.
        "reconnect_action": RECONNECT_ACTIONS.get(row["type"]),
        # X: where the link to the post's page goes (relay/publish/x.py ``link``).
        "link": json.loads(row["config"] or "{}").get("link") or "in_post",
    }


# The channel types whose sign-in the web app can start again, and where.
RECONNECT_ACTIONS = {
    "facebook": "/channels/facebook",
    "instagram": "/channels/facebook",
    "threads": "/channels/threads",
    "youtube": "/channels/youtube",
    "linkedin": "/channels/linkedin",
    "x": "/channels/x",
}


def problem_for(request: web.Request, exc: Exception) -> str:
    """A failed call to a service in plain words, with what to do."""
    _ = gettext_for(request)
    if isinstance(exc, connect.ConnectFailed):
        reasons = {
            "denied": _("You did not allow the relay to post there, so nothing was connected."),
            "no-code": _("The service did not send back what the relay needs. Try again."),
            "wordpress-no-passwords": _(
                "This site does not offer application passwords (WordPress 5.6 or later, "
                "served over HTTPS). Ask the site's administrator."
            ),
            "indieauth-unreachable": _(
                "The relay could not open your site's page. Check the address."
            ),
            "indieauth-no-endpoints": _(
                "Your site does not name an authorization endpoint, a token endpoint and a "
                "Micropub endpoint. Add them to your site, or ask its administrator."
            ),
            "indieauth-wrong-me": _(
                "The sign-in came back for another site than yours, so nothing was connected."
            ),
            "youtube-no-channel": _(
                "This Google account has no YouTube channel yet. Create one on YouTube, then "
                "connect again."
            ),
        }
        return reasons.get(exc.reason, reasons["no-code"])
    code = exc.code if isinstance(exc, PublishError) else ""
    remote = getattr(exc, "remote", "")
    plain = {
        "publish.unauthorized": _(
            "The service did not accept the sign-in. Check the name and password, or connect "
            "the account again."
        ),
        "publish.unreachable": _(
            "The relay could not reach the service. Check the address, or try again later."
        ),
        "publish.rate_limited": _(
            "The service asks the relay to slow down. Try again in a few minutes."
        ),
        "destination.reconnect_needed": _(
            "The service no longer accepts this channel's sign-in (it expired, or was "
            "withdrawn). Choose Connect again."
        ),
        "publish.private_address": _(
            "This address is on a private network, which the relay may not reach. Ask your "
            "administrator if it should."
        ),
    }.get(code) or _("The service refused. Check the address and the details you gave.")
    return f"{plain} ({remote[:200]})" if remote else plain


async def show_channels(
    request: web.Request, user: Signed, status: int = 200, **shown: Any
) -> web.Response:
    relay = request.app[RELAY]
    rows = await relay.db.read(destinations.list_destinations, user.user_id)
    return render(
        request,
        "app/channels.html",
        {
            "user": user,
            "room": "channels",
            "here": "/channels",
            "channels": [_channel_view(row) for row in rows],
            "form": {},
            "meta_enabled": meta.enabled(request),
            "threads_enabled": threads.enabled(request),
            "youtube_enabled": youtube.enabled(request),
            "linkedin_enabled": linkedin.enabled(request),
            "x_enabled": x_connect.enabled(request),
            **shown,
        },
        status=status,
    )


async def _own(request: web.Request, user: Signed) -> Any:
    """The signed-in person's active channel named in the path; 404 for anyone else's."""
    row = await request.app[RELAY].db.read(
        destinations.destination_row, request.match_info["destination_id"]
    )
    if row is None or row["user_id"] != user.user_id or not row["active"]:
        raise web.HTTPNotFound(reason=gettext_for(request)("There is no such channel"))
    return row


async def save_channel(request: web.Request, user: Signed, type_: str, made: dict[str, Any]) -> str:
    return await request.app[RELAY].db.run(
        destinations.add_destination,
        user.user_id,
        type_,
        made.get("url"),
        made.get("secret"),
        made.get("token"),
        made.get("config") or {},
    )


async def save_or_renew(
    request: web.Request, user: Signed, type_: str, made: dict[str, Any], key: str
) -> str:
    """A channel connected again (the same account, ``config[key]``) gets the new token and a
    fresh config, which clears "reconnect needed"; its deliveries' history stays with it."""

    def save(conn: Connection) -> str:
        for row in destinations.list_destinations(conn, user.user_id):
            config = json.loads(row["config"] or "{}")
            if row["type"] == type_ and config.get(key) == made["config"][key]:
                # LinkedIn's refresh token is the channel's secret; the others keep none.
                extra = {"secret": made["secret"]} if "secret" in made else {}
                destinations.update_destination(
                    conn, row["id"], url=made["url"], token=made["token"], config=made["config"],
                    **extra,
                )  # fmt: skip
                return str(row["id"])
        return destinations.add_destination(
            conn, user.user_id, type_, made["url"], made.get("secret"), made["token"],
            made["config"],
        )  # fmt: skip

    return await request.app[RELAY].db.run(save)


# --- the list, check, remove ------------------------------------------------------------------


@signed_page
async def channels_page(request: web.Request, user: Signed) -> web.Response:
    added = request.query.get("added")
    notice = None
    if added:
        _ = gettext_for(request)
        found = await request.app[RELAY].db.read(destinations.destination_row, added)
        if found is not None and found["user_id"] == user.user_id and found["active"]:
            view = _channel_view(found)
            notice = _("Connected: %(service)s, %(account)s") % view
    elif request.query.get("removed"):
        notice = gettext_for(request)("The channel was removed.")
    return await show_channels(request, user, notice=notice)


@signed_page
async def check(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    row = await _own(request, user)
    _ = gettext_for(request)
    try:
        # A token that lapses on its own (X's last two hours) is renewed first, as a delivery
        # would: an hour-old X channel must not be declared dead by a check.
        publisher = request.app[RELAY].publisher
        if publisher is not None:
            row = await publisher.fresh_row(row)
        said = await adapter_for(destination_from_row(row), connect.http(request)).check()
    except PublishError as exc:
        log.info("check of destination %s failed: %s %s", row["id"], exc.code, exc.detail)
        if exc.code == "destination.reconnect_needed":
            await request.app[RELAY].db.run(destinations.mark_reconnect_needed, row["id"])
        result = {"id": row["id"], "ok": False, "message": problem_for(request, exc)}
    else:
        result = {
            "id": row["id"],
            "ok": True,
            "message": _("It works: the service answered the relay."),
            "detail": said,
        }
    return await show_channels(request, user, checked=result)


@signed_page
async def confirm_remove(request: web.Request, user: Signed) -> web.Response:
    row = await _own(request, user)
    return render(
        request,
        "app/channels_remove.html",
        {"user": user, "room": "channels", "here": "/channels", "channel": _channel_view(row)},
    )


def _remove_own(conn: Connection, user_id: str, destination_id: str) -> bool:
    row = destinations.destination_row(conn, destination_id)
    if row is None or row["user_id"] != user_id:
        return False
    return destinations.remove_destination(conn, destination_id)


@signed_page
async def remove(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    row = await _own(request, user)
    if not await request.app[RELAY].db.run(_remove_own, user.user_id, row["id"]):
        raise web.HTTPNotFound(reason=gettext_for(request)("There is no such channel"))
    if row["type"] == "mastodon":
        found = destination_from_row(row)
        if found.url and found.token:
            await mastodon.revoke(request, found.url, found.token, found.config, found.secret)
    if row["type"] == "x":
        await x_connect.revoke(request, destination_from_row(row))
    raise web.HTTPSeeOther("/channels?removed=1")


# --- adding: webhook and Bluesky here, the sign-in flows in connect/ ---------------------------


@signed_page
async def add_webhook(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    url = str(form.get("url", "")).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = _("Give the full address, starting with https://")
        return await show_channels(request, user, 400, problem=problem, form={"webhook_url": url})
    try:
        connect.http(request).check_url(url)
    except PublishError as exc:
        return await show_channels(
            request, user, 400, problem=problem_for(request, exc), form={"webhook_url": url}
        )
    secret = new_secret()
    destination_id = await save_channel(request, user, "webhook", {"url": url, "secret": secret})
    # Shown on this answer only (no redirect: the secret must not sit in a URL).
    return await show_channels(request, user, new_secret={"id": destination_id, "secret": secret})


@signed_page
async def add_bluesky(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    handle = str(form.get("handle", "")).strip().lstrip("@")[:253]
    password = str(form.get("password", "")).strip()
    server = str(form.get("server", "")).strip()
    kept = {"bluesky_handle": handle, "bluesky_server": server}
    if not handle or not password:
        problem = _("Give your handle and an app password.")
        return await show_channels(request, user, 400, problem=problem, form=kept)
    try:
        url = connect.normal_site(server) if server else None
        destination = Destination(
            id="",
            user_id=user.user_id,
            type="bluesky",
            url=url,
            token=password,
            config={"handle": handle},
        )
        await adapter_for(destination, connect.http(request)).check()
    except PublishError as exc:
        log.info("bluesky sign-in for a new channel failed: %s %s", exc.code, exc.detail)
        return await show_channels(request, user, 400, problem=problem_for(request, exc), form=kept)
    made = {"url": url, "token": password, "config": {"handle": handle}}
    destination_id = await save_channel(request, user, "bluesky", made)
    raise web.HTTPSeeOther(f"/channels?added={destination_id}")


@signed_page
async def x_link(request: web.Request, user: Signed) -> web.Response:
    """Where an X channel puts the link to the post's page (in the post, a reply, nowhere)."""
    form = await read_form(request)
    row = await _own(request, user)
    _ = gettext_for(request)
    link = str(form.get("link", ""))
    if row["type"] != "x" or link not in LINK_PLACES:
        return await show_channels(request, user, 400, problem=_("Pick one of the choices."))

    def save(conn: Connection) -> None:
        # Read and written in one transaction: a delivery may be renewing the channel's
        # single-use refresh token in the config right now, and it must not be set back.
        current = destinations.destination_row(conn, row["id"])
        if current is not None:
            config = {**json.loads(current["config"] or "{}"), "link": link}
            destinations.update_destination(conn, row["id"], config=config)

    await request.app[RELAY].db.run(save)
    return await show_channels(request, user, notice=_("Saved: the next posts follow this choice."))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/channels", channels_page)
    app.router.add_post("/channels/webhook", add_webhook)
    app.router.add_post("/channels/bluesky", add_bluesky)
    app.router.add_post("/channels/{destination_id}/link", x_link)
    app.router.add_post("/channels/{destination_id}/check", check)
    app.router.add_get("/channels/{destination_id}/remove", confirm_remove)
    app.router.add_post("/channels/{destination_id}/remove", remove)
