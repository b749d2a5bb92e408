"""``/admin`` in a real browser: an administrator adds a user who can then sign in, disables
them (no sign-in, token or mail), removes them after a question; an ordinary user gets the 403
page; the health figures show a failed job; CSRF, axe-core and both screen widths."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from relay import jobs
from relay.db import Database
from tests.browser.conftest import PASSWORD, axe_violations, screenshots, set_password, sign_in
from tests.browser.test_settings import rcpt_code
from tests.media import iphone_mail, phone_jpeg
from tests.server import RelayServer


@pytest.fixture(scope="module")
def relay_with_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """A relay with ``root`` (an administrator) and ``anna`` (not one), both with passwords."""
    server = RelayServer(tmp_path_factory.mktemp("admin"))
    server.start()
    subprocess.run(
        [sys.executable, "-m", "relay", "user", "add", "root", "--admin", "--password"],
        env=server.env,
        input=PASSWORD + "\n",  # on stdin, never in argv
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    set_password(server, "anna", PASSWORD)
    yield server
    server.stop()


def as_admin(page: Page, server: RelayServer) -> None:
    sign_in(page, server, name="root")
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Admin", exact=True)).to_be_visible()


def test_an_admin_adds_a_user_who_signs_in_then_disables_and_removes_them(
    relay_with_admin: RelayServer, page: Page, browser: Browser
) -> None:
    server = relay_with_admin
    as_admin(page, server)
    page.get_by_label("User name").fill("bo")
    # The browser asks for 8 characters itself; without that check the relay still does.
    page.evaluate("document.getElementById('new-user-password').removeAttribute('minlength')")
    page.get_by_label("Their password").fill("short")
    page.get_by_role("button", name="Add the user").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 8 characters")
    page.get_by_label("User name").fill("anna")
    page.get_by_label("Their password").fill("bo's long password")
    page.get_by_role("button", name="Add the user").click()
    expect(page.get_by_role("alert")).to_contain_text("already a user called anna")
    page.get_by_label("User name").fill("bo")
    page.get_by_label("Their password").fill("bo's long password")
    page.get_by_role("button", name="Add the user").click()
    expect(page.get_by_text("bo can sign in now.")).to_be_visible()
    address = page.locator("#added-address").inner_text().strip()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="bo", exact=True))
    expect(row).to_contain_text("Can sign in")
    assert axe_violations(page) == []
    screenshots(page, "admin")

    bo = browser.new_context()
    try:
        bo_page = bo.new_page()
        sign_in(bo_page, server, name="bo", password="bo's long password")
        expect(bo_page.get_by_role("heading", name="Your posts")).to_be_visible()
        expect(bo_page.get_by_role("link", name="Admin")).to_have_count(0)
        token = server.cli("token", "add", "--user", "bo").stdout.strip()
        with server.client(token) as client:
            assert client.get("/api/v1/posts").status_code == 200
        assert rcpt_code(server, address) == 250
        bo_post = server.send_mail(address, iphone_mail(address, phone_jpeg(64, 48), "bo's"))
        server.wait_post(token, bo_post)
        assert httpx.get(f"{server.url}/p/{bo_post}").status_code == 200

        row.get_by_role("button", name="Disable the user").click()
        row = page.locator("tr", has=page.get_by_role("rowheader", name="bo", exact=True))
        expect(row).to_contain_text("Disabled: cannot sign in")
        bo_page.reload()  # signed out at once
        expect(bo_page.get_by_role("button", name="Sign in")).to_be_visible()
        sign_in(bo_page, server, name="bo", password="bo's long password")
        expect(bo_page.get_by_role("alert")).to_contain_text("do not match")
        with server.client(token) as client:
            assert client.get("/api/v1/posts").status_code == 401
        assert rcpt_code(server, address) == 550

        row.get_by_role("button", name="Enable the user").click()
        row = page.locator("tr", has=page.get_by_role("rowheader", name="bo", exact=True))
        expect(row).to_contain_text("Can sign in")
        sign_in(bo_page, server, name="bo", password="bo's long password")
        expect(bo_page.get_by_role("heading", name="Your posts")).to_be_visible()
        with server.client(token) as client:
            assert client.get("/api/v1/posts").status_code == 200

        # Removing asks first.
        row.get_by_role("link", name="Remove the user").click()
        expect(page.get_by_role("heading", name="Remove the user bo?")).to_be_visible()
        assert axe_violations(page) == []
        screenshots(page, "admin-remove")
        page.get_by_role("button", name="Yes, remove bo").click()
        expect(page.get_by_role("rowheader", name="bo", exact=True)).to_have_count(0)
        bo_page.reload()
        expect(bo_page.get_by_role("button", name="Sign in")).to_be_visible()
        with server.client(token) as client:
            assert client.get("/api/v1/posts").status_code == 401
        assert rcpt_code(server, address) == 550
        assert httpx.get(f"{server.url}/p/{bo_post}").status_code == 410  # their post is gone
        # The name is free again.
        assert server.cli("user", "add", "bo", "--json").returncode == 0
    finally:
        bo.close()


def test_an_admin_makes_another_admin_but_cannot_disable_or_remove_themselves(
    relay_with_admin: RelayServer, page: Page, context: BrowserContext, browser: Browser
) -> None:
    server = relay_with_admin
    as_admin(page, server)
    mine = page.locator("tr", has=page.get_by_role("rowheader", name="root", exact=True))
    expect(mine).to_contain_text("This is you")
    expect(mine.get_by_role("button")).to_have_count(0)
    root_id = mine.get_attribute("id").removeprefix("user-")
    csrf = next(c["value"] for c in context.cookies() if c["name"] == "relay_csrf")
    for path, form in (
        (f"/admin/users/{root_id}/disabled", {"disabled": "1"}),
        (f"/admin/users/{root_id}/remove", {}),
        (f"/admin/users/{root_id}/admin", {"admin": "0"}),
    ):
        answer = context.request.post(
            server.url + path, form={**form, "csrf_token": csrf}, max_redirects=0
        )
        assert answer.status == 400, path
        assert "You cannot do this to yourself" in answer.text()
    page.reload()
    expect(page.get_by_role("heading", name="Admin", exact=True)).to_be_visible()

    anna = page.locator("tr", has=page.get_by_role("rowheader", name="anna", exact=True))
    anna.get_by_role("button", name="Make administrator").click()
    anna = page.locator("tr", has=page.get_by_role("rowheader", name="anna", exact=True))
    expect(anna).to_contain_text("Administrator")
    other = browser.new_context()
    try:
        as_anna = other.new_page()
        sign_in(as_anna, server)
        as_anna.get_by_role("link", name="Admin").click()
        expect(as_anna.get_by_role("heading", name="Admin", exact=True)).to_be_visible()
    finally:
        other.close()
    anna.get_by_role("button", name="Make an ordinary user").click()
    anna = page.locator("tr", has=page.get_by_role("rowheader", name="anna", exact=True))
    expect(anna).to_contain_text("Ordinary user")


def test_an_ordinary_user_gets_the_403_page(relay_with_admin: RelayServer, page: Page) -> None:
    sign_in(page, relay_with_admin)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    with page.expect_response(relay_with_admin.url + "/admin") as answer:
        page.goto(relay_with_admin.url + "/admin")
    assert answer.value.status == 403
    expect(
        page.get_by_role("heading", name="Only an administrator can open this page")
    ).to_be_visible()
    assert axe_violations(page) == []
    screenshots(page, "admin-403")
    # Nor can an ordinary user's form do what the page would.
    anna_id = "x"
    answer = page.request.post(relay_with_admin.url + f"/admin/users/{anna_id}/remove")
    assert answer.status == 403


def test_the_health_figures_show_a_failed_job(relay_with_admin: RelayServer, page: Page) -> None:
    server = relay_with_admin
    as_admin(page, server)
    figures = page.locator("#health dl.figures")
    expect(figures).to_contain_text("Failed jobs")
    failed_before = int(figures.locator("div", has_text="Failed jobs").locator("dd").inner_text())
    # A job that ran out of tries, as the worker leaves one (the relay's own database).
    db = Database(f"sqlite:///{server.data_dir / 'relay.db'}")
    try:
        with db.begin() as conn:
            job_id = jobs.enqueue(conn, "deliver", "d-nowhere", 3, delay=3600)
            conn.execute(
                jobs.jobs.update()
                .where(jobs.jobs.c.id == job_id)
                .values(status=jobs.DEAD, attempts=3, last_error="webhook answered 500 <b>")
            )
    finally:
        db.close()
    page.reload()
    failed = int(figures.locator("div", has_text="Failed jobs").locator("dd").inner_text())
    assert failed == failed_before + 1
    table = page.locator("#health table")
    expect(table).to_contain_text("deliver d-nowhere")
    expect(table).to_contain_text("webhook answered 500 <b>")  # escaped, shown as written
    expect(page.locator("#health")).to_contain_text("0.1.0")
    assert axe_violations(page) == []


def test_admin_forms_without_the_csrf_token_are_refused(
    relay_with_admin: RelayServer, page: Page, context: BrowserContext
) -> None:
    as_admin(page, relay_with_admin)
    answer = context.request.post(
        relay_with_admin.url + "/admin/users",
        form={"name": "eve", "password": "a long password"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert "This form has expired" in answer.text()
    page.reload()
    expect(page.get_by_role("rowheader", name="eve", exact=True)).to_have_count(0)
    assert httpx.get(relay_with_admin.url + "/admin", follow_redirects=False).status_code == 303
