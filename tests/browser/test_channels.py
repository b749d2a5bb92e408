"""The channels room in a real browser: connecting Mastodon (OAuth 2 with PKCE), WordPress (its
application-password flow) and a Micropub site (IndieAuth) through their own sign-in pages on
strict local fakes, a Bluesky app password tried before it is kept, a webhook whose secret is
shown once, check and remove, CSRF and a forged sign-in refused, axe-core and both widths."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser.conftest import axe_violations, screenshots, set_password, sign_in
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.micropub import fake_micropub
from tests.fakes.wordpress import FakeWordPress
from tests.receivers import webhook_receiver
from tests.server import RelayServer

PASSWORD = "channel horse battery"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """A relay that may reach the fakes on 127.0.0.1, with user ``carin`` (who has a web
    password) and ``dag`` (another person)."""
    server = RelayServer(
        tmp_path_factory.mktemp("channels"), RELAY_ALLOW_PRIVATE_DESTINATIONS="true"
    )
    server.start()
    server.carin = server.add_user("carin")  # type: ignore[attr-defined]
    set_password(server, "carin", PASSWORD)
    server.add_user("dag")
    set_password(server, "dag", PASSWORD)
    yield server
    server.stop()


def enter(page: Page, relay: RelayServer, name: str = "carin") -> None:
    sign_in(page, relay, name, PASSWORD)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.get_by_role("link", name="Channels").click()
    expect(page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()


def on(page: Page, role: str, action: str, service: str) -> Locator:
    """A channel's button or link: its visible words and, for screen readers, which channel."""
    return page.get_by_role(role, name=re.compile(rf"^{re.escape(action)}\W+{service}"))  # type: ignore[arg-type]


def destinations(relay: RelayServer, user: str = "carin") -> list[dict]:
    listed = relay.cli("destination", "list", "--user", user, "--json").stdout
    return json.loads(listed)["destinations"]


def remove_all(relay: RelayServer, user: str = "carin") -> None:
    for destination in destinations(relay, user):
        relay.cli("destination", "remove", destination["id"])


def test_mastodon_connects_through_its_own_sign_in_and_gets_the_next_post(
    relay: RelayServer, page: Page
) -> None:
    remove_all(relay)
    with FakeMastodon() as mastodon:
        enter(page, relay)
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        # On the instance: its consent page, for the app the relay registered there.
        expect(page.get_by_role("heading", name="Authorization required")).to_be_visible()
        [app] = mastodon.apps.values()
        assert app["redirect_uris"] == [relay.url + "/channels/mastodon/callback"]
        assert "write:statuses" in app["scopes"]
        with page.expect_request(lambda r: "/channels/mastodon/callback" in r.url) as back:
            page.get_by_role("button", name="Authorize").click()

        expect(page.get_by_role("status")).to_contain_text("Connected: Mastodon, @anna@127.0.0.1")
        expect(page.locator(".channel-row")).to_have_count(1)
        [token] = mastodon.issued  # exchanged with the verifier of the S256 challenge
        [code] = mastodon.codes.values()
        assert code["used"]
        assert token not in page.content()
        [saved] = destinations(relay)
        assert saved["type"] == "mastodon" and saved["url"] == mastodon.url
        # The state is spent: the same callback again is refused and saves nothing.
        page.goto(back.value.url)
        expect(page.get_by_role("alert")).to_contain_text("expired or did not start here")
        assert len(destinations(relay)) == 1
        assert len(mastodon.calls("oauth.token")) == 1
        page.goto(relay.url + "/channels")

        # A post published now arrives at the instance, with the token the sign-in gave.
        post = relay.upload(relay.carin["token"], file=False, title="Hej", text="Från webben")
        delivery = relay.wait_delivery(relay.carin["token"], post["id"])
        assert delivery["status"] == "delivered", delivery
        [status] = mastodon.statuses
        assert status["text"].startswith("Hej\n\nFrån webben")
        [create] = mastodon.calls("statuses.create")
        assert create.headers["Authorization"] == f"Bearer {token}"

        # Check makes a real call; Remove asks first, then gives the token back.
        on(page, "button", "Check now", "Mastodon").click()
        expect(page.get_by_role("status")).to_contain_text("It works")
        assert mastodon.calls("accounts.verify")
        on(page, "link", "Remove…", "Mastodon").click()
        expect(page.get_by_role("heading", name="Remove Mastodon?")).to_be_visible()
        assert len(destinations(relay)) == 1  # not before the confirmation
        page.get_by_role("button", name="Yes, remove it").click()
        expect(page.get_by_role("status")).to_contain_text("The channel was removed.")
        assert destinations(relay) == []
        assert mastodon.issued == {}  # revoked


