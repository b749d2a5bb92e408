"""One post, at ``/posts/{id}``: its media and deliveries (updated live while they change), a
preview of what each channel will get, and the forms that edit, publish, schedule, take down and
delete it.

Every form is a plain POST (CSRF-checked by ``read_form``) that changes the post through
relay/lifecycle.py in one transaction, then sends the browser back to the page (303), so the
page works without JavaScript; ``/static/post.js`` only saves reloads while media are processed
and copies are sent. Another user's post is a 404 page, a deleted one a 410 page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import Connection

from relay import lifecycle
from relay.context import RELAY, Relay
from relay.db import destinations, queries
from relay.errors import NotFound, RelayError
from relay.model import DeliveryStatus, Item, ItemStatus, Kind, Post, PostState
from relay.publish.deliver import destination_from_row
from relay.web.app import preview
from relay.web.app.page import (
    Signed,
    error,
    gettext_for,
    read_form,
    render,
    signed_in,
    signed_page,
)
from relay.web.app.views import channel_name
from relay.web.posts import ItemPatch, PostPatch, to_change

log = logging.getLogger("relay.web.app")

# What the page says after a form worked (the query names one; nothing the user typed is shown).
DONE = ("saved", "published", "scheduled", "drafted", "retracted", "unchanged")
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows


# --- plain words for what went wrong, and what to do ------------------------------------------


def item_problem(code: str | None, _: Callable[[str], str]) -> tuple[str, str]:
    """What went wrong with a medium, and what the user can do about it."""
    if code == "media.unsupported":
        return _("The relay cannot use this kind of file."), _(
            "Upload a photo, a video or a sound file instead."
        )
    if code in ("media.corrupt", "media.empty"):
        return _("The file is damaged or empty."), _(
            "Send it again from where it came from; it may not have been copied whole."
        )
    if code == "media.too_many_pixels":
        return _("The image is too large for this relay."), _(
            "Make it smaller (fewer pixels), then upload it again."
        )
    if code == "media.too_long":
        return _("The clip is too long for this relay."), _("Shorten it, then upload it again.")
    return _("The relay could not process this file."), _(
        "Upload it again. If it fails again, tell the relay's administrator."
    )


def delivery_problem(code: str | None, _: Callable[[str], str]) -> tuple[str, str]:
    """What went wrong sending a copy to a channel, and what the user can do about it."""
    if code == "publish.unauthorized":
        return _("The channel did not accept the relay's sign-in."), _(
            "Connect the account again on the Channels page, then publish the post again."
        )
    if code == "publish.rejected":
        return _("The channel refused the post."), _(
            "Check the post against the channel's rules (length, media), change it, then "
            "publish it again."
        )
    if code == "publish.private_address":
        return _("This channel's address is not allowed."), _(
            "Ask the relay's administrator to check the channel's address."
        )
    if code == "publish.cannot_edit":
        return _("This channel cannot change a post it already has."), _(
            "The copy there still shows the earlier version; change it on the channel itself."
        )
    if code == "publish.cannot_retract":
        return _("This channel cannot delete a post."), _("Delete the copy on the channel itself.")
    return _("The relay could not send the post there."), _(
        "The relay has stopped trying; check the channel's settings, then publish again."
    )


# --- what the page shows ----------------------------------------------------------------------


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(moment: datetime | None, zone: ZoneInfo) -> str | None:
    """``moment`` as the user's wall clock shows it, to the minute."""
    return moment.astimezone(zone).strftime(LOCAL_MINUTE) if moment else None


