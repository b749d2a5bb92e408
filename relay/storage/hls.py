"""HLS ladders in a store: one rendition (``hls``) whose key is the master playlist, its media
playlists and segments under the same key prefix (``POST/ITEM/hls/720p/seg00001.m4s``).

The playlists are the ladder's list of files: deleting a post reads them to find every key
(``ladder_keys``), so no store needs to list a prefix. Serving rewrites a playlist's relative
URIs into the URLs the store hands out (``rewrite``), so a presigned S3 link, which a relative
URI would lose, works as well as the relay's own ``/media/``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
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
