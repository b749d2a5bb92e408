"""A broadcast's live HLS in the store (relay/storage/live.py): its removal finds every object
from the stored playlist, also segments stored before a playlist that would have listed them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relay.storage import live
from relay.storage.local import LocalStore

PLAYLIST = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXTINF:2.000000,
s00000.ts
#EXTINF:2.000000,
s00001.ts
"""


def test_removal_takes_every_segment_and_the_playlist_last(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "file"

    async def put(name: str, body: str) -> None:
        source.write_text(body)
        await store.put_file(live.key_of("p1", name), source, "application/octet-stream")

    async def run() -> list[str]:
        for name in ("s00000.ts", "s00001.ts", "s00002.ts"):  # s00002: not listed yet
            await put(name, name)
        await put(live.PLAYLIST, PLAYLIST)
        keys = await live.live_keys(store, "p1")
        assert keys[-1] == "live/p1/index.m3u8" and "live/p1/s00002.ts" in keys
        await live.remove(store, "p1")
        return [str(p.relative_to(tmp_path / "store")) for p in (tmp_path / "store").rglob("*")]

    left = asyncio.run(run())
    assert not [name for name in left if name.endswith((".ts", ".m3u8"))], left


def test_a_post_without_a_broadcast_has_only_the_playlist_key_to_try(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    assert asyncio.run(live.live_keys(store, "p2")) == ["live/p2/index.m3u8"]
