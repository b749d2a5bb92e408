"""``GET /u/{user}/feed.atom``: an Atom feed (RFC 4287) of a user's public, ready posts, newest
first, each with a ``rel="enclosure"`` link per item's original, for readers and podcatchers
that pull instead of being pushed to.

Ids are the posts' page URLs: permanent, unique, and what a reader should open. Private posts are
left out (they are never delivered either), and so are posts still processing, so an entry does
not change under a reader that saw it once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from aiohttp import web

from relay.context import RELAY
from relay.db import queries
from relay.errors import NotFound
from relay.model import ItemStatus, Kind, Post
from relay.web.pages import SECURITY_HEADERS, display_title, summary

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 50
CONTENT_TYPE = "application/atom+xml"

# XML 1.0 cannot carry most control characters, even escaped; mail text sometimes has them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

ET.register_namespace("", ATOM)


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        element.text = _clean(text)
    return element


def _stamp(when: datetime | None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def _entry_html(post: Post, media_url: Callable[[str], str], page_url: str) -> str:
    """The entry's content as HTML (the feed escapes it again as ``type="html"`` wants)."""
    parts = [f"<p>{escape(block)}</p>" for block in post.text.split("\n\n") if block.strip()]
    for item in post.items:
        if item.status != ItemStatus.READY or item.kind != Kind.IMAGE:
            continue
        large = next((r for r in item.renditions if r.name in ("large", "medium")), None)
        if large is not None:
            src = escape(media_url(large.key))
            alt = escape(item.alt or post.title or item.filename)
            parts.append(f'<p><img src="{src}" alt="{alt}"></p>')
    parts.append(f'<p><a href="{escape(page_url)}">{escape(page_url)}</a></p>')
    return "\n".join(parts)


def render(
    posts: list[Post],
    user: str,
    feed_url: str,
    page_url: Callable[[str], str],
    media_url: Callable[[str], str],
) -> bytes:
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "id", feed_url)
    _add(feed, "title", f"{user} on relay")
    # The newest entry's time, so the feed's own stamp does not change when nothing did.
    _add(feed, "updated", _stamp(posts[0].created_at if posts else None))
    _add(feed, "link", rel="self", type=CONTENT_TYPE, href=feed_url)
    author = _add(feed, "author")
    _add(author, "name", user)
    _add(feed, "generator", "relay", uri="https://github.com/relay-media/relay")
    for post in posts:
        url = page_url(post.id)
        entry = _add(feed, "entry")
        _add(entry, "id", url)
        _add(entry, "title", display_title(post), type="text")
        _add(entry, "published", _stamp(post.created_at))
        _add(entry, "updated", _stamp(post.created_at))
        _add(entry, "link", rel="alternate", type="text/html", href=url)
        _add(entry, "summary", summary(post), type="text")
        _add(entry, "content", _entry_html(post, media_url, url), type="html")
        for item in post.items:
            if item.status != ItemStatus.READY or item.original is None:
                continue
            _add(
                entry,
                "link",
                rel="enclosure",
                type=item.original.mime,
                length=str(item.original.bytes),
                href=media_url(item.original.key),
                title=_clean(item.filename),
            )
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


async def user_feed(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    name = request.match_info["user"]
    user_id = await relay.db.read(queries.user_id_by_name, name)
    if user_id is None:
        raise NotFound()
    posts = await relay.db.read(queries.list_posts, user_id, MAX_ENTRIES, public=True)
    feed_url = f"{relay.settings.public_url}/u/{quote(name, safe='')}/feed.atom"
    body = render(posts, name, feed_url, relay.page_url, relay.media_url)
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=60"}
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8", headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/u/{user}/feed.atom", user_feed)
