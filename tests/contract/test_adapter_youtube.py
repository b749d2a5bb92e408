"""The YouTube adapter against the strict Google fake (tests/fakes/youtube.py), call by call:
the resumable upload in aligned chunks and its resume at the server's offset, what the video
says (title, description with the page link, tags, privacy, Shorts), thumbnail and captions,
once only across attempts, edit and delete, quota and token errors as the relay's codes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from PIL import Image

from relay.errors import PublishError, TransientPublishError
from relay.publish import Destination, Editor, Media, Outgoing, Remote, Retractor, adapter_for
from relay.publish.net import Http
from relay.publish.youtube import QUANTUM, YouTubeAdapter, choose_file
from tests.clips import web_ready_mp4
from tests.fakes.youtube import QUOTA_MESSAGE, FakeYouTube

PAGE = "http://relay.example/p/abc"
KEY = "dlv_01YOUTUBE"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real H.264 clip a little over two upload quanta (so one can be cut mid-way)."""
    path = tmp_path_factory.mktemp("yt") / "clip.mp4"
    web_ready_mp4(path, "640x360", 3, "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "1M")
    data = path.read_bytes()
    assert len(data) > 2 * QUANTUM
    return data


@pytest.fixture(scope="module")
def vertical(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return web_ready_mp4(tmp_path_factory.mktemp("yt") / "v.mp4", "180x320", 1).read_bytes()


def _jpeg(width: int = 320, height: int = 180) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _reader(data: bytes, piece: int = 65536) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        for at in range(0, len(data), piece):
            yield data[at : at + piece]

    return read


def _medium(
    data: bytes,
    mime: str,
    kind: str = "video",
    size: tuple[int, int] = (640, 360),
    duration: float | None = 2.0,
    **variants: Media,
) -> Media:
    return Media(
        "item1",
        kind,
        mime,
        len(data),
        f"http://relay.example/m/{kind}",
        size[0],
        size[1],
        duration,
        "",
        _reader(data),
        dict(variants),
    )


def video(
    data: bytes,
    size: tuple[int, int] = (640, 360),
    duration: float = 2.0,
    original: tuple[bytes, str] | None = None,
    captions: bytes | None = None,
) -> Media:
    variants = {"poster": _medium(_jpeg(), "image/jpeg", "image", size, None)}
    if original is not None:
        variants["original"] = _medium(original[0], original[1], "video", size, duration)
    if captions is not None:
        variants["captions"] = _medium(captions, "text/vtt", "captions", size, None)
    return _medium(data, "video/mp4", "video", size, duration, **variants)


def outgoing(
    media: list[Media],
    title: str = "Invigningen",
    text: str = "Torget invigs i dag.",
    attempt: int = 1,
    private: bool = False,
    tags: list[str] | None = None,
) -> Outgoing:
    post = {
        "id": "abc",
        "title": title,
        "text": text,
        "url": PAGE,
        "items": [],
        "private": private,
        "tags": tags or [],
    }
    return Outgoing(KEY, KEY, attempt, post, PAGE, title, text, media)


@pytest.fixture
def fake() -> Iterator[FakeYouTube]:
    with FakeYouTube() as running:
        yield running


def destination(fake: FakeYouTube, token: str | None = None, **config: Any) -> Destination:
    return Destination("d1", "u1", "youtube", fake.url, None, token or fake.access_token, config)


def refreshable(fake: FakeYouTube) -> dict[str, str]:
    return {
        "refresh_token": fake.refresh_token,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "token_url": fake.url + "/token",
    }


def run(dest: Destination, step: Callable[[Any], Any], chunk: int | None = None) -> Any:
    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            adapter = adapter_for(dest, http)
            if chunk is not None:
                adapter.chunk = chunk
            adapter.resume_pause = 0.01
            result = step(adapter)
            return await result if inspect.isawaitable(result) else result
        finally:
            await http.close()

    return asyncio.run(go())


def test_a_clip_becomes_a_video_with_title_description_tags_and_thumbnail(
    fake: FakeYouTube, clip: bytes
) -> None:
    out = outgoing([video(clip)], tags=["kommun", "torget"])
    published = run(destination(fake), lambda a: a.publish(out), chunk=QUANTUM)
    [made] = fake.live()
    assert made["data"] == clip
    assert published.remote_id == made["id"]
    assert published.remote_url == f"https://www.youtube.com/watch?v={made['id']}"
    assert made["snippet"]["title"] == "Invigningen"
    assert made["snippet"]["description"] == f"Torget invigs i dag.\n\n{PAGE}"
    assert made["snippet"]["tags"] == ["relay-dlv_01YOUTUBE", "kommun", "torget"]
    assert made["status"]["privacyStatus"] == "public"
    assert made["thumbnail"] == _jpeg()
    # Streamed in chunks of 256 KiB, each continuing the last; only the final one shorter.
    sizes = [size for _first, size in fake.chunks]
    assert len(sizes) == -(-len(clip) // QUANTUM)
    assert all(size == QUANTUM for size in sizes[:-1])
    assert [first for first, _ in fake.chunks] == [i * QUANTUM for i in range(len(sizes))]
    assert fake.used_inserts == 1


def test_a_dropped_connection_resumes_at_the_servers_offset(fake: FakeYouTube, clip: bytes) -> None:
    kept = QUANTUM + 1000  # the server keeps part of a chunk, not a whole one
    fake.drop_upload_after(kept)
    published = run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    [made] = fake.live()
    assert made["data"] == clip and published.remote_id == made["id"]
    # One chunk cut off, one question of how much arrived, then the rest from there.
    assert [first for first, _ in fake.chunks] == [0, kept]
    assert len(fake.calls("videos.upload")) == 3
    assert fake.used_inserts == 1


def test_a_lost_final_answer_is_asked_for_not_sent_again(fake: FakeYouTube, clip: bytes) -> None:
    fake.lose("videos.upload")
    run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    assert len(fake.live()) == 1
    assert [first for first, _ in fake.chunks] == [0]


def test_a_retry_finds_the_video_of_its_first_attempt(fake: FakeYouTube, clip: bytes) -> None:
    first = run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    again = run(destination(fake), lambda a: a.publish(outgoing([video(clip)], attempt=2)))
    assert again.remote_id == first.remote_id
    assert len(fake.live()) == 1 and fake.used_inserts == 1


def test_a_private_post_is_private_or_unlisted_as_the_channel_says(
    fake: FakeYouTube, clip: bytes
) -> None:
    run(destination(fake), lambda a: a.publish(outgoing([video(clip)], private=True)))
    unlisted = destination(fake, private_as="unlisted")
    run(unlisted, lambda a: a.publish(outgoing([video(clip)], private=True)))
    assert [v["status"]["privacyStatus"] for v in fake.live()] == ["private", "unlisted"]
    with pytest.raises(PublishError) as refused:
        run(destination(fake, private_as="secret"), lambda a: a)
    assert "private or unlisted" in refused.value.public()["message"]


def test_a_vertical_short_clip_is_marked_as_a_short(fake: FakeYouTube, vertical: bytes) -> None:
    out = outgoing([video(vertical, size=(180, 320), duration=1.0)])
    published = run(destination(fake), lambda a: a.publish(out))
    [made] = fake.live()
    assert made["snippet"]["title"] == "Invigningen #Shorts"
    assert made["snippet"]["description"] == f"Torget invigs i dag.\n\n#Shorts\n\n{PAGE}"
    assert published.remote_url == f"https://www.youtube.com/shorts/{made['id']}"


def test_a_long_or_wide_clip_is_no_short(fake: FakeYouTube, clip: bytes) -> None:
    run(destination(fake), lambda a: a.publish(outgoing([video(clip, (180, 320), 61.0)])))
    [made] = fake.live()
    assert "#Shorts" not in made["snippet"]["title"] + made["snippet"]["description"]


def test_titles_and_descriptions_fit_youtubes_rules(fake: FakeYouTube, clip: bytes) -> None:
    title = "<script>alert(1)</script> " + "Lång titel " * 20
    text = "Å" * 4000  # 8,000 bytes in UTF-8
    run(destination(fake), lambda a: a.publish(outgoing([video(clip)], title=title, text=text)))
    [made] = fake.live()
    snippet = made["snippet"]
    assert len(snippet["title"]) <= 100 and "<" not in snippet["title"]
    assert snippet["title"].startswith("‹script›alert(1)‹/script› Lång titel")
    assert len(snippet["description"].encode()) <= 5000
    assert snippet["description"].endswith(PAGE)


def test_the_original_goes_when_youtube_takes_it_else_the_web_mp4(clip: bytes) -> None:
    kept = video(clip, original=(clip + b"x", "video/quicktime"))
    assert choose_file(kept)[0].mime == "video/quicktime"
    huge = video(clip, original=(clip * 5, "video/quicktime"))
    chosen, why = choose_file(huge)
    assert chosen.mime == "video/mp4" and "more than 4 times" in why
    odd = video(clip, original=(clip, "application/mxf"))
    assert choose_file(odd)[0].mime == "video/mp4"


def test_the_chosen_original_is_what_youtube_gets(fake: FakeYouTube, clip: bytes) -> None:
    original = clip + b"\x00" * 10
    run(
        destination(fake),
        lambda a: a.publish(outgoing([video(clip, original=(original, "video/quicktime"))])),
    )
    [made] = fake.live()
    assert hashlib.sha256(made["data"]).digest() == hashlib.sha256(original).digest()
    assert made["mime"] == "video/quicktime"


def test_a_post_without_video_is_refused_before_anything_is_sent(fake: FakeYouTube) -> None:
    photo = _medium(_jpeg(), "image/jpeg", "image", (320, 180), None)
    with pytest.raises(PublishError) as refused:
        run(destination(fake), lambda a: a.publish(outgoing([photo])))
    assert refused.value.code == "publish.rejected"
    assert "YouTube takes a video" in refused.value.public()["message"]
    assert fake.seen == []


def test_captions_go_once(fake: FakeYouTube, clip: bytes) -> None:
    track = b"WEBVTT\n\n00:00.000 --> 00:01.000\nHej\n"
    run(destination(fake), lambda a: a.publish(outgoing([video(clip, captions=track)])))
    run(destination(fake), lambda a: a.publish(outgoing([video(clip, captions=track)], attempt=2)))
    [made] = fake.live()
    [caption] = made["captions"]
    assert caption["data"] == track and caption["snippet"]["language"] == "en"


def test_an_unverified_channel_keeps_youtubes_thumbnail(fake: FakeYouTube, clip: bytes) -> None:
    fake.unverified = True
    published = run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    [made] = fake.live()
    assert published.remote_id == made["id"] and made["thumbnail"] is None


def test_quota_used_up_is_a_failure_that_says_when_it_resets(
    fake: FakeYouTube, clip: bytes
) -> None:
    fake.inserts = 0
    with pytest.raises(PublishError) as failed:
        run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    assert not isinstance(failed.value, TransientPublishError)
    assert failed.value.code == "publish.quota_exceeded"
    message = failed.value.public()["message"]
    assert "exceeded your quota" in message and "<a" not in message
    assert "resets at midnight Pacific Time" in message
    assert fake.live() == []


def test_a_rate_limit_is_retried_later(fake: FakeYouTube, clip: bytes) -> None:
    body = {
        "error": {
            "code": 403,
            "message": "Rate limit exceeded",
            "errors": [
                {
                    "domain": "youtube.quota",
                    "reason": "rateLimitExceeded",
                    "message": "Rate limit exceeded",
                }
            ],
        }
    }
    fake.fail("videos.insert", 403, body)
    with pytest.raises(TransientPublishError) as later:
        run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    assert later.value.code == "publish.rate_limited"
    assert QUOTA_MESSAGE not in later.value.public()["message"]


def test_an_expired_access_token_is_refreshed(fake: FakeYouTube, clip: bytes) -> None:
    fake.expire(fake.access_token)
    dest = destination(fake, **refreshable(fake))
    run(dest, lambda a: a.publish(outgoing([video(clip)])))
    assert len(fake.live()) == 1
    assert len(fake.calls("oauth.token")) == 1


def test_a_revoked_sign_in_needs_reconnecting(fake: FakeYouTube, clip: bytes) -> None:
    fake.expire(fake.access_token)
    fake.revoke(fake.refresh_token)
    with pytest.raises(PublishError) as dead:
        run(destination(fake, **refreshable(fake)), lambda a: a.publish(outgoing([video(clip)])))
    assert dead.value.code == "destination.reconnect_needed"
    assert "Token has been expired or revoked" in dead.value.public()["message"]
    with pytest.raises(PublishError) as bare:
        run(destination(fake), lambda a: a.publish(outgoing([video(clip)])))
    assert bare.value.code == "destination.reconnect_needed"


def test_edit_once_then_delete_once(fake: FakeYouTube, clip: bytes) -> None:
    published = run(destination(fake), lambda a: a.publish(outgoing([video(clip)], tags=["a"])))
    assert isinstance(run(destination(fake), lambda a: a), Editor | Retractor)
    remote = Remote(KEY, published.remote_id, published.remote_url, f"{KEY}.updated.ev1")
    edited = outgoing([video(clip)], title="Rättad titel", text="Ny text.", tags=["b"])
    for _ in range(2):  # the second as after a lost answer: nothing more changes
        run(destination(fake), lambda a: a.edit(edited, remote))
    [made] = fake.live()
    assert made["revisions"] == 1
    assert made["snippet"]["title"] == "Rättad titel"
    assert made["snippet"]["description"] == f"Ny text.\n\n{PAGE}"
    assert made["snippet"]["tags"] == ["relay-dlv_01YOUTUBE", "b"]
    private = outgoing(
        [video(clip)], title="Rättad titel", text="Ny text.", private=True, tags=["b"]
    )
    run(destination(fake), lambda a: a.edit(private, remote))
    assert made["status"]["privacyStatus"] == "private" and made["revisions"] == 2
    gone = Remote(KEY, published.remote_id, published.remote_url, f"{KEY}.deleted")
    run(destination(fake), lambda a: a.retract(gone, "abc"))
    run(destination(fake), lambda a: a.retract(gone, "abc"))
    assert fake.live() == []


def test_check_names_the_channel(fake: FakeYouTube) -> None:
    said = run(destination(fake), lambda a: a.check())
    assert said == "can upload to the YouTube channel Kommunen Play"


def test_the_adapter_is_registered() -> None:
    from relay.publish import registry

    assert registry()["youtube"] is YouTubeAdapter


def test_the_web_apps_preview_shows_what_youtube_gets(fake: FakeYouTube, clip: bytes) -> None:
    from relay.web.app.preview import channel_preview

    photo = _medium(_jpeg(), "image/jpeg", "image", (320, 180), None)
    refused = run(
        destination(fake),
        lambda a: channel_preview(destination(fake), a.api.http, outgoing([photo])),
    )
    assert refused.refused == "YouTube takes a video; this post has none"
    shown = run(
        destination(fake),
        lambda a: channel_preview(destination(fake), a.api.http, outgoing([video(clip)])),
    )
    assert shown.text == f"Invigningen\n\nTorget invigs i dag.\n\n{PAGE}"
    assert (shown.media, shown.cut, shown.refused) == (["item1"], False, "")
    long = outgoing([video(clip)], text="Å" * 4000)
    cut = run(destination(fake), lambda a: channel_preview(destination(fake), a.api.http, long))
    assert cut.cut
    assert fake.seen == []  # the preview asks nothing of YouTube


def test_a_large_video_gets_time_to_upload(fake: FakeYouTube, clip: bytes) -> None:
    small = run(destination(fake), lambda a: a.timeout_for(outgoing([video(clip)])))
    gigabyte = dataclasses.replace(video(clip), bytes=2**30, variants={})
    large = run(destination(fake), lambda a: a.timeout_for(outgoing([gigabyte])))
    assert small < 600 < 3600 < large
