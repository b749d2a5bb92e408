"""The web app at ``/`` in a real browser: sign-in, CSRF, sign out everywhere, the posts page
updating live, Swedish, keyboard use, accessibility (axe-core) and both screen widths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import (
    PASSWORD,
    axe_violations,
    screenshots,
    set_password,
    sign_in,
)
from tests.media import iphone_mail, phone_jpeg
from tests.receivers import webhook_receiver
from tests.server import RelayServer


def test_wrong_password_is_refused_and_the_right_one_shows_the_posts(
    web: RelayServer, page: Page, context: BrowserContext
) -> None:
    sign_in(page, web, password="not the password")
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    expect(page.get_by_label("User name")).to_have_value("anna")  # kept, the password is not
    expect(page.get_by_label("Password")).to_have_value("")
    assert not [c for c in context.cookies() if c["name"] == "relay_session"]

    sign_in(page, web)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    expect(page.get_by_text("Signed in as anna")).to_be_visible()
    [session] = [c for c in context.cookies() if c["name"] == "relay_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert not session["secure"]  # RELAY_PUBLIC_URL is http here
    # A user name that does not exist gets the same answer as a wrong password.
    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in(page, web, name="nobody")
    expect(page.get_by_role("alert")).to_contain_text("do not match")


def test_a_post_without_the_csrf_token_is_refused(
    web: RelayServer, page: Page, context: BrowserContext
) -> None:
    page.goto(web.url + "/")  # the form's page sets the CSRF cookie
    form = {"name": "anna", "password": PASSWORD}
    without = context.request.post(web.url + "/signin", form=form, max_redirects=0)
    assert without.status == 403
    assert "This form has expired" in without.text()
    assert "text/html" in without.headers["content-type"]
    wrong = context.request.post(
        web.url + "/signin", form={**form, "csrf_token": "x" * 43}, max_redirects=0
    )
    assert wrong.status == 403
    assert not [c for c in context.cookies() if c["name"] == "relay_session"]
    # In the page itself: a form whose token was stripped gets the 403 page, not a sign-in.
    page.goto(web.url + "/")
    page.evaluate("document.querySelector('form[action=\"/signin\"] [name=csrf_token]').remove()")
    page.get_by_label("User name").fill("anna")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(web.url + "/signin") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "error-403")
    # Signed in, a sign-out without the token is refused too: the session survives it.
    sign_in(page, web)
    out = context.request.post(web.url + "/signout", form={"everywhere": "1"}, max_redirects=0)
    assert out.status == 403
    page.goto(web.url + "/")
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()


def test_sign_out_everywhere_ends_the_other_browsers_session(
    web: RelayServer, browser: Browser
) -> None:
    phone, desk = browser.new_context(), browser.new_context()
    try:
        on_phone, on_desk = phone.new_page(), desk.new_page()
        sign_in(on_phone, web)
        sign_in(on_desk, web)
        expect(on_desk.get_by_role("heading", name="Your posts")).to_be_visible()
        on_phone.get_by_role("button", name="Sign out everywhere").click()
        expect(on_phone.get_by_role("button", name="Sign in")).to_be_visible()
        on_desk.reload()
        expect(on_desk.get_by_role("button", name="Sign in")).to_be_visible()
        # The desk's old cookie stays worthless even after signing in again elsewhere.
        sign_in(on_phone, web)
        on_desk.reload()
        expect(on_desk.get_by_role("button", name="Sign in")).to_be_visible()
    finally:
        phone.close()
        desk.close()


def test_swedish_from_the_menu_remembered_and_from_accept_language(
    web: RelayServer, page: Page, browser: Browser
) -> None:
    page.goto(web.url + "/")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("button", name="Svenska").click()
    expect(page.get_by_label("Användarnamn")).to_be_visible()
    expect(page.get_by_label("Lösenord")).to_be_visible()
    expect(page.get_by_role("button", name="Logga in")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "sv"
    page.goto(web.url + "/")  # remembered in a cookie
    expect(page.get_by_role("button", name="Logga in")).to_be_visible()
    page.get_by_label("Användarnamn").fill("anna")
    page.get_by_label("Lösenord").fill(PASSWORD)
    page.get_by_role("button", name="Logga in").click()
    expect(page.get_by_role("heading", name="Dina inlägg")).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()

    swede = browser.new_context(locale="sv-SE")  # Accept-Language: sv-SE
    try:
        fresh = swede.new_page()
        fresh.goto(web.url + "/")
        expect(fresh.get_by_role("button", name="Logga in")).to_be_visible()
    finally:
        swede.close()


def test_sign_in_by_keyboard_alone_with_visible_focus(web: RelayServer, page: Page) -> None:
    page.goto(web.url + "/")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    focused = None
    for _ in range(10):  # on through the language menu to the form
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        if focused == "name":
            break
    assert focused == "name"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.type("anna")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()


def test_failed_sign_ins_get_a_429_page_per_user_name(
    start_relay: Callable[..., RelayServer], browser: Browser
) -> None:
    server = start_relay(RELAY_LOGIN_MAX_FAILURES="2")
    server.add_user("bo")
    set_password(server, "bo", PASSWORD)
    context = browser.new_context()
    try:
        page = context.new_page()
        for _ in range(2):
            sign_in(page, server, name="bo", password="wrong password")
            expect(page.get_by_role("alert")).to_be_visible()
        # Now even the right password waits: the guesser learns nothing until the window ends.
        page.goto(server.url + "/")
        page.get_by_label("User name").fill("bo")
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_response(server.url + "/signin") as answer:
            page.get_by_role("button", name="Sign in").click()
        assert answer.value.status == 429
        assert int(answer.value.headers["retry-after"]) > 0
        expect(page.get_by_role("heading", name="Too many tries")).to_be_visible()
        assert axe_violations(page) == []
    finally:
        context.close()


def test_secure_cookies_when_the_public_url_is_https(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay(RELAY_PUBLIC_URL="https://relay.example.org")
    server.add_user("bo")
    set_password(server, "bo", PASSWORD)
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/")
        assert "Secure" in first.headers["set-cookie"]
        token = first.cookies["relay_csrf"]
        # A client keeps a Secure cookie away from http://; the test hands it over itself.
        client.cookies.clear()
        signed = client.post(
            "/signin",
            data={"csrf_token": token, "name": "bo", "password": PASSWORD},
            headers={"Cookie": f"relay_csrf={token}"},
        )
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("relay_session=")
    for flag in ("HttpOnly", "SameSite=Lax", "Secure"):
        assert flag in cookie


def test_posts_appear_and_turn_ready_without_a_reload(
    start_relay: Callable[..., RelayServer], tmp_path: Path, context: BrowserContext
) -> None:
    # The web node processes nothing; a second node on the same data folder does, once the
    # page shows the posts waiting, so the page is seen to change without being reloaded.
    data = tmp_path / "shared"
    web = start_relay(data, RELAY_WORKERS="0")
    anna = web.add_user("anna")
    set_password(web, "anna", PASSWORD)
    uploaded = web.upload(anna["token"], title="Uppladdad")["id"]
    mailed = web.send_mail(anna["address"], iphone_mail(anna["address"], phone_jpeg(800, 600)))

    page = context.new_page()
    sign_in(page, web)
    upload = page.locator(f"#post-{uploaded}")
    expect(upload.get_by_role("heading")).to_have_text("Uppladdad")
    expect(upload.locator(".item .status")).to_have_text("Waiting")
    expect(upload.get_by_role("progressbar")).to_be_visible()
    mail = page.locator(f"#post-{mailed}")
    expect(mail.get_by_role("heading")).to_have_text("Untitled post")  # not unpacked yet
    # Newest first: the mail came last.
    assert page.locator("li.post").first.get_attribute("id") == f"post-{mailed}"
    page.evaluate("window.stillTheSamePage = true")

    start_relay(data, RELAY_WORKERS="2")
    expect(upload.locator(".item .status")).to_have_text("Ready", timeout=60_000)
    expect(upload.get_by_role("progressbar")).to_have_count(0)
    expect(upload.locator(".thumb img")).to_be_visible()
    # The mail, unpacked meanwhile: its subject, its photo, ready.
    expect(mail.get_by_role("heading")).to_have_text("Bild från invigningen – åäö")
    expect(mail.locator(".item .status")).to_have_text("Ready", timeout=60_000)
    expect(mail.locator(".thumb img")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened

    thumb = upload.locator(".thumb img").get_attribute("src")
    assert thumb and page.request.get(thumb).status == 200


def test_zero_axe_violations_and_screenshots(web: RelayServer, page: Page) -> None:
    token = web.anna["token"]  # type: ignore[attr-defined]
    done = web.upload(token, title="Invigningen")
    web.wait_post(token, done["id"])
    web.upload(token, file=False, title="Ett utkast", draft="true")

    page.goto(web.url + "/")
    assert axe_violations(page) == []
    screenshots(page, "signin")
    sign_in(page, web, password="wrong")
    assert axe_violations(page) == []
    screenshots(page, "signin-failed")

    sign_in(page, web)
    expect(page.get_by_role("link", name="Invigningen")).to_be_visible()
    expect(page.locator(".thumb img").first).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "posts")
    page.get_by_role("link", name="Drafts").click()
    expect(page.get_by_role("link", name="Ett utkast")).to_be_visible()
    expect(page.get_by_role("link", name="Invigningen")).to_have_count(0)
    assert axe_violations(page) == []
    page.get_by_role("button", name="Svenska").click()
    expect(page.get_by_role("heading", name="Dina inlägg")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "posts-sv")


def test_deliveries_show_sent_or_the_error_and_the_failed_filter_finds_them(
    start_relay: Callable[..., RelayServer], context: BrowserContext
) -> None:
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    set_password(server, "anna", PASSWORD)
    with webhook_receiver() as good, webhook_receiver(lambda _: 401) as refusing:
        server.add_destination("webhook", good.url)
        server.add_destination("webhook", refusing.url)
        post = server.upload(anna["token"], title="Till kanalerna")
        settled = server.wait_settled(anna["token"], post["id"])
        while any(d["status"] == "pending" for d in settled["deliveries"]):
            settled = server.wait_settled(anna["token"], post["id"])
        quiet = server.upload(anna["token"], file=False, title="Utan fel", draft="true")

        page = context.new_page()
        sign_in(page, server)
        shown = page.locator(f"#post-{post['id']}")
        expect(shown.locator(".delivery-delivered")).to_contain_text("Webhook (127.0.0.1): Sent")
        failed = shown.locator(".delivery-failed")
        expect(failed).to_contain_text("Webhook (127.0.0.1): Not sent")
        assert "/hooks/relay" not in page.content()  # the URL's path may hold a secret
        expect(failed.locator(".problem")).to_contain_text("check the channel's settings")
        assert axe_violations(page) == []
        page.get_by_role("link", name="Failed").click()
        expect(page.locator(f"#post-{post['id']}")).to_be_visible()
        expect(page.locator(f"#post-{quiet['id']}")).to_have_count(0)
        assert page.get_by_role("link", name="Failed").get_attribute("aria-current") == "page"
        screenshots(page, "posts-failed")


def test_older_posts_page_by_page(start_relay: Callable[..., RelayServer], page: Page) -> None:
    server = start_relay(RELAY_WORKERS="1")
    anna = server.add_user("anna")
    set_password(server, "anna", PASSWORD)
    made = [server.upload(anna["token"], file=False, title=f"Inlägg {n}")["id"] for n in range(22)]
    sign_in(page, server)
    first = [page.locator("li.post").nth(n).get_attribute("id") for n in range(20)]
    expect(page.locator("li.post")).to_have_count(20)
    assert first == [f"post-{post_id}" for post_id in reversed(made[2:])]
    expect(page.get_by_role("link", name="Newest posts")).to_have_count(0)
    page.get_by_role("link", name="Older posts").click()
    expect(page.locator("li.post")).to_have_count(2)
    assert page.locator("li.post").first.get_attribute("id") == f"post-{made[1]}"
    expect(page.get_by_role("link", name="Older posts")).to_have_count(0)
    page.get_by_role("link", name="Newest posts").click()
    expect(page.locator("li.post")).to_have_count(20)
