"""HLS playlists of public posts: ``GET /hls/{key}.m3u8``.

A ladder's playlists name their files relatively (relay/storage/hls.py); this route reads one
from the store and answers it with each name made the URL the store hands out (the relay's own
``/media/``, a public bucket URL or a presigned one), so a player can follow it on any store.
Segments themselves are fetched from those URLs (``/media/`` answers ``Range`` with 206).

Only a public post's ladder is served: a private post's page plays its signed MP4 instead,
since a playlist's links would have to be signed for as long as someone watches.

Captions (rendition ``captions``, WebVTT, one per language) are made by a companion step after
the ladder is stored, so the stored master does not name them: serving the master adds a
SUBTITLES group from the item's captions as they are now (``hls.with_subtitles``), and each
language's subtitles playlist (``…/hls/subtitles/sv.m3u8``) is made when asked, one segment: the
page's own captions track (``/p/…/captions/…/sv.vtt``). Nothing is rewritten in the store, and a
caption added or removed later shows at the next fetch, on any store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from relay import pairing
from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import NotFound
from relay.model import Item, Post, PostState
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
    if len(parts) == 5 and parts[3] == hls.SUBTITLES_DIR:
        return await _subtitles(relay, parts[0], parts[1], parts[4].removesuffix(".m3u8"))
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

    if len(parts) == 4:  # the master: with the item's captions as they are now
        item = await _public_item(relay, parts[0], parts[1])
        text = hls.with_subtitles(text, subtitle_tracks(item) if item else [])
    return _answer(hls.rewrite(text, key, url_for))


def _answer(text: str) -> web.Response:
    headers = {**pages.SECURITY_HEADERS, "Cache-Control": hls.PLAYLIST_CACHE}
    return web.Response(
        body=text.encode(),
        content_type=hls.PLAYLIST_MIME,
        headers=headers,
    )


def captions_of(item: Item) -> dict[str, float]:
    """The item's captions languages (``und`` when unknown), each with the clip's duration, in
    the page's order; none when the clip's duration is unknown (a segment needs one)."""
    duration = max((r.duration for r in item.renditions if r.duration), default=None)
    if duration is None:
        return {}
    return {(r.lang or "und"): duration for r in item.renditions if r.name == pairing.CAPTIONS}


def subtitle_tracks(item: Item) -> list[hls.SubtitleTrack]:
    # Named as the page's <track> labels them, so a player's menu reads alike either way.
    return [
        hls.SubtitleTrack(lang, pages.language_name(None if lang == "und" else lang))
        for lang in captions_of(item)
    ]


async def _public_item(relay: Relay, post_id: str, item_id: str) -> Item | None:
    post = await relay.db.read(queries.load_post, post_id)
    if post is None or post.private or post.draft or post.state == PostState.DELETED:
        return None
    return next((i for i in post.items if i.id == item_id), None)


async def _subtitles(relay: Relay, post_id: str, item_id: str, lang: str) -> web.Response:
    item = await _public_item(relay, post_id, item_id)
    duration = captions_of(item).get(lang) if item else None
    if duration is None:
        raise NotFound()
    vtt = pages.captions_url(relay, post_id, item_id, lang)
    return _answer(hls.subtitles_playlist(vtt, duration))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/hls/{key:.+}", playlist)