def test_mastodon_denied_or_forged_callbacks_save_nothing(
    relay: RelayServer, page: Page, context: BrowserContext
) -> None:
    remove_all(relay)
    with FakeMastodon() as mastodon:
        enter(page, relay)
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        page.get_by_role("button", name="Deny").click()
        expect(page.get_by_role("alert")).to_contain_text("You did not allow the relay")
        assert destinations(relay) == []

        # A code with a state this browser never started (a forged link) is refused, even with
        # a flow under way, and the code is never exchanged.
        page.goto(relay.url + "/channels")
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        page.goto(relay.url + "/channels/mastodon/callback?code=stolen&state=not-the-state")
        expect(page.get_by_role("alert")).to_contain_text("expired or did not start here")
        assert not mastodon.calls("oauth.token")
        assert destinations(relay) == []

        # The flow under way still ends well; its cookie is gone once it ended.
        page.goto(relay.url + "/channels")
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        page.get_by_role("button", name="Authorize").click()
        expect(page.get_by_role("status")).to_contain_text("Connected: Mastodon")
        assert len(destinations(relay)) == 1
        assert not [c for c in context.cookies() if c["name"] == "relay_connect"]

        # CSRF: the connect form without its token does nothing.
        answer = context.request.post(
            relay.url + "/channels/mastodon", form={"instance": mastodon.url}, max_redirects=0
        )
        assert answer.status == 403
        assert len(mastodon.apps) == 3


def test_a_flow_started_by_one_user_cannot_be_finished_by_another(
    relay: RelayServer, page: Page, context: BrowserContext
) -> None:
    remove_all(relay)
    remove_all(relay, "dag")
    with FakeMastodon() as mastodon:
        enter(page, relay)
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        consent = page.url
        # Dag signs in on the same browser while carin's flow is under way: the callback that
        # carries carin's state is not his.
        page.goto(relay.url + "/")
        page.get_by_role("button", name="Sign out", exact=True).click()
        sign_in(page, relay, "dag", PASSWORD)
        expect(page.get_by_text("Signed in as dag")).to_be_visible()
        page.goto(consent)
        page.get_by_role("button", name="Authorize").click()
        expect(page.get_by_role("alert")).to_contain_text("expired or did not start here")
        assert destinations(relay, "dag") == [] and destinations(relay) == []
        assert not mastodon.calls("oauth.token")


def test_wordpress_connects_with_an_application_password(relay: RelayServer, page: Page) -> None:
    remove_all(relay)
    with FakeWordPress(environment="local").running() as site:
        enter(page, relay)
        page.get_by_label("Your WordPress site's address").fill(site.url)
        page.get_by_role("button", name="Connect WordPress").click()
        expect(page.get_by_role("heading", name="Authorize Application")).to_be_visible()
        page.get_by_role("button", name="Yes, I approve of this connection").click()

        expect(page.get_by_role("status")).to_contain_text("Connected: WordPress, anna (127.0.0.1)")
        assert "password=" not in page.url  # the password left the address bar at once
        [password] = site.app_passwords
        assert password["name"] == "Relay" and password["app_id"]
        [saved] = destinations(relay)
        assert saved["type"] == "wordpress" and saved["url"] == site.url

        post = relay.upload(relay.carin["token"], file=False, title="Ny sida", text="Text")
        delivery = relay.wait_delivery(relay.carin["token"], post["id"])
        assert delivery["status"] == "delivered", delivery
        [made] = site.posts.values()
        assert made["title"]["raw"] == "Ny sida"
        screenshots(page, "channels-connected")

        # Rejecting at the site saves nothing.
        page.get_by_label("Your WordPress site's address").fill(site.url)
        page.get_by_role("button", name="Connect WordPress").click()
        page.get_by_role("button", name="No, I do not approve of this connection").click()
        expect(page.get_by_role("alert")).to_contain_text("You did not allow the relay")
        assert len(destinations(relay)) == 1