def parse_local(value: str, zone: ZoneInfo) -> float | None:
    """A ``datetime-local`` value (the user's wall clock) → UNIX seconds; None if unreadable."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()


def _thumbnail(relay: Relay, post: Post, item: Item) -> str | None:
    if item.status != ItemStatus.READY:
        return None
    by_name = {r.name: r for r in item.renditions}
    for name in ("small", "medium", "preview", "poster"):
        found = by_name.get(name)
        if found is not None and found.mime.startswith("image/"):
            return relay.media_url(found.key, private=post.private or post.draft)
    return None


def item_view(relay: Relay, post: Post, item: Item, _: Callable[[str], str]) -> dict[str, Any]:
    failed = item.status == ItemStatus.FAILED
    problem, advice = item_problem((item.error or {}).get("code"), _) if failed else (None, None)
    return {
        "id": item.id,
        "filename": item.filename,
        "kind": item.kind.value if item.kind else None,
        "status": item.status.value,
        "progress": item.progress,
        "alt": item.alt or "",
        "thumbnail": _thumbnail(relay, post, item),
        "problem": problem,
        "advice": advice,
        # A municipality must caption its clips (EN 301 549): a ready clip without says so.
        "uncaptioned": item.status == ItemStatus.READY
        and item.kind == Kind.VIDEO
        and not any(r.name == "captions" for r in item.renditions),
    }


def delivery_view(
    post: Post, labels: dict[str, tuple[str, str | None]], _: Callable[[str], str]
) -> list[dict[str, Any]]:
    shown = []
    for d in post.deliveries:
        failed = d.status == DeliveryStatus.FAILED
        problem, advice = (
            delivery_problem((d.error or {}).get("code"), _) if failed else (None, None)
        )
        shown.append(
            {
                "id": d.id,
                "channel": channel_name(labels, d.destination_id),
                "status": d.status.value,
                # A channel's answer, shown as a link: only web addresses, never javascript:.
                "remote_url": d.remote_url
                if d.remote_url and d.remote_url.startswith(("https://", "http://"))
                else None,
                "problem": problem,
                "advice": advice,
            }
        )
    return shown


def state_json(
    relay: Relay, post: Post, labels: dict[str, tuple[str, str | None]], _: Callable[[str], str]
) -> dict[str, Any]:
    """What ``post.js`` polls: the parts of the page that change without anyone's doing."""
    return {
        "id": post.id,
        "status": post.status.value,
        "state": post.state.value,
        "items": [item_view(relay, post, item, _) for item in post.items],
        "deliveries": delivery_view(post, labels, _),
    }


# --- reading the post -------------------------------------------------------------------------


def _owned(conn: Connection, post_id: str, user_id: str) -> Any:
    """The post's row if it is the user's and not deleted; NotFound or ``post.gone`` if not."""
    row = queries.post_row(conn, post_id)
    if row is None or row["user_id"] != user_id:
        raise NotFound()  # another user's post is no different from none
    if row["state"] == PostState.DELETED.value:
        raise RelayError("post.gone")
    return row


def not_found(request: web.Request) -> web.Response:
    _ = gettext_for(request)
    return error(
        request,
        404,
        _("There is no such post"),
        _(
            "It may belong to someone else, or the link may be mistyped. Your posts are listed "
            "on the start page."
        ),
    )


def gone(request: web.Request) -> web.Response:
    _ = gettext_for(request)
    return error(
        request,
        410,
        _("This post was deleted"),
        _("Its page and its media are gone, and its copies on channels were taken down."),
    )


def _refusal(request: web.Request, exc: RelayError) -> web.Response | None:
    if isinstance(exc, NotFound):
        return not_found(request)
    if exc.code == "post.gone":
        return gone(request)
    return None


def _channels(conn: Connection, user_id: str, post_id: str) -> list[Any]:
    """The channels a delivery of the post would go to now (the rule of create_deliveries)."""
    row = queries.post_row(conn, post_id)
    if row is None or row["private"]:
        return []
    wanted = row["only_destination"].split(",") if row["only_destination"] else None
    return [
        d
        for d in destinations.list_destinations(conn, user_id)
        if not wanted or d["id"] in wanted or d["type"] in wanted
    ]


def _waiting(shown: dict[str, Any], done: str | None) -> str:
    """What ``post.js`` should watch for: ``yes`` while media are processed or copies are
    being sent; ``settle`` for a while after a change that channels carry out in the background
    (an edit or a take-down of a published post's copies); ``no`` when nothing changes."""
    if shown["status"] == "processing" or any(
        d["status"] == "pending" for d in shown["deliveries"]
    ):
        return "yes"
    if done in ("saved", "retracted") and any(
        d["status"] == "delivered" for d in shown["deliveries"]
    ):
        return "settle"
    return "no"


