"""Captions and moving photos in a real browser against a real ``relay serve``: chromium loads a
clip's captions track from the public page, parses the relay's WebVTT into cues and shows them
by default; hostile cue text stays text; a Live Photo's clip waits behind a "Live" button and
never plays by itself; the web app marks a clip without captions, in English and Swedish; axe
finds nothing on either page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    PASSWORD,
    axe_violations,
    screenshots,
    set_password,
    sign_in,
)
from tests.clips import web_ready_mp4
from tests.phones import live_clip, live_still
from tests.server import RelayServer

SRT = (
    "1\n00:00:00,000 --> 00:00:01,500\nVälkomna <b>alla</b>\n\n"
    '2\n00:00:01,500 --> 00:00:02,000\n<img src=x onerror="document.title=1">Hej\n\n'
)


def _upload(web: RelayServer, files: list[tuple[str, bytes]]) -> dict:
    token = web.anna["token"]  # type: ignore[attr-defined]
    with web.client(token) as client:
        response = client.post("/api/v1/uploads", files=[("file", f) for f in files])
    assert response.status_code == 202, response.text
    return web.wait_post(token, response.json()["id"])


def test_the_captions_track_loads_and_shows_by_default(
    web: RelayServer, page: Page, tmp_path: Path
) -> None:
    clip = web_ready_mp4(tmp_path / "möte.mp4", "320x240", 2)
    post = _upload(web, [(clip.name, clip.read_bytes()), ("möte.sv.srt", SRT.encode())])
    page.goto(post["url"])
    track = page.locator("video track[kind=captions]")
    expect(track).to_have_attribute("srclang", "sv")
    expect(track).to_have_attribute("label", "svenska")
    # The browser fetched and parsed the WebVTT: two cues, the first one showing.
    page.wait_for_function(
        "() => { const t = document.querySelector('video').textTracks[0];"
        " return t && t.mode === 'showing' && t.cues && t.cues.length === 2; }"
    )
    texts = page.evaluate(
        "() => Array.from(document.querySelector('video').textTracks[0].cues, c => c.text)"
    )
    assert texts == ["Välkomna alla", "Hej"]
    assert page.title() != "1"
    assert axe_violations(page) == []


def test_a_live_photo_waits_behind_a_live_button(
    web: RelayServer, page: Page, tmp_path: Path
) -> None:
    identifier = "5A5A5A5A-1B1B-4C4C-9D9D-0E0E0E0E0E0E"
    mov = live_clip(tmp_path / "IMG_7.MOV", identifier)
    post = _upload(web, [("IMG_7.HEIC", live_still(identifier)), ("IMG_7.MOV", mov.read_bytes())])
    page.goto(post["url"])
    motion = page.locator("video.motion")
    expect(motion).to_be_hidden()
    assert page.evaluate("() => document.querySelector('video.motion').paused")
    page.get_by_text("Live", exact=True).focus()
    page.keyboard.press("Enter")
    expect(motion).to_be_visible()
    assert page.evaluate("() => document.querySelector('video.motion').paused")  # no autoplay
    assert page.evaluate("() => document.querySelector('video.motion').muted")
    assert axe_violations(page) == []
    screenshots(page, "live-photo")


def test_the_web_app_marks_a_clip_without_captions(
    web: RelayServer, browser: Browser, tmp_path: Path
) -> None:
    clip = web_ready_mp4(tmp_path / "bare.mp4")
    captioned = web_ready_mp4(tmp_path / "told.mp4")
    post = _upload(
        web,
        [
            (clip.name, clip.read_bytes()),
            (captioned.name, captioned.read_bytes()),
            ("told.srt", SRT.encode()),
        ],
    )
    for locale, words in (("en-GB", "No captions"), ("sv-SE", "Ingen textning")):
        context = browser.new_context(locale=locale)
        page = context.new_page()
        if locale == "en-GB":
            sign_in(page, web)
        else:
            page.goto(web.url + "/")
            page.get_by_label("Användarnamn").fill("anna")
            page.get_by_label("Lösenord").fill(PASSWORD)
            page.get_by_role("button", name="Logga in").click()
        page.goto(web.url + f"/posts/{post['id']}")
        bare = page.locator("li.medium", has_text="bare.mp4")
        told = page.locator("li.medium", has_text="told.mp4")
        expect(bare.locator(".nocaptions")).to_contain_text(words)
        expect(told.locator(".nocaptions")).to_have_count(0)
        assert axe_violations(page) == []
        context.close()


def test_the_post_page_learns_of_pairing_and_missing_captions_without_a_reload(
    start_relay: Callable[..., RelayServer], tmp_path: Path, page: Page
) -> None:
    # The web node processes nothing; a second node on the same data folder does, once the
    # page shows the MOV and the clip waiting.
    data = tmp_path / "shared"
    web = start_relay(data, RELAY_WORKERS="0")
    anna = web.add_user("anna")
    set_password(web, "anna", PASSWORD)
    identifier = "7E7E7E7E-2A2A-4B4B-8C8C-3D3D3D3D3D3D"
    mov = live_clip(tmp_path / "IMG_9.MOV", identifier)
    clip = web_ready_mp4(tmp_path / "tal.mp4")
    files = [
        ("IMG_9.HEIC", live_still(identifier)),
        ("IMG_9.MOV", mov.read_bytes()),
        (clip.name, clip.read_bytes()),
    ]
    with web.client(anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads", files=[("file", f) for f in files], data={"draft": "true"}
        )
    assert response.status_code == 202, response.text
    sign_in(page, web)
    page.goto(web.url + f"/posts/{response.json()['id']}")
    expect(page.locator("li.medium")).to_have_count(3)
    page.evaluate("window.stillTheSamePage = true")
    start_relay(data, RELAY_WORKERS="2")
    expect(page.locator("li.medium")).to_have_count(2, timeout=60_000)  # the MOV joined its still
    talk = page.locator("li.medium", has_text="tal.mp4")
    expect(talk.locator(".status")).to_have_text("Ready", timeout=60_000)
    expect(talk.locator(".nocaptions")).to_contain_text("No captions")
    assert page.evaluate("window.stillTheSamePage") is True
