"""Every adapter against its strict fake, with hostile user text: a title, a text, an alt text
and a file name made to break out of HTML and of headers. Where the channel reads HTML
(WordPress: title, content, alt text) what the fake received is escaped; where it reads plain
text (Mastodon, Bluesky, Micropub's ``content``/``name``/``alt``, the webhook's JSON) it arrives
exactly as written. File names never reach a header: uploads are named by the delivery's slug."""

from __future__ import annotations

import asyncio
import html
import io
import json
import re
from collections.abc import AsyncIterator, Callable

import pytest
from PIL import Image

from relay.publish import Destination, Media, Outgoing, Published, adapter_for
from relay.publish.net import Http
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.linkedin import FakeLinkedIn
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.meta import FakeMeta
from tests.fakes.micropub import fake_micropub
from tests.fakes.wordpress import fake_wordpress
from tests.fakes.x import FakeX
from tests.receivers import webhook_receiver

TITLE = "<img src=x onerror=alert(1)> \"Q\" & 'A'"
TEXT = "<script>alert(2)</script>\n\n</p><a href=javascript:alert(4)>x</a>"
ALT = '"><svg onload=alert(3)>'
FILENAME = 'a"b\r\nX-Evil: 1;name="c.jpg'
PAGE = "http://relay.example/p/abc?x=1&y=<2>"
ACTIVE = ("<img src=x", "<script", "<svg", "<a href=javascript")


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


JPEG = _jpeg()


def _outgoing() -> Outgoing:
    async def read() -> AsyncIterator[bytes]:
        yield JPEG

    medium = Media(
        item_id="item1",
        kind="image",
        mime="image/jpeg",
        bytes=len(JPEG),
        url="http://relay.example/m/item1/large.jpg",
        width=64,
        height=48,
        duration=None,
        alt=ALT,
        read=read,
    )
    post = {
        "id": "abc",
        "title": TITLE,
        "text": TEXT,
        "url": PAGE,
        "items": [{"id": "item1", "filename": FILENAME, "kind": "image", "renditions": []}],
    }
    return Outgoing(
        delivery_id="d1",
        idempotency_key="dlv_01HOSTILE",
        attempt=1,
        post=post,
        page_url=PAGE,
        title=TITLE,
        text=TEXT,
        media=[medium],
    )


def _publish(destination: Destination) -> Published:
    async def go() -> Published:
        http = Http(allow_private=True)
        try:
            return await adapter_for(destination, http).publish(_outgoing())
        finally:
            await http.close()

    return asyncio.run(go())


def _no_active_html(text: str) -> None:
    for needle in ACTIVE:
        assert needle not in text, (needle, text)


def wordpress() -> None:
    with fake_wordpress() as wp:
        _publish(Destination("w", "u", "wordpress", wp.url, None, wp.password, {"user": wp.user}))
        [post] = wp.posts.values()
        [attachment] = wp.media.values()
        [upload] = wp.created("media.create")
    # WordPress shows all three as HTML: escaped, so they read as written and run nothing
    assert post["title"]["raw"] == html.escape(TITLE)
    assert attachment["alt_text"] == html.escape(ALT)
    content = post["content"]["raw"]
    _no_active_html(content)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in content
    assert f'alt="{html.escape(ALT)}"' in content
    assert html.escape(PAGE) in content
    # the upload is named by the slug: the hostile file name reaches neither header nor title
    assert re.fullmatch(
        r'attachment; filename="relay-dlv-01hostile-0\.jpg"', upload.headers["Content-Disposition"]
    )
    assert attachment["title"]["raw"] == "relay-dlv-01hostile-0"
    assert "X-Evil" not in upload.headers


