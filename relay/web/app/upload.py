"""The upload page, ``/upload``: files, and the post's fields, before anything is sent.

How several files become one post. With JavaScript (``/static/upload.js``, on tus-js-client from
npm) each picked file starts uploading at once over the relay's own tus door, as the signed-in
user (the session cookie plus the CSRF token in an ``X-CSRF-Token`` header, checked by
``auth.session_user``), with the ``wait`` metadata key: a finished upload then waits in the spool
instead of becoming a post. tus-js-client retries a dropped connection and, after a reload, finds
the upload's URL in the browser's storage and resumes it once the same file is picked again.
When the person presses "Send", the page waits for the uploads, then sends the form itself (a
plain, CSRF-checked POST to ``/upload``) with the uploads' ids in ``uploads`` and one alt text
per file; ``TusDoor.join`` makes one post of them through ``accept()``, and marks them finished
in the same transaction, so a form sent twice never makes a second post.

Without JavaScript (or when npm was missing at set-up, and the relay said so once in its log)
the same form is sent as ``multipart/form-data`` with its files: they are streamed into the spool
as the HTTP upload door does (relay/intake/http.py), the CSRF token checked before ``accept()``.
Alt texts then come one line per file.

Either way the person lands on their posts (``/``), where the new post's processing shows.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from relay.context import RELAY
from relay.db import destinations, queries
from relay.errors import IntakeError, RelayError
from relay.intake import fields as upload_fields
from relay.intake import http as http_intake
from relay.intake.accept import SpooledFile
from relay.intake.tus import PREFIX, TUS
from relay.web import auth
from relay.web.app.page import STATIC, Signed, error, gettext_for, render, signed_page
from relay.web.app.views import channel_name

log = logging.getLogger("relay.web.app")

TUS_CLIENT = STATIC / "vendor" / "tus.min.js"
CHUNK_BYTES = 8 << 20
"""A PATCH at most this large: a dropped connection costs at most this much again, and a proxy
with a body limit still passes every request."""
ACCEPT = "image/*,video/*,audio/*,application/pdf,.heic,.heif,.dng,.zip,.doc,.docx,.odt,.txt"
"""What the file picker offers first (a phone offers its camera for image/* and video/*);
anything else can still be picked, and the relay sniffs what it really is."""
NO_CHANNEL = "none"
"""``only_destination`` when the person unticked every channel: a name that no destination
has, so the post goes to its own page alone."""
MAX_UPLOADS = 100

MISSING = (
    "the upload page is a plain form: its JavaScript library (tus-js-client) is missing; install "
    "npm, then run `pip install -e .` (or `pip install .`) again"
)


async def _zone(request: web.Request, user: Signed) -> str:
    relay = request.app[RELAY]
    return await relay.db.read(queries.user_timezone, user.user_id) or relay.settings.timezone


async def _channels(request: web.Request, user: Signed) -> list[dict[str, str]]:
    found = await request.app[RELAY].db.read(destinations.list_destinations, user.user_id)
    labels = {row["id"]: (row["type"], row["url"]) for row in found}
    return [{"id": row["id"], "name": channel_name(labels, row["id"])} for row in found]


async def _form_page(
    request: web.Request, user: Signed, problem: str | None = None, status: int = 200
) -> web.Response:
    return render(
        request,
        "app/upload.html",
        {
            "user": user,
            "room": "upload",
            "here": "/upload",
            "accept": ACCEPT,
            "channels": await _channels(request, user),
            "zone": await _zone(request, user),
            "enhanced": TUS_CLIENT.is_file(),
            "tus_endpoint": PREFIX,
            "chunk_bytes": CHUNK_BYTES,
            "csrf_header": auth.CSRF_HEADER,
            "problem": problem,
        },
        status,
    )


@signed_page
async def upload_form(request: web.Request, user: Signed) -> web.Response:
    return await _form_page(request, user)


def _publish_at(local: str, zone: str) -> str | None:
    """The form's ``datetime-local`` (the person's wall clock) as RFC 3339 in their zone."""
    if not local.strip():
        return None
    try:
        when = datetime.fromisoformat(local.strip())
        return when.replace(tzinfo=ZoneInfo(zone)).isoformat()
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise IntakeError("request.invalid", f"publish time {local[:40]!r}") from exc


def _post_fields(form: dict[str, str], more: dict[str, list[str]], zone: str) -> dict[str, Any]:
    """What ``accept`` takes, from the form: alt texts per file (fields, or one a line),
    channels (none ticked: none), the publish time in the person's zone."""
    if "alt" not in more and form["alt_lines"]:
        more["alt"] = form["alt_lines"].splitlines()
    more.pop("publish_at", None)  # only the person's own clock, read below
    when = _publish_at(form["publish_local"], zone)
    if when:
        more["publish_at"] = [when]
    if form["channels_shown"] and not more.get("destinations"):
        more["destinations"] = [NO_CHANNEL]
    wanted = upload_fields.parse(more)
    return {
        "title": form["title"],
        "text": form["text"],
        "private": wanted.private,
        "draft": wanted.draft,
        "publish_at": wanted.publish_at,
        "tags": wanted.tags,
        "alts": wanted.alts,
        "only_destination": wanted.destinations,
    }


@signed_page
async def upload_send(request: web.Request, user: Signed) -> web.StreamResponse:
    relay = request.app[RELAY]
    _ = gettext_for(request)
    if request.content_type != "multipart/form-data":
        return error(request, 400, _("This form could not be read"), _("Go back and try again."))
    form = dict.fromkeys(
        ("title", "text", "alt_lines", "publish_local", "channels_shown", "uploads"), ""
    )
    form[auth.CSRF_FIELD] = ""
    more: dict[str, list[str]] = {}
    files: list[SpooledFile] = []
    try:
        # The files (without JavaScript) stream into the spool as the form is read; a form
        # that fails its CSRF check leaves nothing behind.
        await http_intake.read_multipart(
            request, relay, relay.settings.max_upload_bytes, files, form, more
        )
        if not auth.csrf_ok(request, form[auth.CSRF_FIELD]):
            return error(
                request,
                403,
                _("This form has expired"),
                _("Go back, reload the page and send the form again."),
            )
        uploads = [u for u in form["uploads"].split(",") if u.strip()][:MAX_UPLOADS]
        if not files and not uploads and not (form["title"] or form["text"]):
            return await _form_page(
                request, user, _("Pick at least one file, or write a title or a text."), 400
            )
        post = _post_fields(form, more, await _zone(request, user))
        if uploads:
            made = await request.app[TUS].join(user.user_id, [u.strip() for u in uploads], **post)
        else:
            made = await relay.acceptor.accept(user.user_id, files=files, source="http", **post)
            relay.acceptor.took("http", sum(spooled.size for spooled in files))
    except BaseException as exc:
        for spooled in files:
            relay.spool.remove(spooled.spool_name)
        if isinstance(exc, RelayError) and exc.spec.http_status < 500:
            log.info("upload page: %s (%s)", exc.spec.code, exc.detail)
            return await _form_page(request, user, exc.spec.message, exc.spec.http_status)
        raise
    log.info("upload page: post %s with %d item(s)", made.id, len(made.items))
    raise web.HTTPSeeOther("/")


def setup_routes(app: web.Application) -> None:
    if not TUS_CLIENT.is_file():
        log.warning(MISSING)  # once, at start; the page then works without it
    app.router.add_get("/upload", upload_form)
    app.router.add_post("/upload", upload_send)
