"""The web app at ``/``: sign in, your posts, upload, one post, channels, settings, admin.

Server-rendered pages (aiohttp-jinja2), one module per room, each with its ``setup_routes``;
what they share (rendering, the error page, sign-in checks) is in ``page.py``; sessions and
CSRF in relay/web/auth.py.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from relay.config import derive_key, secret_key
from relay.web import auth
from relay.web.app import admin, channels, i18n, post, signins, stream_keys, upload, views
from relay.web.app import settings as settings_room
from relay.web.app.page import JINJA, STATIC, TEMPLATES

# Each room of the web app: a module with ``setup_routes(app)``.
ROOMS = (views, post, upload, channels, signins, settings_room, admin, stream_keys)


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "public, max-age=3600")


def setup(app: web.Application, settings: Any) -> None:
    """Templates, sessions, static files and every room's routes; ``/`` is the web app's."""
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
    for room in ROOMS:
        room.setup_routes(app)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(_static_headers)
