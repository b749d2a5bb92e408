"""Captions while the HLS player plays, in a real chromium against a real ``relay serve``: a
clip uploaded with Swedish and English captions plays through hls.js from its ladder, which
names both as subtitles; the video then has exactly one captions track per language (the page's
own <track> elements are set aside, not shown a second time), the Swedish one showing by
default with the relay's cues, and the browser never falls back to the MP4. /embed/, which
has no <track> of its own, shows the same captions from the ladder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.test_hls_player import clip  # noqa: F401 (a fixture)
from tests.e2e.test_pairing import SRT, SRT_AS_VTT
from tests.server import RelayServer

TRACKS = """v => Array.from(v.textTracks, t => ({
    kind: t.kind, lang: t.language, label: t.label, mode: t.mode,
    cues: t.cues ? Array.from(t.cues, c => c.text) : null,
}))"""


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = RelayServer(tmp_path_factory.mktemp("hls-subs"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_the_video_has_one_captions_track_per_language_while_hls_js_plays(
    relay: RelayServer,
    page: Page,
    clip: bytes,  # noqa: F811
) -> None:
    token = relay.anna["token"]  # type: ignore[attr-defined]
    files = [
        ("file", ("clip.avi", clip, "video/x-msvideo")),
        ("file", ("clip.sv.srt", SRT.encode(), "application/x-subrip")),
        ("file", ("clip.en.vtt", SRT_AS_VTT, "text/vtt")),
    ]
    with relay.client(token) as client:
        response = client.post("/api/v1/uploads", files=files)
    assert response.status_code == 202, response.text
    post = relay.wait_post(token, response.json()["id"], timeout=120)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(post["url"])
    handle = page.locator("video").element_handle()
    assert handle is not None
    page.wait_for_function("v => v.dataset.levels !== undefined", arg=handle)
    handle.evaluate("v => { v.muted = true; return v.play(); }")
    # hls.js loads the default language's subtitles playlist and its WebVTT into that track.
    page.wait_for_function(
        "v => v.currentTime > 0.5 && Array.from(v.textTracks)"
        ".some(t => t.language === 'sv' && t.mode === 'showing' && t.cues && t.cues.length)",
        arg=handle,
    )
    assert handle.evaluate("v => v.dataset.player") == "hls.js"
    tracks = handle.evaluate(TRACKS)
    assert sorted((t["kind"], t["lang"], t["label"]) for t in tracks) == [
        ("captions", "en", "English"),
        ("captions", "sv", "svenska"),
    ]
    [sv] = [t for t in tracks if t["lang"] == "sv"]
    assert sv["cues"] == ["Välkomna till kommunfullmäktige", "Nästa punkt"]
    [en] = [t for t in tracks if t["lang"] == "en"]
    assert en["mode"] != "showing"  # one language at a time
    assert any("/hls/subtitles/sv.m3u8" in url for url in fetched)
    assert any(url.endswith("/sv.vtt") for url in fetched)
    assert not any(url.endswith("/mp4.mp4") for url in fetched)
    assert refused == []

    # /embed/ has no <track> of its own: its player gets the captions from the ladder alone.
    page.goto(f"{relay.url}/embed/{post['id']}")
    handle = page.locator("video").element_handle()
    assert handle is not None
    page.wait_for_function("v => v.dataset.levels !== undefined", arg=handle)
    handle.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "v => Array.from(v.textTracks)"
        ".some(t => t.language === 'sv' && t.mode === 'showing' && t.cues && t.cues.length)",
        arg=handle,
    )
    assert sorted(t["lang"] for t in handle.evaluate(TRACKS)) == ["en", "sv"]
    assert refused == []
