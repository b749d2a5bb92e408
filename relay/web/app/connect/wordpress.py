"""Connecting a WordPress site with its application-password authorization flow.

The site's REST index names the flow's page (``authentication.application-passwords.endpoints
.authorization``, usually ``/wp-admin/authorize-application.php``); the relay sends the person
there with ``app_name``, ``app_id``, ``success_url`` and ``reject_url``. They sign in to their
site and approve; WordPress makes an application password and sends the browser to
``success_url`` with ``site_url``, ``user_login`` and ``password`` (or to ``reject_url`` with
``success=false``). The password is tried at once (``/wp/v2/users/me``) before it is kept.

WordPress refuses an ``http://`` success URL unless the site runs as a local environment, so a
relay whose ``RELAY_PUBLIC_URL`` is not https can connect only such sites.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.publish import Destination, adapter_for
from relay.publish.wordpress import WordPressAdapter
from relay.web.app import connect

APP_NAME = "Relay"
APP_ID = "0f6b2e2c-5d0e-4d55-9a57-2b1f6c0d2a71"
"""Names the relay's passwords in the site's list (a UUID, as WordPress wants)."""


async def _authorization_page(request: web.Request, site: str) -> str:
    # The adapter's discovery of the REST root (from the front page's Link header) needs no
    # credentials; placeholders stand in for the ones this flow is about to get.
    adapter = WordPressAdapter(
        Destination(id="", user_id="", type="wordpress", url=site, token="-", config={"user": "-"}),
        connect.http(request),
    )
    root = await adapter.root()
    status, index, _ = await connect.read_json(connect.http(request), "GET", root, follow=3)
    found = None
    if status == 200 and isinstance(index, dict):
        methods = (index.get("authentication") or {}).get("application-passwords") or {}
        found = (methods.get("endpoints") or {}).get("authorization")
    if not isinstance(found, str) or not found.startswith(("http://", "https://")):
        raise connect.ConnectFailed("wordpress-no-passwords")
    return found


async def begin(request: web.Request, site: str, state: str) -> tuple[str, dict[str, Any]]:
    base = connect.normal_site(site)
    page = await _authorization_page(request, base)
    back = connect.callback_url(request, "wordpress")
    query = {
        "app_name": APP_NAME,
        "app_id": APP_ID,
        "success_url": f"{back}?{urlencode({'state': state})}",
        "reject_url": f"{back}?{urlencode({'state': state})}",
    }
    return f"{page}{'&' if '?' in page else '?'}{urlencode(query)}", {"site": base}


async def complete(request: web.Request, pending: connect.Pending) -> dict[str, Any]:
    if request.query.get("success") == "false":
        raise connect.ConnectFailed("denied")
    user = request.query.get("user_login", "")
    password = request.query.get("password", "")
    if not user or not password:
        raise connect.ConnectFailed("no-code")
    # The site the person started with, not the ``site_url`` that came back in the address:
    # a forged callback must not point the relay somewhere else.
    site = pending.data["site"]
    destination = Destination(
        id="",
        user_id=pending.user_id,
        type="wordpress",
        url=site,
        token=password,
        config={"user": user},
    )
    await adapter_for(destination, connect.http(request)).check()
    return {
        "url": site,
        "token": password,
        "secret": None,
        "config": {"user": user},
        "account": f"{user} ({site})",
    }
