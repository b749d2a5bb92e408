"""The three Meta adapters against the strict Graph fake (tests/fakes/meta.py), call by call:
what each channel gets, what the preflight refuses before anything is sent, and how Graph's
errors become the relay's stable codes (temporary ones retried, permanent ones plain)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from relay.errors import PublishError, TransientPublishError
from relay.publish import Destination, Editor, Media, Outgoing, Remote, Retractor, adapter_for
from relay.publish.net import Http
from relay.publish.threads import threads_length
from tests.fakes.meta import FakeMeta

PAGE = "http://relay.example/p/abc"


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 30)).save(out, "JPEG")
    return out.getvalue()


def medium(n: int = 1, width: int = 64, height: int = 48, alt: str = "") -> Media:
    data = _jpeg(width, height)

    async def read() -> AsyncIterator[bytes]:
        yield data

    return Media(
        f"item{n}",
        "image",
        "image/jpeg",
        len(data),
        f"http://relay.example/m/{n}.jpg",
        width,
        height,
        None,
        alt,
        read,
    )


def outgoing(
    title: str = "Torget", text: str = "Hej", media: list[Media] | None = None, attempt: int = 1
) -> Outgoing:
    post = {"id": "abc", "title": title, "text": text, "url": PAGE, "items": []}
    return Outgoing(
        "dlv_01META",
        "dlv_01META",
        attempt,
        post,
        PAGE,
        title,
        text,
        [medium()] if media is None else media,
    )


@pytest.fixture
def fake() -> Iterator[FakeMeta]:
    with FakeMeta() as running:
        yield running


def _serve(fake: FakeMeta, out: Outgoing) -> None:
    """Make the media's relay.example URLs reachable for the fake, as a public relay's are."""

    async def collect(m: Media) -> bytes:
        return b"".join([chunk async for chunk in m.read()])

    for m in out.media:
        fake.fetchable.setdefault(m.url, asyncio.run(collect(m)))


def destination(fake: FakeMeta, kind: str) -> Destination:
    if kind == "facebook":
        return Destination(
            "f",
            "u",
            "facebook",
            fake.facebook_url,
            None,
            fake.page_token,
            {"page_id": fake.page_id},
        )
    if kind == "instagram":
        return Destination(
            "i",
            "u",
            "instagram",
            fake.facebook_url,
            None,
            fake.user_token,
            {"ig_user_id": fake.ig_user_id},
        )
    return Destination(
        "t",
        "u",
        "threads",
        fake.threads_url,
        None,
        fake.threads_token,
        {"threads_user_id": fake.threads_user_id},
    )


def run(dest: Destination, step: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            result = step(adapter_for(dest, http))
            return await result if inspect.isawaitable(result) else result
        finally:
            await http.close()

    return asyncio.run(go())


def publish(fake: FakeMeta, kind: str, out: Outgoing) -> Any:
    _serve(fake, out)
    return run(destination(fake, kind), lambda a: a.publish(out))


KINDS = ("facebook", "instagram", "threads")
COPIES = {"facebook": "page_post", "instagram": "ig_media", "threads": "thread"}
TEXT_FIELD = {"facebook": "message", "instagram": "caption", "threads": "text"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_photo_post_reaches_the_channel_once_with_its_link(fake: FakeMeta, kind: str) -> None:
    published = publish(fake, kind, outgoing(media=[medium(alt="Ko")]))
    [copy] = fake.of_kind(COPIES[kind])
    assert copy[TEXT_FIELD[kind]] == f"Torget\n\nHej\n\n{PAGE}"
    assert (
        published.remote_id == copy["id"]
        and published.remote_url == copy["permalink_url" if kind == "facebook" else "permalink"]
    )
    if kind != "facebook":  # Instagram and Threads fetched the photo from the relay's URL
        assert fake.fetched == ["http://relay.example/m/1.jpg"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_answer_is_found_again_not_posted_twice(fake: FakeMeta, kind: str) -> None:
    route = {
        "facebook": "page.feed.create",
        "instagram": "ig.publish",
        "threads": "threads.publish",
    }
    fake.lose(route[kind])
    with pytest.raises(TransientPublishError):
        publish(fake, kind, outgoing())
    again = publish(fake, kind, outgoing(attempt=2))
    [copy] = fake.of_kind(COPIES[kind])
    assert again.remote_id == copy["id"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_expired_token_is_a_reconnect_needed_failure(fake: FakeMeta, kind: str) -> None:
    for token in (fake.page_token, fake.user_token, fake.threads_token):
        fake.expire(token)
    with pytest.raises(PublishError) as raised:
        publish(fake, kind, outgoing())
    assert not isinstance(raised.value, TransientPublishError)
    assert raised.value.code == "destination.reconnect_needed"
    assert "Connect again" in raised.value.public()["message"]
    assert "Session has expired" in raised.value.public()["message"]
    assert "fbtrace" not in raised.value.public()["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_graph_rate_limit_is_retried_later(fake: FakeMeta, kind: str) -> None:
    route = {
        "facebook": "page.feed.create",
        "instagram": "ig.media.create",
        "threads": "threads.create",
    }
    body = {
        "error": {
            "message": "(#32) Page request limit reached",
            "type": "OAuthException",
            "code": 32,
            "fbtrace_id": "Axyz",
        }
    }
    fake.fail(route[kind], 400, body)
    with pytest.raises(TransientPublishError) as raised:
        publish(fake, kind, outgoing())
    assert raised.value.code == "publish.rate_limited"
    assert fake.of_kind(COPIES[kind]) == []


@pytest.mark.parametrize("kind", ("instagram", "threads"))
def test_a_used_up_quota_defers_without_posting(fake: FakeMeta, kind: str) -> None:
    fake.ig_quota = fake.threads_quota = 0
    with pytest.raises(TransientPublishError) as raised:
        publish(fake, kind, outgoing())
    assert raised.value.code == "publish.rate_limited"
    assert "limit of posts a day" in raised.value.public()["message"]
    assert fake.of_kind(COPIES[kind]) == [] and fake.fetched == []


@pytest.mark.parametrize("kind", ("instagram", "threads"))
def test_a_media_url_not_fetchable_yet_is_retried_then_posted(fake: FakeMeta, kind: str) -> None:
    fake.unfetchable.append("http://relay.example/")
    with pytest.raises(TransientPublishError):
        publish(fake, kind, outgoing())
    fake.unfetchable.clear()
    publish(fake, kind, outgoing(attempt=2))
    assert len(fake.of_kind(COPIES[kind])) == 1


def test_instagram_preflight_refuses_a_post_without_photo_or_video(fake: FakeMeta) -> None:
    with pytest.raises(PublishError) as raised:
        publish(fake, "instagram", outgoing(media=[]))
    assert raised.value.code == "publish.rejected"
    assert "Instagram needs a photo or a video" in raised.value.public()["message"]
    assert fake.seen == []  # refused before anything was sent


def test_instagram_leaves_out_a_photo_of_a_shape_it_refuses(fake: FakeMeta) -> None:
    panorama = medium(2, width=400, height=100)
    with pytest.raises(PublishError) as raised:
        publish(fake, "instagram", outgoing(media=[panorama]))
    assert "shape" in raised.value.public()["message"] and fake.seen == []
    publish(fake, "instagram", outgoing(media=[panorama, medium(3)]))
    [copy] = fake.of_kind("ig_media")
    assert copy["media_type"] == "IMAGE" and fake.fetched == ["http://relay.example/m/3.jpg"]


def test_instagram_refuses_more_than_30_hashtags_and_cuts_a_long_caption(fake: FakeMeta) -> None:
    tags = " ".join(f"#t{n}" for n in range(31))
    with pytest.raises(PublishError) as raised:
        publish(fake, "instagram", outgoing(text=tags))
    assert "30 hashtags" in raised.value.public()["message"]
    publish(fake, "instagram", outgoing(text="ord " * 1000))
    [copy] = fake.of_kind("ig_media")
    assert len(copy["caption"]) <= 2200 and copy["caption"].endswith(f"…\n\n{PAGE}")


def test_instagram_carousel_and_facebook_multi_photo_post(fake: FakeMeta) -> None:
    photos = [medium(1), medium(2), medium(3)]
    publish(fake, "instagram", outgoing(media=photos))
    [copy] = fake.of_kind("ig_media")
    assert copy["media_type"] == "CAROUSEL"
    [parent] = [c for c in fake.of_kind("ig_container") if c["id"] == copy["container"]]
    assert len(parent["children"]) == 3
    publish(fake, "facebook", outgoing(media=photos))
    [post] = fake.of_kind("page_post")
    assert len(post["photos"]) == 3 and post["link"] is None


def test_threads_carousel_of_up_to_20_from_finished_items(fake: FakeMeta) -> None:
    """Items made with is_carousel_item and FINISHED before the CAROUSEL container that names
    them (the fake refuses anything else); the 21st medium is left out."""
    photos = [medium(n) for n in range(1, 22)]
    publish(fake, "threads", outgoing(media=photos))
    [thread] = fake.of_kind("thread")
    assert thread["media_type"] == "CAROUSEL"
    [parent] = [c for c in fake.of_kind("threads_container") if c["id"] == thread["container"]]
    assert len(parent["children"]) == 20
    assert all(fake.objects[c]["carousel_item"] for c in parent["children"])


def test_facebook_without_photos_is_a_link_post(fake: FakeMeta) -> None:
    publish(fake, "facebook", outgoing(media=[]))
    [post] = fake.of_kind("page_post")
    assert post["link"] == PAGE and post["photos"] == []


def test_threads_text_is_cut_as_threads_counts_with_the_link_kept(fake: FakeMeta) -> None:
    publish(fake, "threads", outgoing(text="hej 🎉 " * 200, media=[]))
    [thread] = fake.of_kind("thread")
    assert threads_length(thread["text"]) <= 500
    assert thread["text"].endswith(f"…\n\n{PAGE}")


def test_facebook_edits_once_and_deletes_once(fake: FakeMeta) -> None:
    dest = destination(fake, "facebook")
    published = publish(fake, "facebook", outgoing(title="Stavfel"))
    adapter = run(dest, lambda a: a)
    assert isinstance(adapter, Editor) and isinstance(adapter, Retractor)
    remote = Remote("dlv_01META", published.remote_id, published.remote_url, "k.updated")
    for _ in range(2):  # again, as after a lost answer: no second change
        run(dest, lambda a: a.edit(outgoing(title="Rättat"), remote))
    [post] = fake.of_kind("page_post")
    assert post["message"].startswith("Rättat") and post["revisions"] == 1
    for _ in range(2):  # already gone is success
        run(dest, lambda a: a.retract(remote, "abc"))
    assert fake.of_kind("page_post") == []


def _video(data: bytes, poster: bytes | None) -> Media:
    async def read() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7000):  # a store gives it in pieces
            yield data[start : start + 7000]

    async def read_poster() -> AsyncIterator[bytes]:
        yield poster or b""

    return Media(
        "item9",
        "video",
        "video/mp4",
        len(data),
        "http://relay.example/m/9.mp4",
        320,
        240,
        2.0,
        "",
        read,
        variants={}
        if poster is None
        else {
            "poster": Media(
                "item9",
                "image",
                "image/jpeg",
                len(poster),
                "http://relay.example/m/9.jpg",
                320,
                240,
                None,
                "",
                read_poster,
            )  # fmt: skip
        },
    )


def test_facebook_a_video_upload_cut_twice_resumes_and_the_video_edits_and_deletes(
    fake: FakeMeta,
) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 200
    dest = Destination(
        "f", "u", "facebook", fake.facebook_url, None, fake.page_token,
        {"page_id": fake.page_id, "app_id": fake.app_id},
    )  # fmt: skip
    fake.cut_uploads.extend([10_000, 20_000])
    published = run(dest, lambda a: a.publish(outgoing(media=[_video(clip, _jpeg(160, 90))])))
    [video] = fake.of_kind("video")
    assert video["data"] == clip and video["thumb_size"] == (160, 90)
    offsets = [c.headers["file_offset"] for c in fake.calls("upload.transfer")]
    assert offsets == ["0", "10000", "30000"]
    assert published.remote_id == f"video:{video['id']}"
    assert published.remote_url == f"https://www.facebook.com{video['permalink_url']}"

    remote = Remote("dlv_01META", published.remote_id, published.remote_url, "k.updated")
    for _ in range(2):
        run(dest, lambda a: a.edit(outgoing(title="Rättat"), remote))
    assert video["description"].startswith("Rättat") and video["revisions"] == 1
    for _ in range(2):
        run(dest, lambda a: a.retract(remote, "abc"))
    assert fake.of_kind("video") == [] and fake.of_kind("page_post") == []


def test_facebook_a_lost_video_answer_makes_one_page_video(fake: FakeMeta) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    dest = Destination(
        "f", "u", "facebook", fake.facebook_url, None, fake.page_token,
        {"page_id": fake.page_id, "app_id": fake.app_id},
    )  # fmt: skip
    fake.lose("page.videos")
    with pytest.raises(TransientPublishError):
        run(dest, lambda a: a.publish(outgoing(media=[_video(clip, None)])))
    again = run(dest, lambda a: a.publish(outgoing(media=[_video(clip, None)], attempt=2)))
    [video] = fake.of_kind("video")
    [post] = fake.of_kind("page_post")
    assert again.remote_id == post["id"] and post["video"] == video["id"]
    assert len(fake.calls("page.videos")) == 1 and len(fake.calls("app.uploads")) == 1


def test_facebook_a_post_with_photos_leaves_its_video_to_the_page_link(fake: FakeMeta) -> None:
    dest = Destination(
        "f", "u", "facebook", fake.facebook_url, None, fake.page_token,
        {"page_id": fake.page_id, "app_id": fake.app_id},
    )  # fmt: skip
    out = outgoing(media=[medium(), _video(b"\x00\x00\x00\x18ftypmp42", None)])
    plan = run(dest, lambda a: a.preflight(out))
    assert plan.video is None and len(plan.media) == 1
    assert plan.left_out == ["item9: a Page post carries photos or one video"]


def test_facebook_gives_a_big_video_upload_the_time_it_needs(fake: FakeMeta) -> None:
    """A delivery's publish is cut off after 120 s unless the adapter asks for more: a 600 MB
    clip gets at least the time it takes at 1 MB/s; a photo post asks for nothing."""
    dest = Destination(
        "f", "u", "facebook", fake.facebook_url, None, fake.page_token,
        {"page_id": fake.page_id, "app_id": fake.app_id},
    )  # fmt: skip
    big = dataclasses.replace(_video(b"", None), bytes=600 * 1024 * 1024)
    assert run(dest, lambda a: a.timeout_for(outgoing(media=[big]))) >= 600
    assert run(dest, lambda a: a.timeout_for(outgoing())) is None


def test_threads_deletes_once_and_instagram_says_it_cannot(fake: FakeMeta) -> None:
    dest = destination(fake, "threads")
    published = publish(fake, "threads", outgoing())
    remote = Remote("dlv_01META", published.remote_id, published.remote_url, "k.deleted")
    adapter = run(dest, lambda a: a)
    assert isinstance(adapter, Retractor) and not isinstance(adapter, Editor)
    for _ in range(2):
        run(dest, lambda a: a.retract(remote, "abc"))
    assert fake.of_kind("thread") == []
    instagram = run(destination(fake, "instagram"), lambda a: a)
    assert not isinstance(instagram, Retractor) and not isinstance(instagram, Editor)


@pytest.mark.parametrize("kind", KINDS)
def test_check_names_the_account(fake: FakeMeta, kind: str) -> None:
    said = run(destination(fake, kind), lambda a: a.check())
    assert ("Kommunen" if kind == "facebook" else "@kommunen") in said


def test_the_web_apps_preview_shows_each_channels_preflight(fake: FakeMeta) -> None:
    from relay.web.app.preview import channel_preview

    text_only = outgoing(media=[])
    refused = run(
        destination(fake, "instagram"),
        lambda a: channel_preview(destination(fake, "instagram"), a.graph.http, text_only),
    )
    assert "Instagram needs a photo or a video" in refused.refused and refused.text == ""
    shown = run(
        destination(fake, "facebook"),
        lambda a: channel_preview(destination(fake, "facebook"), a.graph.http, outgoing()),
    )
    assert (shown.refused, shown.text, shown.media) == ("", f"Torget\n\nHej\n\n{PAGE}", ["item1"])
    page = Destination(
        "f", "u", "facebook", fake.facebook_url, None, fake.page_token,
        {"page_id": fake.page_id, "app_id": fake.app_id},
    )  # fmt: skip
    clip = outgoing(media=[_video(b"\x00\x00\x00\x18ftypmp42", None)])
    video = run(page, lambda a: channel_preview(page, a.graph.http, clip))
    assert video.media == ["item9"]
    assert fake.seen == []  # the preview asks nothing of Meta


def padded(panorama: Media, width: int, height: int) -> Media:
    """``panorama`` with the ``fit_instagram`` rendition an Instagram delivery pads it to."""
    number = int(panorama.item_id.removeprefix("item")) + 50
    fitted = dataclasses.replace(
        medium(number, width, height),
        item_id=panorama.item_id,
        url=f"http://relay.example/m/{number}-fit_instagram.jpg",
    )
    return dataclasses.replace(panorama, variants={"fit_instagram": fitted})


def test_instagram_gets_a_panorama_as_its_padded_rendition(fake: FakeMeta) -> None:
    panorama = medium(2, width=400, height=100)
    # Instagram itself refuses the panorama's shape (code 36003, subcode 2207009), as the fake
    _serve(fake, outgoing(media=[panorama]))
    with pytest.raises(PublishError) as raised:
        run(destination(fake, "instagram"), lambda a: a._container(panorama, {"caption": "x"}))
    assert raised.value.code == "publish.rejected" and fake.of_kind("ig_container") == []
    fitted = padded(panorama, 764, 400)
    out = outgoing(media=[fitted])
    _serve(fake, outgoing(media=[fitted.variants["fit_instagram"]]))
    publish(fake, "instagram", out)
    [container] = fake.of_kind("ig_container")
    assert container["size"] == (764, 400) and len(fake.of_kind("ig_media")) == 1
    assert fake.fetched[-1] == "http://relay.example/m/52-fit_instagram.jpg"


def test_instagram_preview_says_a_photo_is_padded(fake: FakeMeta) -> None:
    from relay.web.app.preview import channel_preview

    tall = padded(medium(4, width=300, height=600), 480, 600)
    out = outgoing(media=[tall])
    shown = run(
        destination(fake, "instagram"),
        lambda a: channel_preview(destination(fake, "instagram"), a.graph.http, out),
    )
    assert shown.refused == "" and shown.media == ["item4"]
    assert shown.notes == ["item4: the photo is padded to 4:5"]
    assert fake.seen == []


def test_instagram_preview_says_a_photo_will_be_padded_before_it_is(
    fake: FakeMeta, tmp_path: Path
) -> None:
    """The web app's preview of a post whose upright photo no delivery has padded yet: the
    Publisher's preview stands in the size the padding will have, and makes nothing."""
    from relay.model import Item, ItemStatus, Kind, Post, Rendition
    from relay.publish.deliver import Publisher
    from relay.storage.local import LocalStore
    from relay.web.app.preview import channel_preview

    def photo(item_id: str, width: int, height: int) -> Item:
        return Item(
            id=item_id, post_id="p", position=0, filename=f"{item_id}.jpg", declared_mime=None,
            status=ItemStatus.READY, kind=Kind.IMAGE,
            renditions=[
                Rendition("large", f"p/{item_id}/large.jpg", "image/jpeg", 900_000, width, height)
            ],
        )  # fmt: skip

    def present(post: Post) -> dict[str, Any]:
        return {
            "url": PAGE,
            "items": [
                {
                    "id": i.id,
                    "renditions": [
                        {"name": r.name, "url": f"http://relay.example/m/{r.key}"}
                        for r in i.renditions
                    ],
                }
                for i in post.items
            ],
        }

    store = LocalStore(tmp_path)
    items = [photo("upright", 1536, 2048), photo("landscape", 2048, 1536)]
    post = Post(id="p", user_id="u", title="Torget", text="Hej", items=items)
    publisher = Publisher(None, store, None, present, max_age=60)  # type: ignore[arg-type]
    out = publisher.preview(post)
    upright, landscape = out.media
    stand_in = upright.variants["fit_instagram"]
    assert (stand_in.width, stand_in.height, stand_in.mime) == (1440, 1800, "image/jpeg")
    assert landscape.variants == {}  # Instagram shows 4:3 as it is
    shown = run(
        destination(fake, "instagram"),
        lambda a: channel_preview(destination(fake, "instagram"), a.graph.http, out),
    )
    assert shown.refused == "" and shown.media == ["upright", "landscape"]
    assert shown.notes == ["upright: the photo is padded to 4:5"]
    assert fake.seen == [] and list(tmp_path.rglob("*")) == []  # nothing asked, nothing made
