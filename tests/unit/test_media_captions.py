"""The adapter seam's ``Media.captions``: a clip's WebVTT tracks reach a channel's adapter with
their language, type, link and bytes; media without captions have none, as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relay.model import Item, ItemStatus, Kind, Post, Rendition, StoredObject
from relay.publish import Captions, Media
from relay.publish.deliver import Publisher
from relay.storage.local import LocalStore

VTT = b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHej\n"


def _present(post: Post) -> dict[str, Any]:
    return {
        "url": f"https://relay.example/p/{post.id}",
        "items": [
            {
                "id": item.id,
                "renditions": [
                    {"name": r.name, "url": f"https://relay.example/m/{r.key}"}
                    for r in item.renditions
                ],
            }
            for item in post.items
        ],
    }


def test_a_clip_s_captions_reach_the_adapter(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    source = tmp_path / "in.vtt"
    source.write_bytes(VTT)
    asyncio.run(store.put_file("p/i/captions.sv.vtt", source, "text/vtt"))
    clip = Item(
        id="i", post_id="p", position=0, filename="talk.mp4", declared_mime=None,
        status=ItemStatus.READY, kind=Kind.VIDEO,
        original=StoredObject("p/i/original.mp4", "video/mp4", 10, "0" * 64),
        renditions=[
            Rendition("mp4", "p/i/mp4.mp4", "video/mp4", 10, 320, 240, 1.0),
            Rendition("captions", "p/i/captions.sv.vtt", "text/vtt", len(VTT), lang="sv"),
        ],
    )  # fmt: skip
    photo = Item(
        id="j", post_id="p", position=1, filename="a.jpg", declared_mime=None,
        status=ItemStatus.READY, kind=Kind.IMAGE,
        renditions=[Rendition("large", "p/j/large.jpg", "image/jpeg", 10, 20, 10)],
    )  # fmt: skip
    post = Post(id="p", user_id="u", title="", text="", items=[clip, photo])
    publisher = Publisher(None, store, None, _present, max_age=60)  # type: ignore[arg-type]
    media: list[Media] = publisher.preview(post).media
    [track] = media[0].captions
    assert isinstance(track, Captions)
    assert (track.lang, track.mime, track.bytes) == ("sv", "text/vtt", len(VTT))
    assert track.url == "https://relay.example/m/p/i/captions.sv.vtt"

    async def read() -> bytes:
        return b"".join([chunk async for chunk in track.read()])

    assert asyncio.run(read()) == VTT
    assert media[1].captions == ()
