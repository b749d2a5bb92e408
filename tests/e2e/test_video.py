"""Clips uploaded to a real ``relay serve``: playable MP4s and posters come back, locations do
not, and playlists dressed up as clips never make the relay read another file."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image

from tests.clips import (
    LOCATION,
    PASSWD_MARK,
    faststart,
    ffconcat_list,
    ffmpeg,
    has_location,
    hls_playlist,
    picture,
    probe,
    rotated,
    stream,
    tone,
    web_ready_mp4,
)
from tests.server import RelayServer


def test_clips_become_playable_mp4s_with_posters(relay: RelayServer, tmp_path: Path) -> None:
    webm = tmp_path / "clip.webm"
    ffmpeg(*picture(), *tone(), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus",
           "-shortest", str(webm))  # fmt: skip
    flat = web_ready_mp4(tmp_path / "flat.mov", "320x180", 1, "-metadata", f"location={LOCATION}")
    phone = rotated(flat, tmp_path / "IMG_0001.MOV")
    assert has_location(probe(phone))
    memo = tmp_path / "memo.wav"
    ffmpeg(*tone(), str(memo))
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[("file", (path.name, path.read_bytes())) for path in (webm, phone, memo)],
        )
    assert response.status_code == 202, response.text
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    clip, portrait, audio = post["items"]
    for item, size in ((clip, (320, 240)), (portrait, (180, 320))):
        assert (item["kind"], item["status"], item["progress"]) == ("video", "ready", 1.0), item
        renditions = {r["name"]: r for r in item["renditions"]}
        mp4, poster = renditions["mp4"], renditions["poster"]
        assert (mp4["mime"], (mp4["width"], mp4["height"])) == ("video/mp4", size)
        assert abs(mp4["duration"] - 1.0) <= 0.2
        served = httpx.get(mp4["url"])
        assert served.headers["content-type"] == "video/mp4"
        local = tmp_path / f"served-{item['id']}.mp4"
        local.write_bytes(served.content)
        info = probe(local)
        video = stream(info, "video")
        assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
        assert faststart(local) and not has_location(info)
        image = Image.open(io.BytesIO(httpx.get(poster["url"]).content))
        assert image.format == "JPEG" and image.size == size == (poster["width"], poster["height"])

    original = httpx.get(portrait["original"]["url"]).content
    assert LOCATION[:8].encode() not in original  # the phone's position is not served
    assert not has_location(probe(_saved(tmp_path / "original.mov", original)))

    assert (audio["kind"], audio["status"]) == ("audio", "ready")
    [rendition] = audio["renditions"]
    assert (rendition["name"], rendition["mime"]) == ("audio", "audio/mp4")
    assert abs(rendition["duration"] - 1.0) <= 0.2


def test_playlists_named_like_clips_are_never_followed(relay: RelayServer) -> None:
    tricks = [
        ("clip.mp4", hls_playlist()),
        ("clip.avi", ffconcat_list()),
        ("clip.ts", hls_playlist()),
        ("clip.mov", b"concat:/etc/passwd|/etc/passwd\n"),
    ]
    with relay.client(relay.anna["token"]) as client:
        response = client.post("/api/v1/uploads", files=[("file", t) for t in tricks])
    assert response.status_code == 202, response.text
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    assert len(post["items"]) == len(tricks)
    for item in post["items"]:
        assert item["status"] == "failed" or item["kind"] == "file", item
        urls = [r["url"] for r in item["renditions"]] + [(item["original"] or {}).get("url")]
        for url in filter(None, urls):
            assert PASSWD_MARK not in httpx.get(url).content


def _saved(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
