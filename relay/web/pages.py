"""Public pages: the post page (Open Graph, Twitter card, oEmbed discovery),
``/oembed``, and the media the local store holds. The embed page is relay/web/embed.py.

User-supplied active content is never rendered from this origin: only images, video, audio and
PDF are served inline; everything else goes out as a sandboxed download. A draft is nobody's to
see yet: its page and oEmbed answer 404, and its media, like a private post's, only answer at a
signed, expiring link. HTML routes answer errors as HTML pages; ``/api/`` keeps JSON.

The page's own words (and its error pages) are in the reader's language (``Accept-Language``
or the web app's language cookie), through the web app's Babel catalogues; the post's ``lang``
stays on the post's content. Its style is ``/static/public.css``, so the CSP needs no
``unsafe-inline``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import jinja2
from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal

from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import NotFound, RelayError
from relay.model import Item, Kind, Post, PostState
from relay.storage import LocalPaths, valid_key
from relay.storage.media import MediaSigner, served_disposition
from relay.web.app import i18n
from relay.web.lang import detect_language

log = logging.getLogger("relay.pages")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def _rendition(item: Item, *names: str) -> Any:
    by_name = {r.name: r for r in item.renditions}
    for name in names:
        if name in by_name:
            return by_name[name]
    return None


def preview_image(post: Post) -> tuple[Item, Any] | None:
    """The item and rendition that stand for the post when it is shared."""
    for item in post.items:
        if item.status.value == "ready":
            found = _rendition(item, "large", "poster", "preview", "medium")
            if found is not None:
                return item, found
    return None


Gettext = Callable[[str], str]
Ngettext = Callable[[str, str, int], str]


def _same(message: str) -> str:
    return message


def _kind_count(kind: str, n: int, ngettext: Ngettext | None) -> str:
    if ngettext is None:
        return f"{n} {kind}{'s' if n > 1 else ''}"
    words = {
        "image": ngettext("{n} image", "{n} images", n),
        "video": ngettext("{n} video", "{n} videos", n),
        "audio": ngettext("{n} audio file", "{n} audio files", n),
    }
    return words.get(kind, ngettext("{n} file", "{n} files", n)).format(n=n)


def summary(post: Post, limit: int = 200, ngettext: Ngettext | None = None) -> str:
    """The post's text, cut, or what it holds ("2 images"), in English unless ``ngettext``
    says otherwise (the page's reader's language; feeds stay English)."""
    if post.text:
        flat = " ".join(post.text.split())
        return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
    counts: dict[str, int] = {}
    for item in post.items:
        counts[item.kind.value if item.kind else "file"] = (
            counts.get(item.kind.value if item.kind else "file", 0) + 1
        )
    return ", ".join(_kind_count(kind, n, ngettext) for kind, n in counts.items())


def display_title(post: Post, _: Gettext = _same) -> str:
    return post.title or (post.items[0].filename if post.items else "") or _("Post")


async def _load_post(relay: Relay, post_id: str) -> Post:
    """The post as the public may see it: a draft is not there yet (404, as if unknown, so its
    existence does not show)."""
    post = await relay.db.read(queries.load_post, post_id)
    if post is None or post.draft:
        raise NotFound()
    return post


def page_language(relay: Relay, post: Post) -> str:
    """The page's ``lang``: the text's, when it is clearly English or Swedish; else the
    operator's default."""
    alts = (item.alt for item in post.items)
    return detect_language(post.title, post.text, *alts) or relay.settings.default_language


HTML_CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"
# The post page may be framed (embeds) and shows media from wherever the store serves them.
POST_CSP = (
    "default-src 'none'; img-src * data:; media-src *; style-src 'self'; frame-ancestors *; "
    "base-uri 'none'"
)
# A public video post plays HLS: its scripts from 'self', hls.js fetching playlists and
# segments from wherever the store serves them, into a blob: (Media Source) URL; the ladder's
# captions become hls.js's own <track src="data:,WEBVTT"> elements, filled with cues by script.
PLAYER_CSP = (
    "default-src 'none'; img-src * data:; media-src * blob: data:; script-src 'self'; "
    "connect-src *; style-src 'self'; frame-ancestors *; base-uri 'none'"
)
# One address answers in the reader's language: shared caches keep one copy per language.
VARY = "Accept-Language, Cookie"


def language_name(tag: str | None) -> str:
    """A captions track's label: its language named in that language (``sv`` → "svenska")."""
    try:
        name = Locale.parse(tag or "", sep="-").get_display_name() if tag else None
    except (ValueError, TypeError, UnknownLocaleError):
        name = None
    return name or (tag or "captions")


def reader_language(request: web.Request) -> str:
    """The language of the page's own words: the reader's, not the post's."""
    return i18n.choose_language(request, request.app[RELAY].settings.default_language)


