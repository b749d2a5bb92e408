"""Connecting an X account in a real browser, through the strict X fake's authorization page:
OAuth 2.0 with PKCE (the fake checks the verifier against the challenge), the code exchanged
with the client's id and secret as HTTP Basic; then the channel's link setting, the post page's
preview of it, and a post that follows it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    axe_violations,
    cancelling_connects_nothing,
    channel_relay,
    erik_destinations,
    screenshots,
    sign_in,
)
from tests.fakes.x import FakeX
from tests.server import RelayServer

PASSWORD = "channel horse battery"


@pytest.fixture(scope="module")
def x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory, x: FakeX) -> Iterator[RelayServer]:
    yield from channel_relay(
        tmp_path_factory.mktemp("x"),
        PASSWORD,
        RELAY_X_CLIENT_ID=x.client_id,
        RELAY_X_CLIENT_SECRET=x.client_secret,
        RELAY_X_API_URL=x.url,
        RELAY_X_AUTHORIZE_URL=x.url + "/i/oauth2/authorize",
    )


def delivered(relay: RelayServer, post_id: str) -> dict:
    token = relay.erik["token"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    while True:
        [delivery] = relay.wait_settled(token, post_id, 90)["deliveries"]
        if delivery["status"] != "pending" or time.monotonic() > deadline:
            return delivery
        time.sleep(0.2)


def test_a_denied_authorization_connects_nothing(relay: RelayServer, x: FakeX, page: Page) -> None:
    cancelling_connects_nothing(page, relay, PASSWORD, "X")


def test_connect_x_then_choose_where_the_link_goes(
    relay: RelayServer, x: FakeX, page: Page
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Connect X").click()
    # X's authorization page, for the relay's client and the scopes the channel needs.
    expect(page.get_by_role("heading", name="Relay wants to access your X account")).to_be_visible()
    assert "offline.access" in page.content() and "media.write" in page.content()
    page.get_by_role("button", name="Authorize app").click()

    expect(page.get_by_role("status")).to_contain_text("Connected: X, @kommunen")
    assert axe_violations(page) == []
    screenshots(page, "channels-x-connected")
    assert x.token not in page.content() and x.refresh not in page.content()
    [code] = x.codes.values()
    assert code["used"] and code["redirect_uri"] == relay.url + "/channels/x/callback"
    [token_call] = x.calls("oauth.token")
    assert token_call.headers["Authorization"].startswith("Basic ")
    [channel] = [d for d in erik_destinations(relay) if d["type"] == "x"]
    assert x.refresh not in json.dumps(erik_destinations(relay))  # the refresh token stays sealed

    # The link goes in a reply: X charges less for a post without one.
    row = page.locator(f"#channel-{channel['id']}")
    row.get_by_label("Where the link to your post goes").select_option("in_reply")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.get_by_label("Where the link to your post goes")).to_have_value("in_reply")

    token = relay.erik["token"]  # type: ignore[attr-defined]
    post = relay.upload(token, file=False, title="Hej", text="Från webben", draft="true")
    page.goto(f"{relay.url}/posts/{post['id']}")
    expect(page.locator(".preview").filter(has_text="X")).to_contain_text(
        "The link to the post's page goes in a reply to it"
    )
    with relay.client(token) as client:
        assert client.post(f"/api/v1/posts/{post['id']}/publish").status_code == 200
    assert delivered(relay, post["id"])["status"] == "delivered"
    first, reply = x.live()
    assert first["original"] == "Hej\n\nFrån webben"
    assert reply["reply_to"] == first["id"] and reply["original"] == post["url"]


def test_check_renews_a_lapsed_token_and_remove_gives_the_tokens_back(
    relay: RelayServer, x: FakeX, page: Page
) -> None:
    x.lifetime = 60  # the token X gives now ends within the five minutes before renewal
    sign_in(page, relay, "erik", PASSWORD)
    page.goto(relay.url + "/channels")
    page.get_by_role("button", name="Connect X").click()
    page.get_by_role("button", name="Authorize app").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: X, @kommunen")
    [channel] = [d for d in erik_destinations(relay) if d["type"] == "x"]
    lapsed, refresh = x.token, x.refresh
    x.expire(lapsed)

    row = page.locator(f"#channel-{channel['id']}")
    row.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_contain_text("It works")
    assert x.refreshed >= 1 and x.token != lapsed and refresh not in x.refresh_tokens
    expect(page.locator(f"#channel-{channel['id']}")).not_to_contain_text("Reconnect needed")

    renewed_access, renewed_refresh = x.token, x.refresh
    page.locator(f"#channel-{channel['id']}").get_by_role("link", name="Remove…").click()
    page.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("The channel was removed.")
    assert len(x.calls("oauth.revoke")) == 2
    assert renewed_refresh not in x.refresh_tokens and renewed_access not in x.tokens
