"""The web app's views: the sign-in form and, once signed in, the user's posts.

Server-rendered pages (aiohttp-jinja2); JavaScript only enhances (``/static/app.js`` polls the
posts that are still processing and updates them in place). Every page is sent with a CSP that
allows scripts and styles from this origin only (no ``unsafe-inline``); every POST checks the
CSRF token; every answer is ``no-store`` because it is one person's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp_jinja2
import jinja2
from aiohttp import web

from relay.config import derive_key, secret_key
from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import RelayError
from relay.model import DeliveryStatus, Item, ItemStatus, Post
from relay.web import auth
from relay.web.app import i18n
from relay.web.client import client_address

log = logging.getLogger("relay.web.app")

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
JINJA = web.AppKey("web_app_jinja", jinja2.Environment)
PAGE_SIZE = 20

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Signed:
    """Who is signed in on this request."""

    def __init__(self, user_id: str, name: str, admin: bool) -> None:
        self.user_id = user_id
        self.name = name
        self.admin = admin


async def signed_in(request: web.Request) -> Signed | None:
    relay = request.app[RELAY]
    found = request.config_dict[auth.SESSIONS].check(request.cookies.get(auth.SESSION_COOKIE))
    if found is None:
        return None
    user_id, generation = found
    user = await relay.db.read(queries.user_session, user_id)
    if user is None:
        return None
    name, current, admin, has_password = user
    # Ended everywhere (or the password changed, or was removed) since the cookie was issued.
    if generation != current or not has_password:
        return None
    return Signed(user_id, name, admin)


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    relay = request.app[RELAY]
    lang = i18n.choose_language(request, relay.settings.default_language)
    translations = i18n.translations(lang)
    token, new = auth.csrf_token(request)
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            **context,
            "lang": lang,
            "public_url": relay.settings.public_url,
            "languages": i18n.LANGUAGES,
            "_": translations.gettext,
            "ngettext": translations.ngettext,
            "csrf_field": auth.CSRF_FIELD,
            "csrf_token": token,
        },
        app_key=JINJA,
        status=status,
    )
    response.headers.update(HEADERS)
    if new:
        auth.set_csrf_cookie(response, token, request.config_dict[auth.SESSIONS].secure)
    return response


def error(request: web.Request, status: int, title: str, advice: str) -> web.Response:
    return render(
        request, "app/error.html", {"status": status, "title": title, "advice": advice}, status
    )


def _gettext(request: web.Request) -> Any:
    relay = request.app[RELAY]
    return i18n.translations(i18n.choose_language(request, relay.settings.default_language)).gettext


async def _form(request: web.Request) -> Any | web.Response:
    """The POSTed form, or the 403 page when its CSRF token is missing or wrong."""
    try:
        form = await request.post()
    except ValueError:  # a body that is no form (aiohttp says so with ValueError): not our fault
        _ = _gettext(request)
        return error(request, 400, _("This form could not be read"), _("Go back and try again."))
    submitted = form.get(auth.CSRF_FIELD)
    if not auth.csrf_ok(request, submitted if isinstance(submitted, str) else None):
        _ = _gettext(request)
        return error(
            request,
            403,
            _("This form has expired"),
            _("Go back, reload the page and send the form again."),
        )
    return form


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def html_page(handler: Handler) -> Handler:
    """A page of the web app answers its errors as a page of the web app, in the reader's
    language, never as the API's JSON (redirects pass through)."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        _ = _gettext(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(request, exc.status, exc.reason, _("Go back and try again."))
        except RelayError as exc:
            if exc.spec.http_status >= 500:
                log.error("%s %s: %s", request.method, request.path, exc)
                return error(
                    request,
                    exc.spec.http_status,
                    _("Something went wrong"),
                    _("The relay could not do this just now. Try again in a moment."),
                )
            return error(
                request, exc.spec.http_status, exc.spec.message, _("Go back and try again.")
            )
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error(
                request,
                500,
                _("Something went wrong"),
                _("The relay could not do this just now. Try again in a moment."),
            )

    return page


# --- sign in, sign out ------------------------------------------------------------------------


@html_page
async def front(request: web.Request) -> web.Response:
    user = await signed_in(request)
    if user is None:
        return render(request, "app/signin.html", {"name": "", "failed": False})
    return await posts_page(request, user)


@html_page
async def sign_in(request: web.Request) -> web.Response:
    form = await _form(request)
    if isinstance(form, web.Response):
        return form
    relay = request.app[RELAY]
    _ = _gettext(request)
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
        return render(request, "app/signin.html", {"name": name, "failed": True}, status=401)
    response = web.HTTPSeeOther("/")
    request.config_dict[auth.SESSIONS].set_cookie(
        response, request.config_dict[auth.SESSIONS].issue(user_id, generation)
    )
    raise response


@html_page
async def sign_out(request: web.Request) -> web.Response:
    form = await _form(request)
    if isinstance(form, web.Response):
        return form
    user = await signed_in(request)
    if user is not None and form.get("everywhere"):
        await request.app[RELAY].db.run(queries.end_sessions, user.user_id)
    response = web.HTTPSeeOther("/")
    request.config_dict[auth.SESSIONS].clear_cookie(response)
    raise response


@html_page
async def language(request: web.Request) -> web.Response:
    form = await _form(request)
    if isinstance(form, web.Response):
        return form
    lang = str(form.get("lang", ""))
    back = str(form.get("back", "/"))
    parsed = urlparse(back)
    # Back to the page the menu was on, but never off this site.
    if parsed.scheme or parsed.netloc or not back.startswith("/") or back.startswith("//"):
        back = "/"
    response = web.HTTPSeeOther(back)
    if lang in i18n.LANGUAGES:
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


def post_view(
    relay: Relay, post: Post, labels: dict[str, tuple[str, str | None]] | None = None
) -> dict[str, Any]:
    """What the posts page (and its polling) shows of a post."""
    return {
        "id": post.id,
        "title": post.title or (post.items[0].filename if post.items else ""),
        "state": post.state.value,
        "status": post.status.value,
        "publish_at": post.publish_at.isoformat() if post.publish_at else None,
        "created_at": post.created_at.isoformat() if post.created_at else None,
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


async def posts_page(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    show = request.query.get("show")
    if show not in queries.POST_FILTERS:
        show = None
    after = request.query.get("after") or None
    found = await relay.db.read(queries.posts_page, user.user_id, PAGE_SIZE + 1, after, show)
    labels = await relay.db.read(queries.destination_labels, user.user_id)
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
            "posts": [post_view(relay, post, labels) for post in shown],
            "show": show,
            "filters": queries.POST_FILTERS,
            "older": older,
            "first_page": after is None,
            "here": request.path_qs,
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


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "public, max-age=3600")


def setup(app: web.Application, settings: Any) -> None:
    """Routes, templates, sessions; ``/`` is the web app's."""
    i18n.load_all()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        app_key=JINJA,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    key = derive_key(secret_key(settings), "web-session")
    auth.setup_sessions(
        app,
        key,
        settings.session_seconds,
        settings.public_url.startswith("https://"),
        auth.FailureThrottle(settings.login_max_failures, settings.login_failure_window_seconds),
    )
    app.router.add_get("/", front)
    app.router.add_post("/signin", sign_in)
    app.router.add_post("/signout", sign_out)
    app.router.add_post("/language", language)
    app.router.add_get("/app/posts.json", posts_json)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(_static_headers)
