"""The Atom feed of a user's public posts, read as a feed reader would."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import httpx

from tests.media import jpeg_part

ATOM = "{http://www.w3.org/2005/Atom}"


def test_feed_lists_public_ready_posts_newest_first_with_enclosures(start_relay) -> None:
    server = start_relay()
    anna = server.add_user("anna")
    server.add_user("bo")
    posted = [
        server.upload(
            anna["token"],
            file=jpeg_part(320, 240),
            title=title,
            text=f"Om {title} & mer",
            private=private,
        )
        for title, private in (("Första", "false"), ("Hemlig", "true"), ("Andra <3", "false"))
    ]
    first, hidden, second = (server.wait_post(anna["token"], p["id"]) for p in posted)

    response = httpx.get(f"{server.url}/u/anna/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)  # well-formed, or this raises
    assert feed.tag == f"{ATOM}feed"
    feed_url = f"{server.url}/u/anna/feed.atom"
    assert feed.findtext(f"{ATOM}id") == feed_url
    assert feed.findtext(f"{ATOM}title")
    assert feed.find(f"{ATOM}author/{ATOM}name").text == "anna"
    [self_link] = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert self_link.get("href") == feed_url
    datetime.fromisoformat(feed.findtext(f"{ATOM}updated"))  # RFC 3339

    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [second["url"], first["url"]]
    assert hidden["url"] not in response.text
    for entry, post in zip(entries, (second, first), strict=True):
        assert entry.findtext(f"{ATOM}title") == post["title"]
        assert entry.findtext(f"{ATOM}summary") == post["text"]
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated"))
        datetime.fromisoformat(entry.findtext(f"{ATOM}published"))
        links = {link.get("rel"): link for link in entry.findall(f"{ATOM}link")}
        assert links["alternate"].get("href") == post["url"]
        assert links["alternate"].get("type") == "text/html"
        content = entry.find(f"{ATOM}content")
        assert content.get("type") == "html" and post["url"] in content.text
        assert "&amp;" in content.text  # the text is escaped inside the HTML, once more by XML
        [original] = [item["original"] for item in post["items"]]
        [enclosure] = [
            link for link in entry.findall(f"{ATOM}link") if link.get("rel") == "enclosure"
        ]
        assert enclosure.get("href") == original["url"]
        assert enclosure.get("type") == original["mime"] == "image/jpeg"
        assert int(enclosure.get("length")) == original["bytes"]
        assert len(httpx.get(original["url"]).content) == original["bytes"]

    # the page of a public post names its feed; a private one's does not
    assert f'type="application/atom+xml" href="{feed_url}"' in httpx.get(first["url"]).text
    assert "application/atom+xml" not in httpx.get(hidden["url"]).text

    empty = ET.fromstring(httpx.get(f"{server.url}/u/bo/feed.atom").content)
    assert empty.findall(f"{ATOM}entry") == [] and empty.findtext(f"{ATOM}updated")

    missing = httpx.get(f"{server.url}/u/nobody/feed.atom")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
