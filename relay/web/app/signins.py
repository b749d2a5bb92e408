"""Connecting a channel by signing in at its service: the flows' routes (``/channels/...``).

Mastodon, WordPress and Micropub share one flow whose first step needs the site's address
(``FLOWS``); Facebook Login, Threads, YouTube, LinkedIn and X start from the operator's app at
the service (404 while it is not set up). Every flow leaves through ``_leave_for`` (a page, not a
redirect: the CSP's form-action) and ends in ``_connected``, ``_failed`` or
``_not_started_here``. What the services' flows share lives in relay/web/app/connect/; the
channels page itself, and saving a channel, in relay/web/app/channels.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from relay.errors import PublishError
from relay.web.app import connect
from relay.web.app.channels import problem_for, save_channel, save_or_renew, show_channels
from relay.web.app.connect import indieauth, linkedin, mastodon, meta, threads, wordpress, youtube
from relay.web.app.connect import x as x_connect
from relay.web.app.page import Signed, gettext_for, read_form, render, signed_page

log = logging.getLogger("relay.web.app.signins")
T = TypeVar("T")

Complete = Callable[[web.Request, connect.Pending], Awaitable[dict[str, Any]]]
Begin = Callable[[web.Request, str, str], Awaitable[tuple[str, dict[str, Any]]]]
# Services connected by signing in there: the form field with the address, the flow.
FLOWS: dict[str, tuple[str, Begin, Complete]] = {
    "mastodon": ("instance", mastodon.begin, mastodon.complete),
    "wordpress": ("site", wordpress.begin, wordpress.complete),
    "micropub": ("site", indieauth.begin, indieauth.complete),
}


@signed_page
async def begin(request: web.Request, user: Signed) -> web.StreamResponse:
    form = await read_form(request)
    service = request.match_info["service"]
    field, start, _complete = FLOWS[service]
    address = str(form.get(field, "")).strip()[:500]
    kept = {f"{service}_{field}": address}
    if not address:
        problem = gettext_for(request)("Give the address first.")
        return await show_channels(request, user, 400, problem=problem, form=kept)
    state = connect.new_state()
    try:
        target, data = await start(request, address, state)
    except (PublishError, connect.ConnectFailed) as exc:
        log.info("connecting %s failed before sign-in: %s", service, exc)
        return await show_channels(request, user, 400, problem=problem_for(request, exc), form=kept)
    return _leave_for(request, user, service, state, target, data)


def _leave_for(
    request: web.Request,
    user: Signed,
    service: str,
    state: str,
    target: str,
    data: dict[str, Any],
) -> web.Response:
    """The page that sends the person on to the service's own sign-in (a link that
    channels.js follows: the CSP's form-action blocks a redirect off this site), with the flow
    remembered in its cookie."""
    response = render(
        request,
        "app/channels_continue.html",
        {
            "user": user,
            "room": "channels",
            "here": "/channels",
            "target": target,
            "host": urlsplit(target).netloc,
        },
    )
    connect.remember(request, response, user.user_id, service, state, data)
    return response


async def _begin_own(
    request: web.Request,
    user: Signed,
    service: str,
    enabled: Callable[[web.Request], bool],
    target_for: Callable[[web.Request, str], str],
) -> web.Response:
    """The start of a sign-in the operator set up with the service's app (Facebook Login,
    Threads): a new state, then on to the service; 404 while the app is not set up."""
    await read_form(request)
    if not enabled(request):
        raise web.HTTPNotFound()
    state = connect.new_state()
    return _leave_for(request, user, service, state, target_for(request, state), {})


async def _not_started_here(request: web.Request, user: Signed) -> web.Response:
    """A callback whose flow is not in the cookie (expired, or begun elsewhere)."""
    _ = gettext_for(request)
    return await show_channels(
        request,
        user,
        400,
        problem=_(
            "This sign-in has expired or did not start here, so nothing was connected. "
            "Start again below."
        ),
    )


async def _failed(request: web.Request, user: Signed, problem: str) -> web.Response:
    """The channels page saying why nothing was connected; the flow is over (cookie gone)."""
    response = await show_channels(request, user, 400, problem=problem)
    connect.forget(request, response)
    return response


def _connected(request: web.Request, destination_id: str) -> NoReturn:
    """On to the channels page naming the channel just connected; the flow is over."""
    redirect = web.HTTPSeeOther(f"/channels?added={destination_id}")
    connect.forget(request, redirect)
    raise redirect


async def _after_sign_in(
    request: web.Request,
    user: Signed,
    service: str,
    fetch: Callable[[web.Request, connect.Pending], Awaitable[T]],
) -> T | web.Response:
    """A callback's first part: the flow checked against its cookie, then what ``fetch`` gets
    from the service with the code; or the page saying why not."""
    pending = connect.finish(request, user.user_id, service, request.query.get("state"))
    if pending is None:
        return await _not_started_here(request, user)
    try:
        return await fetch(request, pending)
    except (PublishError, connect.ConnectFailed) as exc:
        log.info("connecting %s failed after sign-in: %s", service, exc)
        return await _failed(request, user, problem_for(request, exc))


def _offer_pick(
    request: web.Request,
    user: Signed,
    service: str,
    template: str,
    listed: dict[str, Any],
    sealed: dict[str, str],
) -> web.Response:
    """The page where the person picks what to connect (Facebook's Pages, LinkedIn's authors),
    with the sign-in's grant ``sealed`` in the flow's cookie for the pick step."""
    state = connect.new_state()
    context = {"user": user, "room": "channels", "here": "/channels", "state": state}
    response = render(request, template, {**context, **listed})
    connect.remember(request, response, user.user_id, f"{service}-pick", state, sealed)
    return response


async def _back_from_pick(
    request: web.Request,
    user: Signed,
    service: str,
    key: str,
    load: Callable[[web.Request, str, str], Awaitable[T]],
) -> tuple[Any, T] | web.Response:
    """The pick step's start: the form, and what ``load`` finds with the grant sealed under
    ``key`` (asked of the service again, so only what the person may still post as is kept);
    or the page saying why not, when the flow is not this one's or the service refuses."""
    form = await read_form(request)
    pending = connect.finish(request, user.user_id, f"{service}-pick", str(form.get("state", "")))
    if pending is None:
        return await _not_started_here(request, user)
    try:
        loaded = await load(request, user.user_id, str(pending.data.get(key, "")))
    except (PublishError, connect.ConnectFailed) as exc:
        return await _failed(request, user, problem_for(request, exc))
    return form, loaded


