"""The post page unfurls: Open Graph, Twitter card, oEmbed discovery and a working /oembed."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import quote

import httpx

from tests.media import phone_jpeg
from tests.server import RelayServer


class Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a["name"]] = a.get("content", "")
        if tag == "link":
            self.links.append(a)


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
