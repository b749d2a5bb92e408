"""``/admin``, for users marked admin: the relay's users (add, mark admin, disable, remove) and
its health (the job queue, failed jobs, storage, version).

An admin cannot disable, remove or demote themselves, so a relay never loses its last admin by
a slip of the finger. Removing asks first, on a page of its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

import relay
from relay import lifecycle
from relay.config import mask_url
from relay.context import RELAY
from relay.db import queries
from relay.web import auth
from relay.web.app.page import Signed, admin_page, error, gettext_for, read_form, render
from relay.web.app.settings import MIN_PASSWORD, confirm_page

FAILED_JOBS_SHOWN = 10
MAX_NAME = 200


def _storage(url: str) -> str:
    """Where media are stored, as an admin would name it (no credentials)."""
    if url.startswith("file://"):
        return url[len("file://") :]
    return mask_url(url)


async def _admin_page(
    request: web.Request,
    user: Signed,
    *,
    status: int = 200,
    problem: str | None = None,
    added: dict[str, str] | None = None,
) -> web.Response:
    app = request.app[RELAY]

    def read(conn: Any) -> dict[str, Any]:
        return {
            "users": queries.list_users(conn),
            "queue": queries.queue_health(conn, time.time()),
            "failed_jobs": queries.failed_jobs(conn, FAILED_JOBS_SHOWN),
            "stored_bytes": queries.stored_bytes(conn),
        }

    found = await app.db.read(read)
    return render(
        request,
        "app/admin.html",
        {
            **found,
            "user": user,
            "room": "admin",
            "here": "/admin",
            "storage": _storage(app.settings.storage_url),
            "version": relay.__version__,
            "problem": problem,
            "added": added,
            "saved": request.query.get("saved") if request.method == "GET" else None,
        },
        status=status,
    )


@admin_page
async def show(request: web.Request, user: Signed) -> web.Response:
    return await _admin_page(request, user)


@admin_page
async def add_user(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    app = request.app[RELAY]
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    if not name or len(name) > MAX_NAME or any(c.isspace() or c == ":" for c in name):
        problem = _("Give a user name without spaces or colons, at most 200 characters.")
        return await _admin_page(request, user, status=400, problem=problem)
    if len(password) < MIN_PASSWORD:
        problem = _("A password needs at least 8 characters.")
        return await _admin_page(request, user, status=400, problem=problem)
    hashed = await asyncio.to_thread(auth.hash_password, password)
    admin = form.get("admin") == "1"

    def create(conn: Any) -> str | None:
        # As `relay user add NAME --password`: the user with one secret address to mail to.
        try:
            user_id = queries.add_user(conn, name)
        except queries.Conflict:
            return None
        queries.set_password(conn, user_id, hashed)
        if admin:
            queries.set_admin(conn, user_id, True)
        return queries.add_address(conn, user_id)

    secret = await app.db.run(create)
    if secret is None:
        problem = _("There is already a user called %(name)s. Choose another name.") % {
            "name": name
        }
        return await _admin_page(request, user, status=409, problem=problem)
    # Answered here, not redirected: the whole address exists only in this answer.
    added = {"name": name, "address": f"{secret}@{app.settings.mail_domain}"}
    return await _admin_page(request, user, added=added)


async def _target(request: web.Request, user: Signed) -> tuple[str, str] | web.Response:
    """The user the form is about (id, name), or a page saying why not: no such user, or the
    admin themselves."""
    _ = gettext_for(request)
    target_id = request.match_info["user_id"]
    name = await request.app[RELAY].db.read(queries.user_name, target_id)
    if name is None or name.startswith("removed:"):
        return error(request, 404, _("There is no such user"), _("Go back to the admin page."))
    if target_id == user.user_id:
        return error(
            request,
            400,
            _("You cannot do this to yourself"),
            _("Ask another administrator to do it, so the relay always keeps one."),
        )
    return target_id, name


@admin_page
async def set_admin(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    target = await _target(request, user)
    if isinstance(target, web.Response):
        return target
    await request.app[RELAY].db.run(queries.set_admin, target[0], form.get("admin") == "1")
    raise web.HTTPSeeOther("/admin?saved=admin#users")


@admin_page
async def set_disabled(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    target = await _target(request, user)
    if isinstance(target, web.Response):
        return target
    await request.app[RELAY].db.run(queries.set_disabled, target[0], form.get("disabled") == "1")
    raise web.HTTPSeeOther("/admin?saved=disabled#users")


@admin_page
async def confirm_remove(request: web.Request, user: Signed) -> web.Response:
    target = await _target(request, user)
    if isinstance(target, web.Response):
        return target
    _ = gettext_for(request)
    return confirm_page(
        request,
        user,
        room="admin",
        heading=_("Remove the user %(name)s?") % {"name": target[1]},
        consequence=_(
            "Their posts are deleted (their pages answer that they are gone, their media leave "
            "the store, their copies on channels are taken down where the channel allows), "
            "their addresses and tokens stop working, and they can no longer sign in. This "
            "cannot be undone. To stop them for a while instead, disable them."
        ),
        action=request.path,
        yes=_("Yes, remove %(name)s") % {"name": target[1]},
        back="/admin#users",
    )


@admin_page
async def remove(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    target = await _target(request, user)
    if isinstance(target, web.Response):
        return target
    target_id = target[0]

    def take_away(conn: Any) -> None:
        for post_id in queries.live_post_ids(conn, target_id):
            lifecycle.delete(conn, post_id, user.user_id, "web", "the user was removed")
        queries.remove_user(conn, target_id)

    await request.app[RELAY].db.run(take_away)
    raise web.HTTPSeeOther("/admin?saved=removed#users")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin", show)
    app.router.add_post("/admin/users", add_user)
    app.router.add_post("/admin/users/{user_id}/admin", set_admin)
    app.router.add_post("/admin/users/{user_id}/disabled", set_disabled)
    app.router.add_get("/admin/users/{user_id}/remove", confirm_remove)
    app.router.add_post("/admin/users/{user_id}/remove", remove)
