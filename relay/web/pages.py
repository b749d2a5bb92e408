"""Public pages: the post page (Open Graph, Twitter card, oEmbed discovery), ``/oembed``, and
the media the local store holds.

User-supplied active content is never rendered from this origin: only images, video, audio and
PDF are served inline; everything else goes out as a sandboxed download.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import jinja2
from aiohttp import web

from relay import detect
from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import NotFound, RelayError
from relay.model import Item, Kind, Post, PostState
from relay.storage import LocalPaths

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


def summary(post: Post, limit: int = 200) -> str:
    if post.text:
        flat = " ".join(post.text.split())
        return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
    counts: dict[str, int] = {}
    for item in post.items:
        counts[item.kind.value if item.kind else "file"] = (
            counts.get(item.kind.value if item.kind else "file", 0) + 1
        )
    return ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items())


def display_title(post: Post) -> str:
    return post.title or (post.items[0].filename if post.items else "") or "Post"


async def _load_post(relay: Relay, post_id: str) -> Post:
    post = await relay.db.read(queries.load_post, post_id)
    if post is None:
        raise NotFound()
    return post


async def post_page(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    post = await _load_post(relay, request.match_info["post_id"])
    if post.state == PostState.DELETED:
        raise web.HTTPGone(text="This post was deleted.", headers=SECURITY_HEADERS)
    page_url = relay.page_url(post.id)
    preview = preview_image(post)
    # Feed discovery names the owner, so a private (unlisted) post's page does not carry it.
    owner = None if post.private else await relay.db.read(queries.user_name, post.user_id)
    feed_url = f"{relay.settings.public_url}/u/{quote(owner, safe='')}/feed.atom" if owner else None
    html = _templates.get_template("post.html").render(
        post=post,
        title=display_title(post),
        description=summary(post),
        page_url=page_url,
        oembed_url=f"{relay.settings.public_url}/oembed?url={quote(page_url, safe='')}&format=json",
        feed_url=feed_url,
        preview=preview[1] if preview else None,
        media_url=functools.partial(relay.media_url, private=post.private),
        rendition=_rendition,
        Kind=Kind,
    )
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; img-src * data:; media-src *; "
        "style-src 'unsafe-inline'; frame-ancestors *",
        "Cache-Control": "public, max-age=60",
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
    return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})


async def media(request: web.Request) -> web.StreamResponse:
    relay = request.app[RELAY]
    key = request.match_info["key"]
    if "/unchecked" in key or not isinstance(relay.store, LocalPaths):
        raise NotFound()
    try:
        info = await relay.store.stat(key)
    except ValueError as exc:
        raise NotFound() from exc
    if info is None:
        raise NotFound()
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = info.cache_control or "public, max-age=3600"
    disposition = info.content_disposition or "attachment"
    if not detect.served_inline(info.content_type):
        disposition = "attachment" + disposition.partition(";")[1] + disposition.partition(";")[2]
        headers["Content-Security-Policy"] = "sandbox"
    headers["Content-Disposition"] = disposition
    headers["Content-Type"] = info.content_type
    return web.FileResponse(relay.store.local_path(key), headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/p/{post_id}", post_page)
    app.router.add_get("/oembed", oembed)
    app.router.add_get("/media/{key:.+}", media)
