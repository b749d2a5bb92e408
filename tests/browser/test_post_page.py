"""One post's page (``/posts/{id}``) in a real browser against a real ``relay serve`` that
cross-posts to a strict Mastodon fake: the preview as Mastodon will get it, edit, schedule in the
user's time zone, publish (the copy's state changes without a reload), take down, delete with
a confirmation that works without JavaScript; another user's post, hostile text, keyboard use,
axe-core and both screen widths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, axe_violations, screenshots, set_password, sign_in
from tests.fakes.life import wait_for
from tests.fakes.mastodon import FakeMastodon, countable_length
from tests.server import RelayServer

LONG_TEXT = " ".join(f"Torget{n} invigdes i dag med musik och tal." for n in range(40))
ZONE = "Europe/Stockholm"


@pytest.fixture(scope="module")
def mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon() as fake:
        yield fake


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, mastodon: FakeMastodon
) -> Iterator[RelayServer]:
    """A relay whose ``anna`` (web password, time zone Stockholm) posts to the Mastodon fake,
    and a second user ``bo``."""
    server = RelayServer(
        tmp_path_factory.mktemp("onepost"), RELAY_ALLOW_PRIVATE_DESTINATIONS="true"
    )
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    set_password(server, "anna", PASSWORD)
    server.cli("user", "timezone", "anna", ZONE)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    server.add_user("bo")
    set_password(server, "bo", PASSWORD)
    yield server
    server.stop()


def _token(relay: RelayServer) -> str:
    return relay.anna["token"]  # type: ignore[attr-defined]


def _api_post(relay: RelayServer, post_id: str) -> dict:
    with relay.client(_token(relay)) as client:
        return client.get(f"/api/v1/posts/{post_id}").json()


def _ready_draft(relay: RelayServer, **fields: str) -> dict:
    post = relay.upload(_token(relay), draft="true", **fields)
    return relay.wait_post(_token(relay), post["id"])


def test_preview_edit_schedule_publish_and_the_copy_updates_live(
    relay: RelayServer, mastodon: FakeMastodon, page: Page
) -> None:
    post = _ready_draft(relay, title="Torget", text=LONG_TEXT)
    sign_in(page, relay)
    page.get_by_role("link", name="Torget").click()
    page.wait_for_url(f"**/posts/{post['id']}")
    expect(page.get_by_role("heading", name="Torget", exact=True)).to_be_visible()
    expect(page.locator(".state")).to_contain_text("Draft")
    expect(page.locator(".medium .status")).to_have_text("Ready")
    expect(page.get_by_text("Nothing is sent until the post is published.")).to_be_visible()

    # The preview: Mastodon's copy, cut to the instance's 500 characters before the link.
    preview = page.locator(".preview")
    expect(preview.get_by_role("heading")).to_have_text("Mastodon (127.0.0.1)")
    expect(preview).to_contain_text("Shortened to fit the channel's limit of 500 characters")
    expect(preview).to_contain_text("Media that go with it: p.jpg")
    shown = preview.locator(".preview-text").inner_text()
    assert shown.startswith("Torget\n\nTorget0 invigdes")
    assert shown.endswith("…\n\n" + post["url"])
    assert (
        countable_length(shown) <= 500 < countable_length(f"Torget\n\n{LONG_TEXT}\n\n{post['url']}")
    )
    assert axe_violations(page) == []
    screenshots(page, "post-draft")

    # Edit the title and the photo's alt text.
    page.get_by_label("Post title").fill("Torget en solig dag")
    page.get_by_label("Alt text of p.jpg").fill("Folk på torget i solsken")
    page.get_by_role("button", name="Save the changes").click()
    expect(page.get_by_role("status").filter(has_text="Your changes are saved.")).to_be_visible()
    expect(page.get_by_role("heading", name="Torget en solig dag")).to_be_visible()
    expect(page.get_by_label("Alt text of p.jpg")).to_have_value("Folk på torget i solsken")
    shown = page.locator(".preview-text").inner_text()
    assert shown.startswith("Torget en solig dag\n\n")

    # Schedule for tomorrow 09:30, Stockholm time: the relay keeps that moment.
    tomorrow = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=1)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    expect(page.get_by_label(f"Publish at (your time zone: {ZONE})")).to_be_visible()
    page.get_by_label(f"Publish at (your time zone: {ZONE})").fill(
        tomorrow.strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_role("button", name="Schedule it").click()
    expect(page.get_by_role("status").filter(has_text="The post is scheduled.")).to_be_visible()
    expect(page.locator(".state")).to_contain_text(tomorrow.strftime("Scheduled: %Y-%m-%d 09:30"))
    expect(page.locator(".state")).to_contain_text(ZONE)
    published_at = datetime.fromisoformat(_api_post(relay, post["id"])["publish_at"])
    assert published_at == tomorrow
    page.get_by_role("link", name="Back to your posts").click()
    listed = page.locator(f"#post-{post['id']}")
    expect(listed.locator(".state")).to_contain_text("Scheduled")
    page.get_by_role("link", name="Scheduled", exact=True).click()
    expect(page.locator(f"#post-{post['id']}")).to_be_visible()

    # Publish now: the copy goes to Mastodon and the page shows it sent, without a reload.
    page.get_by_role("link", name="Torget en solig dag").click()
    page.get_by_role("button", name="Publish it now").click()
    expect(page.get_by_role("status").filter(has_text="The post is published.")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    delivery = page.locator(".delivery")
    expect(delivery).to_contain_text("Mastodon (127.0.0.1): Sent", timeout=60_000)
    [status] = mastodon.statuses
    expect(delivery.get_by_role("link", name="View the copy")).to_have_attribute(
        "href", status["url"]
    )
    assert page.evaluate("window.stillTheSamePage") is True
    assert status["text"] == shown  # the preview was what Mastodon got
    assert mastodon.media[status["media_attachments"][0]["id"]].description == (
        "Folk på torget i solsken"
    )
    assert axe_violations(page) == []
    screenshots(page, "post-published")

    # The public page shows the new title and alt text.
    page.get_by_role("link", name="Open the post's public page").click()
    expect(page.get_by_role("heading", name="Torget en solig dag")).to_be_visible()
    expect(page.get_by_role("img", name="Folk på torget i solsken")).to_be_visible()

    # An edit of the published post reaches its copy on Mastodon.
    page.go_back()
    page.get_by_label("Post title").fill("Torget, en solig dag")
    page.get_by_role("button", name="Save the changes").click()
    expect(page.get_by_role("status").filter(has_text="Your changes are saved.")).to_be_visible()
    wait_for(
        lambda: mastodon.statuses[0]["text"].startswith("Torget, en solig dag\n\n"),
        "the edit on Mastodon",
    )

    # Take it down: the copy leaves Mastodon, the post is a draft again.
    page.get_by_role("button", name="Take down (back to draft)").click()
    # (the page's notice; the copy's own status may say "Taken down" by now as well)
    expect(
        page.get_by_role("status").filter(has_text="The post is taken down from your channels")
    ).to_be_visible()
    expect(page.locator(".state")).to_contain_text("Draft")
    wait_for(lambda: mastodon.deleted, "the copy deleted on Mastodon")
    expect(page.locator(".delivery")).to_contain_text("Taken down", timeout=60_000)


def test_delete_asks_first_and_works_without_javascript(
    relay: RelayServer, browser: Browser
) -> None:
    post = _ready_draft(relay, title="Att radera")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, relay)
        page.goto(relay.url + f"/posts/{post['id']}")
        page.get_by_role("link", name="Delete this post…").click()
        expect(page.get_by_role("heading", name="Delete this post?")).to_be_visible()
        page.get_by_role("link", name="No, keep it").click()  # changed one's mind: nothing
        expect(page.get_by_role("heading", name="Att radera")).to_be_visible()
        page.get_by_role("link", name="Delete this post…").click()
        page.get_by_role("button", name="Yes, delete it").click()
        expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
        expect(page.locator(f"#post-{post['id']}")).to_have_count(0)
        with page.expect_response(relay.url + f"/posts/{post['id']}") as answer:
            page.goto(relay.url + f"/posts/{post['id']}")
        assert answer.value.status == 410
        expect(page.get_by_role("heading", name="This post was deleted")).to_be_visible()
        assert _api_post(relay, post["id"])["state"] == "deleted"
    finally:
        context.close()


def test_another_users_post_is_a_404_page_and_cannot_be_changed(
    relay: RelayServer, page: Page, context: BrowserContext
) -> None:
    post = _ready_draft(relay, title="Annas utkast")
    sign_in(page, relay, name="bo")
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    with page.expect_response(relay.url + f"/posts/{post['id']}") as answer:
        page.goto(relay.url + f"/posts/{post['id']}")
    assert answer.value.status == 404
    expect(page.get_by_role("heading", name="There is no such post")).to_be_visible()
    assert "Annas utkast" not in page.content()
    assert axe_violations(page) == []
    screenshots(page, "post-404")
    # Bo's own CSRF token, so only the ownership check stands in the way.
    token = page.locator("[name=csrf_token]").first.get_attribute("value")
    for action in ("publish", "delete", "edit"):
        answer = context.request.post(
            relay.url + f"/posts/{post['id']}/{action}",
            form={"csrf_token": token, "title": "Bo var här"},
            max_redirects=0,
        )
        assert answer.status == 404, action
    assert page.request.get(relay.url + f"/posts/{post['id']}/state.json").status == 404
    after = _api_post(relay, post["id"])
    assert (after["state"], after["title"]) == ("draft", "Annas utkast")


def test_a_form_without_its_csrf_token_changes_nothing(
    relay: RelayServer, page: Page, context: BrowserContext
) -> None:
    post = _ready_draft(relay, title="Skyddat")
    sign_in(page, relay)
    answer = context.request.post(
        relay.url + f"/posts/{post['id']}/publish", form={}, max_redirects=0
    )
    assert answer.status == 403
    assert "This form has expired" in answer.text()
    assert _api_post(relay, post["id"])["state"] == "draft"


def test_a_past_time_is_refused_and_the_delete_pages_pass_axe(
    relay: RelayServer, page: Page
) -> None:
    post = _ready_draft(relay, title="För sent")
    sign_in(page, relay)
    page.goto(relay.url + f"/posts/{post['id']}")
    page.get_by_label(f"Publish at (your time zone: {ZONE})").fill("2020-01-01T09:00")
    page.get_by_role("button", name="Schedule it").click()
    expect(page.get_by_role("heading", name="Choose a time that is still to come")).to_be_visible()
    assert _api_post(relay, post["id"])["state"] == "draft"
    assert axe_violations(page) == []
    # The other pages of the post's life, checked with scripts on (axe needs them).
    page.goto(relay.url + f"/posts/{post['id']}/delete")
    expect(page.get_by_role("heading", name="Delete this post?")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "post-delete")
    page.get_by_role("button", name="Yes, delete it").click()
    page.goto(relay.url + f"/posts/{post['id']}")
    expect(page.get_by_role("heading", name="This post was deleted")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "post-410")


def test_hostile_text_is_shown_as_text(relay: RelayServer, page: Page) -> None:
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    post = _ready_draft(relay, title=hostile, text=f"Före {hostile} efter")
    sign_in(page, relay)
    page.goto(relay.url + f"/posts/{post['id']}")
    expect(page.locator("#post-title")).to_have_text(hostile)
    expect(page.locator(".preview-text")).to_contain_text(f"Före {hostile} efter")
    expect(page.get_by_label("Post title")).to_have_value(hostile)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("main script, main img[src=x]").count() == 0


def test_edit_by_keyboard_alone(relay: RelayServer, page: Page) -> None:
    post = _ready_draft(relay, title="Med tangentbordet")
    sign_in(page, relay)
    page.goto(relay.url + f"/posts/{post['id']}")
    focused = None
    for _ in range(40):  # skip link, menus, the back link, … to the first field of the form
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if focused == "title":
            break
    assert focused == "title"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") not in (
        "none",
        "",
    )
    page.keyboard.press("Control+A")
    page.keyboard.type("Skrivet med tangentbordet")
    for _ in range(10):  # on through text, tags and alt text to the button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Save the changes":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Your changes are saved.")).to_be_visible()
    assert _api_post(relay, post["id"])["title"] == "Skrivet med tangentbordet"


def test_swedish_post_page(relay: RelayServer, browser: Browser) -> None:
    post = _ready_draft(relay, title="På svenska", text=LONG_TEXT)
    context = browser.new_context(locale="sv-SE")
    try:
        page = context.new_page()
        page.goto(relay.url + "/")
        page.get_by_label("Användarnamn").fill("anna")
        page.get_by_label("Lösenord").fill(PASSWORD)
        page.get_by_role("button", name="Logga in").click()
        page.goto(relay.url + f"/posts/{post['id']}")
        expect(page.get_by_role("heading", name="Vad varje kanal får")).to_be_visible()
        expect(page.get_by_label("Inläggets rubrik")).to_have_value("På svenska")
        assert axe_violations(page) == []
        screenshots(page, "post-sv")
    finally:
        context.close()


def test_a_medium_turns_ready_without_a_reload(
    start_relay: Callable[..., RelayServer], tmp_path: Path, page: Page
) -> None:
    # The web node processes nothing; a second node on the same data folder does, once the
    # page shows the medium waiting.
    data = tmp_path / "shared"
    web = start_relay(data, RELAY_WORKERS="0")
    anna = web.add_user("anna")
    set_password(web, "anna", PASSWORD)
    post = web.upload(anna["token"], title="Snart klar", draft="true")
    sign_in(page, web)
    page.goto(web.url + f"/posts/{post['id']}")
    medium = page.locator(".medium")
    expect(medium.locator(".status")).to_have_text("Waiting")
    expect(medium.get_by_role("progressbar")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    start_relay(data, RELAY_WORKERS="2")
    expect(medium.locator(".status")).to_have_text("Ready", timeout=60_000)
    expect(medium.get_by_role("progressbar")).to_have_count(0)
    expect(medium.locator(".thumb img")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True


def test_a_damaged_file_says_what_went_wrong_and_what_to_do(relay: RelayServer, page: Page) -> None:
    broken = ("trasig.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg")
    post = relay.upload(_token(relay), file=broken, title="Trasig bild", draft="true")
    relay.wait_post(_token(relay), post["id"])
    sign_in(page, relay)
    page.goto(relay.url + f"/posts/{post['id']}")
    medium = page.locator(".medium")
    expect(medium.locator(".status")).to_have_text("Failed")
    expect(medium.locator(".problem")).to_contain_text("The file is damaged or empty.")
    expect(medium.locator(".problem")).to_contain_text("Send it again")
    assert axe_violations(page) == []
