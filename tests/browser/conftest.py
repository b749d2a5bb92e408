"""Browser tests: Playwright (Python) driving Debian's chromium against a real ``relay serve``.

The browser is the system's (``/usr/bin/chromium``, installed by scripts/test.sh), never one
Playwright downloads. axe-core comes from npm by the lock file at the repo's root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.server import RelayServer

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope, not session: Playwright's sync API keeps an event loop running on the main
    # thread while it is open, and every later test that calls asyncio.run() would fail.
    assert Path(CHROMIUM).exists(), "chromium missing: scripts/test.sh installs it with apt"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def set_password(server: RelayServer, name: str, password: str, *, add: bool = False) -> None:
    """``relay user add NAME --password`` / ``relay user password NAME``, the password on stdin
    (never in argv)."""
    args = ["user", "add", name, "--password"] if add else ["user", "password", name]
    subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env=server.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """A relay with user ``anna`` (token and address) who has a web password."""
    server = RelayServer(tmp_path_factory.mktemp("web"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    set_password(server, "anna", PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="en-GB")
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, server: RelayServer, name: str = "anna", password: str = PASSWORD) -> None:
    page.goto(server.url + "/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def channel_relay(where: Path, password: str, **settings: str) -> Iterator[RelayServer]:
    """For a channel's connect tests (``yield from`` in a fixture): a relay set up with the
    fake service's app (``settings``) and user ``erik`` with a web password."""
    server = RelayServer(where, RELAY_ALLOW_PRIVATE_DESTINATIONS="true", **settings)
    server.start()
    server.erik = server.add_user("erik")  # type: ignore[attr-defined]
    set_password(server, "erik", password)
    yield server
    server.stop()


def erik_destinations(server: RelayServer) -> list[dict]:
    listed = server.cli("destination", "list", "--user", "erik", "--json").stdout
    return json.loads(listed)["destinations"]


def start_connecting(page: Page, server: RelayServer, password: str, service: str) -> None:
    """Signed in as erik, on Channels, ``Connect <service>`` pressed: on to its sign-in."""
    sign_in(page, server, "erik", password)
    expect(page.get_by_role("heading", name="Your posts")).to_be_visible()
    page.goto(server.url + "/channels")
    page.get_by_role("button", name=f"Connect {service}").click()


def cancelling_connects_nothing(
    page: Page, server: RelayServer, password: str, service: str
) -> None:
    """Cancel pressed at the service's sign-in: the channels page says so, nothing is added."""
    before = len(erik_destinations(server))
    start_connecting(page, server, password, service)
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_contain_text("You did not allow the relay to post there")
    assert len(erik_destinations(server)) == before


def axe_violations(page: Page) -> list[dict]:
    """axe-core's violations on the page as it is now (WCAG 2.0/2.1 A and AA rules)."""
    assert AXE.is_file(), "axe-core missing: scripts/test.sh runs npm ci"
    # Evaluated through the DevTools protocol, so the page's CSP does not apply to it.
    page.evaluate(AXE.read_text())
    return page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.html)}))"""
    )


def screenshots(page: Page, name: str) -> None:
    """The page at a phone's width (390) and a desktop's (1440), for a reviewer to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
