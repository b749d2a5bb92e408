"""Cross-posting to Bluesky: a real ``relay serve`` delivering to a strict fake PDS."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes import life
from tests.fakes.bluesky import FakeBluesky
from tests.server import RelayServer, crossposting_relay


@pytest.fixture
def bluesky() -> Iterator[FakeBluesky]:
    with FakeBluesky() as fake:
        yield fake


def _link_facet(record: dict, url: str) -> None:
    """The record's one facet is a link to ``url`` over exactly its bytes in the text."""
    [facet] = record["facets"]
    [feature] = facet["features"]
    assert feature == {"$type": "app.bsky.richtext.facet#link", "uri": url}
    start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
    assert record["text"].encode()[start:end].decode() == url


def test_photo_post_with_alt_aspect_ratio_and_link(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    destination_id = server.add_destination(
        "bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}"
    )["id"]
    post = server.upload(token, title="Torget", text="Invigningen – åäö 🇸🇪")
    delivery = server.wait_delivery(token, post["id"])
    [(rkey, record)] = bluesky.records.items()
    assert delivery == {
        "destination": destination_id,
        "status": "delivered",
        "remote_url": f"https://bsky.app/profile/{bluesky.handle}/post/{rkey}",
        "attempts": 1,
        "error": None,
    }
    assert record["text"] == f"Torget\n\nInvigningen – åäö 🇸🇪\n\n{post['url']}"
    _link_facet(record, post["url"])
    assert record["embed"]["$type"] == "app.bsky.embed.images"
    [image] = record["embed"]["images"]
    # The relay takes no alt text at upload yet: the required field is there, empty.
    assert image["alt"] == ""
    assert image["aspectRatio"] == {"width": 640, "height": 480}
    blob = bluesky.blobs[image["image"]["ref"]["$link"]]
    assert blob.mime == "image/jpeg"
    with Image.open(io.BytesIO(blob.data)) as sent:
        assert sent.size == (640, 480)
    created = datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00"))
    assert abs((created - datetime.fromisoformat(post["created_at"])).total_seconds()) < 0.01


def test_image_over_a_million_bytes_is_reencoded_to_fit(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    noise = Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    post = server.upload(token, file=("noise.jpg", out.getvalue(), "image/jpeg"), title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert delivery["status"] == "delivered", delivery
    large = next(r for r in post_items(server, token, post["id"]) if r["name"] == "large")
    assert large["bytes"] > 1_000_000  # what the relay hosts would not fit
    [record] = bluesky.records.values()
    [image] = record["embed"]["images"]
    blob = bluesky.blobs[image["image"]["ref"]["$link"]]
    assert blob.size <= 1_000_000 and blob.mime == "image/jpeg"
    with Image.open(io.BytesIO(blob.data)) as sent:
        width, height = sent.size
    assert image["aspectRatio"] == {"width": width, "height": height}
    assert abs(width / height - 4 / 3) < 0.01


def post_items(server: RelayServer, token: str, post_id: str) -> list[dict]:
    with server.client(token) as client:
        post = client.get(f"/api/v1/posts/{post_id}").json()
    return post["items"][0]["renditions"]


def test_text_post_becomes_a_link_card(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    text = "Möte i kväll. " * 40  # more than 300 graphemes with the title and link
    post = server.upload(token, file=False, title="Torget", text=text)
    assert server.wait_delivery(token, post["id"])["status"] == "delivered"
    [record] = bluesky.records.values()
    assert record["text"].endswith(f"…\n\n{post['url']}")
    _link_facet(record, post["url"])
    external = record["embed"]["external"]
    assert record["embed"]["$type"] == "app.bsky.embed.external"
    assert external["uri"] == post["url"] and external["title"] == "Torget"
    assert external["description"].startswith("Möte i kväll. Möte")
    assert "thumb" not in external


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_video_becomes_a_link_card_with_its_poster(
    start_relay, bluesky: FakeBluesky, tmp_path: Path
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:d=1:r=15",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(clip),
        ],
        check=True,
        timeout=60,
    )
    post = server.upload(token, file=("clip.mp4", clip.read_bytes(), "video/mp4"), title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert delivery["status"] == "delivered", delivery
    [record] = bluesky.records.values()
    external = record["embed"]["external"]
    assert external["uri"] == post["url"]
    thumb = bluesky.blobs[external["thumb"]["ref"]["$link"]]
    assert thumb.mime == "image/jpeg"
    with Image.open(io.BytesIO(thumb.data)) as poster:
        assert poster.size == (320, 240)


def test_transient_failure_is_retried_into_one_post(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    bluesky.fail("putRecord", 502, {"error": "UpstreamFailure", "message": "Bad Gateway"})
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    assert len(bluesky.records) == 1 and len(bluesky.writes) == 1


def test_a_lost_answer_rewrites_the_same_record(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    bluesky.lose("putRecord")  # written, but the connection drops before the answer
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    [rkey] = bluesky.records
    assert bluesky.writes == [rkey, rkey]  # the same key twice: still one post
    assert delivery["remote_url"].endswith(f"/post/{rkey}")


def test_revoked_app_password_stops_and_says_why(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    bluesky.revoke()
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "publish.unauthorized"
    assert "Invalid identifier or password" in delivery["error"]["message"]
    seen = len(bluesky.seen)
    time.sleep(2.5)
    assert len(bluesky.seen) == seen and bluesky.records == {}


def test_private_posts_are_never_delivered(start_relay, bluesky: FakeBluesky) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    private = server.upload(token, title="Torget", private="true")
    assert server.wait_post(token, private["id"])["deliveries"] == []
    time.sleep(1)
    assert bluesky.seen == [] and bluesky.records == {}


def test_destination_test_opens_a_session(start_relay, bluesky: FakeBluesky) -> None:
    server, _ = crossposting_relay(start_relay)
    destination_id = server.add_destination(
        "bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}"
    )["id"]
    checked = server.cli("destination", "test", destination_id)
    assert checked.stdout.startswith(f"authenticated as {bluesky.handle} ({bluesky.did})")
    bluesky.revoke()
    failed = server.cli("destination", "test", destination_id, check=False)
    assert failed.returncode != 0 and "publish.unauthorized" in failed.stderr


# --- edits and deletions ------------------------------------------------------------------------


def test_an_edit_is_refused_by_default_and_a_delete_removes_the_record_once(
    start_relay, bluesky: FakeBluesky
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}")
    post = server.upload(token, file=False, title="Torget", text="Stavfel")
    delivery = server.wait_delivery(token, post["id"])
    [(rkey, record)] = bluesky.records.items()
    life.edit(server, token, post["id"], text="Rättat")
    said = life.wait_for(
        lambda: life.delivery(server, token, post["id"])["error"], "the edit refused"
    )
    assert said["code"] == "publish.cannot_edit"
    assert said["message"] == "This channel cannot edit a post."
    assert bluesky.records == {rkey: record} and "Stavfel" in record["text"]  # untouched
    assert bluesky.writes == [rkey]

    bluesky.lose("deleteRecord")  # deleted, then the connection drops before the answer
    life.delete(server, token, post["id"])
    life.retracted(server, token, post["id"])
    assert bluesky.records == {} and bluesky.deleted == [rkey]  # once
    assert len(bluesky.calls("deleteRecord")) == 2  # the repeat found nothing: 200, done
    assert delivery["remote_url"].endswith(f"/post/{rkey}")


def test_edit_repost_writes_a_new_record_then_deletes_the_old_one(
    start_relay, bluesky: FakeBluesky
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "bluesky", bluesky.url, bluesky.app_password, f"handle={bluesky.handle}", "edit=repost"
    )
    post = server.upload(token, file=False, title="Torget", text="Stavfel")
    first = server.wait_delivery(token, post["id"])
    [old] = bluesky.records
    bluesky.lose("deleteRecord")  # the old one deleted, the answer lost: the edit is repeated
    life.edit(server, token, post["id"], text="Rättat")
    moved = life.wait_for(
        lambda: (
            (d := life.delivery(server, token, post["id"]))["remote_url"] != first["remote_url"]
            and d
        ),
        "the new copy recorded",
    )
    [(new, record)] = bluesky.records.items()
    assert new != old and "Rättat" in record["text"]
    assert bluesky.deleted == [old] and bluesky.writes == [old, new, new]  # the same new key
    assert moved["remote_url"].endswith(f"/post/{new}") and moved["error"] is None

    life.delete(server, token, post["id"])
    life.retracted(server, token, post["id"])
    assert bluesky.records == {} and bluesky.deleted == [old, new]  # the new copy goes too
