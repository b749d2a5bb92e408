"""``/settings`` in a real browser: secret addresses (add, copy, sender policy, revoke), API
tokens (shown once, used by a program, revoked), time zone, language and password; CSRF,
accessibility (axe-core) and both screen widths."""

from __future__ import annotations

import asyncio
import smtplib
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, axe_violations, screenshots, sign_in
from tests.media import iphone_mail, phone_jpeg
from tests.server import RelayServer


def rcpt_code(server: RelayServer, to: str) -> int:
    """What the relay's SMTP door answers to ``RCPT TO:<to>``."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("phone.example.se")
        smtp.docmd("MAIL", "FROM:<anna@example.se>")
        code, _reply = smtp.docmd("RCPT", f"TO:<{to}>")
        return code


def mail(to: str, subject: str) -> bytes:
    return iphone_mail(to, phone_jpeg(64, 48), subject=subject)


def api_status(server: RelayServer, token: str) -> int:
    """A program's call with the token, as any HTTP client would make it."""

    async def call() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                server.url + "/api/v1/posts", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            return response.status

    # A thread of its own: Playwright's sync API keeps an event loop running on this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result()


def test_add_an_address_copy_it_set_who_may_post_and_revoke_it(
    web: RelayServer, page: Page, context: BrowserContext
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.url)
    sign_in(page, web)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    addresses = page.locator("#addresses li.secret-row")
    expect(addresses).to_have_count(1)  # the one `relay user add` made
    page.get_by_role("button", name="Add a secret address").click()
    shown = page.locator("#new-address")
    expect(shown).to_be_visible()
    address = shown.inner_text().strip()
    assert address.endswith("@" + web.anna["address"].split("@")[1])
    assert address != web.anna["address"]
    expect(addresses).to_have_count(2)
    page.get_by_role("button", name="Copy to clipboard").click()
    expect(page.get_by_role("button", name="Copied to clipboard")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == address
    # The plus addresses are explained in plain words.
    page.get_by_text("Plus addresses: choose what happens to one mail").click()
    expect(page.get_by_text("the post waits as a draft until you publish it here.")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "settings-new-address")

    # The new address takes mail; then only a listed sender may use it.
    post_id = web.send_mail(address, mail(address, "To the new address"))
    assert post_id
    secret = address.split("@")[0]
    row = page.locator("li.secret-row", has_text=secret[:8])
    row.get_by_label("Only the senders listed below").check()
    row.get_by_role("button", name="Save who may post").click()
    expect(page.get_by_role("alert")).to_contain_text("at least one sender")
    row = page.locator("li.secret-row", has_text=secret[:8])
    row.get_by_label("Allowed senders, one a line").fill("not an address")
    row.get_by_label("Only the senders listed below").check()
    row.get_by_role("button", name="Save who may post").click()
    expect(page.get_by_role("alert")).to_contain_text("one sender a line")
    row = page.locator("li.secret-row", has_text=secret[:8])
    row.get_by_label("Allowed senders, one a line").fill("Anna@Example.se\n@family.example")
    row.get_by_label("Only the senders listed below").check()
    row.get_by_role("button", name="Save who may post").click()
    expect(page.get_by_role("status")).to_contain_text("Your change is saved")
    row = page.locator("li.secret-row", has_text=secret[:8])
    expect(row.get_by_label("Allowed senders, one a line")).to_have_value(
        "anna@example.se\n@family.example"
    )
    expect(row.get_by_label("Only the senders listed below")).to_be_checked()
    assert web.send_mail(address, mail(address, "From a listed sender"))
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=30) as smtp:
        smtp.ehlo("phone.example.se")
        smtp.docmd("MAIL", "FROM:<mallory@example.net>")
        assert smtp.docmd("RCPT", f"TO:<{address}>")[0] == 250
        forged = mail(address, "From someone else").replace(
            b"anna@example.se", b"mallory@example.net"
        )
        code, _reply = smtp.data(forged)
        assert code == 550  # refused at the end of DATA, as the policy says

    # Revoking asks first; "No" keeps it.
    row.get_by_role("link", name="Revoke it").click()
    expect(page.get_by_role("heading", name="Revoke the address")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "settings-revoke")
    page.get_by_role("link", name="No, keep it as it is").click()
    expect(addresses).to_have_count(2)
    page.locator("li.secret-row", has_text=secret[:8]).get_by_role("link", name="Revoke it").click()
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    expect(addresses).to_have_count(1)
    expect(page.locator("#addresses")).not_to_contain_text(secret[:8])
    assert rcpt_code(web, address) == 550
    assert rcpt_code(web, web.anna["address"]) == 250  # the other one still works


