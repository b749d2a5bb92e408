"""Adaptive streaming through a real ``relay serve``: an uploaded clip gets an HLS ladder whose
playlists and segments are served with the right types and cache headers (on the local store
and on S3), segments and MP4s answer ``Range`` with 206 (and 416 past the end), the post page
and /embed/ point their players at the ladder, ``RELAY_VIDEO_HLS=false`` makes none, and a
deleted post's ladder leaves the bucket."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from handlers.ladder import attributes
from tests.clips import LOCATION, ffmpeg, has_location, picture, probe, stream, tone
from tests.contract.s3server import AWS_ENV, MotoS3
from tests.e2e.test_post_life import wait_for
from tests.server import RelayServer

PLAYLIST = "application/vnd.apple.mpegurl"


def clip_480p(tmp_path: Path) -> Path:
    """A 480-line clip with sound and a location, as a phone might send it (not web-ready:
    MPEG-4 Part 2 in AVI, so it is transcoded)."""
    path = tmp_path / "clip.avi"
    ffmpeg(*picture("854x480", 3, 15), *tone(3), "-c:v", "mpeg4", "-q:v", "5",
           "-c:a", "pcm_s16le", "-metadata", f"location={LOCATION}", str(path))  # fmt: skip
    return path


def upload(relay: RelayServer, token: str, path: Path) -> dict[str, Any]:
    with relay.client(token) as client:
        response = client.post("/api/v1/uploads", files=[("file", (path.name, path.read_bytes()))])
    assert response.status_code == 202, response.text
    post = relay.wait_post(token, response.json()["id"], timeout=120)
    [item] = post["items"]
    assert item["status"] == "ready", item
    return post


def player_playlist(relay: RelayServer, post: dict[str, Any]) -> str:
    """The master playlist URL the post page's player is given (and /embed/'s is the same)."""
    page = httpx.get(f"{relay.url}/p/{post['id']}").text
    [url] = re.findall(r'data-hls="([^"]+)"', page)
    assert '<script src="/static/player.js" defer>' in page
    embed = httpx.get(f"{relay.url}/embed/{post['id']}")
    assert re.findall(r'data-hls="([^"]+)"', embed.text) == [url]
    assert "script-src 'self'" in embed.headers["content-security-policy"]
    return url.replace("&amp;", "&")


def get_playlist(url: str) -> list[str]:
    response = httpx.get(url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"].startswith(PLAYLIST)
    assert response.headers["cache-control"] == "public, max-age=60"
    lines = response.text.splitlines()
    assert lines[0] == "#EXTM3U"
    return lines


def variants(master: list[str]) -> list[tuple[dict[str, str], str]]:
    return [
        (attributes(line), master[i + 1])
        for i, line in enumerate(master)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]


def fetch_rendition(playlist_url: str, into: Path) -> tuple[Path, list[str]]:
    """A media playlist's init segment and segments, fetched and joined into one file (what a
    player feeds its decoder); also the segment URLs."""
    lines = get_playlist(playlist_url)
    [init] = [attributes(line)["URI"] for line in lines if line.startswith("#EXT-X-MAP:")]
    segments = [line for line in lines if line and not line.startswith("#")]
    assert segments and "#EXT-X-ENDLIST" in lines
    data = b""
    for url in (init, *segments):
        response = httpx.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == "video/mp4"
        if "/media/" in url:
            assert "immutable" in response.headers["cache-control"]
        data += response.content
    into.write_bytes(data)
    return into, segments


def check_ladder(master_url: str, tmp_path: Path) -> list[str]:
    master = get_playlist(master_url)
    found = variants(master)
    # A 480-line source: its own 480 rung and 360 below it, never 720 or 1080.
    assert [v["RESOLUTION"] for v, _ in found] == ["854x480", "640x360"]
    [audio] = [attributes(line) for line in master if line.startswith("#EXT-X-MEDIA:")]
    assert audio["TYPE"] == "AUDIO"
    segment_urls: list[str] = []
    for attrs, uri in found:
        video_codec, audio_codec = attrs["CODECS"].split(",")
        assert video_codec.startswith("avc1.64") and audio_codec == "mp4a.40.2"
        assert int(attrs["BANDWIDTH"]) >= int(attrs["AVERAGE-BANDWIDTH"]) > 0
        assert float(attrs["FRAME-RATE"]) == 15.0
        joined, segments = fetch_rendition(uri, tmp_path / f"rung-{attrs['RESOLUTION']}.mp4")
        segment_urls += segments
        info = probe(joined)
        video = stream(info, "video")
        width, height = attrs["RESOLUTION"].split("x")
        assert (video["codec_name"], video["width"], video["height"]) == (
            "h264",
            int(width),
            int(height),
        )
        assert not has_location(info)
    joined, _ = fetch_rendition(attributes_uri(master), tmp_path / "audio.mp4")
    assert stream(probe(joined), "audio")["codec_name"] == "aac"
    return segment_urls


def attributes_uri(master: list[str]) -> str:
    [line] = [line for line in master if line.startswith("#EXT-X-MEDIA:")]
    return attributes(line)["URI"]


def test_a_clip_gets_a_ladder_served_with_types_caching_and_ranges(
    relay: RelayServer, tmp_path: Path
) -> None:
    post = upload(relay, relay.anna["token"], clip_480p(tmp_path))
    renditions = {r["name"]: r for r in post["items"][0]["renditions"]}
    assert renditions["hls"]["mime"] == PLAYLIST
    assert renditions["hls"]["url"] == player_playlist(relay, post)  # the API names /hls/ too
    assert (renditions["hls"]["width"], renditions["hls"]["height"]) == (854, 480)
    segments = check_ladder(player_playlist(relay, post), tmp_path)

    for url in (segments[0], renditions["mp4"]["url"]):
        size = len(httpx.get(url).content)
        part = httpx.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-199/{size}"
        assert len(part.content) == 100
        assert httpx.get(url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416


def test_playlists_of_private_posts_and_other_files_are_not_served(
    relay: RelayServer, tmp_path: Path
) -> None:
    post = upload(relay, relay.anna["token"], clip_480p(tmp_path))
    master_url = player_playlist(relay, post)
    item = post["items"][0]
    for key in (f"{post['id']}/{item['id']}/mp4.mp4", f"{post['id']}/{item['id']}/hls/../x.m3u8"):
        assert httpx.get(f"{relay.url}/hls/{key}").status_code == 404
    with relay.client(relay.anna["token"]) as client:
        assert client.patch(f"/api/v1/posts/{post['id']}", json={"private": True}).is_success
    assert httpx.get(master_url).status_code == 404
    page = httpx.get(f"{relay.url}/p/{post['id']}").text
    assert "data-hls" not in page and "player.js" not in page  # the signed MP4 plays


def test_the_ladder_can_be_switched_off(start_relay, tmp_path: Path) -> None:
    relay = start_relay(RELAY_VIDEO_HLS="false")
    token = relay.add_user("anna")["token"]
    post = upload(relay, token, clip_480p(tmp_path))
    assert [r["name"] for r in post["items"][0]["renditions"]] == ["mp4", "poster"]
    page = httpx.get(f"{relay.url}/p/{post['id']}").text
    assert "data-hls" not in page and "hls.min.js" not in page
    assert not list((relay.data_dir / "media" / post["id"]).rglob("*.m4s"))


def test_a_ladder_on_s3_plays_from_presigned_links_and_leaves_with_its_post(
    s3: MotoS3, bucket: str, start_relay, tmp_path: Path
) -> None:
    relay = start_relay(
        **AWS_ENV, RELAY_STORAGE_URL=f"s3://{bucket}/m", RELAY_S3_ENDPOINT_URL=s3.endpoint
    )
    token = relay.add_user("anna")["token"]
    post = upload(relay, token, clip_480p(tmp_path))
    stored = s3.list(bucket)
    segments = [key for key in stored if key.endswith(".m4s")]
    assert segments and all(stored[k]["ContentType"] == "video/mp4" for k in segments)
    assert all("immutable" in stored[k]["CacheControl"] for k in segments)
    urls = check_ladder(player_playlist(relay, post), tmp_path)
    assert all(url.startswith(s3.endpoint) and "Signature" in url for url in urls)
    part = httpx.get(urls[0], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10

    with relay.client(token) as client:
        assert client.delete(f"/api/v1/posts/{post['id']}").status_code == 204
    wait_for(lambda: not any(f"/{post['id']}/" in k for k in keys(s3, bucket)), "the ladder gone")


def keys(s3: MotoS3, bucket: str) -> list[str]:
    """The bucket's keys by listing alone (``MotoS3.list`` also HEADs each, which races the
    purge deleting them)."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
