"""Stream keys in ``/settings`` in a real browser: made with a title, shown once with a QR code
a phone app scans, copied, revoked; and the live post page, while a broadcast runs. Each page
passes axe-core (WCAG 2.1 AA)."""

from __future__ import annotations

import json
import subprocess

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import axe_violations, screenshots, sign_in
from tests.e2e.test_live import phone
from tests.server import RelayServer


def test_make_a_stream_key_scan_it_copy_it_and_revoke_it(
    web: RelayServer, page: Page, context: BrowserContext
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.url)
    sign_in(page, web)
    page.goto(web.url + "/settings#stream-keys")
    expect(page.get_by_text("You have no stream key.")).to_be_visible()
    page.get_by_label("Title of its broadcasts (optional)").fill("From the harbour")
    page.get_by_role("button", name="Make a stream key").click()
    expect(page.get_by_role("heading", name="Your new stream key")).to_be_visible()
    qr = page.get_by_role("img", name="QR code of the broadcasting address")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 100  # the SVG rendered
    url = page.locator("#rtmp-url").inner_text()
    assert url.startswith(f"rtmp://127.0.0.1:{web.rtmp_port}/live/live_")
    page.locator("button[data-copy='rtmp-url']").click()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert axe_violations(page) == []
    screenshots(page, "live-stream-key")

    page.get_by_role("link", name="Back to your settings").click()
    rows = page.locator("#stream-keys li.secret-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("From the harbour")
    assert url.rsplit("/", 1)[1] not in page.content()  # listed by its first characters only
    assert axe_violations(page) == []
    rows.first.get_by_role("link", name="Revoke it").click()
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(page.get_by_text("You have no stream key.")).to_be_visible()


def test_the_live_post_page_plays_while_the_broadcast_runs(web: RelayServer, page: Page) -> None:
    key = json.loads(web.cli("live", "key", "add", "--user", "anna", "--json").stdout)
    sender = subprocess.Popen(
        phone(key["rtmp_url"], 20), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        live: list = []
        with web.client(web.anna["token"]) as client:  # type: ignore[attr-defined]
            for _ in range(100):
                posts = client.get("/api/v1/posts").json()["posts"]
                live = [p for p in posts if p["source"] == "live"]
                if live:
                    break
                page.wait_for_timeout(200)
        assert live, "no live post"
        page.goto(live[0]["url"])
        expect(page.get_by_text("Live now", exact=True)).to_be_visible()
        video = page.locator("section.live video")
        expect(video).to_have_attribute("data-hls", f"{web.url}/live/{live[0]['id']}/index.m3u8")
        # hls.js (chromium plays no HLS itself) feeds the live playlist into the player.
        expect(video).to_have_attribute("data-player", "hls.js")
        for _ in range(150):  # the page's CSP forbids eval: wait_for_function cannot run
            if video.evaluate("v => v.currentTime") > 0.5:
                break
            page.wait_for_timeout(200)
        assert video.evaluate("v => v.currentTime") > 0.5, video.evaluate(
            "v => JSON.stringify({...v.dataset, err: v.error && v.error.message, rs: v.readyState})"
        )
        expect(page.get_by_role("link", name="live stream (HLS)")).to_be_visible()
        assert axe_violations(page) == []
        screenshots(page, "live-post-page")
    finally:
        sender.kill()
        sender.wait(30)
