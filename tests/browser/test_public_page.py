"""The public post page (``/p/{id}``) and its error pages in a real browser against a real
``relay serve``: the page's own words in the reader's language (the post's ``lang`` on the
post), styled from ``/static/public.css`` under a CSP without ``unsafe-inline``, alt text from
the item, renditions shown rather than downloaded, zero axe violations, both screen widths; and
the language chosen in the web app's settings is the language of the reply mail."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, axe_violations, screenshots, set_password, sign_in
from tests.dnsserver import DkimKey, FakeDns, dkim_key, dns_server
from tests.e2e.test_reply import Sink
from tests.media import phone_jpeg
from tests.server import RelayServer, free_port
from tests.smtpclient import deliver, mail, queued

ENGLISH_TEXT = "The concert on the square was the best we have seen this year."


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = RelayServer(tmp_path_factory.mktemp("public"))
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    yield server
    server.stop()


def _token(relay: RelayServer) -> str:
    return relay.anna["token"]  # type: ignore[attr-defined]


def _photo_post(relay: RelayServer, **fields: str) -> dict:
    photo = ("IMG_0042.jpeg", phone_jpeg(1600, 1200, orientation=1), "image/jpeg")
    post = relay.upload(_token(relay), file=photo, **fields)
    return relay.wait_post(_token(relay), post["id"])


def _deleted_post_url(relay: RelayServer) -> str:
    post = _photo_post(relay, title="Gone soon")
    with relay.client(_token(relay)) as client:
        assert client.delete(f"/api/v1/posts/{post['id']}").status_code in (200, 202, 204)
    return post["url"]


@pytest.fixture
def swedish(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="sv-SE")  # Accept-Language: sv-SE
    yield context.new_page()
    context.close()


def test_the_reader_language_speaks_the_page_and_the_post_keeps_its_own(
    relay: RelayServer, page: Page, swedish: Page
) -> None:
    # No title and no alt text: the image's alt is the page's own words, never the file name.
    post = _photo_post(relay, text=ENGLISH_TEXT)
    gone = _deleted_post_url(relay)

    page.goto(post["url"])
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("img", name="An image without a description")).to_be_visible()
    swedish.goto(post["url"])
    expect(swedish.locator("html")).to_have_attribute("lang", "en")  # the post is English
    image = swedish.get_by_role("img", name="En bild utan beskrivning")
    expect(image).to_be_visible()
    expect(image).to_have_attribute("lang", "sv")  # the reader's words carry their language
    assert "IMG_0042" not in (image.get_attribute("alt") or "")

    page.goto(relay.url + "/p/nosuchpost")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    swedish.goto(relay.url + "/p/nosuchpost")
    expect(swedish.locator("html")).to_have_attribute("lang", "sv")
    expect(swedish.get_by_role("heading", level=1)).to_have_text("Hittades inte")
    expect(swedish.get_by_text("Fel 404")).to_be_visible()

    swedish.goto(gone)
    expect(swedish.get_by_role("heading", level=1)).to_have_text("Raderat")
    expect(swedish.get_by_text("Inlägget har raderats")).to_be_visible()
    page.goto(gone)
    expect(page.get_by_role("heading", level=1)).to_have_text("Deleted")

    # The language cookie of the web app wins over the browser's Accept-Language.
    page.context.add_cookies([{"name": "relay_lang", "value": "sv", "url": relay.url}])
    page.goto(post["url"])
    expect(page.get_by_role("img", name="En bild utan beskrivning")).to_be_visible()


def test_the_page_is_styled_under_a_csp_without_unsafe_inline(
    relay: RelayServer, context: BrowserContext, page: Page
) -> None:
    post = _photo_post(relay, title="Torget", text=ENGLISH_TEXT, alt="Scenen med orkestern")
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    for url, status in ((post["url"], 200), (relay.url + "/p/nosuchpost", 404)):
        response = page.goto(url)
        assert response is not None and response.status == status
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "style-src 'self'" in csp
        assert "accept-language" in response.headers["vary"].lower()
        # The style sheet applied: the body is held to its measure, in the system font.
        max_width = page.evaluate("getComputedStyle(document.body).maxWidth")
        assert max_width in ("896px", "640px"), max_width  # 56rem on a post, 40rem on an error
        assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily")
    assert refused == []


def test_alt_text_from_the_item_and_renditions_shown_inline(relay: RelayServer, page: Page) -> None:
    post = _photo_post(relay, title="Torget", alt="Scenen med orkestern")
    page.goto(post["url"])
    expect(page.get_by_role("img", name="Scenen med orkestern")).to_be_visible()
    renditions = {r["name"]: r for r in post["items"][0]["renditions"]}
    for name in ("large", "medium"):
        url = renditions[name]["url"]
        head = httpx.get(url)
        assert head.headers["content-disposition"].startswith("inline"), name
        # Opened in the browser it shows (a download would make goto fail).
        response = page.goto(url)
        assert response is not None and response.headers["content-type"] == "image/jpeg"
        assert page.evaluate("document.images.length && document.images[0].naturalWidth") > 0


def test_zero_axe_violations_on_the_page_and_its_errors_at_both_widths(
    relay: RelayServer, page: Page, swedish: Page
) -> None:
    post = _photo_post(relay, title="Torget", text=ENGLISH_TEXT, alt="Scenen med orkestern")
    untitled = _photo_post(relay)
    gone = _deleted_post_url(relay)
    pages = {
        "public-post": post["url"],
        "public-post-untitled": untitled["url"],
        "public-404": relay.url + "/p/nosuchpost",
        "public-410": gone,
    }
    for name, url in pages.items():
        for reader, suffix in ((page, ""), (swedish, "-sv")):
            reader.set_viewport_size({"width": 1440, "height": 900})
            reader.goto(url)
            assert axe_violations(reader) == [], (name, suffix)
            reader.set_viewport_size({"width": 390, "height": 844})
            assert axe_violations(reader) == [], (name, suffix, 390)
            # Nothing wider than a phone: no sideways scrolling.
            assert reader.evaluate("document.documentElement.scrollWidth") <= 390
            screenshots(reader, name + suffix)


# --- the reply mail in the language chosen in the web app ---------------------------------------


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


@pytest.fixture
def outbound() -> Iterator[tuple[Sink, int]]:
    from aiosmtpd.controller import Controller

    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def fake_dns(key: DkimKey) -> Iterator[FakeDns]:
    with dns_server() as server:
        server.txt("sel._domainkey.example.org", key.record)
        yield server


def test_the_language_saved_in_settings_is_the_reply_mails(
    start_relay, outbound: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey, page: Page
) -> None:
    sink, port = outbound
    server = start_relay(
        RELAY_DNS_SERVERS=fake_dns.address,
        RELAY_OUTBOUND_SMTP_HOST="127.0.0.1",
        RELAY_OUTBOUND_SMTP_PORT=str(port),
        RELAY_OUTBOUND_SMTP_STARTTLS="false",
        RELAY_REPLY_FROM="posts@relay.localhost",
    )
    anna = server.add_user("anna")
    set_password(server, "anna", PASSWORD)
    server.cli("user", "reply", "anna", "--on")

    english = key.sign(mail(subject="Before", message_id="en@example.org"), "example.org")
    queued(deliver(server, anna["address"], english))
    sink.wait(1)
    assert "Your post is online" in sink.messages[0][2].get_body().get_content()

    sign_in(page, server)
    page.goto(server.url + "/settings#language")
    page.get_by_label("Language of the relay's pages").select_option("sv")
    page.get_by_role("button", name="Save the language").click()
    expect(page.locator("html")).to_have_attribute("lang", "sv")

    swedish = key.sign(mail(subject="Efter", message_id="sv@example.org"), "example.org")
    post_id = queued(deliver(server, anna["address"], swedish))
    sink.wait(2)
    reply = sink.messages[1][2]
    assert reply["Subject"] == "Re: Efter"
    body = reply.get_body().get_content()
    assert f"Ditt inlägg är publicerat: {server.url}/p/{post_id}" in body
    assert "Your post" not in body

    # Cleared from the command line, the operator's default (English) applies again.
    server.cli("user", "language", "anna")
    again = key.sign(mail(subject="Default", message_id="d@example.org"), "example.org")
    queued(deliver(server, anna["address"], again))
    sink.wait(3)
    assert "Your post is online" in sink.messages[2][2].get_body().get_content()

    # Set from the command line; a language the relay does not speak is refused.
    refused = server.cli("user", "language", "anna", "de", check=False)
    assert refused.returncode != 0 and "'de' is not one of 'en', 'sv'" in refused.stderr
    server.cli("user", "language", "anna", "sv")
    last = key.sign(mail(subject="Sist", message_id="s@example.org"), "example.org")
    queued(deliver(server, anna["address"], last))
    sink.wait(4)
    assert "Ditt inlägg är publicerat" in sink.messages[3][2].get_body().get_content()


def test_a_file_to_download_is_described_in_the_readers_words(
    relay: RelayServer, page: Page, swedish: Page
) -> None:
    data = ("data.bin", bytes(range(256)) * 10, "application/octet-stream")
    post = relay.wait_post(_token(relay), relay.upload(_token(relay), file=data)["id"])
    page.goto(post["url"])
    # The type is what libmagic found; the size is in the reader's words and number format.
    expect(page.locator("figcaption .meta")).to_have_text(re.compile(r", 2,560 bytes$"))
    swedish.goto(post["url"])
    expect(swedish.locator("figcaption .meta")).to_have_text(re.compile(", 2\u00a0560 byte$"))
    expect(swedish.get_by_role("link", name="data.bin")).to_be_visible()
    assert axe_violations(swedish) == []
