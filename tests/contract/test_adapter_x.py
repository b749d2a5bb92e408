"""The X adapter against the strict X fake (tests/fakes/x.py), call by call: what X gets of a
post (text weighed as X weighs it, media by the chunked upload, alt text, where the link goes),
once only after a lost answer, delete, and how X's problems become the relay's stable codes."""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from relay.errors import PublishError, TransientPublishError
from relay.publish import Destination, Editor, Media, Outgoing, Remote, Retractor, adapter_for
from relay.publish.net import Http
from relay.publish.x import XAdapter, fits, x_length
from tests.fakes.x import FakeX

PAGE = "https://relay.example.org/p/abc"


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 30)).save(out, "JPEG")
    return out.getvalue()


def _medium(item: str, kind: str, mime: str, data: bytes, **more: Any) -> Media:
    async def read() -> AsyncIterator[bytes]:
        yield data

    return Media(
        item,
        kind,
        mime,
        len(data),
        f"https://relay.example.org/m/{item}",
        more.get("width", 64),
        more.get("height", 48),
        more.get("duration"),
        more.get("alt", ""),
        read,
    )


def photo(n: int = 1, alt: str = "") -> Media:
    return _medium(f"item{n}", "image", "image/jpeg", _jpeg(), alt=alt)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = tmp_path_factory.mktemp("x") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10",
         "-t", "1", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def outgoing(
    title: str = "Torget",
    text: str = "Hej",
    media: list[Media] | None = None,
    attempt: int = 1,
) -> Outgoing:
    post = {"id": "abc", "title": title, "text": text, "url": PAGE, "items": []}
    return Outgoing(
        "dlv_01X",
        "dlv_01X",
        attempt,
        post,
        PAGE,
        title,
        text,
        [photo()] if media is None else media,
    )


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(processing_polls=2) as running:
        yield running


def destination(fake: FakeX, **config: str) -> Destination:
    return Destination(
        "x1", "u", "x", fake.url, None, fake.token, {"username": "kommunen", **config}
    )


def run(dest: Destination, step: Callable[[Any], Any]) -> Any:
    import asyncio

    async def go() -> Any:
        http = Http(allow_private=True)
        try:
            adapter = adapter_for(dest, http)
            adapter.poll_delays = (0, 0, 0, 0)
            result = step(adapter)
            return await result if inspect.isawaitable(result) else result
        finally:
            await http.close()

    return asyncio.run(go())


# --- text as X counts it ---------------------------------------------------------------------


def test_text_is_weighed_as_twitter_text_v3_weighs_it() -> None:
    assert x_length("a" * 280) == 280
    assert x_length("日本語") == 6  # CJK counts two
    assert x_length("😷") == 2  # an emoji counts two
    assert x_length("👨‍👩‍👧") == 2  # a ZWJ family is one emoji
    assert x_length("se https://example.com/" + "x" * 80) == 3 + 23  # any URL counts 23
    assert fits("日" * 140) and not fits("日" * 141)


def test_a_long_text_is_cut_so_the_post_fits_and_keeps_the_link(fake: FakeX) -> None:
    text = "Kommunfullmäktige 東京 " * 40
    run(destination(fake), lambda a: a.publish(outgoing(text=text, media=[])))
    [tweet] = fake.live()
    assert tweet["entities"][0]["expanded_url"] == PAGE
    assert tweet["original"].endswith("…\n\n" + PAGE)
    # cut at a word boundary, close to the limit: CJK counted two, the link 23
    assert 250 <= x_length(tweet["original"]) <= 280
    assert len(tweet["original"]) < x_length(tweet["original"])


# --- media ---------------------------------------------------------------------------------------