def mastodon() -> None:
    with FakeMastodon() as fake:
        _publish(Destination("m", "u", "mastodon", fake.url, None, fake.token, {}))
        [status] = fake.statuses
        [attachment] = fake.media.values()
    # a status is plain text: Mastodon escapes it itself
    assert status["text"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    assert attachment.description == ALT
    assert all("X-Evil" not in seen.headers for seen in fake.seen)


def bluesky() -> None:
    with FakeBluesky() as fake:
        _publish(
            Destination(
                "b", "u", "bluesky", fake.url, None, fake.app_password, {"handle": fake.handle}
            )
        )
        [record] = fake.records.values()
    assert record["text"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    [image] = record["embed"]["images"]
    assert image["alt"] == ALT


def micropub() -> None:
    with fake_micropub() as mp:
        _publish(Destination("p", "u", "micropub", mp.endpoint, None, mp.token, {}))
        [entry] = mp.entries
        [upload] = mp.seen("POST", "/micropub/media")
    # plain-text values (no {"html": …}): the site escapes them when it renders the entry
    properties = entry["properties"]
    assert properties["name"] == [TITLE]
    assert properties["content"] == [f"{TEXT}\n\n{PAGE}"]
    assert properties["photo"][0]["alt"] == ALT
    assert b'filename="relay-dlv-01hostile-0.jpg"' in upload.body
    assert b"X-Evil" not in upload.body


def webhook() -> None:
    with webhook_receiver() as receiver:
        secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        _publish(Destination("h", "u", "webhook", receiver.url, secret, None, {}))
        [request] = receiver.requests
    # JSON carries the text as written; the receiver decides what it renders
    post = json.loads(request.body)["post"]
    assert (post["title"], post["text"]) == (TITLE, TEXT)
    assert post["items"][0]["filename"] == FILENAME
    assert "x-evil" not in request.headers


def _meta() -> FakeMeta:
    return FakeMeta(fetchable={"http://relay.example/m/item1/large.jpg": JPEG})


def facebook() -> None:
    with _meta() as fake:
        _publish(
            Destination(
                "f",
                "u",
                "facebook",
                fake.facebook_url,
                None,
                fake.page_token,
                {"page_id": fake.page_id},
            )  # fmt: skip
        )
        [post] = fake.of_kind("page_post")
        [photo] = fake.of_kind("photo")
    # a Page post's message is plain text: Facebook escapes it itself
    assert post["message"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    assert photo["alt_text_custom"] == ALT
    assert all("X-Evil" not in seen.headers for seen in fake.seen)


def instagram() -> None:
    with _meta() as fake:
        _publish(
            Destination(
                "i",
                "u",
                "instagram",
                fake.facebook_url,
                None,
                fake.user_token,
                {"ig_user_id": fake.ig_user_id},
            )  # fmt: skip
        )
        [media] = fake.of_kind("ig_media")
        [container] = [c for c in fake.of_kind("ig_container") if c["id"] == media["container"]]
    assert media["caption"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    assert container["alt_text"] == ALT


def threads() -> None:
    with _meta() as fake:
        _publish(
            Destination(
                "t",
                "u",
                "threads",
                fake.threads_url,
                None,
                fake.threads_token,
                {"threads_user_id": fake.threads_user_id},
            )  # fmt: skip
        )
        [thread] = fake.of_kind("thread")
        [container] = [
            c for c in fake.of_kind("threads_container") if c["id"] == thread["container"]
        ]
    assert thread["text"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    assert container["alt_text"] == ALT


def linkedin() -> None:
    # Plain "little text": every reserved character escaped, so readers see it all as written.
    with FakeLinkedIn() as fake:
        _publish(
            Destination("l", "u", "linkedin", fake.url, None, fake.token, {"author": fake.person})
        )
        [post] = fake.live()
    assert post["shown"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"
    assert post["media"][0]["altText"] == ALT


def x() -> None:
    with FakeX() as fake:
        _publish(Destination("x", "u", "x", fake.url, None, fake.token, {}))
        [tweet] = fake.live()
        [media_id] = tweet["media"]
    assert tweet["original"] == f"{TITLE}\n\n{TEXT}\n\n{PAGE}"  # X reads plain text
    assert fake.media[media_id]["alt"] == ALT


ADAPTERS: dict[str, Callable[[], None]] = {
    "wordpress": wordpress,
    "mastodon": mastodon,
    "bluesky": bluesky,
    "micropub": micropub,
    "webhook": webhook,
    "facebook": facebook,
    "instagram": instagram,
    "threads": threads,
    "linkedin": linkedin,
    "x": x,
}


@pytest.mark.parametrize("name", ADAPTERS)
def test_hostile_text_is_escaped_where_html_and_intact_where_plain(name: str) -> None:
    ADAPTERS[name]()