def test_a_token_is_shown_once_works_for_a_program_and_stops_when_revoked(
    web: RelayServer, page: Page
) -> None:
    sign_in(page, web)
    page.goto(web.url + "/settings")
    tokens = page.locator("#tokens li.secret-row")
    before = tokens.count()
    page.get_by_role("button", name="Create a token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("rly_")
    expect(tokens).to_have_count(before + 1)
    assert api_status(web, token) == 200
    page.goto(web.url + "/settings")  # shown once: never again
    assert token not in page.content()
    expect(page.locator("#tokens")).to_contain_text(token[:8] + "…")
    page.locator("#tokens li.secret-row", has_text=token[:8]).get_by_role(
        "link", name="Revoke it"
    ).click()
    expect(page.get_by_role("heading", name="Revoke the token")).to_be_visible()
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(tokens).to_have_count(before)
    assert api_status(web, token) == 401
    assert api_status(web, web.anna["token"]) == 200


def test_the_time_zone_changes_the_times_on_the_posts_list(web: RelayServer, page: Page) -> None:
    web.upload(web.anna["token"], title="Zoned")
    sign_in(page, web)
    post = page.locator("li.post", has_text="Zoned")
    expect(post.locator("time")).to_contain_text("UTC")
    utc_hour = int(post.locator("time").inner_text().split(" ")[1].split(":")[0])
    page.goto(web.url + "/settings")
    page.get_by_label("Your time zone").select_option("Asia/Kolkata")
    page.get_by_role("button", name="Save the time zone").click()
    expect(page.get_by_label("Your time zone")).to_have_value("Asia/Kolkata")
    page.get_by_role("link", name="Posts", exact=True).click()
    shown = post.locator("time").inner_text()
    assert shown.endswith("IST")
    hour, minute = (int(n) for n in shown.split(" ")[1].split(":"))
    assert hour in ((utc_hour + 5) % 24, (utc_hour + 6) % 24)  # UTC+5:30
    # Back to the relay's own zone.
    page.goto(web.url + "/settings")
    page.get_by_label("Your time zone").select_option("")
    page.get_by_role("button", name="Save the time zone").click()
    page.goto(web.url + "/")
    expect(post.locator("time")).to_contain_text("UTC")


def test_the_language_is_chosen_in_settings(web: RelayServer, page: Page) -> None:
    sign_in(page, web)
    page.goto(web.url + "/settings")
    page.get_by_label("Language of the relay's pages").select_option("sv")
    page.get_by_role("button", name="Save the language").click()
    expect(page.get_by_role("heading", name="Inställningar", exact=True)).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "sv"
    expect(page.get_by_role("button", name="Lägg till en hemlig adress")).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "settings-sv")
    page.get_by_label("Språk för reläets sidor").select_option("en")
    page.get_by_role("button", name="Spara språket").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()


def test_change_the_password(web: RelayServer, page: Page, context: BrowserContext) -> None:
    other = context.browser.new_context()  # type: ignore[union-attr]
    try:
        elsewhere = other.new_page()
        sign_in(elsewhere, web)
        expect(elsewhere.get_by_role("heading", name="Your posts")).to_be_visible()
        sign_in(page, web)
        page.goto(web.url + "/settings")
        page.get_by_label("Current password").fill("not it at all")
        page.get_by_label("New password", exact=True).fill("a new long password")
        page.get_by_label("New password again").fill("a new long password")
        page.get_by_role("button", name="Change the password").click()
        expect(page.get_by_role("alert")).to_contain_text("current password is not right")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill("a new long password")
        page.get_by_label("New password again").fill("another long password")
        page.get_by_role("button", name="Change the password").click()
        expect(page.get_by_role("alert")).to_contain_text("not the same")
        assert axe_violations(page) == []
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill("a new long password")
        page.get_by_label("New password again").fill("a new long password")
        page.get_by_role("button", name="Change the password").click()
        # Still signed in here, under the new password.
        expect(page.get_by_role("status")).to_contain_text("Your change is saved")
        elsewhere.reload()  # the other browser's session ended with the old password
        expect(elsewhere.get_by_role("button", name="Sign in")).to_be_visible()
        sign_in(elsewhere, web)
        expect(elsewhere.get_by_role("alert")).to_contain_text("do not match")
        sign_in(elsewhere, web, password="a new long password")
        expect(elsewhere.get_by_role("heading", name="Your posts")).to_be_visible()
    finally:
        # Back to the fixture's password for the other tests of this module.
        page.goto(web.url + "/settings")
        page.get_by_label("Current password").fill("a new long password")
        page.get_by_label("New password", exact=True).fill(PASSWORD)
        page.get_by_label("New password again").fill(PASSWORD)
        page.get_by_role("button", name="Change the password").click()
        other.close()


def test_settings_forms_without_the_csrf_token_are_refused(
    web: RelayServer, page: Page, context: BrowserContext
) -> None:
    sign_in(page, web)
    page.goto(web.url + "/settings")
    addresses = page.locator("#addresses li.secret-row").count()
    tokens = page.locator("#tokens li.secret-row").count()
    for path, form in (
        ("/settings/addresses", {}),
        ("/settings/tokens", {}),
        ("/settings/timezone", {"timezone": "Asia/Tokyo"}),
        ("/settings/password", {"old_password": PASSWORD, "new_password": "x" * 12}),
    ):
        answer = context.request.post(web.url + path, form=form, max_redirects=0)
        assert answer.status == 403, path
        assert "This form has expired" in answer.text()
    page.reload()
    expect(page.locator("#addresses li.secret-row")).to_have_count(addresses)
    expect(page.locator("#tokens li.secret-row")).to_have_count(tokens)
    expect(page.get_by_label("Your time zone")).to_have_value("")
    assert axe_violations(page) == []
    screenshots(page, "settings")


def test_settings_need_a_signed_in_user(web: RelayServer, page: Page) -> None:
    page.goto(web.url + "/settings")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.get_by_label("User name").fill("anna")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
