"""A live broadcast's HLS in a shared store, so that every node can serve it (issue 21).

The node that takes a broadcast in (relay/intake/live.py) copies each finished segment to
``live/POST/sNNNNN.ts`` (immutable) and then the playlist to ``live/POST/index.m3u8`` (short
cache); any other node answers ``/live/POST/…`` from there (relay/web/live.py). Only a store that
is not this node's own disk is used so (S3): the embedded default keeps the HLS on the node's
disk, as before.

The stored playlist names only segments that are stored already, and is the list of the
broadcast's objects: removing them (``live_keys``) needs no listing of a prefix, as the VOD
ladder's purge (relay/storage/hls.py) needs none.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Final

from relay.storage import LocalPaths, hls

if TYPE_CHECKING:
    from relay.storage import Store

log = logging.getLogger("relay.live")

PREFIX: Final = "live"
PLAYLIST: Final = "index.m3u8"
SEGMENT_MIME: Final = "video/mp2t"
SEGMENT_CACHE: Final = "public, max-age=86400, immutable"
PLAYLIST_CACHE: Final = "no-cache"
"""The playlist grows every segment: a cache must ask again each time."""
SEGMENT: Final = re.compile(r"^s(\d{5})\.ts$")
UNLISTED_TAIL: Final = 3
"""Segments past the last listed one that may be stored already (stored before the playlist
that lists them): removal takes these names too."""


def shared(store: Store) -> Store | None:
    """``store`` when other nodes read it too; None for this node's own disk."""
    return None if isinstance(store, LocalPaths) else store


def key_of(post_id: str, name: str) -> str:
    return f"{PREFIX}/{post_id}/{name}"


def segment_names(text: str) -> list[str]:
    """The segments a live playlist lists, in order (only ffmpeg's own ``sNNNNN.ts`` names)."""
    return [uri for uri in hls.references(text) if SEGMENT.match(uri)]


async def live_keys(store: Store, post_id: str) -> list[str]:
    """Every stored object of the post's broadcast, segments first, the playlist last (a
    removal cut short leaves the playlist, so a repeat still finds the rest)."""
    playlist = key_of(post_id, PLAYLIST)
    text = await hls.read_text(store, playlist)
    if text is None:
        return [playlist]
    names = segment_names(text)
    last = max((int(name[1:6]) for name in names), default=-1)  # sNNNNN.ts
    tail = [f"s{n:05d}.ts" for n in range(last + 1, last + 1 + UNLISTED_TAIL)]
    return [*(key_of(post_id, name) for name in [*names, *tail]), playlist]


async def remove(store: Store, post_id: str) -> int:
    """Remove the broadcast's stored objects; how many keys were deleted (missing ones too)."""
    keys = await live_keys(store, post_id)
    for key in keys:
        await store.delete(key)  # idempotent: a repeat after a crash is safe
    return len(keys)