@signed_page
async def post_page(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    _ = gettext_for(request)
    post_id = request.match_info["post_id"]

    def read(conn: Connection) -> tuple[Post, Any, str, list[Any], dict[str, Any]]:
        row = _owned(conn, post_id, user.user_id)
        post = queries.load_post(conn, post_id)
        assert post is not None
        zone = lifecycle.user_zone(conn, user.user_id, relay.settings.timezone)
        labels = queries.destination_labels(conn, user.user_id)
        return post, row, zone, _channels(conn, user.user_id, post_id), labels

    try:
        post, row, zone_name, channel_rows, labels = await relay.db.read(read)
    except RelayError as exc:
        refused = _refusal(request, exc)
        if refused is None:
            raise
        return refused
    zone = zone_of(zone_name)
    previews: list[dict[str, Any]] = []
    if relay.publisher is not None and channel_rows:
        outgoing = relay.publisher.preview(post)
        found = await preview.previews(
            [destination_from_row(r) for r in channel_rows], relay.publisher.http, outgoing
        )
        names = {i.id: i.filename for i in post.items}
        previews = [
            {
                "channel": channel_name(labels, p.destination_id),
                "text": p.text,
                "cut": p.cut,
                "limit": p.limit,
                "media": [names.get(m, m) for m in p.media],
                "link_card": p.link_card,
                "defaults": p.defaults,
                "unknown": p.unknown,
                "refused": p.refused,
                "link": p.link,
                "reply": p.reply,
                "notes": p.notes,
            }
            for p in found
        ]
    done = request.query.get("done")
    shown = state_json(relay, post, labels, _)
    return render(
        request,
        "app/post.html",
        {
            "user": user,
            "room": "posts",
            "here": request.path,
            "post": {
                **shown,
                "title": post.title,
                "text": post.text,
                "tags": ", ".join(post.tags),
                "private": post.private,
                "public_url": relay.page_url(post.id),
                "publish_at": local_time(post.publish_at, zone),
                "waiting": _waiting(shown, done),
            },
            "zone": zone_name,
            "previews": previews,
            "media_pending": any(i.status != ItemStatus.READY for i in post.items),
            "done": done if done in DONE else None,
            "schedule_value": local_time(post.publish_at, zone) if post.publish_at else "",
        },
    )


async def post_state(request: web.Request) -> web.Response:
    """``GET /posts/{id}/state.json`` for ``post.js``: JSON, never a page (a script reads it)."""
    headers = {"Cache-Control": "no-store"}
    user = await signed_in(request)
    if user is None:
        body = {"error": {"code": "auth.required", "message": "Sign in again."}}
        return web.json_response(body, status=401, headers=headers)
    relay = request.app[RELAY]
    _ = gettext_for(request)
    post_id = request.match_info["post_id"]

    def read(conn: Connection) -> tuple[Post | None, dict[str, tuple[str, str | None]]]:
        row = queries.post_row(conn, post_id)
        if row is None or row["user_id"] != user.user_id:
            return None, {}
        return queries.load_post(conn, post_id), queries.destination_labels(conn, user.user_id)

    post, labels = await relay.db.read(read)
    if post is None:
        body = {"error": {"code": "not_found", "message": "No such resource."}}
        return web.json_response(body, status=404, headers=headers)
    return web.json_response(state_json(relay, post, labels, _), headers=headers)


# --- changing the post ------------------------------------------------------------------------


async def _act(
    request: web.Request,
    user: Signed,
    act: Callable[[Connection, str, Any], str],
) -> web.Response:
    """Read the form (CSRF-checked), run ``act(conn, post_id, form)`` in one transaction after
    checking the post is the user's and alive, and go back to the page with what ``act`` says
    happened."""
    form = await read_form(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]

    def run(conn: Connection) -> str:
        _owned(conn, post_id, user.user_id)
        return act(conn, post_id, form)

    try:
        done = await relay.db.run(run)
    except RelayError as exc:
        refused = _refusal(request, exc)
        if refused is None:
            raise
        return refused
    relay.workers.wake()  # deliveries, edits or takedowns may have been queued: go now
    raise web.HTTPSeeOther(f"/posts/{post_id}?done={done}")


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def edit_change(form: Any, item_ids: list[str]) -> lifecycle.Change:
    """The edit form as a lifecycle change, held to the API's limits (``PostPatch``): an empty
    alt text clears it, tags are separated by commas."""
    tags = [t.strip() for t in _field(form, "tags").split(",") if t.strip()]
    items = [
        ItemPatch(id=item_id, alt=_field(form, f"alt-{item_id}").strip() or None)
        for item_id in item_ids
        if f"alt-{item_id}" in form
    ]
    patch = PostPatch(
        title=_field(form, "title").strip(),
        text=_field(form, "text"),
        tags=tags,
        items=items,
    )
    return to_change(patch)


@signed_page
async def edit(request: web.Request, user: Signed) -> web.Response:
    _ = gettext_for(request)

    def act(conn: Connection, post_id: str, form: Any) -> str:
        post = queries.load_post(conn, post_id)
        assert post is not None
        change = edit_change(form, [item.id for item in post.items])
        changed = lifecycle.edit(conn, post_id, user.user_id, "web", change)
        return "saved" if changed else "unchanged"

    try:
        return await _act(request, user, act)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        log.info("web edit refused: %s", where)
        return error(
            request,
            422,
            _("This change is too long"),
            _(
                "A title, text, tag or alt text is longer than the relay keeps. Shorten it and "
                "save again."
            ),
        )


@signed_page
async def publish(request: web.Request, user: Signed) -> web.Response:
    def act(conn: Connection, post_id: str, form: Any) -> str:
        lifecycle.publish(conn, post_id, user.user_id, "web")
        return "published"

    return await _act(request, user, act)


class _NotAhead(Exception):
    """The schedule form's time is unreadable or already past."""


@signed_page
async def schedule(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    _ = gettext_for(request)

    def act(conn: Connection, post_id: str, form: Any) -> str:
        zone = zone_of(lifecycle.user_zone(conn, user.user_id, relay.settings.timezone))
        when = parse_local(_field(form, "when"), zone)
        if when is None or when <= time.time():
            raise _NotAhead()
        lifecycle.schedule(conn, post_id, when, user.user_id, "web")
        return "scheduled"

    try:
        return await _act(request, user, act)
    except _NotAhead:
        return error(
            request,
            422,
            _("Choose a time that is still to come"),
            _("Go back and pick a date and time in the future, or publish the post now."),
        )


@signed_page
async def to_draft(request: web.Request, user: Signed) -> web.Response:
    """A published post is taken down everywhere, a scheduled one waits no more: both become
    drafts (what the lifecycle allows from each state)."""

    def act(conn: Connection, post_id: str, form: Any) -> str:
        state = queries.post_row(conn, post_id)["state"]
        if state == PostState.PUBLISHED.value:
            lifecycle.retract(conn, post_id, user.user_id, "web")
            return "retracted"
        lifecycle.unschedule(conn, post_id, user.user_id, "web")
        return "drafted"

    return await _act(request, user, act)


@signed_page
async def confirm_delete(request: web.Request, user: Signed) -> web.Response:
    """The confirmation step before a delete: a page of its own, so it works without scripts."""
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]

    def read(conn: Connection) -> Any:
        return _owned(conn, post_id, user.user_id)

    try:
        row = await relay.db.read(read)
    except RelayError as exc:
        refused = _refusal(request, exc)
        if refused is None:
            raise
        return refused
    return render(
        request,
        "app/post_delete.html",
        {
            "user": user,
            "room": "posts",
            "here": request.path,
            "post": {"id": post_id, "title": row["title"], "state": row["state"]},
        },
    )


@signed_page
async def delete(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]

    def run(conn: Connection) -> None:
        _owned(conn, post_id, user.user_id)
        lifecycle.delete(conn, post_id, user.user_id, "web")

    try:
        await relay.db.run(run)
    except RelayError as exc:
        refused = _refusal(request, exc)
        if refused is None:
            raise
        return refused
    relay.workers.wake()
    raise web.HTTPSeeOther("/")


# --- wiring -----------------------------------------------------------------------------------


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/posts/{post_id}", post_page)
    app.router.add_get("/posts/{post_id}/state.json", post_state)
    app.router.add_post("/posts/{post_id}/edit", edit)
    app.router.add_post("/posts/{post_id}/publish", publish)
    app.router.add_post("/posts/{post_id}/schedule", schedule)
    app.router.add_post("/posts/{post_id}/draft", to_draft)
    app.router.add_get("/posts/{post_id}/delete", confirm_delete)
    app.router.add_post("/posts/{post_id}/delete", delete)