def test_micropub_connects_with_indieauth(relay: RelayServer, page: Page) -> None:
    remove_all(relay)
    with fake_micropub(indieauth_metadata=True) as site:
        enter(page, relay)
        page.get_by_label("Your site's address").fill(site.url)
        page.get_by_role("button", name="Connect your site").click()
        expect(page.get_by_role("heading", name=f"Sign in to {relay.url}/")).to_be_visible()
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_role("status")).to_contain_text(f"Connected: Micropub, {site.url}/")
        [saved] = destinations(relay)
        assert saved["url"] == site.endpoint
        post = relay.upload(relay.carin["token"], file=False, title="Anteckning", text="Hej")
        assert relay.wait_delivery(relay.carin["token"], post["id"])["status"] == "delivered"
        assert site.entries

    # A token endpoint that answers for another site's profile is not believed.
    remove_all(relay)
    with fake_micropub() as site, fake_micropub() as other:
        site.answer_me = other.me
        page.goto(relay.url + "/channels")
        page.get_by_label("Your site's address").fill(site.url)
        page.get_by_role("button", name="Connect your site").click()
        page.get_by_role("button", name="Allow").click()
        expect(page.get_by_role("alert")).to_contain_text("came back for another site")
        assert destinations(relay) == []


def test_bluesky_with_a_wrong_app_password_saves_nothing(relay: RelayServer, page: Page) -> None:
    remove_all(relay)
    with FakeBluesky() as bluesky:
        enter(page, relay)
        page.get_by_label("Bluesky handle").fill(bluesky.handle)
        page.get_by_label("App password").fill("wrong-pass-word-here")
        page.get_by_label("Server (leave empty for bsky.social)").fill(bluesky.url)
        page.get_by_role("button", name="Add Bluesky").click()
        expect(page.get_by_role("alert")).to_contain_text("did not accept the sign-in")
        # The handle is kept for another try; the password is not.
        expect(page.get_by_label("Bluesky handle")).to_have_value(bluesky.handle)
        expect(page.get_by_label("App password")).to_have_value("")
        assert destinations(relay) == []
        assert axe_violations(page) == []
        screenshots(page, "channels-problem")

        page.get_by_label("App password").fill(bluesky.app_password)
        page.get_by_role("button", name="Add Bluesky").click()
        expect(page.get_by_role("status")).to_contain_text(f"Connected: Bluesky, {bluesky.handle}")
        assert [d["type"] for d in destinations(relay)] == ["bluesky"]


