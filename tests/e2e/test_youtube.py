"""Cross-posting clips to YouTube: a real ``relay serve`` (real ffmpeg, real store) delivering to
the strict Google fake over the resumable upload protocol."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from relay.publish.youtube import QUANTUM
from tests.clips import web_ready_mp4
from tests.fakes.life import wait_for
from tests.fakes.youtube import FakeYouTube
from tests.server import RelayServer, crossposting_relay


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    with FakeYouTube() as fake:
        yield fake


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("youtube")
    return {
        "small": web_ready_mp4(folder / "small.mp4").read_bytes(),
        # over two upload quanta, so that one can be cut off part-way
        "large": web_ready_mp4(
            folder / "large.mp4",
            "640x360",
            3,
            "-b:v",
            "2500k",
            "-maxrate",
            "2500k",
            "-bufsize",
            "1M",
        ).read_bytes(),
        "vertical": web_ready_mp4(folder / "vertical.mp4", "180x320", 1).read_bytes(),
    }


def connect(server: RelayServer, youtube: FakeYouTube, *options: str) -> str:
    """A YouTube channel added from the command line, refreshable; its id."""
    return server.add_destination(
        "youtube",
        youtube.url,
        youtube.access_token,
        f"refresh_token={youtube.refresh_token}",
        f"client_id={youtube.client_id}",
        f"client_secret={youtube.client_secret}",
        f"token_url={youtube.url}/token",
        *options,
    )["id"]


def upload(server: RelayServer, token: str, clip: bytes, **fields: str) -> dict[str, Any]:
    return server.upload(token, file=("clip.mp4", clip, "video/mp4"), **fields)


def test_a_clip_becomes_a_video_with_title_link_and_thumbnail(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    post = upload(server, token, clips["small"], title="Torget", text="Invigningen.", tags="kommun")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    [video] = youtube.live()
    assert delivery["remote_url"] == f"https://www.youtube.com/watch?v={video['id']}"
    assert video["snippet"]["title"] == "Torget"
    assert video["snippet"]["description"] == f"Invigningen.\n\n{post['url']}"
    assert "kommun" in video["snippet"]["tags"]
    assert video["status"]["privacyStatus"] == "public"
    # The relay's own original went (YouTube takes MP4), and the poster became the thumbnail.
    item = server.wait_post(token, post["id"])["items"][0]
    assert hashlib.sha256(video["data"]).hexdigest() == item["original"]["sha256"]
    with Image.open(io.BytesIO(video["thumbnail"])) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.size[0] > thumbnail.size[1]
    # The access token was refreshed before the upload, and the new one used.
    [refresh] = youtube.calls("oauth.token")
    [insert] = youtube.calls("videos.insert")
    assert insert.headers["Authorization"] != f"Bearer {youtube.access_token}"
    assert youtube.refresh_token not in refresh.path


def test_a_connection_dropped_mid_upload_resumes_at_the_servers_offset(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    kept = QUANTUM + 1000
    youtube.drop_upload_after(kept)
    post = upload(server, token, clips["large"], title="Lång")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1), delivery
    [video] = youtube.live()
    item = server.wait_post(token, post["id"])["items"][0]
    assert hashlib.sha256(video["data"]).hexdigest() == item["original"]["sha256"]
    assert [first for first, _size in youtube.chunks] == [0, kept]
    assert youtube.used_inserts == 1


def test_a_post_made_private_becomes_private_or_unlisted_per_channel(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    # The relay sends no private post to any channel; one made private after it went out
    # makes its videos private, or unlisted on a channel set so.
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    connect(server, youtube, "private_as=unlisted")
    post = upload(server, token, clips["small"], title="Internt")
    wait_for(lambda: len(youtube.live()) == 2, "two videos", 90)
    assert [v["status"]["privacyStatus"] for v in youtube.live()] == ["public", "public"]
    with server.client(token) as client:
        edited = client.patch(f"/api/v1/posts/{post['id']}", json={"private": True})
        assert edited.status_code == 200, edited.text
    wait_for(
        lambda: (
            sorted(v["status"]["privacyStatus"] for v in youtube.live()) == ["private", "unlisted"]
        ),
        "private and unlisted videos",
    )


def test_a_vertical_short_clip_is_a_short(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    post = upload(server, token, clips["vertical"], title="Kort")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    [video] = youtube.live()
    assert delivery["remote_url"] == f"https://www.youtube.com/shorts/{video['id']}"
    assert video["snippet"]["title"] == "Kort #Shorts"
    assert "#Shorts" in video["snippet"]["description"]


def test_quota_used_up_is_a_clear_failure(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    youtube.inserts = 0
    post = upload(server, token, clips["small"], title="Torget")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "publish.quota_exceeded"
    assert "resets at midnight Pacific Time" in delivery["error"]["message"]
    assert youtube.live() == []


def test_a_refused_sign_in_marks_the_channel_for_reconnecting(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    youtube.revoke(youtube.refresh_token)
    post = upload(server, token, clips["small"], title="Torget")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "destination.reconnect_needed"
    assert "Connect again" in delivery["error"]["message"]
    assert youtube.calls("videos.insert") == []


def test_an_edit_updates_the_video_and_a_delete_removes_it(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    post = upload(server, token, clips["small"], title="Stavfel", text="Först.")
    assert server.wait_delivery(token, post["id"], timeout=90)["status"] == "delivered"
    [video] = youtube.live()
    with server.client(token) as client:
        edited = client.patch(f"/api/v1/posts/{post['id']}", json={"title": "Rättat"})
        assert edited.status_code == 200, edited.text
    wait_for(lambda: video["snippet"]["title"] == "Rättat", "edited title", 60)
    assert video["snippet"]["description"] == f"Först.\n\n{post['url']}"
    assert video["revisions"] == 1
    with server.client(token) as client:
        assert client.delete(f"/api/v1/posts/{post['id']}").status_code == 204
    wait_for(lambda: video["deleted"], "deleted video", 60)
    assert len(youtube.calls("videos.delete")) == 1


def test_a_retry_after_a_lost_answer_uploads_nothing_twice(
    start_relay, youtube: FakeYouTube, clips: dict[str, bytes]
) -> None:
    server, token = crossposting_relay(start_relay)
    connect(server, youtube)
    youtube.lose("thumbnails.set")  # the video is up; the connection drops after the thumbnail
    post = upload(server, token, clips["small"], title="En gång")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2), delivery
    # The second attempt found the first one's video by its tag, and set the thumbnail on it.
    [video] = youtube.live()
    assert youtube.used_inserts == 1 and video["thumbnail"] is not None
    assert delivery["remote_url"].endswith(video["id"])
