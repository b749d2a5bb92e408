"""The embed page in a real chromium against a real ``relay serve``: pasted (the oEmbed
``html``) into a page of another site, the clip loads and plays inside the iframe, with no CSP
refusals; the page has zero axe violations at both widths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import axe_violations, screenshots
from tests.clips import ffmpeg, picture, tone
from tests.server import RelayServer


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = RelayServer(tmp_path_factory.mktemp("embed"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def video_post(relay: RelayServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    clip = tmp_path_factory.mktemp("clip") / "clip.webm"
    ffmpeg(*picture("320x240", 2), *tone(2), "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-c:a", "libopus", "-shortest", str(clip))  # fmt: skip
    token = relay.anna["token"]  # type: ignore[attr-defined]
    post = relay.upload(token, file=("clip.webm", clip.read_bytes(), "video/webm"), title="Kören")
    return relay.wait_post(token, post["id"])


@pytest.fixture
def other_site(relay: RelayServer, video_post: dict) -> Iterator[str]:
    """Another origin (its own port) whose page holds the oEmbed ``html`` as a site pastes it."""
    snippet = httpx.get(f"{relay.url}/oembed", params={"url": video_post["url"]}).json()["html"]
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Blog</title></head>'
        f"<body><main><h1>Blog</h1>{snippet}</main></body></html>"
    ).encode()

    class Blog(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Blog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_pasted_embed_plays_in_another_sites_page(
    page: Page, video_post: dict, other_site: str
) -> None:
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(other_site)
    frame = page.frame_locator("iframe")
    video = frame.locator("video")
    video.wait_for()
    handle = video.element_handle()
    assert handle is not None
    handle.evaluate("v => { v.muted = true; return v.play(); }")
    embedded = handle.owner_frame()  # the wait runs in the iframe's document, not the blog's
    assert embedded is not None
    embedded.wait_for_function(
        "v => v.readyState >= 2 && v.currentTime > 0 && !v.error", arg=handle
    )
    assert handle.evaluate("v => [v.videoWidth, v.videoHeight]") == [320, 240]
    assert frame.get_by_role("link", name="Kören").get_attribute("href") == video_post["url"]
    # the embed's style sheet applied inside the frame
    assert handle.evaluate("v => getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    assert refused == []


def test_zero_axe_violations_on_the_embed_page_at_both_widths(
    relay: RelayServer, page: Page, video_post: dict
) -> None:
    response = page.goto(f"{relay.url}/embed/{video_post['id']}")
    assert response is not None and response.status == 200
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        assert axe_violations(page) == []
    page.get_by_role("link", name="Kören").focus()
    screenshots(page, "embed")


def test_the_post_page_of_a_video_plays_from_the_same_file(page: Page, video_post: dict) -> None:
    page.goto(video_post["url"])
    # The player (static/player.js) streams the HLS ladder; the MP4 stays its fallback.
    src = page.locator("video").evaluate("v => v.dataset.mp4 || v.getAttribute('src')")
    assert src == {r["name"]: r for r in video_post["items"][0]["renditions"]}["mp4"]["url"]
    assert page.locator('meta[name="twitter:card"]').get_attribute("content") == "player"
    assert Path(src).suffix == ".mp4"
