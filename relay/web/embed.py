"""Players that embed: ``/embed/{post_id}``, a minimal page with a post's first video (its
poster, the post's title, a link to the post), made to sit in another site's iframe.

The post page points at it from its ``og:video`` and Twitter player card, and ``/oembed``
answers a video post with ``type: video`` and an iframe of it. Only this page and the post page
may be framed by any site (``frame-ancestors *``). A draft or a private post has no embed (404):
a private post's media are signed, expiring links that would die inside someone else's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from aiohttp import web

from relay.context import RELAY, Relay
from relay.errors import NotFound
from relay.model import Kind, Post, PostState
from relay.web import pages, streaming
from relay.web.app import i18n

EMBED_CSP = (
    "default-src 'none'; img-src * data:; media-src *; style-src 'self'; frame-ancestors *; "
    "base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Player:
    """What an embed of a post plays: the MP4, its size, and its poster if it has one."""

    mp4: Any
    poster: Any | None
    hls: Any | None = None
    """The HLS ladder's master playlist rendition, when the clip has one."""

    @property
    def width(self) -> int:
        return int(self.mp4.width or 640)

    @property
    def height(self) -> int:
        return int(self.mp4.height or 360)


def player(post: Post) -> Player | None:
    """The first ready video of a public post, or None (nothing to embed)."""
    if post.private or post.draft or post.state == PostState.DELETED:
        return None
    for item in post.items:
        if item.kind == Kind.VIDEO and item.status.value == "ready":
            mp4 = pages._rendition(item, "mp4", "video")
            if mp4 is not None:
                poster = pages._rendition(item, "poster", "preview")
                return Player(mp4, poster, pages._rendition(item, "hls"))
    return None


def embed_url(relay: Relay, post_id: str) -> str:
    return f"{relay.settings.public_url}/embed/{post_id}"


def fit(width: int, height: int, max_width: int | None, max_height: int | None) -> tuple[int, int]:
    """The player's size within an oEmbed consumer's maxwidth/maxheight, aspect kept."""
    scale = 1.0
    if max_width:
        scale = min(scale, max_width / width)
    if max_height:
        scale = min(scale, max_height / height)
    return max(1, int(width * scale)), max(1, int(height * scale))


def iframe(relay: Relay, post: Post, width: int, height: int) -> str:
    """oEmbed's ``html``: an iframe of the embed page; every value escaped."""
    src = escape(embed_url(relay, post.id), quote=True)
    title = escape(pages.display_title(post), quote=True)
    return (
        f'<iframe src="{src}" width="{width}" height="{height}" title="{title}" '
        'frameborder="0" allow="fullscreen; picture-in-picture" allowfullscreen></iframe>'
    )


async def embed_page(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    post = await pages._load_post(relay, request.match_info["post_id"])
    if post.state == PostState.DELETED:
        raise web.HTTPGone(headers=pages.SECURITY_HEADERS)
    found = player(post)
    if found is None:
        raise NotFound()
    ui_lang = pages.reader_language(request)
    words = i18n.translations(ui_lang)
    hls_url = (
        streaming.playlist_url(relay.settings.public_url, found.hls.key) if found.hls else None
    )
    html = pages._templates.get_template("embed.html").render(
        lang=pages.page_language(relay, post),
        ui_lang=ui_lang,
        _=words.gettext,
        title=pages.display_title(post, words.gettext),
        page_url=relay.page_url(post.id),
        video_url=relay.media_url(found.mp4.key),
        poster_url=relay.media_url(found.poster.key) if found.poster else None,
        width=found.width,
        height=found.height,
        hls_url=hls_url,
        hls_js=streaming.HLS_JS.is_file(),
    )
    headers = {
        **pages.SECURITY_HEADERS,
        "Content-Security-Policy": pages.PLAYER_CSP if hls_url else EMBED_CSP,
        "Vary": pages.VARY,
        "Cache-Control": "public, max-age=60",
    }
    return web.Response(text=html, content_type="text/html", headers=headers)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/embed/{post_id}", embed_page)
