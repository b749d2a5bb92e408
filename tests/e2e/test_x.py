"""Cross-posting to X: a real ``relay serve`` delivering to the strict X fake (tests/fakes/x.py)
over HTTP, its two-hour tokens renewed with the channel's single-use refresh token."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.clips import rotated, web_ready_mp4
from tests.fakes.life import delete, wait_for
from tests.fakes.x import FakeX
from tests.server import RelayServer


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX(processing_polls=2) as fake:
        yield fake


def relay_for(start_relay, x: FakeX) -> tuple[RelayServer, str]:
    server = start_relay(
        RELAY_ALLOW_PRIVATE_DESTINATIONS="true",
        RELAY_X_CLIENT_ID=x.client_id,
        RELAY_X_CLIENT_SECRET=x.client_secret,
        RELAY_X_API_URL=x.url,
    )
    return server, server.add_user("anna")["token"]


def test_a_photo_with_alt_text_becomes_a_post_with_that_image(start_relay, x: FakeX) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token)
    post = server.upload(token, title="Torget", text="Invigningen i dag.", alt="Folk på torget")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    [tweet] = x.live()
    assert delivery["status"] == "delivered", delivery
    assert delivery["remote_url"] == f"https://x.com/i/web/status/{tweet['id']}"
    assert tweet["original"] == f"Torget\n\nInvigningen i dag.\n\n{post['url']}"
    [media_id] = tweet["media"]
    assert x.media[media_id]["alt"] == "Folk på torget"
    with Image.open(io.BytesIO(x.media[media_id]["data"])) as sent:
        assert sent.format == "JPEG"


def test_a_clip_becomes_a_post_with_the_processed_video(
    start_relay, x: FakeX, tmp_path: Path
) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token)
    clip = web_ready_mp4(tmp_path / "clip.mp4", "320x180", 1)
    post = server.upload(token, file=("clip.mp4", clip.read_bytes(), "video/mp4"), title="Film")
    delivery = server.wait_delivery(token, post["id"], timeout=120)
    assert delivery["status"] == "delivered", delivery
    [tweet] = x.live()
    [media_id] = tweet["media"]
    sent = x.media[media_id]
    assert (sent["category"], sent["state"]) == ("tweet_video", "succeeded")
    # the relay's own MP4 rendition, byte for byte
    item = server.wait_post(token, post["id"])["items"][0]
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    assert sent["data"] == httpx.get(mp4["url"]).content
    assert len(x.calls("media.status")) >= 2


@pytest.mark.parametrize("link", ["in_reply", "none"])
def test_the_link_setting_moves_or_drops_the_link(start_relay, x: FakeX, link: str) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token, f"link={link}")
    post = server.upload(token, file=False, title="Torget", text="Utan länk i inlägget.")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    first, *rest = x.live()
    assert first["original"] == "Torget\n\nUtan länk i inlägget."
    if link == "in_reply":
        [reply] = rest
        assert (reply["original"], reply["reply_to"]) == (post["url"], first["id"])
    else:
        assert rest == []


def test_deleting_the_post_deletes_it_on_x(start_relay, x: FakeX) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token, "link=in_reply")
    post = server.upload(token, file=False, title="Tillfälligt")
    assert server.wait_delivery(token, post["id"], timeout=90)["status"] == "delivered"
    assert len(x.live()) == 2
    delete(server, token, post["id"])
    wait_for(lambda: x.live() == [], "the post deleted on X")
    assert len(x.calls("tweets.delete")) == 2


def test_a_token_near_its_end_is_renewed_and_the_new_refresh_token_kept(
    start_relay, x: FakeX
) -> None:
    x.lifetime = 60  # every renewed token ends within the five minutes: each post renews
    server, token = relay_for(start_relay, x)
    ends = int(time.time()) + 30
    server.add_destination(
        "x", x.url, x.token, f"refresh_token={x.refresh}", f"token_expires_at={ends}"
    )
    first_refresh = x.refresh
    post = server.upload(token, file=False, title="Förnyat")
    assert server.wait_delivery(token, post["id"], timeout=90)["status"] == "delivered"
    assert x.refreshed == 1 and x.refresh != first_refresh
    [create] = x.calls("tweets.create")
    assert create.headers["Authorization"] == f"Bearer {x.token}"
    # The next renewal spends the rotated refresh token (the first is single-use, spent).
    second = server.upload(token, file=False, title="Igen")
    assert server.wait_delivery(token, second["id"], timeout=90)["status"] == "delivered"
    assert x.refreshed == 2 and len(x.live()) == 2


def test_an_expired_token_whose_refresh_was_revoked_asks_to_connect_again(
    start_relay, x: FakeX
) -> None:
    server, token = relay_for(start_relay, x)
    ends = int(time.time()) - 10
    server.add_destination(
        "x", x.url, x.token, f"refresh_token={x.refresh}", f"token_expires_at={ends}"
    )
    x.expire(x.token)
    x.revoke_refresh(x.refresh)
    post = server.upload(token, file=False, title="Avslutad")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "destination.reconnect_needed"
    assert "Connect again" in delivery["error"]["message"]
    assert len(x.calls("oauth.token")) == 1 and x.live() == []


def test_a_lost_answer_makes_one_post_on_x(start_relay, x: FakeX) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token)
    x.lose("tweets.create")  # X posts it, the answer never arrives
    post = server.upload(token, file=False, title="En gång")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2), delivery
    [tweet] = x.live()
    assert delivery["remote_url"].endswith(f"/status/{tweet['id']}")
    assert len(x.calls("tweets.create")) == 1 and len(x.calls("tweets.list")) == 1


def test_a_clip_longer_than_x_takes_is_cut_to_fit(start_relay, x: FakeX, tmp_path: Path) -> None:
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token)
    clip = web_ready_mp4(tmp_path / "long.mp4", "160x90", 150)
    post = server.upload(token, file=("long.mp4", clip.read_bytes(), "video/mp4"), title="Lång")
    delivery = server.wait_delivery(token, post["id"], timeout=180)
    assert delivery["status"] == "delivered", delivery
    [tweet] = x.live()
    [media_id] = tweet["media"]
    assert 138 <= x.media[media_id]["duration"] <= 140  # as X measures what it got
    assert tweet["original"] == f"Lång\n\n{post['url']}"  # the page link plays it all


def test_an_upright_phone_clip_taller_than_1_to_3_goes_padded_to_1_to_3(
    start_relay, x: FakeX, tmp_path: Path
) -> None:
    """Stored 480x120 with a quarter turn in its display matrix (kept by the relay's remux):
    a 1:4 picture upright, which X refuses; X gets it upright, padded to 1:3."""
    server, token = relay_for(start_relay, x)
    server.add_destination("x", x.url, x.token)
    clip = rotated(web_ready_mp4(tmp_path / "wide.mp4", "480x120", 2), tmp_path / "phone.mp4")
    post = server.upload(token, file=("phone.mp4", clip.read_bytes(), "video/mp4"), title="Hög")
    delivery = server.wait_delivery(token, post["id"], timeout=180)
    assert delivery["status"] == "delivered", delivery
    [tweet] = x.live()
    [media_id] = tweet["media"]
    sent = x.media[media_id]
    assert sent["state"] == "succeeded" and sent["size"] == (160, 480)  # as X measures it
    assert 1.8 <= sent["duration"] <= 2.2
