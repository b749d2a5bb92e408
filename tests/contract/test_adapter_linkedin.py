"""The LinkedIn adapter against the strict fake (tests/fakes/linkedin.py), call by call: what a
person's feed and a Page get (image with alt text, several images, a video in parts, a PDF as
a document post), the little-text escaping LinkedIn needs to show the whole text, a lost answer
found again, edit and delete once, and LinkedIn's errors as the relay's stable codes."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from relay.errors import PublishError, TransientPublishError
from relay.publish import Destination, Editor, Media, Outgoing, Remote, Retractor, adapter_for
from relay.publish.linkedin import escape_little_text
from relay.publish.net import Http
from tests.fakes.linkedin import FakeLinkedIn
from tests.media import blank_pdf

PAGE = "http://relay.example/p/01JABC_x"


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 30)).save(out, "JPEG")
    return out.getvalue()


def _medium(n: int, kind: str, mime: str, data: bytes, **more: Any) -> Media:
    async def read() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1 << 20):  # in chunks, as the store reads
            yield data[start : start + (1 << 20)]

    return Media(
        f"item{n}",
        kind,
        mime,
        len(data),
        f"http://relay.example/m/{n}",
        more.get("width"),
        more.get("height"),
        more.get("duration"),
        more.get("alt", ""),
        read,
    )


def photo(n: int = 1, alt: str = "") -> Media:
    return _medium(n, "image", "image/jpeg", _jpeg(), width=64, height=48, alt=alt)


def pdf(pages: int = 2) -> Media:
    return _medium(9, "document", "application/pdf", blank_pdf(pages))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """A real 4 s MP4 over 4 MB, so it goes up in two parts."""
    path = Path(tmp_path_factory.mktemp("li")) / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
         "-f", "lavfi", "-i", "anoisesrc=d=4", "-t", "4", "-c:v", "libx264", "-b:v", "9M",
         "-maxrate", "9M", "-bufsize", "1M", "-x264-params", "nal-hrd=cbr", "-pix_fmt",
         "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    data = path.read_bytes()
    assert len(data) > 4 * 1024 * 1024
    return _medium(5, "video", "video/mp4", data, width=640, height=360, duration=4.0)


def outgoing(
    title: str = "Torget", text: str = "Hej", media: list[Media] | None = None, attempt: int = 1
) -> Outgoing:
    post = {"id": "abc", "title": title, "text": text, "url": PAGE, "items": []}
    return Outgoing(
        "dlv_01LI", "dlv_01LI", attempt, post, PAGE, title, text,
        [photo()] if media is None else media,
    )  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as running:
        yield running


def destination(
    fake: FakeLinkedIn, author: str | None = None, token: str | None = None
) -> Destination:
    return Destination(
        "l", "u", "linkedin", fake.url, None, token or fake.token,
        {"author": author or fake.person},
    )  # fmt: skip


def run(dest: Destination, step: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            result = step(adapter_for(dest, http))
            return await result if inspect.isawaitable(result) else result
        finally:
            await http.close()

    return asyncio.run(go())


def publish(fake: FakeLinkedIn, out: Outgoing, author: str | None = None) -> Any:
    return run(destination(fake, author), lambda a: a.publish(out))


def test_a_photo_post_reaches_a_persons_feed_once_with_alt_text(fake: FakeLinkedIn) -> None:
    published = publish(fake, outgoing(media=[photo(alt="Två kor på torget")]))
    [post] = fake.live()
    assert post["author"] == fake.person and post["kind"] == "image"
    assert post["shown"] == f"Torget\n\nHej\n\n{PAGE}"
    [image] = post["media"]
    assert image["altText"] == "Två kor på torget" and image["data"] == _jpeg()
    assert published.remote_id == post["id"]
    assert published.remote_url == f"https://www.linkedin.com/feed/update/{post['id']}/"
    for call in fake.seen:
        if call.path.startswith("/rest/"):
            assert call.headers["X-Restli-Protocol-Version"] == "2.0.0"
            assert len(call.headers["LinkedIn-Version"]) == 6
        assert fake.token not in call.path


def test_reserved_characters_are_escaped_so_the_whole_text_shows(fake: FakeLinkedIn) -> None:
    text = "Möte (kl. 10) [plan] {x} <y> @alla #torget *viktigt* _a_ ~b~ | c \\ slut"
    publish(fake, outgoing(text=text, media=[]))
    [post] = fake.live()
    assert post["shown"] == f"Torget\n\n{text}\n\n{PAGE}"  # nothing cut at "("
    assert PAGE in post["commentary"]  # the link itself is not escaped: it stays a link
    assert escape_little_text("a(b") == "a\\(b"


def test_a_long_text_is_cut_to_3000_characters_with_the_link_kept(fake: FakeLinkedIn) -> None:
    publish(fake, outgoing(text="ord (x) " * 600, media=[]))
    [post] = fake.live()
    assert len(post["commentary"]) <= 3000 and post["shown"].endswith(f"…\n\n{PAGE}")


def test_several_photos_make_one_multi_image_post_for_a_page(fake: FakeLinkedIn) -> None:
    photos = [photo(1, "Ett"), photo(2, "Två"), photo(3)]
    publish(fake, outgoing(media=photos), author=fake.organization)
    [post] = fake.live()
    assert post["author"] == fake.organization and post["kind"] == "multiImage"
    assert [m["altText"] for m in post["media"]] == ["Ett", "Två", None]


def test_a_video_goes_up_in_parts_and_becomes_a_video_post(
    fake: FakeLinkedIn, video: Media
) -> None:
    fake.processing_polls = 2
    publish(fake, outgoing(media=[video]))
    [post] = fake.live()
    assert post["kind"] == "video" and post["media"][0]["title"] == "Torget"
    assert len(fake.calls("upload")) == 2 and len(fake.calls("videos.get")) == 3
    assert len(post["media"][0]["data"]) == video.bytes


def test_a_pdf_becomes_a_document_post(fake: FakeLinkedIn) -> None:
    document = pdf()
    publish(fake, outgoing(title="Protokoll", media=[document]))
    [post] = fake.live()
    assert post["kind"] == "document" and post["media"][0]["title"] == "Protokoll"
    assert post["media"][0]["data"][:5] == b"%PDF-"


def test_a_pdf_of_too_many_pages_is_a_plain_refusal(fake: FakeLinkedIn) -> None:
    with pytest.raises(PublishError) as raised:
        publish(fake, outgoing(media=[pdf(301)]))
    assert not isinstance(raised.value, TransientPublishError)
    assert "300 pages" in raised.value.public()["message"] and fake.live() == []


def test_a_pdf_the_relay_counted_over_300_pages_is_left_out_before_any_upload(
    fake: FakeLinkedIn,
) -> None:
    # The document handler counted the pages (Media.pages): nothing is uploaded only for
    # LinkedIn to fail its processing; the post goes as text with its page link.
    long = dataclasses.replace(pdf(301), pages=301)
    plan = run(destination(fake), lambda a: a.preflight(outgoing(media=[long])))
    assert plan.media == [] and plan.left_out == [
        "item9: LinkedIn takes documents of up to 300 pages (this one has 301)"
    ]
    publish(fake, outgoing(media=[long]))
    [post] = fake.live()
    assert post["kind"] != "document" and PAGE in post["commentary"]
    assert [s.route for s in fake.seen if s.route != "posts.find"] == ["posts.create"]
    fine = dataclasses.replace(pdf(300), pages=300)
    assert run(destination(fake), lambda a: a.preflight(outgoing(media=[fine]))).media == [fine]


def test_a_lost_answer_is_found_again_not_posted_twice(fake: FakeLinkedIn) -> None:
    fake.lose("posts.create")
    with pytest.raises(TransientPublishError):
        publish(fake, outgoing(), author=fake.organization)
    again = publish(fake, outgoing(attempt=2), author=fake.organization)
    [post] = fake.live()
    assert again.remote_id == post["id"] and len(fake.calls("posts.create")) == 1


@pytest.mark.parametrize(
    ("spoil", "words"),
    [("expire", "has expired"), ("revoke", "revoked by the user")],
)
def test_a_dead_token_is_reconnect_needed(fake: FakeLinkedIn, spoil: str, words: str) -> None:
    getattr(fake, spoil)(fake.token)
    with pytest.raises(PublishError) as raised:
        publish(fake, outgoing())
    assert not isinstance(raised.value, TransientPublishError)
    assert raised.value.code == "destination.reconnect_needed"
    assert "Connect again" in raised.value.public()["message"]
    assert words in raised.value.public()["message"]


def test_a_missing_permission_is_unauthorized(fake: FakeLinkedIn) -> None:
    fake.tokens[fake.token]["scopes"] = {"openid", "profile"}
    with pytest.raises(PublishError) as raised:
        publish(fake, outgoing(media=[]))
    assert raised.value.code == "publish.unauthorized"
    assert "Not enough permissions" in raised.value.public()["message"]


def test_the_daily_throttle_is_retried_later(fake: FakeLinkedIn) -> None:
    fake.fail(
        "posts.create", 429,
        {"status": 429, "serviceErrorCode": 101, "code": "TOO_MANY_REQUESTS",
         "message": "Resource level throttle APPLICATION DAY limit for calls to this resource"
                    " is reached."},
    )  # fmt: skip
    with pytest.raises(TransientPublishError) as raised:
        publish(fake, outgoing(media=[]))
    assert raised.value.code == "publish.rate_limited" and fake.live() == []


def test_a_422_is_a_plain_refusal_with_linkedins_words(fake: FakeLinkedIn) -> None:
    fake.fail(
        "posts.create", 422,
        {"status": 422, "serviceErrorCode": 100, "code": "UNPROCESSABLE_ENTITY",
         "message": "ERROR :: /commentary :: duplicate post"},
    )  # fmt: skip
    with pytest.raises(PublishError) as raised:
        publish(fake, outgoing(media=[]))
    assert not isinstance(raised.value, TransientPublishError)
    assert raised.value.code == "publish.rejected"
    assert "duplicate post" in raised.value.public()["message"]


def test_edits_once_and_deletes_once(fake: FakeLinkedIn) -> None:
    dest = destination(fake)
    published = publish(fake, outgoing(title="Stavfel (1)"))
    adapter = run(dest, lambda a: a)
    assert isinstance(adapter, Editor) and isinstance(adapter, Retractor)
    remote = Remote("dlv_01LI", published.remote_id, published.remote_url, "k.updated")
    for _ in range(2):  # again, as after a lost answer: no second change
        edited = run(dest, lambda a: a.edit(outgoing(title="Rättat (2)"), remote))
    [post] = fake.live()
    assert post["shown"].startswith("Rättat (2)") and post["revisions"] == 1
    assert edited.remote_id == published.remote_id
    for _ in range(2):  # already gone is success
        run(dest, lambda a: a.retract(remote, "abc"))
    assert fake.live() == []


def test_an_author_that_is_no_urn_is_refused() -> None:
    dest = Destination("l", "u", "linkedin", None, None, "t", {"author": "anna"})
    with pytest.raises(PublishError) as raised:
        run(dest, lambda a: a)
    assert "urn:li:person" in raised.value.detail


def test_check_names_the_person_and_the_page(fake: FakeLinkedIn) -> None:
    assert "Anna Lind" in run(destination(fake), lambda a: a.check())
    assert "Kommunen" in run(destination(fake, fake.organization), lambda a: a.check())


def test_the_web_apps_preview_shows_the_text_as_readers_see_it(fake: FakeLinkedIn) -> None:
    from relay.web.app.preview import channel_preview

    dest = destination(fake)
    out = outgoing(text="Möte (kl. 10)", media=[photo(), pdf()])
    shown = run(dest, lambda a: channel_preview(dest, a.http, out))
    assert shown.text == f"Torget\n\nMöte (kl. 10)\n\n{PAGE}" and not shown.cut
    assert shown.media == ["item1"]  # one kind of content: the PDF is left out
    assert fake.seen == []  # the preview asks nothing of LinkedIn


def test_a_videos_poster_and_captions_go_with_it(fake: FakeLinkedIn, video: Media) -> None:
    """Deliveries hand a video's other forms over as ``variants`` (the poster; captions once
    items carry them): LinkedIn gets the poster as the thumbnail and the captions file."""
    poster = _medium(6, "image", "image/jpeg", _jpeg(640, 360), width=640, height=360)
    captions = _medium(7, "captions", "text/vtt", captions_bytes())
    with_variants = dataclasses.replace(video, variants={"poster": poster, "captions": captions})
    publish(fake, outgoing(media=[with_variants]))
    [post] = fake.live()
    assert post["media"][0]["thumbnail"] == ("image/jpeg", _jpeg(640, 360))
    assert post["media"][0]["captions"] == ("text/vtt", captions_bytes())


def captions_bytes() -> bytes:
    return b"WEBVTT\n\n00:00.000 --> 00:03.000\nHej\n"


def test_a_failed_upload_is_retried_and_its_signed_url_never_in_the_error(
    fake: FakeLinkedIn,
) -> None:
    fake.lose("upload")
    with pytest.raises(TransientPublishError) as raised:
        publish(fake, outgoing())
    assert raised.value.code == "publish.unreachable"
    assert "/upload/" not in str(raised.value) and fake.live() == []
    publish(fake, outgoing(attempt=2))
    assert len(fake.live()) == 1
