"""The HLS player in a real chromium against a real ``relay serve``: the post page's <video>
gets the ladder's master playlist through hls.js (vendored from npm), parses its rungs, fetches
segments from /media/ and plays (its time advances), with no CSP refusal; a private post's page
plays its MP4 without any script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.clips import ffmpeg, picture, tone
from tests.server import RelayServer


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = RelayServer(tmp_path_factory.mktemp("hls"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    ffmpeg(*picture("1280x720", 6, 25), *tone(6), "-c:v", "mpeg4", "-q:v", "5",
           "-c:a", "pcm_s16le", str(path))  # fmt: skip
    return path.read_bytes()


def post_of(relay: RelayServer, clip: bytes, **fields: str) -> dict:
    token = relay.anna["token"]  # type: ignore[attr-defined]
    post = relay.upload(token, file=("clip.avi", clip, "video/x-msvideo"), **fields)
    return relay.wait_post(token, post["id"], timeout=120)


def test_the_post_page_streams_the_ladder_with_hls_js(
    relay: RelayServer, page: Page, clip: bytes
) -> None:
    post = post_of(relay, clip, title="Stream")
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(post["url"])
    video = page.locator("video")
    handle = video.element_handle()
    assert handle is not None
    page.wait_for_function("v => v.dataset.levels !== undefined", arg=handle)
    # Chromium plays no HLS of its own: hls.js does, with the ladder's three rungs.
    assert handle.evaluate("v => [v.dataset.player, v.dataset.levels]") == ["hls.js", "3"]
    assert handle.evaluate("v => v.src.startsWith('blob:')")
    handle.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0.5 && !v.error", arg=handle)
    assert handle.evaluate("v => v.dataset.player") == "hls.js"  # never fell back to the MP4
    assert any(url.endswith("/hls/master.m3u8") and "/hls/" in url for url in fetched)
    assert any(url.endswith(".m4s") and "/media/" in url for url in fetched)
    assert not any(url.endswith("/mp4.mp4") for url in fetched)
    assert refused == []


def test_seeking_past_the_first_segment_plays_from_there(
    relay: RelayServer, page: Page, clip: bytes
) -> None:
    post = post_of(relay, clip)
    page.goto(post["url"])
    handle = page.locator("video").element_handle()
    assert handle is not None
    page.wait_for_function("v => v.dataset.levels !== undefined", arg=handle)
    handle.evaluate("v => { v.muted = true; v.currentTime = 4.5; return v.play(); }")
    page.wait_for_function("v => v.currentTime > 4.6 && !v.error && !v.seeking", arg=handle)


def test_a_private_posts_page_plays_its_signed_mp4(
    relay: RelayServer, page: Page, clip: bytes
) -> None:
    post = post_of(relay, clip, private="true")
    page.goto(post["url"])
    handle = page.locator("video").element_handle()
    assert handle is not None
    assert handle.evaluate("v => v.dataset.hls === undefined && v.dataset.player === undefined")
    assert "signature=" in handle.evaluate("v => v.getAttribute('src')")
    handle.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("v => v.currentTime > 0 && !v.error", arg=handle)
