"""``/settings``: a user's own secret addresses and their sender policies, API tokens, time zone,
language and password.

The database keeps only a hash of each address and token, so the whole secret is shown once,
on the page that made it (with a copy button when JavaScript runs); afterwards the list names
each by its first characters. Revoking asks first, on a page of its own, so it needs no script.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from aiohttp import web

from relay.context import RELAY
from relay.db import queries
from relay.db.schema import addresses, tokens
from relay.web import auth
from relay.web.app import i18n
from relay.web.app.page import Signed, error, gettext_for, read_form, render, signed_page

POLICIES = ("anyone", "allowlist", "dkim", "spf", "dkim-or-spf")
MIN_PASSWORD = 8  # as `relay user password`
MAX_ALLOWED_SENDERS = 100


@cache
def time_zones() -> list[str]:
    """IANA zones a person would pick (``Europe/Stockholm``), not the legacy aliases."""
    return sorted(
        zone
        for zone in available_timezones()
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
    )


def _policy_labels(_: Any) -> dict[str, str]:
    return {
        "anyone": _("Anyone who knows the address"),
        "allowlist": _("Only the senders listed below (a From line can be forged)"),
        "dkim": _("Only listed senders whose mail carries a valid DKIM signature"),
        "spf": _("Only listed senders whose mail server passes SPF"),
        "dkim-or-spf": _("Only listed senders proven by DKIM or SPF"),
    }


async def _settings_page(
    request: web.Request,
    user: Signed,
    *,
    status: int = 200,
    new_address: str | None = None,
    new_token: str | None = None,
    problem: dict[str, str] | None = None,
) -> web.Response:
    relay = request.app[RELAY]

    def read(conn: Any) -> tuple[list[Any], list[Any], str | None]:
        return (
            queries.live_addresses(conn, user.user_id),
            queries.live_tokens(conn, user.user_id),
            queries.user_timezone(conn, user.user_id),
        )

    found_addresses, found_tokens, zone = await relay.db.read(read)
    from relay.web.app.stream_keys import keys_of  # the stream keys' own room

    found_keys = await relay.db.read(keys_of, user.user_id)
    return render(
        request,
        "app/settings.html",
        {
            "user": user,
            "room": "settings",
            "here": "/settings",
            "domain": relay.settings.mail_domain,
            "addresses": [
                {**row, "allowed": "\n".join(json.loads(row["allowed_senders"] or "[]"))}
                for row in found_addresses
            ],
            "tokens": found_tokens,
            "stream_keys": found_keys,
            "policies": _policy_labels(gettext_for(request)),
            "zone": zone,
            "default_zone": relay.settings.timezone,
            "zones": time_zones(),
            "current_lang": i18n.choose_language(request, relay.settings.default_language),
            "new_address": new_address,
            "new_token": new_token,
            "problem": problem or {},
            "saved": request.query.get("saved") if request.method == "GET" else None,
        },
        status=status,
    )


@signed_page
async def show(request: web.Request, user: Signed) -> web.Response:
    return await _settings_page(request, user)


# --- secret addresses -------------------------------------------------------------------------


@signed_page
async def add_address(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    relay = request.app[RELAY]
    secret = await relay.db.run(queries.add_address, user.user_id)
    # Answered here, not redirected: the whole address exists only in this answer.
    return await _settings_page(request, user, new_address=f"{secret}@{relay.settings.mail_domain}")


def _allowed_senders(text: str) -> list[str] | None:
    """One sender a line (or separated by commas): ``name@domain`` or ``@domain``; None when
    one is neither."""
    found = [
        entry.strip().lower() for entry in text.replace(",", "\n").splitlines() if entry.strip()
    ]
    for entry in found:
        local, at, domain = entry.rpartition("@")
        if not at or not domain or "." not in domain or any(c.isspace() for c in entry):
            return None
    return list(dict.fromkeys(found))


@signed_page
async def set_policy(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    address_id = request.match_info["address_id"]
    policy = str(form.get("policy", ""))
    allowed = _allowed_senders(str(form.get("allowed", ""))[:20_000])
    message = None
    if policy not in POLICIES:
        message = _("Choose who may post through this address.")
    elif allowed is None:
        message = _(
            "Write one sender a line: a whole address (anna@example.org) or a domain with @ in "
            "front (@example.org)."
        )
    elif len(allowed) > MAX_ALLOWED_SENDERS:
        message = _("At most 100 senders can be listed.")
    elif policy != "anyone" and not allowed:
        message = _("This choice needs at least one sender in the list.")
    if message is not None:
        return await _settings_page(request, user, status=400, problem={address_id: message})
    relay = request.app[RELAY]
    changed = await relay.db.run(
        queries.set_own_address_policy, user.user_id, address_id, policy, allowed or []
    )
    if not changed:
        raise web.HTTPNotFound(reason=_("There is no such address"))
    raise web.HTTPSeeOther(f"/settings?saved=policy#address-{address_id}")


# --- revoking, with a question first ----------------------------------------------------------

KINDS = {"addresses": addresses, "tokens": tokens}


@signed_page
async def confirm_revoke(request: web.Request, user: Signed) -> web.Response:
    relay = request.app[RELAY]
    kind = request.match_info["kind"]
    row_id = request.match_info["row_id"]
    rows = await relay.db.read(
        queries.live_addresses if kind == "addresses" else queries.live_tokens, user.user_id
    )
    row = next((r for r in rows if r["id"] == row_id), None)
    _ = gettext_for(request)
    if row is None:
        return error(
            request,
            404,
            _("There is no such address or token"),
            _("It may be revoked already. Go back to your settings."),
        )
    if kind == "addresses":
        name = f"{row['hint']}…@{relay.settings.mail_domain}"
        heading = _("Revoke the address %(address)s?") % {"address": name}
        consequence = _(
            "Mail sent to it will be refused from now on. This cannot be undone; you can add a "
            "new address at any time."
        )
    else:
        heading = _("Revoke the token %(token)s?") % {"token": f"{row['hint']}…"}
        consequence = _(
            "Programs that use it will be refused from now on. This cannot be undone; you can "
            "create a new token at any time."
        )
    return confirm_page(
        request,
        user,
        room="settings",
        heading=heading,
        consequence=consequence,
        action=request.path,
        yes=_("Yes, revoke it"),
        back=f"/settings#{kind}",
    )


def confirm_page(
    request: web.Request,
    user: Signed,
    *,
    room: str,
    heading: str,
    consequence: str,
    action: str,
    yes: str,
    back: str,
) -> web.Response:
    """A question before something that cannot be undone: a form that does it, a link back."""
    _ = gettext_for(request)
    return render(
        request,
        "app/confirm.html",
        {
            "user": user,
            "room": room,
            "here": request.path,
            "heading": heading,
            "consequence": consequence,
            "action": action,
            "yes": yes,
            "no": _("No, keep it as it is"),
            "back": back,
        },
    )


@signed_page
async def revoke(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    relay = request.app[RELAY]
    kind = request.match_info["kind"]
    if not await relay.db.run(
        queries.revoke_own, KINDS[kind], user.user_id, request.match_info["row_id"]
    ):
        _ = gettext_for(request)
        raise web.HTTPNotFound(reason=_("There is no such address or token"))
    raise web.HTTPSeeOther(f"/settings?saved={kind}#{kind}")


# --- API tokens -------------------------------------------------------------------------------


@signed_page
async def add_token(request: web.Request, user: Signed) -> web.Response:
    await read_form(request)
    token = await request.app[RELAY].db.run(queries.add_token, user.user_id)
    return await _settings_page(request, user, new_token=token)


# --- time zone, password ----------------------------------------------------------------------


@signed_page
async def set_zone(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    zone = str(form.get("timezone", "")).strip() or None
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (KeyError, ValueError):
            return await _settings_page(
                request,
                user,
                status=400,
                problem={"timezone": _("Choose a time zone from the list.")},
            )
    await request.app[RELAY].db.run(queries.set_user_timezone, user.user_id, zone)
    raise web.HTTPSeeOther("/settings?saved=timezone#timezone")


@signed_page
async def set_password(request: web.Request, user: Signed) -> web.Response:
    form = await read_form(request)
    _ = gettext_for(request)
    relay = request.app[RELAY]
    old = str(form.get("old_password", ""))
    new = str(form.get("new_password", ""))
    again = str(form.get("new_password_again", ""))
    stored = await relay.db.read(queries.password_hash, user.user_id)
    # argon2 is slow on purpose; a thread keeps the event loop moving.
    if not await asyncio.to_thread(auth.verify_password, stored, old):
        message = _("Your current password is not right. Type it again.")
    elif len(new) < MIN_PASSWORD:
        message = _("A new password needs at least 8 characters.")
    elif new != again:
        message = _("The two new passwords are not the same. Type them again.")
    else:
        message = None
    if message is not None:
        return await _settings_page(request, user, status=400, problem={"password": message})
    hashed = await asyncio.to_thread(auth.hash_password, new)

    def change(conn: Any) -> int | None:
        queries.set_password(conn, user.user_id, hashed)
        queries.end_sessions(conn, user.user_id)  # a stolen cookie ends with the old password
        found = queries.user_session(conn, user.user_id)
        return found[1] if found else None

    generation = await relay.db.run(change)
    response = web.HTTPSeeOther("/settings?saved=password#password")
    if generation is not None:  # this browser stays signed in, under the new generation
        sessions = request.config_dict[auth.SESSIONS]
        sessions.set_cookie(response, sessions.issue(user.user_id, generation))
    raise response


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/settings", show)
    app.router.add_post("/settings/addresses", add_address)
    app.router.add_post("/settings/addresses/{address_id}/policy", set_policy)
    app.router.add_post("/settings/tokens", add_token)
    app.router.add_get("/settings/{kind:addresses|tokens}/{row_id}/revoke", confirm_revoke)
    app.router.add_post("/settings/{kind:addresses|tokens}/{row_id}/revoke", revoke)
    app.router.add_post("/settings/timezone", set_zone)
    app.router.add_post("/settings/password", set_password)
