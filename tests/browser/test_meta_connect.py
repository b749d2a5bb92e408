"""Connecting a Facebook Page and its Instagram account in a real browser, through the strict
Graph fake's Login dialog: code → token → long-lived token → the person's Pages, picked on the
relay's page; the next post then reaches both with the Page's token."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    axe_violations,
    cancelling_connects_nothing,
    channel_relay,
    erik_destinations,
    sign_in,
)
from tests.fakes.meta import FakeMeta
from tests.server import RelayServer

PASSWORD = "channel horse battery"


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory, meta: FakeMeta) -> Iterator[RelayServer]:
    yield from channel_relay(
        tmp_path_factory.mktemp("meta"),
        PASSWORD,
        RELAY_META_APP_ID=meta.app_id,
        RELAY_META_APP_SECRET=meta.app_secret,
        RELAY_META_GRAPH_URL=meta.facebook_url,
        RELAY_META_DIALOG_URL=meta.url + "/dialog/oauth",
        RELAY_THREADS_APP_ID=meta.app_id,
        RELAY_THREADS_APP_SECRET=meta.app_secret,
        RELAY_THREADS_GRAPH_URL=meta.url + "/threads",
        RELAY_THREADS_AUTHORIZE_URL=meta.url + "/dialog/oauth",
    )


def test_facebook_login_connects_a_page_and_its_instagram(
    relay: RelayServer, meta: FakeMeta, page: Page
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Connect Facebook").click()
    # Facebook's Login dialog, for the relay's app and the permissions the channels need.
    expect(page.get_by_role("heading", name="Relay is requesting access")).to_be_visible()
    assert "pages_manage_posts" in page.content() and "instagram_content_publish" in page.content()
    page.get_by_role("button", name="Continue").click()

    # Back at the relay: the person's Pages and the Instagram account linked to each.
    expect(page.get_by_role("heading", name="Pick where the relay posts")).to_be_visible()
    assert meta.page_token not in page.content() and meta.user_token not in page.content()
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_label("Facebook Page Kommunen").check()
    page.get_by_label("Instagram @kommunen (linked to Kommunen)").check()
    page.get_by_role("button", name="Connect the ticked ones").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: Facebook, Kommunen")
    expect(page.locator(".channel-row")).to_have_count(2)
    # The code and the short-lived token were exchanged in POST bodies: no secret in a URL.
    assert len(meta.calls("oauth.token.post")) == 2 and meta.calls("oauth.token") == []
    [code] = meta.codes.values()
    assert code["used"] and code["redirect_uri"] == relay.url + "/channels/facebook/callback"
    saved = {d["type"]: d for d in erik_destinations(relay)}
    assert set(saved) == {"facebook", "instagram"}

    # The next post reaches the Page and the Instagram account, with the Page's token.
    post = relay.upload(relay.erik["token"], title="Hej", text="Från webben")  # type: ignore[attr-defined]
    token = relay.erik["token"]  # type: ignore[attr-defined]
    deliveries = relay.wait_settled(token, post["id"], 90)["deliveries"]
    deadline = time.monotonic() + 90
    while any(d["status"] == "pending" for d in deliveries) and time.monotonic() < deadline:
        time.sleep(0.2)
        deliveries = relay.wait_settled(token, post["id"], 90)["deliveries"]
    assert [d["status"] for d in deliveries] == ["delivered", "delivered"], deliveries
    [page_post] = meta.of_kind("page_post")
    assert page_post["message"].startswith("Hej\n\nFrån webben")
    [media] = meta.of_kind("ig_media")
    assert media["caption"].startswith("Hej\n\nFrån webben")
    [create] = meta.calls("page.feed.create")
    assert create.headers["Authorization"] == f"Bearer {meta.page_token}"


def test_a_denied_login_connects_nothing(relay: RelayServer, meta: FakeMeta, page: Page) -> None:
    cancelling_connects_nothing(page, relay, PASSWORD, "Facebook")


def settled_deliveries(relay: RelayServer, post_id: str) -> dict[str, dict]:
    token = relay.erik["token"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    while True:
        deliveries = relay.wait_settled(token, post_id, 90)["deliveries"]
        if all(d["status"] != "pending" for d in deliveries) or time.monotonic() > deadline:
            return {d["destination"]: d for d in deliveries}
        time.sleep(0.2)


def test_an_expired_page_token_asks_to_connect_again_and_a_new_login_clears_it(
    relay: RelayServer, meta: FakeMeta, page: Page
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    page.get_by_role("button", name="Connect Facebook").click()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Facebook Page Kommunen").check()
    page.get_by_role("button", name="Connect the ticked ones").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: Facebook, Kommunen")
    [facebook] = [d for d in erik_destinations(relay) if d["type"] == "facebook"]

    meta.expire(meta.page_token)  # Meta: "Session has expired", code 190 subcode 463
    post = relay.upload(relay.erik["token"], title="Hej", text="Utgånget")  # type: ignore[attr-defined]
    failed = settled_deliveries(relay, post["id"])[facebook["id"]]
    assert failed["error"]["code"] == "destination.reconnect_needed", failed

    page.goto(relay.url + "/channels")
    row = page.locator(f"#channel-{facebook['id']}")
    expect(row).to_contain_text("Reconnect needed")
    assert axe_violations(page) == []
    # Logging in again gives a new Page token; the same channel takes it, no second one.
    meta.page_token = "EAAPageRenewed" + "n" * 20
    row.get_by_role("button", name="Connect again").click()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Facebook Page Kommunen").check()
    page.get_by_role("button", name="Connect the ticked ones").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: Facebook, Kommunen")
    expect(page.locator(f"#channel-{facebook['id']}")).not_to_contain_text("Reconnect needed")
    assert [d["id"] for d in erik_destinations(relay) if d["type"] == "facebook"] == [
        facebook["id"]
    ]

    post = relay.upload(relay.erik["token"], title="Hej igen", text="Förnyat")  # type: ignore[attr-defined]
    delivered = settled_deliveries(relay, post["id"])[facebook["id"]]
    assert delivered["status"] == "delivered", delivered
    create = meta.calls("page.feed.create")[-1]
    assert create.headers["Authorization"] == f"Bearer {meta.page_token}"


def test_threads_login_connects_the_account(relay: RelayServer, meta: FakeMeta, page: Page) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    page.get_by_role("button", name="Connect Threads").click()
    # Threads' Authorization Window, for the Threads scopes only.
    expect(page.get_by_role("heading", name="Relay is requesting access")).to_be_visible()
    assert "threads_content_publish" in page.content()
    assert "pages_manage_posts" not in page.content()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("status")).to_contain_text("Connected: Threads, @kommunen")
    assert axe_violations(page) == []
    assert meta.threads_token not in page.content()
    # code → short-lived token → long-lived token, each in a POST body: no secret in a URL
    assert len(meta.calls("threads.oauth.token")) == 1
    assert len(meta.calls("threads.oauth.exchange")) == 1
    code = next(c for c in meta.codes.values() if "threads_basic" in str(c["scope"]))
    assert code["used"] and code["redirect_uri"] == relay.url + "/channels/threads/callback"
    [threads] = [d for d in erik_destinations(relay) if d["type"] == "threads"]

    post = relay.upload(relay.erik["token"], title="Tråden", text="Från Threads-inloggningen")  # type: ignore[attr-defined]
    delivered = settled_deliveries(relay, post["id"])[threads["id"]]
    assert delivered["status"] == "delivered", delivered
    thread = meta.of_kind("thread")[-1]
    assert thread["text"].startswith("Tråden\n\nFrån Threads-inloggningen")
