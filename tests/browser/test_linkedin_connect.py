"""Connecting LinkedIn in a real browser through the strict fake's OAuth pages: code → token
(and refresh token) → the person and the Pages they administer, one picked on the relay's
page; the next post then reaches the person's feed and the Page, each as its own author."""

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
    screenshots,
    sign_in,
)
from tests.fakes.linkedin import FakeLinkedIn
from tests.server import RelayServer

PASSWORD = "linked horse battery"


@pytest.fixture(scope="module")
def linkedin() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, linkedin: FakeLinkedIn
) -> Iterator[RelayServer]:
    yield from channel_relay(
        tmp_path_factory.mktemp("linkedin"),
        PASSWORD,
        RELAY_LINKEDIN_CLIENT_ID=linkedin.client_id,
        RELAY_LINKEDIN_CLIENT_SECRET=linkedin.client_secret,
        RELAY_LINKEDIN_API_URL=linkedin.url,
        RELAY_LINKEDIN_OAUTH_URL=linkedin.url,
    )


def settled(relay: RelayServer, post_id: str) -> list[dict]:
    token = relay.erik["token"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    while True:
        deliveries = relay.wait_settled(token, post_id, 90)["deliveries"]
        if all(d["status"] != "pending" for d in deliveries) or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.2)


def connect(page: Page, relay: RelayServer, label: str) -> None:
    page.goto(relay.url + "/channels")
    page.get_by_role("button", name="Connect LinkedIn").click()
    expect(
        page.get_by_role("heading", name="Relay would like to access your LinkedIn account")
    ).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    expect(
        page.get_by_role("heading", name="Pick where the relay posts on LinkedIn")
    ).to_be_visible()
    page.get_by_label(label).check()
    page.get_by_role("button", name="Connect", exact=True).click()


def test_linkedin_connects_the_person_then_a_page(
    relay: RelayServer, linkedin: FakeLinkedIn, page: Page
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(relay.url + "/channels")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Connect LinkedIn").click()
    # LinkedIn's authorization page, for the relay's app and the scopes a person and a Page need.
    expect(
        page.get_by_role("heading", name="Relay would like to access your LinkedIn account")
    ).to_be_visible()
    for scope in ("w_member_social", "w_organization_social", "r_organization_admin"):
        assert scope in page.content()
    page.get_by_role("button", name="Allow").click()

    # Back at the relay: the person and the Page they administer, one to pick.
    expect(
        page.get_by_role("heading", name="Pick where the relay posts on LinkedIn")
    ).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "channels-linkedin-pick")
    assert not any(t in page.content() for t in linkedin.tokens)
    assert not any(r in page.content() for r in linkedin.refresh)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_label("Me (Anna Lind)")).to_be_checked()
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Connected: LinkedIn, Anna Lind")
    # The code was exchanged in a POST body, for this relay's callback, once.
    [code] = linkedin.codes.values()
    assert code["used"] and code["redirect_uri"] == relay.url + "/channels/linkedin/callback"
    assert all(not c.path.endswith("accessToken?") for c in linkedin.calls("oauth.token"))

    connect(page, relay, "LinkedIn Page Kommunen")
    expect(page.get_by_role("status")).to_contain_text("Connected: LinkedIn, Kommunen")
    expect(page.locator(".channel-row")).to_have_count(2)
    assert [d["type"] for d in erik_destinations(relay)] == ["linkedin", "linkedin"]

    # The next post reaches the person's feed and the Page, each with its own token.
    post = relay.upload(relay.erik["token"], title="Hej", text="Från webben (test)")  # type: ignore[attr-defined]
    deliveries = settled(relay, post["id"])
    assert [d["status"] for d in deliveries] == ["delivered", "delivered"], deliveries
    copies = {p["author"]: p for p in linkedin.live()}
    assert set(copies) == {linkedin.person, linkedin.organization}
    assert all(p["shown"].startswith("Hej\n\nFrån webben (test)") for p in copies.values())


def test_a_cancelled_sign_in_connects_nothing(
    relay: RelayServer, linkedin: FakeLinkedIn, page: Page
) -> None:
    cancelling_connects_nothing(page, relay, PASSWORD, "LinkedIn")


def test_a_revoked_token_asks_to_connect_again_and_a_new_sign_in_clears_it(
    relay: RelayServer, linkedin: FakeLinkedIn, page: Page
) -> None:
    sign_in(page, relay, "erik", PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    connect(page, relay, "Me (Anna Lind)")
    expect(page.get_by_role("status")).to_contain_text("Connected: LinkedIn, Anna Lind")
    person = {"id": page.url.split("added=")[1]}
    count = len(erik_destinations(relay))
    for token in list(linkedin.tokens):
        linkedin.revoke(token)
    post = relay.upload(relay.erik["token"], title="Hej", text="Återkallat")  # type: ignore[attr-defined]
    failed = {d["destination"]: d for d in settled(relay, post["id"])}[person["id"]]
    assert failed["error"]["code"] == "destination.reconnect_needed", failed

    page.goto(relay.url + "/channels")
    row = page.locator(f"#channel-{person['id']}")
    expect(row).to_contain_text("Reconnect needed")
    row.get_by_role("button", name="Connect again").click()
    page.get_by_role("button", name="Allow").click()
    page.get_by_label("Me (Anna Lind)").check()
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator(f"#channel-{person['id']}")).not_to_contain_text("Reconnect needed")
    assert page.url.split("added=")[1] == person["id"] and len(erik_destinations(relay)) == count

    post = relay.upload(relay.erik["token"], title="Hej igen", text="Förnyat")  # type: ignore[attr-defined]
    delivered = {d["destination"]: d for d in settled(relay, post["id"])}[person["id"]]
    assert delivered["status"] == "delivered", delivered