def test_a_photo_with_alt_text_becomes_a_post_with_that_image_and_its_alt(fake: FakeX) -> None:
    out = outgoing(media=[photo(alt="Torget en vintermorgon")])
    published = run(destination(fake), lambda a: a.publish(out))
    [tweet] = fake.live()
    assert published.remote_id == tweet["id"]
    assert published.remote_url == f"https://x.com/kommunen/status/{tweet['id']}"
    assert tweet["original"] == f"Torget\n\nHej\n\n{PAGE}"
    [media_id] = tweet["media"]
    assert fake.media[media_id]["alt"] == "Torget en vintermorgon"
    assert fake.media[media_id]["category"] == "tweet_image"
    with Image.open(io.BytesIO(fake.media[media_id]["data"])) as sent:
        assert sent.format == "JPEG"


def test_five_photos_send_four_and_the_preflight_says_why(fake: FakeX) -> None:
    out = outgoing(media=[photo(n) for n in range(1, 6)])
    plan = run(destination(fake), lambda a: a.preflight(out))
    assert [m.item_id for m in plan.media] == ["item1", "item2", "item3", "item4"]
    assert plan.left_out == ["item5: X takes at most 4 images"]
    run(destination(fake), lambda a: a.publish(out))
    [tweet] = fake.live()
    assert len(tweet["media"]) == 4


def test_a_video_is_uploaded_in_segments_and_waits_for_processing(fake: FakeX, mp4: bytes) -> None:
    video = _medium("v1", "video", "video/mp4", mp4, width=320, height=180, duration=1.0)
    run(destination(fake), lambda a: a.publish(outgoing(media=[video, photo()])))
    [tweet] = fake.live()
    [media_id] = tweet["media"]
    assert fake.media[media_id]["category"] == "tweet_video"
    assert fake.media[media_id]["data"] == mp4
    assert len(fake.calls("media.status")) == 2  # in_progress, then succeeded


