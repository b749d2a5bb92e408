"""HLS playlists of public posts: ``GET /hls/{key}.m3u8``.

A ladder's playlists name their files relatively (relay/storage/hls.py); this route reads one
from the store and answers it with each name made the URL the store hands out (the relay's own
``/media/``, a public bucket URL or a presigned one), so a player can follow it on any store.
Segments themselves are fetched from those URLs (``/media/`` answers ``Range`` with 206).

Only a public post's ladder is served: a private post's page plays its signed MP4 instead,
since a playlist's links would have to be signed for as long as someone watches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import NotFound
from relay.model import Post
from relay.storage import hls, valid_key
from relay.web import pages

HLS_JS = Path(__file__).parent / "static" / "vendor" / "hls.min.js"
"""Copied from npm at install (setup.py); without it only browsers with HLS of their own
stream, the others play the MP4."""


def playlist_url(public_url: str, key: str) -> str:
    return f"{public_url}/hls/{quote(key)}"  # as relay/web/present.py names a ladder


def hls_url_for(relay: Relay, post: Post) -> Callable[[str], str] | None:
    """How the post's page names a ladder's master playlist; None for a post whose ladders are
    not served (private: its page plays the signed MP4)."""
    if post.private or post.draft:
        return None
    if not any(r.name == hls.HLS for item in post.items for r in item.renditions):
        return None
    return lambda key: playlist_url(relay.settings.public_url, key)


async def playlist(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    key = request.match_info["key"]
    try:
        parts = valid_key(key).split("/")
    except ValueError as exc:
        raise NotFound() from exc
    if len(parts) < 4 or parts[2] != "hls" or not hls.is_playlist(key):
        raise NotFound()
    if await relay.db.read(queries.post_visibility, parts[0]) != (False, False):
        raise NotFound()  # unknown, private or draft: as if there were nothing
    text = await hls.read_text(relay.store, key)
    if text is None:
        raise NotFound()
    public_url = relay.settings.public_url

    def url_for(target: str) -> str:
        if hls.is_playlist(target):
            return playlist_url(public_url, target)
        return relay.media_url(target)

    headers = {**pages.SECURITY_HEADERS, "Cache-Control": hls.PLAYLIST_CACHE}
    return web.Response(
        body=hls.rewrite(text, key, url_for).encode(),
        content_type=hls.PLAYLIST_MIME,
        headers=headers,
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/hls/{key:.+}", playlist)