async def post_page(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    post = await _load_post(relay, request.match_info["post_id"])
    if post.state == PostState.DELETED:
        raise web.HTTPGone(headers=SECURITY_HEADERS)  # the error page says it in words
    page_url = relay.page_url(post.id)
    preview = preview_image(post)
    # Feed discovery names the owner, so a private (unlisted) post's page does not carry it.
    owner = None if post.private else await relay.db.read(queries.user_name, post.user_id)
    feed_url = f"{relay.settings.public_url}/u/{quote(owner, safe='')}/feed.atom" if owner else None
    ui_lang = reader_language(request)
    words = i18n.translations(ui_lang)
    from relay.web import embed, streaming  # they build on this module
    from relay.web.live import on_air as live_now

    on_air = await live_now(relay, post) if post.source == "live" else None
    hls_url = streaming.hls_url_for(relay, post)
    html = _templates.get_template("post.html").render(
        lang=page_language(relay, post),
        ui_lang=ui_lang,
        _=words.gettext,
        ngettext=words.ngettext,
        number=functools.partial(format_decimal, locale=ui_lang),
        post=post,
        title=display_title(post, words.gettext),
        description=summary(post, ngettext=words.ngettext),
        page_url=page_url,
        oembed_url=f"{relay.settings.public_url}/oembed?url={quote(page_url, safe='')}&format=json",
        feed_url=feed_url,
        preview=preview[1] if preview else None,
        media_url=functools.partial(relay.media_url, private=post.private),
        rendition=_rendition,
        language_name=language_name,
        captions_url=functools.partial(captions_url, relay, post.id),
        Kind=Kind,
        player=embed.player(post),
        embed_url=embed.embed_url(relay, post.id),
        live=on_air,
        hls_url=hls_url,
        hls_js=streaming.HLS_JS.is_file(),
    )
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": PLAYER_CSP if hls_url or on_air else POST_CSP,
        "Vary": VARY,
        # A private post's page holds signed media links: no shared cache keeps it.
        "Cache-Control": "private, max-age=60" if post.private else "public, max-age=60",
    }
    return web.Response(text=html, content_type="text/html", headers=headers)


async def oembed(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    fmt = request.query.get("format", "json")
    if fmt != "json":
        raise web.HTTPNotImplemented(text="only format=json")
    target = urlparse(request.query.get("url", ""))
    base = urlparse(relay.settings.public_url)
    parts = target.path.rstrip("/").split("/")
    if (
        (target.netloc, target.scheme) != (base.netloc, base.scheme)
        or len(parts) < 2
        or (parts[-2] != "p")
    ):
        raise NotFound()
    post = await _load_post(relay, parts[-1])
    if post.private:
        # Embeds are for sharing; a private post's signed links would die inside them.
        raise NotFound()
    try:
        max_width = int(request.query.get("maxwidth", "0")) or None
        max_height = int(request.query.get("maxheight", "0")) or None
    except ValueError as exc:
        raise RelayError("bad_request", "maxwidth/maxheight must be integers") from exc
    body: dict[str, Any] = {
        "version": "1.0",
        "type": "link",
        "title": display_title(post),
        "provider_name": "relay",
        "provider_url": relay.settings.public_url + "/",
    }
    preview = preview_image(post)
    if preview is not None:
        item, large = preview
        fitting = [
            r
            for r in item.renditions
            if r.width
            and r.height
            and r.mime.startswith("image/")
            and (max_width is None or r.width <= max_width)
            and (max_height is None or r.height <= max_height)
        ]
        chosen = max(fitting, key=lambda r: r.width) if fitting else None
        thumb = _rendition(item, "small", "medium") or large
        body.update(
            thumbnail_url=relay.media_url(thumb.key, private=post.private),
            thumbnail_width=thumb.width,
            thumbnail_height=thumb.height,
        )
        if item.kind == Kind.IMAGE and chosen is not None:
            body.update(
                type="photo",
                url=relay.media_url(chosen.key, private=post.private),
                width=chosen.width,
                height=chosen.height,
            )
    from relay.web import embed  # it builds on this module

    player = embed.player(post)
    if player is not None:
        width, height = embed.fit(player.width, player.height, max_width, max_height)
        body.update(
            type="video", html=embed.iframe(relay, post, width, height), width=width, height=height
        )
    return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})


async def media(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY]
    key = request.match_info["key"]
    if "/unchecked" in key or not isinstance(relay.store, LocalPaths):
        raise NotFound()
    try:
        valid_key(key)
    except ValueError as exc:
        raise NotFound() from exc
    # Every stored object is under its post's id: the post says whether it is public.
    visibility = await relay.db.read(queries.post_visibility, key.split("/", 1)[0])
    if visibility is None:
        raise NotFound()
    headers = dict(SECURITY_HEADERS)
    if any(visibility):  # private or draft: only at a signed link, and never in shared caches
        signer = getattr(relay.store, "signer", None)
        left = None
        if isinstance(signer, MediaSigner):
            left = signer.check(key, request.query.get("expires"), request.query.get("signature"))
        if left is None:
            raise RelayError("media.link_invalid")
        headers["Cache-Control"] = f"private, max-age={min(left, 3600)}"
        headers["Referrer-Policy"] = "no-referrer"
    info = await relay.store.stat(key)
    if info is None:
        raise NotFound()
    headers.setdefault("Cache-Control", info.cache_control or "public, max-age=3600")
    # Shown in the browser when it is media a browser can show without running it (renditions
    # were once stored without a disposition and so went out as downloads); all else downloads.
    disposition = served_disposition(info.content_type, info.content_disposition)
    if disposition.startswith("attachment"):
        headers["Content-Security-Policy"] = "sandbox"
    headers["Content-Disposition"] = disposition
    headers["Content-Type"] = info.content_type
    return web.FileResponse(relay.store.local_path(key), headers=headers)


