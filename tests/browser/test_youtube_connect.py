"""Connecting a YouTube channel in a real browser, through the strict Google fake's consent
screen: code (with PKCE) → access and refresh token → the channel named on Channels; the next
clip then becomes a video, and a sign-in Google refuses asks to connect again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    axe_violations,
    cancelling_connects_nothing,
    channel_relay,
    erik_destinations,
    sign_in,
    start_connecting,
)
from tests.clips import web_ready_mp4
from tests.fakes.life import wait_for
from tests.fakes.youtube import FORCE_SSL, UPLOAD, FakeYouTube
from tests.server import RelayServer

PASSWORD = "channel horse battery"


@pytest.fixture(scope="module")
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory, youtube: FakeYouTube) -> Iterator[RelayServer]:
    yield from channel_relay(
        tmp_path_factory.mktemp("youtube"),
        PASSWORD,
        RELAY_YOUTUBE_CLIENT_ID=youtube.client_id,
        RELAY_YOUTUBE_CLIENT_SECRET=youtube.client_secret,
        RELAY_YOUTUBE_API_URL=youtube.url,
        RELAY_YOUTUBE_AUTHORIZE_URL=youtube.url + "/o/oauth2/v2/auth",
        RELAY_YOUTUBE_TOKEN_URL=youtube.url + "/token",
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return web_ready_mp4(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


def youtube_channels(relay: RelayServer) -> list[dict[str, Any]]:
    return [d for d in erik_destinations(relay) if d["type"] == "youtube"]


def delivery(relay: RelayServer, post_id: str, destination_id: str) -> dict[str, Any]:
    token = relay.erik["token"]  # type: ignore[attr-defined]

    def settled() -> dict[str, Any] | None:
        post = relay.wait_post(token, post_id, 90)
        found = [d for d in post["deliveries"] if d["destination"] == destination_id]
        return found[0] if found and found[0]["status"] != "pending" else None

    return wait_for(settled, "settled delivery", 90)


def connect(page: Page, relay: RelayServer) -> None:
    start_connecting(page, relay, PASSWORD, "YouTube")


def test_google_sign_in_connects_the_channel_and_the_next_clip_becomes_a_video(
    relay: RelayServer, youtube: FakeYouTube, page: Page, clip: bytes
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    assert axe_violations(page) == []
    page.get_by_label("Unlisted: anyone with the link sees them").check()
    page.get_by_role("button", name="Connect YouTube").click()
    # Google's consent screen, for the upload and the edit/delete scopes.
    expect(page.get_by_role("heading", name="Relay wants access")).to_be_visible()
    assert UPLOAD in page.content() and FORCE_SSL in page.content()
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_role("status")).to_contain_text("Connected: YouTube, Kommunen Play")
    assert axe_violations(page) == []
    content = page.content()
    assert youtube.refresh_token not in content
    assert not any(token in content for token in youtube.tokens)
    [code] = youtube.codes.values()
    assert code["used"] and code["redirect_uri"] == relay.url + "/channels/youtube/callback"
    # The code went to the token endpoint in a POST body, with the PKCE verifier.
    [exchange] = youtube.calls("oauth.token")
    assert "code=" not in exchange.path
    [channel] = youtube_channels(relay)

    token = relay.erik["token"]  # type: ignore[attr-defined]
    post = relay.upload(token, file=("clip.mp4", clip, "video/mp4"), title="Från webben")
    assert delivery(relay, post["id"], channel["id"])["status"] == "delivered"
    [video] = youtube.live()
    assert video["snippet"]["title"] == "Från webben"
    assert video["snippet"]["description"].endswith(post["url"])
    # The channel keeps the choice made when connecting: a post made private goes unlisted.
    with relay.client(token) as client:
        assert client.patch(f"/api/v1/posts/{post['id']}", json={"private": True}).is_success
    wait_for(lambda: video["status"]["privacyStatus"] == "unlisted", "unlisted video", 90)


def test_a_denied_sign_in_connects_nothing(
    relay: RelayServer, youtube: FakeYouTube, page: Page
) -> None:
    cancelling_connects_nothing(page, relay, PASSWORD, "YouTube")


def test_a_refused_sign_in_asks_to_connect_again_and_a_new_one_clears_it(
    relay: RelayServer, youtube: FakeYouTube, page: Page, clip: bytes
) -> None:
    connect(page, relay)
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: YouTube, Kommunen Play")
    [channel] = youtube_channels(relay)  # the same channel as before: connected again

    # Google withdraws the sign-in: the access token fails, and so does the refresh token.
    for access in list(youtube.tokens):
        youtube.expire(access)
    youtube.revoke(youtube.refresh_token)
    token = relay.erik["token"]  # type: ignore[attr-defined]
    post = relay.upload(token, file=("clip.mp4", clip, "video/mp4"), title="Utgånget")
    failed = delivery(relay, post["id"], channel["id"])
    assert failed["error"]["code"] == "destination.reconnect_needed", failed

    page.goto(relay.url + "/channels")
    row = page.locator(f"#channel-{channel['id']}")
    expect(row).to_contain_text("Reconnect needed")
    assert axe_violations(page) == []
    row.get_by_role("button", name="Connect again").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: YouTube, Kommunen Play")
    expect(page.locator(f"#channel-{channel['id']}")).not_to_contain_text("Reconnect needed")
    assert [c["id"] for c in youtube_channels(relay)] == [channel["id"]]

    post = relay.upload(token, file=("clip.mp4", clip, "video/mp4"), title="Förnyat")
    assert delivery(relay, post["id"], channel["id"])["status"] == "delivered"
    assert youtube.live()[-1]["snippet"]["title"] == "Förnyat"
