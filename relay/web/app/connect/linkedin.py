"""Connecting LinkedIn by 3-legged OAuth: the person, or a Page they administer.

Sources: https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow
(``/oauth/v2/authorization``, ``/oauth/v2/accessToken``), "Sign In with LinkedIn using OpenID
Connect" (``GET /v2/userinfo``: ``sub``, ``name``) and the Organization Access Control API
(``GET /rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED``).

The person is sent to ``RELAY_LINKEDIN_OAUTH_URL/oauth/v2/authorization`` with the app's client
id and the scopes ``openid profile w_member_social`` (their own feed) and
``w_organization_social r_organization_admin r_organization_social`` (Pages: post, list which
they administer, and read a Page's posts so that a retry finds a post whose answer was lost).
The code that comes back to ``/channels/linkedin/callback`` is exchanged for a 60-day token (and
a 365-day refresh token when LinkedIn granted the app programmatic refresh); the client secret
goes in the POST body, never in a URL. The person then picks "me" or one of their Pages.

Between the callback and the pick, the tokens ride in the flow's signed cookie sealed (AES-GCM
under the relay's key, bound to the person), as Facebook's do (connect/meta.py).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from relay.context import RELAY
from relay.errors import PublishError
from relay.publish.linkedin import VERSION, linkedin_error
from relay.sealed import Sealer, Unreadable
from relay.web.app import connect

SCOPES = (
    "openid profile w_member_social "
    "w_organization_social r_organization_admin r_organization_social"
)


def enabled(request: web.Request) -> bool:
    settings = request.app[RELAY].settings
    return bool(settings.linkedin_client_id and settings.linkedin_client_secret)


def _api(request: web.Request) -> str:
    return request.app[RELAY].settings.linkedin_api_url.rstrip("/")


def _oauth(request: web.Request) -> str:
    return request.app[RELAY].settings.linkedin_oauth_url.rstrip("/")


def _secret(request: web.Request) -> str:
    secret = request.app[RELAY].settings.linkedin_client_secret
    return secret.get_secret_value() if secret is not None else ""


def _context(user_id: str) -> str:
    return f"linkedin-connect:{user_id}"


def seal(request: web.Request, user_id: str, grant: dict[str, Any]) -> str:
    sealer = Sealer.from_settings(request.app[RELAY].settings)
    return sealer.seal(json.dumps(grant), _context(user_id))


def unseal(request: web.Request, user_id: str, sealed: str) -> dict[str, Any]:
    try:
        opened = Sealer.from_settings(request.app[RELAY].settings).open(sealed, _context(user_id))
        return dict(json.loads(opened))
    except (Unreadable, ValueError):
        raise connect.ConnectFailed("no-code") from None


def authorize_url(request: web.Request, state: str) -> str:
    query = {
        "response_type": "code",
        "client_id": request.app[RELAY].settings.linkedin_client_id,
        "redirect_uri": connect.callback_url(request, "linkedin"),
        "state": state,
        "scope": SCOPES,
    }
    return f"{_oauth(request)}/oauth/v2/authorization?{urlencode(query, quote_via=quote)}"


async def grant(request: web.Request) -> dict[str, Any]:
    """The tokens for the code that came back: ``token``, ``expires_at`` and, when LinkedIn
    gives one, ``refresh``."""
    code = connect.granted_code(request)
    status, answer, text = await connect.read_json(
        connect.http(request),
        "POST",
        _oauth(request) + "/oauth/v2/accessToken",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": request.app[RELAY].settings.linkedin_client_id,
            "client_secret": _secret(request),
            "redirect_uri": connect.callback_url(request, "linkedin"),
        },
    )
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        # OAuth errors are {"error", "error_description"}: name the error, never the body.
        error = answer.get("error") if isinstance(answer, dict) else None
        raise PublishError("publish.unauthorized", f"/oauth/v2/accessToken: {status} {error}")
    lasts = answer.get("expires_in")
    made = {
        "token": str(answer["access_token"]),
        "expires_at": int(time.time() + (lasts if isinstance(lasts, (int, float)) else 5184000)),
    }
    if answer.get("refresh_token"):
        made["refresh"] = str(answer["refresh_token"])
    return made


async def _get(request: web.Request, path: str, token: str) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {token}",
        "LinkedIn-Version": VERSION,
        "X-Restli-Protocol-Version": "2.0.0",
    }
    status, answer, text = await connect.read_json(
        connect.http(request), "GET", _api(request) + path, headers=headers
    )
    if status != 200 or not isinstance(answer, dict):
        raise linkedin_error(status, text, path.split("?")[0])
    return answer


async def authors(request: web.Request, token: str) -> list[dict[str, str]]:
    """Whom the person may post as: themselves first, then each Page they administer
    (``urn``, ``name``, ``kind``)."""
    me = await _get(request, "/v2/userinfo", token)
    if not me.get("sub"):
        raise PublishError("publish.rejected", "/v2/userinfo: no sub")
    found = [{"urn": f"urn:li:person:{me['sub']}", "name": str(me.get("name") or ""),
              "kind": "person"}]  # fmt: skip
    acls = await _get(
        request, "/rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED", token
    )
    for element in acls.get("elements") or []:
        urn = str(element.get("organization") or "")
        number = urn.removeprefix("urn:li:organization:")
        if not urn.startswith("urn:li:organization:") or not number.isdigit():
            continue
        org = await _get(request, f"/rest/organizations/{number}", token)
        found.append({"urn": urn, "name": str(org.get("localizedName") or number),
                      "kind": "organization"})  # fmt: skip
    return found


def destination_for(
    request: web.Request, author: dict[str, str], grant: dict[str, Any]
) -> dict[str, Any]:
    """The picked author as the new destination's fields; the refresh token, when there is one,
    is the destination's (sealed) secret."""
    return {
        "url": _api(request),
        "token": grant["token"],
        "secret": grant.get("refresh"),
        "config": {
            "author": author["urn"],
            "account": author["name"] or author["urn"],
            "token_expires_at": grant["expires_at"],
        },
    }