def _clip(path: Path, size: str, seconds: float, rate: int = 10) -> bytes:
    """An MP4 of ``size`` with a test picture and a tone, as the relay's web MP4 is made."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-pix_fmt", "yuv420p", "-g", str(rate), "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def _probe(data: bytes, tmp_path: Path) -> dict[str, Any]:
    """What a viewer's player finds in the video X got: streams, duration, and whether every
    frame decodes without an error."""
    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "format=duration:stream=codec_type,codec_name,width,height", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    frame = tmp_path / "frame.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", "1", "-i", str(path), "-frames:v", "1", "-y", str(frame)],
        check=True,
    )  # fmt: skip
    with Image.open(frame) as image:
        rgb = image.convert("RGB")
    errors = (decoded.returncode, decoded.stderr)
    return {**json.loads(shown.stdout), "errors": errors, "frame": rgb}


def test_a_wider_video_than_3_to_1_reaches_x_padded_to_3_to_1(
    fake: FakeX, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _clip(tmp_path / "wide.mp4", "480x120", 3)
    wide = _medium("v1", "video", "video/mp4", data, width=480, height=120, duration=3.0)
    plan = run(destination(fake), lambda a: a.preflight(outgoing(media=[wide])))
    assert plan.media == [wide] and plan.left_out == []
    assert plan.notes == ("v1: X takes videos between 1:3 and 3:1; this one is padded to 3:1",)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(work))
    run(destination(fake), lambda a: a.publish(outgoing(media=[wide])))
    [tweet] = fake.live()
    [media_id] = tweet["media"]
    sent = fake.media[media_id]
    assert sent["state"] == "succeeded" and sent["size"] == (480, 160)
    got = _probe(sent["data"], tmp_path)
    assert got["errors"] == (0, "")
    video, audio = sorted(got["streams"], key=lambda s: s["codec_type"] != "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 480, 160)
    assert audio["codec_name"] == "aac"
    assert abs(float(got["format"]["duration"]) - 3.0) < 0.2
    frame = got["frame"]
    assert max(frame.getpixel((240, 5))) < 24 and max(frame.getpixel((240, 154))) < 24  # bars
    assert max(frame.getpixel((240, 80))) > 60  # the picture, in the middle
    assert list(work.iterdir()) == []  # the work folder is gone after the delivery


def test_a_longer_taller_video_than_1_to_3_is_cut_and_padded_in_one_go(
    fake: FakeX, tmp_path: Path
) -> None:
    data = _clip(tmp_path / "tall.mp4", "36x144", 150, rate=2)
    tall = _medium("v1", "video", "video/mp4", data, width=36, height=144, duration=150.0)
    plan = run(destination(fake), lambda a: a.preflight(outgoing(media=[tall])))
    assert plan.media == [tall] and plan.left_out == []
    assert plan.notes == (
        "v1: X takes videos up to 140 s; the relay sends the first 139 s of this one (150 s),"
        " the page link plays it all",
        "v1: X takes videos between 1:3 and 3:1; this one is padded to 1:3",
    )
    run(destination(fake), lambda a: a.publish(outgoing(media=[tall])))
    [tweet] = fake.live()
    sent = fake.media[tweet["media"][0]]
    assert sent["state"] == "succeeded" and sent["size"] == (48, 144)
    assert 138 <= sent["duration"] <= 140
    assert _probe(sent["data"], tmp_path)["errors"] == (0, "")


def test_a_video_of_a_shape_x_refuses_is_refused_unpadded(fake: FakeX, tmp_path: Path) -> None:
    """The fake measures what it gets: the padding is what makes X take it."""
    data = _clip(tmp_path / "wide.mp4", "480x120", 1)
    # said to be 16:9, so the adapter sends it as it is
    lying = _medium("v1", "video", "video/mp4", data, width=480, height=270, duration=1.0)
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[lying])))
    assert "Unsupported aspect ratio" in caught.value.public()["message"]
    assert fake.live() == []


def test_a_video_that_cannot_be_padded_fails_with_a_clear_message(fake: FakeX) -> None:
    broken = _medium("v1", "video", "video/mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 64,
                     width=400, height=100, duration=2.0)  # fmt: skip
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[broken])))
    assert caught.value.code == "publish.rejected"
    assert caught.value.remote == "the relay could not pad the video to 3:1 for X"
    assert fake.calls("media.init") == [] and fake.live() == []


def test_a_delivery_that_pads_a_video_gets_time_for_the_re_encode(fake: FakeX, mp4: bytes) -> None:
    """The delivery's two minutes are for uploads; a re-encode of up to 140 s of video asks the
    delivery (relay/publish/deliver.py) for more, a cut or a fitting video does not."""
    wide = _medium("v1", "video", "video/mp4", mp4, width=400, height=100, duration=5.0)
    fitting = _medium("v2", "video", "video/mp4", mp4, width=320, height=180, duration=1.0)
    asked = run(destination(fake), lambda a: a.timeout_for(outgoing(media=[wide])))
    assert asked is not None and asked >= 600
    assert run(destination(fake), lambda a: a.timeout_for(outgoing(media=[fitting]))) is None


def test_the_preview_says_a_video_is_padded(fake: FakeX) -> None:
    from relay.web.app.preview import channel_preview

    wide = _medium("v1", "video", "video/mp4", b"\0\0\0\x18ftypmp42", width=400, height=100,
                   duration=5.0)  # fmt: skip
    dest = destination(fake)
    shown = run(dest, lambda a: channel_preview(dest, a.api.http, outgoing(media=[wide])))
    assert shown.refused == "" and shown.media == ["v1"]
    assert shown.notes == ["v1: X takes videos between 1:3 and 3:1; this one is padded to 3:1"]
    assert fake.seen == []


def test_a_longer_video_is_cut_to_what_x_takes_and_the_preflight_says_so(
    fake: FakeX, tmp_path: Path
) -> None:
    path = tmp_path / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=2", "-t", "150",
         "-pix_fmt", "yuv420p", "-g", "2", str(path)],
        check=True,
    )  # fmt: skip
    data = path.read_bytes()
    long = _medium("v1", "video", "video/mp4", data, width=64, height=36, duration=150.0)
    plan = run(destination(fake), lambda a: a.preflight(outgoing(media=[long])))
    assert plan.media == [long] and plan.left_out == []
    assert plan.notes == (
        "v1: X takes videos up to 140 s; the relay sends the first 139 s of this one (150 s),"
        " the page link plays it all",
    )
    run(destination(fake), lambda a: a.publish(outgoing(media=[long])))
    [tweet] = fake.live()
    [media_id] = tweet["media"]
    sent = fake.media[media_id]
    assert sent["state"] == "succeeded" and 138 <= sent["duration"] <= 140
    assert len(sent["data"]) < len(data)


def test_a_longer_video_uncut_is_refused_by_x(fake: FakeX, tmp_path: Path) -> None:
    """The fake measures what it gets: what the relay cuts is what makes X take it."""
    path = tmp_path / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=2", "-t", "150",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    # said to be short, so the adapter sends it whole
    lying = _medium("v1", "video", "video/mp4", path.read_bytes(), width=64, height=36,
                    duration=20.0)  # fmt: skip
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[lying])))
    assert "Duration too long" in caught.value.public()["message"]
    assert fake.live() == []


# --- where the link goes -----------------------------------------------------------------------


def test_link_in_reply_puts_the_link_in_a_reply_to_the_post(fake: FakeX) -> None:
    dest = destination(fake, link="in_reply")
    plan = run(dest, lambda a: a.preflight(outgoing()))
    assert (plan.text, plan.reply, plan.link) == ("Torget\n\nHej", PAGE, "in_reply")
    published = run(dest, lambda a: a.publish(outgoing()))
    post, reply = fake.live()
    assert post["original"] == "Torget\n\nHej" and post["entities"] == []
    assert reply["original"] == PAGE and reply["reply_to"] == post["id"]
    assert published.remote_id == f"{post['id']}+{reply['id']}"


def test_link_none_posts_no_link_at_all(fake: FakeX) -> None:
    run(destination(fake, link="none"), lambda a: a.publish(outgoing()))
    [tweet] = fake.live()
    assert tweet["original"] == "Torget\n\nHej" and PAGE not in str(tweet)


def test_an_unknown_link_setting_is_refused() -> None:
    with pytest.raises(PublishError, match="link must be one of"):
        XAdapter(Destination("x", "u", "x", None, None, "t", {"link": "elsewhere"}), None)  # type: ignore[arg-type]


# --- once only -----------------------------------------------------------------------------------


def test_a_lost_answer_then_a_retry_makes_one_post(fake: FakeX) -> None:
    fake.lose("tweets.create")
    with pytest.raises(TransientPublishError):
        run(destination(fake), lambda a: a.publish(outgoing(media=[])))
    published = run(destination(fake), lambda a: a.publish(outgoing(media=[], attempt=2)))
    [tweet] = fake.live()
    assert published.remote_id == tweet["id"]
    assert len(fake.calls("tweets.create")) == 1


def test_a_retry_after_a_lost_post_sends_only_the_reply(fake: FakeX) -> None:
    dest = destination(fake, link="in_reply")
    fake.lose("tweets.create")
    with pytest.raises(TransientPublishError):
        run(dest, lambda a: a.publish(outgoing(media=[])))  # the post made, its answer lost
    assert len(fake.live()) == 1
    published = run(dest, lambda a: a.publish(outgoing(media=[], attempt=2)))
    post, reply = fake.live()
    assert reply["reply_to"] == post["id"] and reply["original"] == PAGE
    assert published.remote_id == f"{post['id']}+{reply['id']}"
    assert len(fake.calls("tweets.create")) == 2


# --- delete, and no edit -------------------------------------------------------------------------


def test_delete_removes_post_and_reply_and_a_repeat_is_success(fake: FakeX) -> None:
    dest = destination(fake, link="in_reply")
    published = run(dest, lambda a: a.publish(outgoing(media=[])))
    remote = Remote("dlv_01X", published.remote_id, published.remote_url, "dlv_01X.deleted")
    adapter_is = run(dest, lambda a: (isinstance(a, Retractor), isinstance(a, Editor)))
    assert adapter_is == (True, False)  # X's API cannot edit a post
    run(dest, lambda a: a.retract(remote, "abc"))
    assert fake.live() == []
    run(dest, lambda a: a.retract(remote, "abc"))  # already gone: success


# --- X's problems, as the relay's codes ----------------------------------------------------------


def test_an_expired_token_means_connect_again(fake: FakeX) -> None:
    fake.expire(fake.token)
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing()))
    assert caught.value.code == "destination.reconnect_needed"
    assert fake.live() == []


def test_too_many_requests_is_retried_later_and_says_when(fake: FakeX) -> None:
    reset = int(time.time()) + 900
    fake.throttled["tweets.create"] = reset
    with pytest.raises(TransientPublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[])))
    assert caught.value.code == "publish.rate_limited"
    when = time.strftime("%H:%M", time.gmtime(reset))
    assert f"X allows more at {when} UTC" in caught.value.public()["message"]


def test_duplicate_content_not_of_this_delivery_is_a_plain_refusal(fake: FakeX) -> None:
    body = {"detail": "You are not allowed to create a Tweet with duplicate content.",
            "type": "about:blank", "title": "Forbidden", "status": 403}  # fmt: skip
    fake.fail("tweets.create", 403, body)
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[])))
    assert caught.value.code == "publish.duplicate"
    assert not isinstance(caught.value, TransientPublishError)
    assert "duplicate content" in caught.value.public()["message"]


def test_the_same_text_again_finds_the_post_x_already_has(fake: FakeX) -> None:
    dest = destination(fake, link="none")
    first = run(dest, lambda a: a.publish(outgoing(media=[])))
    # X answers 403 duplicate; the adapter takes the post it already has
    again = run(dest, lambda a: a.publish(outgoing(media=[])))
    assert again.remote_id == first.remote_id and len(fake.live()) == 1


def test_an_invalid_request_says_what_x_said(fake: FakeX) -> None:
    body = {"errors": [{"parameters": {"media.media_ids": ["1"]},
                        "message": "Your media IDs are invalid."}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"}  # fmt: skip
    fake.fail("tweets.create", 400, body)
    with pytest.raises(PublishError) as caught:
        run(destination(fake), lambda a: a.publish(outgoing(media=[])))
    assert caught.value.code == "publish.rejected"
    assert "Your media IDs are invalid." in caught.value.public()["message"]


def test_check_names_the_account(fake: FakeX) -> None:
    assert run(destination(fake), lambda a: a.check()) == "can post to X as @kommunen"


def test_with_link_none_a_post_of_nothing_but_its_link_is_refused(fake: FakeX) -> None:
    with pytest.raises(PublishError) as caught:
        run(destination(fake, link="none"), lambda a: a.preflight(outgoing("", "", media=[])))
    assert "leaves the link out" in caught.value.public()["message"]
    # with in_reply, the link is all there is to say: it is the post
    plan = run(destination(fake, link="in_reply"), lambda a: a.preflight(outgoing("", "", [])))
    assert (plan.text, plan.reply) == (PAGE, "")


def test_a_medium_over_one_segment_goes_in_segments_in_order(fake: FakeX) -> None:
    noise = Image.frombytes("RGB", (1250, 1200), os.urandom(1250 * 1200 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=0)
    data = out.getvalue()
    assert 4 * 1024 * 1024 < len(data) <= 5 * 1024 * 1024
    big = _medium("big", "image", "image/png", data, width=1250, height=1200)
    run(destination(fake), lambda a: a.publish(outgoing(media=[big])))
    [tweet] = fake.live()
    [media_id] = tweet["media"]
    assert fake.media[media_id]["segments"] == 2 and fake.media[media_id]["data"] == data