def test_webhook_secret_is_shown_once_then_check_and_remove(
    relay: RelayServer, page: Page, context: BrowserContext
) -> None:
    remove_all(relay)
    with webhook_receiver() as receiver:
        enter(page, relay)
        page.get_by_label("Address (URL) to send posts to").fill(receiver.url)
        page.get_by_role("button", name="Add webhook").click()
        secret = page.get_by_label("Signing secret", exact=True).input_value()
        assert secret.startswith("whsec_")
        expect(page.get_by_text("shown only this once")).to_be_visible()
        assert axe_violations(page) == []
        screenshots(page, "channels-webhook-secret")
        page.goto(relay.url + "/channels")
        assert secret not in page.content()
        expect(page.get_by_label("Signing secret", exact=True)).to_have_count(0)

        on(page, "button", "Check now", "Webhook").click()
        expect(page.get_by_role("status")).to_contain_text("It works")
        [probe] = receiver.requests
        assert json.loads(probe.body) == {"type": "relay.check"}
        receiver.answers.append(410)
        on(page, "button", "Check now", "Webhook").click()
        expect(page.get_by_role("alert")).to_contain_text("The service refused")

        # Another person cannot check, see or remove it.
        [hook] = destinations(relay)
        other = context.browser.new_context()  # type: ignore[union-attr]
        try:
            theirs = other.new_page()
            enter(theirs, relay, "dag")
            expect(theirs.locator(".channel-row")).to_have_count(0)
            theirs.goto(relay.url + f"/channels/{hook['id']}/remove")
            expect(theirs.get_by_role("heading", name="There is no such channel")).to_be_visible()
            theirs.goto(relay.url + "/channels")
            token = theirs.locator("input[name=csrf_token]").first.input_value()
            answer = other.request.post(
                relay.url + f"/channels/{hook['id']}/remove", form={"csrf_token": token}
            )
            assert answer.status == 404
        finally:
            other.close()
        assert len(destinations(relay)) == 1

        # Remove: a removal without the CSRF token is refused; with it, after confirming.
        refused = context.request.post(relay.url + f"/channels/{hook['id']}/remove", form={})
        assert refused.status == 403
        on(page, "link", "Remove…", "Webhook").click()
        assert axe_violations(page) == []
        screenshots(page, "channels-remove")
        page.get_by_role("link", name="Keep it").click()
        assert len(destinations(relay)) == 1
        on(page, "link", "Remove…", "Webhook").click()
        page.get_by_role("button", name="Yes, remove it").click()
        expect(page.get_by_text("No channels yet.")).to_be_visible()
        assert destinations(relay) == []


def test_the_channels_page_is_accessible_in_both_languages_and_widths(
    relay: RelayServer, page: Page
) -> None:
    remove_all(relay)
    relay.add_destination("webhook", "http://127.0.0.1:9/hooks", user="carin")
    enter(page, relay)
    assert axe_violations(page) == []
    screenshots(page, "channels")
    page.set_viewport_size({"width": 390, "height": 844})
    assert axe_violations(page) == []
    page.get_by_role("button", name="Svenska").click()
    expect(page.get_by_role("heading", name="Kanaler", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Anslut Mastodon")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "channels-sv")
    # Keyboard: the first field of the add forms is reachable and shows its focus.
    page.get_by_label("Din Mastodon-server").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()


def test_without_javascript_the_way_out_is_a_link(relay: RelayServer, browser: Browser) -> None:
    remove_all(relay)
    context = browser.new_context(locale="en-GB", java_script_enabled=False)
    try:
        page = context.new_page()
        with FakeMastodon() as mastodon:
            enter(page, relay)
            page.get_by_label("Your Mastodon server").fill(mastodon.url)
            page.get_by_role("button", name="Connect Mastodon").click()
            host = mastodon.url.removeprefix("http://")
            expect(page.get_by_role("heading", name=f"Sign in at {host}")).to_be_visible()
            page.get_by_role("link", name=f"Continue to {host}").click()
            page.get_by_role("button", name="Authorize").click()
            expect(page.get_by_role("status")).to_contain_text("Connected: Mastodon")
            assert [d["type"] for d in destinations(relay)] == ["mastodon"]
    finally:
        context.close()


def test_a_private_address_is_refused_unless_the_operator_allows_it(
    web: RelayServer, page: Page
) -> None:
    """The ``web`` relay keeps the default: no requests to loopback or private addresses."""
    with FakeMastodon() as mastodon:
        sign_in(page, web)
        page.goto(web.url + "/channels")
        page.get_by_label("Your Mastodon server").fill(mastodon.url)
        page.get_by_role("button", name="Connect Mastodon").click()
        expect(page.get_by_role("alert")).to_contain_text("on a private network")
        assert mastodon.apps == {} and not mastodon.seen
        page.get_by_label("Address (URL) to send posts to").fill("http://10.0.0.5/hook")
        page.get_by_role("button", name="Add webhook").click()
        expect(page.get_by_role("alert")).to_contain_text("on a private network")
        expect(page.get_by_label("Signing secret", exact=True)).to_have_count(0)