# --- errors as pages ------------------------------------------------------------------------


def _error_words(status: int, _: Gettext) -> tuple[str, str]:
    """The title and the advice of an error page, in the reader's language."""
    pages = {
        400: (
            _("Bad request"),
            _(
                "This address is not one the relay understands. Check the link against the one "
                "you were sent."
            ),
        ),
        403: (
            _("Not allowed"),
            _(
                "This link is not valid, or no longer is. Open the post's page again for a fresh "
                "one."
            ),
        ),
        404: (
            _("Not found"),
            _(
                "There is nothing at this address. The post may not be published yet or may have "
                "been removed, or the link is incomplete: check it against the one you were sent."
            ),
        ),
        405: (_("Not allowed"), _("This page cannot be used that way. Open it in a browser.")),
        410: (_("Deleted"), _("This post was deleted by its author and is no longer here.")),
        500: (
            _("Something went wrong"),
            _(
                "The relay could not show this page. Try again in a moment; if it keeps "
                "happening, tell whoever runs this relay."
            ),
        ),
        503: (
            _("Unavailable for now"),
            _(
                "The relay cannot reach its storage or database just now. Try again in a few "
                "minutes."
            ),
        ),
    }
    return pages.get(status) or pages[500 if status >= 500 else 400]


def _wants_html(request: web.Request) -> bool:
    """The HTML routes (``/``, ``/p/…``), and any other unknown address a browser asks for;
    ``/api/``, feeds, oEmbed and media keep their own error bodies."""
    path = request.path
    if path == "/" or path.startswith(("/p/", "/embed/")):
        return True
    if path.startswith("/api/") or request.match_info.http_exception is None:
        return False  # a route of its own, with its own kind of error body
    return "text/html" in request.headers.get("Accept", "")


def error_page(status: int, code: str, lang: str = "en") -> web.Response:
    words = i18n.translations(lang)
    title, advice = _error_words(status, words.gettext)
    html = _templates.get_template("error.html").render(
        lang=lang, _=words.gettext, status=status, title=title, advice=advice, code=code
    )
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": HTML_CSP,
        "Cache-Control": "no-store",
        "Vary": VARY,
    }
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _wants_html(request):
        return await handler(request)
    try:
        return await handler(request)
    except RelayError as exc:
        if exc.spec.http_status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        return error_page(exc.spec.http_status, exc.code, reader_language(request))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(exc.status, f"http.{exc.status}", reader_language(request))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_page(500, "server.internal", reader_language(request))


def captions_url(relay: Relay, post_id: str, item_id: str, lang: str | None) -> str:
    """A clip's captions track at the relay's own origin: a ``<track>`` from another origin (an
    S3 bucket) would need CORS there and ``crossorigin`` on the video, which the MP4 does not."""
    return f"{relay.settings.public_url}/p/{post_id}/captions/{item_id}/{quote(lang or 'und')}.vtt"


async def captions_track(request: web.Request) -> web.Response:
    """``GET /p/{post_id}/captions/{item_id}/{lang}.vtt``: whoever may see the page may read its
    captions (WebVTT, made by handlers/captions.py, text only)."""
    relay = request.app[RELAY]
    post = await _load_post(relay, request.match_info["post_id"])
    if post.state == PostState.DELETED:
        raise web.HTTPGone(headers=SECURITY_HEADERS)
    item = next((i for i in post.items if i.id == request.match_info["item_id"]), None)
    lang = request.match_info["lang"]
    track = next(
        (
            r
            for r in (item.renditions if item is not None else [])
            if r.name == "captions" and (r.lang or "und") == lang
        ),
        None,
    )
    if track is None:
        raise NotFound()
    body = b"".join([chunk async for chunk in relay.store.read(track.key)])
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=60" if post.private else "public, max-age=3600",
    }
    return web.Response(body=body, content_type="text/vtt", charset="utf-8", headers=headers)


def setup_routes(app: web.Application) -> None:
    # "/" is the web app's (relay/web/app).
    app.router.add_get("/p/{post_id}", post_page)
    app.router.add_get("/p/{post_id}/captions/{item_id}/{lang}.vtt", captions_track)
    app.router.add_get("/oembed", oembed)
    app.router.add_get("/media/{key:.+}", media)
