"""The post page unfurls: Open Graph, Twitter card, oEmbed discovery and a working /oembed."""

from __future__ import annotations

import html
import time
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlparse

import httpx

from relay.storage.media import MediaSigner
from tests.media import phone_jpeg
from tests.server import RelayServer


class Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []
        self.html_lang: str | None = None
        self.img_alts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a["name"]] = a.get("content", "")
        if tag == "link":
            self.links.append(a)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag == "img":
            self.img_alts.append(a.get("alt", ""))


def _upload(relay: RelayServer, **data: str) -> dict:
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files={"file": ("torget.jpg", phone_jpeg(2400, 1600, orientation=1), "image/jpeg")},
            data=data,
        )
    return relay.wait_post(relay.anna["token"], response.json()["id"])


def test_post_page_unfurls(relay: RelayServer) -> None:
    post = _upload(relay, title="Torget <i>i dag</i>", text="Invigning med musik & tal.")
    page = httpx.get(post["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    head = Head()
    head.feed(page.text)
    assert head.meta["og:title"] == "Torget <i>i dag</i>"  # escaped in HTML, intact once parsed
    assert "<i>" not in page.text
    assert head.meta["og:description"] == "Invigning med musik & tal."
    assert head.meta["og:url"] == post["url"]
    assert head.meta["twitter:card"] == "summary_large_image"
    large = {r["name"]: r for r in post["items"][0]["renditions"]}["large"]
    assert head.meta["og:image"] == large["url"]
    assert httpx.get(head.meta["og:image"]).headers["content-type"] == "image/jpeg"

    [oembed_link] = [x for x in head.links if x.get("type") == "application/json+oembed"]
    oembed = httpx.get(oembed_link["href"])
    assert oembed.status_code == 200
    body = oembed.json()
    assert body["version"] == "1.0" and body["type"] == "photo"
    assert body["title"] == "Torget <i>i dag</i>"
    assert (body["url"], body["width"], body["height"]) == (large["url"], 2048, 1365)

    small = httpx.get(f"{relay.url}/oembed", params={"url": post["url"], "maxwidth": 500}).json()
    assert small["width"] <= 500 and small["url"].endswith(".jpg")


def test_oembed_refuses_what_is_not_ours(relay: RelayServer) -> None:
    for url in ("https://example.org/p/abc", f"{relay.url}/p/nosuchpost", "", f"{relay.url}/x"):
        response = httpx.get(f"{relay.url}/oembed?url={quote(url, safe='')}")
        assert response.status_code == 404, url
    assert httpx.get(f"{relay.url}/p/nosuchpost").status_code == 404


def test_text_only_post_is_ready_at_once_and_has_a_plain_card(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        post = client.post("/api/v1/uploads", data={"title": "Bara text", "text": "Hej"}).json()
    assert post["status"] == "ready" and post["items"] == []
    head = Head()
    head.feed(httpx.get(post["url"]).text)
    assert head.meta["twitter:card"] == "summary" and "og:image" not in head.meta


# --- issue 13: media served inline, private and draft media signed, pages in the right language,
# errors as HTML pages -----------------------------------------------------------------------


def _mail(to: str, subject: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna Andersson <anna@example.se>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    msg.add_attachment(
        phone_jpeg(640, 480, orientation=1), maintype="image", subtype="jpeg", filename="IMG_7.jpeg"
    )
    return msg.as_bytes(policy=SMTP)


def _signer(relay: RelayServer, clock: float | None = None) -> MediaSigner:
    """The relay's own signer, from the key it generated into its data folder."""
    key = (relay.data_dir / "secret.key").read_bytes().strip()
    return MediaSigner(lambda: key, 3600, clock=(lambda: clock) if clock else time.time)


def _renditions(post: dict) -> dict[str, dict]:
    return {r["name"]: r for r in post["items"][0]["renditions"]}


def test_renditions_and_originals_a_browser_can_show_are_inline(relay: RelayServer) -> None:
    post = _upload(relay, title="Inline")
    for name, rendition in _renditions(post).items():
        response = httpx.get(rendition["url"])
        assert response.status_code == 200, name
        assert response.headers["content-type"] == rendition["mime"]
        assert response.headers["content-disposition"].startswith("inline"), name
        assert response.headers["x-content-type-options"] == "nosniff"
    original = httpx.get(post["items"][0]["original"]["url"])
    assert original.headers["content-disposition"].startswith('inline; filename="torget.jpg"')
    # oEmbed's photo url is one a browser displays, not a download.
    body = httpx.get(f"{relay.url}/oembed", params={"url": post["url"]}).json()
    assert httpx.get(body["url"]).headers["content-disposition"] == "inline"


def test_active_content_stays_a_sandboxed_download(relay: RelayServer) -> None:
    hostile = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads", files={"file": ("page.html", hostile, "text/html")}
        )
    post = relay.wait_post(relay.anna["token"], response.json()["id"])
    served = httpx.get(post["items"][0]["original"]["url"])
    assert served.status_code == 200 and served.content == hostile
    assert served.headers["content-disposition"].startswith("attachment")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "sandbox"


def test_private_media_answer_only_at_a_signed_expiring_link(relay: RelayServer) -> None:
    private = _upload(relay, title="Hemlig", private="true")
    public = _upload(relay, title="Öppen")

    large = _renditions(private)["large"]["url"]
    parsed = urlparse(large)
    query = parse_qs(parsed.query)
    assert set(query) == {"expires", "signature"}
    # signed under the key generated into the data folder, readable by the relay alone
    assert oct((relay.data_dir / "secret.key").stat().st_mode & 0o777) == "0o600"
    response = httpx.get(large)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"].startswith("private, max-age=")
    assert 0 < int(response.headers["cache-control"].rpartition("=")[2]) <= 3600
    assert response.headers["content-disposition"].startswith("inline")
    # The page links the signed URLs, and no shared cache keeps it.
    page = httpx.get(private["url"])
    assert html.escape(large) in page.text and page.headers["cache-control"].startswith("private")
    assert "json+oembed" not in page.text  # no embed to discover: oEmbed answers 404 for it

    bare = f"{relay.url}{parsed.path}"
    expired = _signer(relay, clock=time.time() - 7200).sign(unquote(parsed.path[len("/media/") :]))
    other_key = unquote(urlparse(_renditions(private)["small"]["url"]).path[len("/media/") :])
    forged = {"expires": query["expires"][0], "signature": "A" * 43}
    for params in ({}, expired, forged, {"expires": query["expires"][0]}):
        refused = httpx.get(bare, params=params)
        assert refused.status_code == 403, params
        assert refused.json()["error"]["code"] == "media.link_invalid"
        assert "public" not in refused.headers.get("cache-control", "")
    # A signature is for one key only.
    moved = httpx.get(f"{relay.url}/media/{quote(other_key)}", params=dict(parse_qsl(parsed.query)))
    assert moved.status_code == 403
    # Nor does a made-up key under the post reveal anything.
    assert httpx.get(f"{relay.url}/media/{private['id']}/x/none.jpg").status_code == 403

    # Public media keep their permanent, cacheable link.
    public_large = _renditions(public)["large"]["url"]
    assert "?" not in public_large
    response = httpx.get(public_large)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    # A private post's item never shows in an embed.
    assert httpx.get(f"{relay.url}/oembed", params={"url": private["url"]}).status_code == 404


def test_a_draft_is_nobodys_yet(relay: RelayServer) -> None:
    address = relay.anna["address"]
    by_subject = relay.send_mail(address, _mail(address, "[draft] Utkast", "Inte klart än."))
    local, domain = address.split("@")
    plus = f"{local}+draft@{domain}"
    by_address = relay.send_mail(plus, _mail(plus, "Utkast två", "Inte heller klart."))
    for post_id in (by_subject, by_address):
        post = relay.wait_post(relay.anna["token"], post_id)
        assert post["draft"] is True
        page = httpx.get(post["url"], headers={"Accept": "text/html"})
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "Utkast" not in page.text and "klart" not in page.text
        assert httpx.get(f"{relay.url}/oembed", params={"url": post["url"]}).status_code == 404
        # its media: the owner's (signed) links work, the bare ones do not
        large = _renditions(post)["large"]["url"]
        assert "signature=" in large and httpx.get(large).status_code == 200
        assert httpx.get(large.partition("?")[0]).status_code == 403
        feed = httpx.get(f"{relay.url}/u/anna/feed.atom").text
        assert post["url"] not in feed and post["id"] not in feed


def test_page_takes_alt_text_from_the_item_and_lang_from_the_text(relay: RelayServer) -> None:
    address = relay.anna["address"]
    text = "[alt 1: Scenen med orkestern] Konserten på torget i kväll var det bästa vi har sett."
    post_id = relay.send_mail(address, _mail(address, "Konsert", text))
    post = relay.wait_post(relay.anna["token"], post_id)
    head = Head()
    page = httpx.get(post["url"]).text
    head.feed(page)
    assert head.html_lang == "sv"
    assert head.img_alts == ["Scenen med orkestern"]
    assert "IMG_7.jpeg" not in head.img_alts

    english = _upload(
        relay, title="Concert", text="The concert on the square was the best we have seen."
    )
    head = Head()
    head.feed(httpx.get(english["url"]).text)
    assert head.html_lang == "en"
    # Without an alt text the title stands in for it, not the camera's file name.
    assert head.img_alts == ["Concert"]


def test_html_routes_answer_html_errors_and_the_api_keeps_json(relay: RelayServer) -> None:
    for path in ("/p/nosuchpost", "/p/<script>alert(1)</script>", "/p/a/b"):
        response = httpx.get(relay.url + path, headers={"Accept": "text/html"})
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        head = Head()
        head.feed(response.text)
        assert head.html_lang == "en"
        assert (
            "Not found" in response.text
            and "check it against the one you were sent" in response.text
        )
        assert "<script>" not in response.text
    # Any other unknown address: a page for a browser, JSON for a program.
    browser = httpx.get(f"{relay.url}/nosuch", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 404 and browser.headers["content-type"].startswith("text/html")
    program = httpx.get(f"{relay.url}/nosuch", headers={"Accept": "application/json"})
    assert program.status_code == 404 and program.json()["error"]["code"] == "not_found"
    api = httpx.get(f"{relay.url}/api/v1/nosuch")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    with relay.client(relay.anna["token"]) as client:
        missing = client.get("/api/v1/posts/nosuchpost")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_front_page_is_the_web_apps_sign_in_and_says_where_the_api_is(relay: RelayServer) -> None:
    response = httpx.get(relay.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    head = Head()
    head.feed(response.text)
    assert head.html_lang == "en"
    assert '<label for="name">User name</label>' in response.text  # tests/browser/ go on
    assert f"{relay.url}/api/v1/openapi.json" in response.text
    assert httpx.get(f"{relay.url}/api/v1/openapi.json").status_code == 200