async def _picked_nothing(request: web.Request, user: Signed) -> web.Response:
    _ = gettext_for(request)
    return await _failed(request, user, _("You picked nothing, so nothing was connected."))


@signed_page
async def callback(request: web.Request, user: Signed) -> web.StreamResponse:
    service = request.match_info["service"]
    _field, _start, complete = FLOWS[service]
    made = await _after_sign_in(request, user, service, complete)
    if isinstance(made, web.Response):
        return made
    _connected(request, await save_channel(request, user, service, made))


# --- Facebook Login: Pages and their Instagram accounts (relay/web/app/connect/meta.py) -------


@signed_page
async def begin_facebook(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _begin_own(request, user, "facebook", meta.enabled, meta.dialog_url)


@signed_page
async def facebook_callback(request: web.Request, user: Signed) -> web.StreamResponse:
    _ = gettext_for(request)
    found = await _after_sign_in(request, user, "facebook", _facebook_sign_in)
    if isinstance(found, web.Response):
        return found
    token, pages = found
    if not pages:
        return await _failed(
            request, user, _("Your Facebook account manages no Page the relay may post to.")
        )
    sealed = {"t": meta.seal(request, user.user_id, token)}
    listed = {"pages": pages}
    return _offer_pick(request, user, "facebook", "app/channels_meta.html", listed, sealed)


@signed_page
async def facebook_pick(request: web.Request, user: Signed) -> web.StreamResponse:
    step = await _back_from_pick(request, user, "facebook", "t", _facebook_pages)
    if isinstance(step, web.Response):
        return step
    form, pages = step
    picked = set(form.getall("pick", []))
    added = []
    for page in pages:
        if f"facebook:{page['id']}" in picked:
            made = meta.destinations_for(request, page, "facebook")
            added.append(await save_or_renew(request, user, "facebook", made, "page_id"))
        if page["instagram"] and f"instagram:{page['instagram']['id']}" in picked:
            made = meta.destinations_for(request, page, "instagram")
            added.append(await save_or_renew(request, user, "instagram", made, "ig_user_id"))
    if not added:
        return await _picked_nothing(request, user)
    _connected(request, added[0])


async def _facebook_sign_in(
    request: web.Request, _pending: connect.Pending
) -> tuple[str, list[dict[str, Any]]]:
    token = await meta.user_token(request)
    return token, await meta.pages(request, token)


async def _facebook_pages(request: web.Request, user_id: str, sealed: str) -> list[dict[str, Any]]:
    return await meta.pages(request, meta.unseal(request, user_id, sealed))


# --- Threads' own login (relay/web/app/connect/threads.py) ------------------------------------


@signed_page
async def begin_threads(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _begin_own(request, user, "threads", threads.enabled, threads.authorize_url)


@signed_page
async def threads_callback(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _complete_own(request, user, "threads", _threads_complete, "threads_user_id")


async def _threads_complete(request: web.Request, _pending: connect.Pending) -> dict[str, Any]:
    return await threads.complete(request)  # Threads keeps nothing in the flow's cookie


async def _complete_own(
    request: web.Request,
    user: Signed,
    service: str,
    complete: Complete,
    same_by: str,
) -> web.StreamResponse:
    """The callback of a sign-in that ends in one channel (Threads, YouTube, X): the channel
    connected, or the one with the same ``same_by`` in its config signed in again."""
    made = await _after_sign_in(request, user, service, complete)
    if isinstance(made, web.Response):
        return made
    _connected(request, await save_or_renew(request, user, service, made, same_by))


# --- Google sign-in for YouTube (relay/web/app/connect/youtube.py) ---------------------------


@signed_page
async def begin_youtube(request: web.Request, user: Signed) -> web.StreamResponse:
    form = await read_form(request)
    if not youtube.enabled(request):
        raise web.HTTPNotFound()
    private_as = str(form.get("private_as", "private"))
    state = connect.new_state()
    target = youtube.authorize_url(request, state)
    data = {"private_as": private_as if private_as in youtube.PRIVATE_AS else "private"}
    return _leave_for(request, user, "youtube", state, target, data)


@signed_page
async def youtube_callback(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _complete_own(request, user, "youtube", youtube.complete, "channel_id")


# --- LinkedIn: the person or a Page they administer (relay/web/app/connect/linkedin.py) -----


@signed_page
async def begin_linkedin(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _begin_own(request, user, "linkedin", linkedin.enabled, linkedin.authorize_url)


@signed_page
async def linkedin_callback(request: web.Request, user: Signed) -> web.StreamResponse:
    found = await _after_sign_in(request, user, "linkedin", _linkedin_sign_in)
    if isinstance(found, web.Response):
        return found
    grant, authors = found
    sealed = {"g": linkedin.seal(request, user.user_id, grant)}
    listed = {"authors": authors}
    return _offer_pick(request, user, "linkedin", "app/channels_linkedin.html", listed, sealed)


@signed_page
async def linkedin_pick(request: web.Request, user: Signed) -> web.StreamResponse:
    step = await _back_from_pick(request, user, "linkedin", "g", _linkedin_authors)
    if isinstance(step, web.Response):
        return step
    form, (grant, authors) = step
    picked = str(form.get("author", ""))
    chosen = next((a for a in authors if a["urn"] == picked), None)
    if chosen is None:
        return await _picked_nothing(request, user)
    made = linkedin.destination_for(request, chosen, grant)
    _connected(request, await save_or_renew(request, user, "linkedin", made, "author"))


async def _linkedin_sign_in(
    request: web.Request, _pending: connect.Pending
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    grant = await linkedin.grant(request)
    return grant, await linkedin.authors(request, grant["token"])


async def _linkedin_authors(
    request: web.Request, user_id: str, sealed: str
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    grant = linkedin.unseal(request, user_id, sealed)
    return grant, await linkedin.authors(request, grant["token"])


# --- X: OAuth 2.0 with PKCE (relay/web/app/connect/x.py) ---------------------------------------


@signed_page
async def begin_x(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _begin_own(request, user, "x", x_connect.enabled, x_connect.authorize_url)


@signed_page
async def x_callback(request: web.Request, user: Signed) -> web.StreamResponse:
    return await _complete_own(request, user, "x", x_connect.complete, "user_id")


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/channels/facebook", begin_facebook)
    app.router.add_get("/channels/facebook/callback", facebook_callback)
    app.router.add_post("/channels/facebook/pick", facebook_pick)
    app.router.add_post("/channels/threads", begin_threads)
    app.router.add_get("/channels/threads/callback", threads_callback)
    app.router.add_post("/channels/youtube", begin_youtube)
    app.router.add_get("/channels/youtube/callback", youtube_callback)
    app.router.add_post("/channels/linkedin", begin_linkedin)
    app.router.add_get("/channels/linkedin/callback", linkedin_callback)
    app.router.add_post("/channels/linkedin/pick", linkedin_pick)
    app.router.add_post("/channels/x", begin_x)
    app.router.add_get("/channels/x/callback", x_callback)
    services = "{service:mastodon|wordpress|micropub}"
    app.router.add_post(f"/channels/{services}", begin)
    app.router.add_get(f"/channels/{services}/callback", callback)
