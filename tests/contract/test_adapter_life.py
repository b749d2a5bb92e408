"""The same edit and delete expectations over every adapter, each against its strict fake (the
Editor and Retractor capabilities of relay.publish): publish a post; an edit changes the copy in
place (Bluesky: with ``edit=repost``, a new copy replaces it); the same edit again, as after a
lost answer, changes nothing more and makes no second copy; a delete takes the copy down; the
same delete again is success, not an error. Bluesky without ``edit=repost`` refuses to edit."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from relay.errors import PublishError
from relay.publish import (
    Destination,
    Editor,
    Media,
    Outgoing,
    Published,
    Remote,
    Retractor,
    adapter_for,
)
from relay.publish.net import Http
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.micropub import fake_micropub
from tests.fakes.wordpress import fake_wordpress

PAGE = "http://relay.example/p/abc"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 30)).save(out, "JPEG")
    return out.getvalue()


JPEG = _jpeg()


def outgoing(title: str, alt: str, key: str = "dlv_01LIFE") -> Outgoing:
    async def read() -> AsyncIterator[bytes]:
        yield JPEG

    medium = Media("item1", "image", "image/jpeg", len(JPEG), "http://relay.example/m/1.jpg",
                   64, 48, None, alt, read)  # fmt: skip
    post = {"id": "abc", "title": title, "text": "Hej", "url": PAGE,
            "created_at": "2026-12-06T12:00:00+00:00", "items": []}  # fmt: skip
    return Outgoing("dlv_01LIFE", key, 1, post, PAGE, title, "Hej", [medium])


@dataclass
class Channel:
    destination: Destination
    copies: Callable[[], list[str]]
    """The live copies on the fake, each as text that holds its title and alt text."""
    changes: Callable[[], int]
    """How many changes the fake recorded on its copies (revisions, replacements)."""


@contextmanager
def mastodon() -> Iterator[Channel]:
    with FakeMastodon() as fake:
        yield Channel(
            Destination("m", "u", "mastodon", fake.url, None, fake.token, {}),
            lambda: [
                s["text"]
                + "|"
                + "|".join(
                    str(fake.media[a["id"]].description) for a in s["media_attachments"]
                )  # fmt: skip
                for s in fake.statuses
            ],
            lambda: sum(len(h) for h in fake.history.values()),
        )


@contextmanager
def wordpress() -> Iterator[Channel]:
    with fake_wordpress() as wp:
        yield Channel(
            Destination("w", "u", "wordpress", wp.url, None, wp.password, {"user": wp.user}),
            lambda: [
                p["title"]["raw"] + "|" + p["content"]["raw"]
                for p in wp.posts.values()
                if p["status"] != "trash"
            ],
            lambda: sum(p.get("revisions", 0) for p in wp.posts.values()),
        )


@contextmanager
def micropub() -> Iterator[Channel]:
    with fake_micropub() as mp:
        yield Channel(
            Destination("p", "u", "micropub", mp.endpoint, None, mp.token, {}),
            lambda: [json.dumps(e["properties"], ensure_ascii=False) for e in mp.entries],
            lambda: sum(e.get("revisions", 0) for e in mp.entries),
        )


@contextmanager
def bluesky(**config: str) -> Iterator[Channel]:
    with FakeBluesky() as fake:
        yield Channel(
            Destination(
                "b",
                "u",
                "bluesky",
                fake.url,
                None,
                fake.app_password,
                {"handle": fake.handle, **config},
            ),  # fmt: skip
            lambda: [
                r["text"] + "|" + "|".join(i["alt"] for i in r.get("embed", {}).get("images", []))
                for r in fake.records.values()
            ],
            lambda: len(set(fake.writes)) - 1,
        )


CHANNELS: dict[str, Callable[[], Any]] = {
    "mastodon": mastodon,
    "wordpress": wordpress,
    "micropub": micropub,
    "bluesky edit=repost": lambda: bluesky(edit="repost"),
}


def _run(destination: Destination, step: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            result = step(adapter_for(destination, http))
            return await result if inspect.isawaitable(result) else result
        finally:
            await http.close()

    return asyncio.run(go())


def _remote(published: Published, key: str) -> Remote:
    return Remote("dlv_01LIFE", published.remote_id, published.remote_url, key)


@pytest.mark.parametrize("name", CHANNELS)
def test_edit_in_place_once_then_delete_once(name: str) -> None:
    with CHANNELS[name]() as channel:
        published = _run(channel.destination, lambda a: a.publish(outgoing("Stavfel", "Ko")))
        adapter = _run(channel.destination, lambda a: a)
        assert isinstance(adapter, Editor) and isinstance(adapter, Retractor)
        [before] = channel.copies()
        assert "Stavfel" in before

        edit_key = "dlv_01LIFE.updated.ev1"
        changed = outgoing("Rättat", "Två kor", edit_key)
        first = _run(channel.destination, lambda a: a.edit(changed, _remote(published, edit_key)))
        [after] = channel.copies()
        assert "Rättat" in after and "Stavfel" not in after
        assert "Två kor" in after
        assert channel.changes() == 1
        # The same edit again, as after a lost answer: no second change, no second copy.
        again = _run(channel.destination, lambda a: a.edit(changed, _remote(published, edit_key)))
        assert channel.copies() == [after] and channel.changes() == 1
        assert (again.remote_id, again.remote_url) == (first.remote_id, first.remote_url)

        gone_key = "dlv_01LIFE.deleted"
        current = _remote(first, gone_key)
        _run(channel.destination, lambda a: a.retract(current, "abc"))
        assert channel.copies() == []
        # Again, as after a lost answer: already gone is success.
        _run(channel.destination, lambda a: a.retract(current, "abc"))
        assert channel.copies() == []


def test_bluesky_refuses_an_edit_unless_asked_and_keeps_the_copy() -> None:
    with bluesky() as channel:
        published = _run(channel.destination, lambda a: a.publish(outgoing("Stavfel", "Ko")))
        key = "dlv_01LIFE.updated.ev1"
        with pytest.raises(PublishError) as refused:
            _run(
                channel.destination,
                lambda a: a.edit(outgoing("Rättat", "Ko", key), _remote(published, key)),
            )
        assert refused.value.code == "publish.cannot_edit"
        [copy] = channel.copies()
        assert "Stavfel" in copy


def test_an_unknown_edit_mode_is_refused() -> None:
    destination = Destination("b", "u", "bluesky", "http://127.0.0.1:9", None, "pw",
                              {"handle": "anna.test", "edit": "yes"})  # fmt: skip
    with pytest.raises(PublishError) as refused:
        _run(destination, lambda a: a)
    assert refused.value.code == "publish.rejected"


def test_a_wordpress_update_keeps_the_rest_route_of_a_plain_permalinks_site() -> None:
    with fake_wordpress(permalinks="plain") as wp:
        destination = Destination(
            "w", "u", "wordpress", wp.url, None, wp.password, {"user": wp.user}
        )
        published = _run(destination, lambda a: a.publish(outgoing("Stavfel", "Ko")))
        key = "dlv_01LIFE.updated.ev1"
        _run(destination, lambda a: a.edit(outgoing("Rättat", "Ko", key), _remote(published, key)))
        _run(destination, lambda a: a.retract(_remote(published, "k"), "abc"))
        changed = [r for r in wp.requests if r.method in ("POST", "DELETE")]
        assert {r.route for r in changed} >= {f"/wp/v2/posts/{published.remote_id}"}
        assert all(r.path == "/" for r in changed)  # every call went by ?rest_route=
