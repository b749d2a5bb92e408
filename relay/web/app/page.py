"""What every page of the web app shares: who is signed in, rendering with the reader's language
and a CSRF token, the error page, reading a POSTed form, and the decorators that make a handler
a page (``html_page``, ``signed_page``, ``admin_page``).

Every page is sent with a CSP that allows scripts and styles from this origin only (no
``unsafe-inline``); every POST checks the CSRF token; every answer is ``no-store`` because it is
one person's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp_jinja2
import jinja2
from aiohttp import web

from relay.context import RELAY
from relay.db import queries
from relay.errors import RelayError
from relay.web import auth
from relay.web.app import i18n

log = logging.getLogger("relay.web.app")

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
JINJA = web.AppKey("web_app_jinja", jinja2.Environment)

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


def gettext_for(request: web.Request) -> Any:
    relay = request.app[RELAY]
    return i18n.translations(i18n.choose_language(request, relay.settings.default_language)).gettext


class FormRefused(Exception):
    """A form the page will not act on; ``html_page`` answers with its error page."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def read_form(request: web.Request) -> Any:
    """The POSTed form; a form that cannot be read (400) or whose CSRF token is missing or
    wrong (403) raises ``FormRefused``, which the page decorators answer with a page."""
    try:
        form = await request.post()
    except ValueError:  # a body that is no form (aiohttp says so with ValueError): not our fault
        _ = gettext_for(request)
        raise FormRefused(
            error(request, 400, _("This form could not be read"), _("Go back and try again."))
        ) from None
    submitted = form.get(auth.CSRF_FIELD)
    if not auth.csrf_ok(request, submitted if isinstance(submitted, str) else None):
        _ = gettext_for(request)
        raise FormRefused(
            error(
                request,
                403,
                _("This form has expired"),
                _("Go back, reload the page and send the form again."),
            )
        )
    return form


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def html_page(handler: Handler) -> Handler:
    """A page of the web app answers its errors as a page of the web app, in the reader's
    language, never as the API's JSON (redirects pass through)."""

    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        _ = gettext_for(request)
        try:
            return await handler(request)
        except FormRefused as refused:
            return refused.response
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


def signed_page(handler: Callable[[web.Request, Signed], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for signed-in users only: anyone else is sent to the sign-in form at ``/``
    (a GET comes back to the page it asked for once signed in)."""

    @html_page
    @functools.wraps(handler)
    async def page(request: web.Request) -> web.StreamResponse:
        user = await signed_in(request)
        if user is None:
            target = "/"
            if request.method == "GET" and request.path != "/":
                target = "/?" + urlencode({"next": request.path_qs})
            raise web.HTTPSeeOther(target)
        return await handler(request, user)

    return page


def admin_page(handler: Callable[[web.Request, Signed], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for admins only: others signed in get a 403 page that says so."""

    @signed_page
    @functools.wraps(handler)
    async def page(request: web.Request, user: Signed) -> web.StreamResponse:
        if not user.admin:
            _ = gettext_for(request)
            return error(
                request,
                403,
                _("Only an administrator can open this page"),
                _("Ask an administrator of this relay if you need something done here."),
            )
        return await handler(request, user)

    return page


def safe_back(target: str) -> str:
    """A path on this site to go back to after a form, or ``/``: never off this site."""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target
