"""HLS ladders in a store: one rendition (``hls``) whose key is the master playlist, its media
playlists and segments under the same key prefix (``POST/ITEM/hls/720p/seg00001.m4s``).

The playlists are the ladder's list of files: deleting a post reads them to find every key
(``ladder_keys``), so no store needs to list a prefix. Serving rewrites a playlist's relative
URIs into the URLs the store hands out (``rewrite``), so a presigned S3 link, which a relative
URI would lose, works as well as the relay's own ``/media/``.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from relay.storage import valid_key

if TYPE_CHECKING:
    from relay.storage import Store

HLS: Final = "hls"
"""The rendition's name."""
PLAYLIST_MIME: Final = "application/vnd.apple.mpegurl"
SEGMENT_MIME: Final = "video/mp4"
PLAYLIST_CACHE: Final = "public, max-age=60"
"""Playlists are read often and rewritten with links that expire; segments are immutable."""
MAX_PLAYLIST_BYTES: Final = 1 << 20

_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')


def is_playlist(key: str) -> bool:
    return key.endswith(".m3u8")


def mime_of(name: str) -> str:
    return PLAYLIST_MIME if is_playlist(name) else SEGMENT_MIME


def resolve(playlist_key: str, uri: str) -> str | None:
    """The store key a playlist's relative ``uri`` names, or None when it is not one of the
    ladder's own files (absolute, another scheme, or out of the ladder's folder)."""
    if not uri or "://" in uri or uri.startswith("/") or "?" in uri or "#" in uri:
        return None
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), uri))
    root = "/".join(playlist_key.split("/")[:3])  # POST/ITEM/hls: the ladder's own folder
    if not key.startswith(root + "/"):
        return None
    try:
        return valid_key(key)
    except ValueError:
        return None


def references(text: str) -> list[str]:
    """Every URI in a playlist: its URI lines and ``URI="…"`` attributes, in order."""
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            found += _URI_ATTRIBUTE.findall(line)
        else:
            found.append(line)
    return found


def rewrite(text: str, playlist_key: str, url_for: Callable[[str], str]) -> str:
    """The playlist with each URI replaced by ``url_for(its key)``; a URI that names no file of
    the ladder is dropped with its line, never passed on."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):

            def swap(match: re.Match[str]) -> str:
                key = resolve(playlist_key, match.group(1))
                return f'URI="{url_for(key)}"' if key else 'URI=""'

            out.append(_URI_ATTRIBUTE.sub(swap, stripped))
        elif stripped:
            key = resolve(playlist_key, stripped)
            if key is not None:
                out.append(url_for(key))
        else:
            out.append("")
    return "\n".join(out) + "\n"


async def read_text(store: Store, key: str) -> str | None:
    """A stored playlist's text, or None when it is missing or implausibly large."""
    info = await store.stat(key)
    if info is None or info.size > MAX_PLAYLIST_BYTES:
        return None
    data = b"".join([chunk async for chunk in store.read(key)])
    return data.decode("utf-8", "replace")


async def ladder_keys(store: Store, master_key: str) -> list[str]:
    """Every key of the ladder under ``master_key``: segments and media playlists first, the
    master last (a purge cut short leaves the master, so a repeat still finds the rest)."""
    master = await read_text(store, master_key)
    if master is None:
        return [master_key]
    keys: list[str] = []
    for uri in references(master):
        child = resolve(master_key, uri)
        if child is None or child in keys:
            continue
        if is_playlist(child):
            text = await read_text(store, child)
            for inner in references(text or ""):
                key = resolve(child, inner)
                if key is not None and key not in keys:
                    keys.append(key)
        keys.append(child)
    return [*keys, master_key]


async def expand(store: Store, keys: list[str]) -> list[str]:
    """``keys`` with each master playlist's whole ladder in its place."""
    out: list[str] = []
    for key in keys:
        out += await ladder_keys(store, key) if is_playlist(key) else [key]
    return out


# Captions in the ladder (RFC 8216 4.3.4.1 EXT-X-MEDIA, 4.3.4.2 SUBTITLES; Apple's HLS authoring
# specification: WebVTT as a subtitles rendition). A clip's captions are made by a companion
# step after its ladder, so the stored master never names them: serving adds them
# (relay/web/streaming.py).
SUBTITLES_GROUP: Final = "subs"
CAPTIONS_CHARACTERISTICS: Final = (
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
)
"""Captions, not translated subtitles (Apple's HLS authoring specification): players list them
as captions (hls.js makes ``<track kind="captions">``), as the page's own track is."""
SUBTITLES_DIR: Final = "subtitles"
"""``POST/ITEM/hls/subtitles/sv.m3u8``: a subtitles playlist made when asked, never stored
(no rung is named so: handlers/ladder.py names them by height, and ``audio``)."""


@dataclass(frozen=True, slots=True)
class SubtitleTrack:
    """One language of a clip's captions as the master names it."""

    lang: str
    """BCP 47 tag, ``und`` when unknown; also the playlist's file name."""
    name: str
    """Its label in a player's menu (unique in the group, as RFC 8216 requires)."""


def _quoted(value: str) -> str:
    """An attribute's quoted-string: no ``"``, CR or LF may be in one (RFC 8216 4.2)."""
    return '"' + re.sub(r'["\r\n]', "", value) + '"'


def with_subtitles(master: str, tracks: list[SubtitleTrack]) -> str:
    """The master playlist with a SUBTITLES group of ``tracks`` (the first the default) and each
    variant stream naming it; the master as it is without tracks."""
    if not tracks:
        return master
    media = [
        f"#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID={_quoted(SUBTITLES_GROUP)},"
        f"NAME={_quoted(track.name)},LANGUAGE={_quoted(track.lang)},"
        f"DEFAULT={'YES' if i == 0 else 'NO'},AUTOSELECT=YES,"
        f"CHARACTERISTICS={_quoted(CAPTIONS_CHARACTERISTICS)},"
        f"URI={_quoted(f'{SUBTITLES_DIR}/{track.lang}.m3u8')}"
        for i, track in enumerate(tracks)
    ]
    out: list[str] = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:") and "SUBTITLES=" not in line:
            line += f",SUBTITLES={_quoted(SUBTITLES_GROUP)}"
        if media and line.startswith(("#EXT-X-MEDIA:", "#EXT-X-STREAM-INF:")):
            out += media  # with the other renditions, before the first variant stream
            media = []
        out.append(line)
    return "\n".join(out + media) + "\n"


def subtitles_playlist(vtt_url: str, duration: float) -> str:
    """A VOD subtitles playlist of one segment: the whole WebVTT file for the clip's
    ``duration``. EXT-X-TARGETDURATION is that duration rounded up: the segment's, rounded to the
    nearest integer, may not exceed it (RFC 8216 4.3.3.1)."""
    seconds = max(duration, 0.001)
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:{seconds:.3f},\n{vtt_url}\n#EXT-X-ENDLIST\n"
    )
