"""Cross-posting to a Facebook Page, Instagram and Threads: a real ``relay serve`` delivering to
the strict Graph fake, which fetches the media from the relay's own URLs as Meta does."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.clips import web_ready_mp4
from tests.e2e.test_post_life import wait_for
from tests.fakes.meta import FakeMeta
from tests.media import jpeg_part
from tests.server import RelayServer, crossposting_relay


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


def connect_all(server: RelayServer, meta: FakeMeta) -> dict[str, str]:
    """The three channels by the CLI path, as an operator adds them; their ids by type."""
    return {
        "facebook": server.add_destination(
            "facebook", meta.facebook_url, meta.page_token, f"page_id={meta.page_id}"
        )["id"],
        "instagram": server.add_destination(
            "instagram", meta.facebook_url, meta.user_token, f"ig_user_id={meta.ig_user_id}"
        )["id"],
        "threads": server.add_destination(
            "threads",
            meta.threads_url,
            meta.threads_token,
            f"threads_user_id={meta.threads_user_id}",
        )["id"],
    }


def settled(server: RelayServer, token: str, post_id: str) -> dict[str, dict[str, Any]]:
    """The post's deliveries by destination, once none is pending."""
    deadline = time.monotonic() + 90
    while True:
        deliveries = server.wait_settled(token, post_id, 90)["deliveries"]
        if all(d["status"] != "pending" for d in deliveries):
            return {d["destination"]: d for d in deliveries}
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.2)


def test_a_photo_post_reaches_a_page_an_instagram_and_a_threads_account(
    start_relay, meta: FakeMeta
) -> None:
    server, token = crossposting_relay(start_relay)
    ids = connect_all(server, meta)
    post = server.upload(token, title="Torget", text="Invigningen av torget i dag.")
    deliveries = settled(server, token, post["id"])
    text = f"Torget\n\nInvigningen av torget i dag.\n\n{post['url']}"

    [page_post] = meta.of_kind("page_post")
    assert page_post["message"] == text and len(page_post["photos"]) == 1
    assert all(d["status"] == "delivered" for d in deliveries.values()), deliveries
    [media] = meta.of_kind("ig_media")
    assert media["caption"] == text and media["media_type"] == "IMAGE"
    [thread] = meta.of_kind("thread")
    assert thread["text"] == text and thread["media_type"] == "IMAGE"
    for kind, remote_url in (
        ("facebook", page_post["permalink_url"]),
        ("instagram", media["permalink"]),
        ("threads", thread["permalink"]),
    ):
        delivery = deliveries[ids[kind]]
        assert (delivery["status"], delivery["remote_url"]) == ("delivered", remote_url), kind
    # Instagram and Threads fetched the photo from the relay's own URL: a JPEG they take.
    assert len(meta.fetched) == 2
    [photo] = meta.of_kind("photo")
    with Image.open(io.BytesIO(photo["data"])) as sent:
        assert sent.format == "JPEG"


def test_the_preflight_refuses_for_instagram_only(start_relay, meta: FakeMeta) -> None:
    server, token = crossposting_relay(start_relay)
    ids = connect_all(server, meta)
    post = server.upload(token, file=False, title="Torget", text="Bara text i dag.")
    deliveries = settled(server, token, post["id"])
    refused = deliveries[ids["instagram"]]
    assert (refused["status"], refused["attempts"]) == ("failed", 1)
    assert refused["error"]["code"] == "publish.rejected"
    assert "Instagram needs a photo or a video" in refused["error"]["message"]
    assert meta.calls("ig.media.create") == []
    # the other channels took the post: a link post on the Page, a text thread
    assert deliveries[ids["facebook"]]["status"] == "delivered"
    assert deliveries[ids["threads"]]["status"] == "delivered"
    [page_post] = meta.of_kind("page_post")
    assert page_post["link"] == post["url"]


def test_a_revoked_token_is_a_plain_failed_delivery(start_relay, meta: FakeMeta) -> None:
    server, token = crossposting_relay(start_relay)
    destination_id = server.add_destination(
        "facebook", meta.facebook_url, meta.page_token, f"page_id={meta.page_id}"
    )["id"]
    meta.revoke(meta.page_token)
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert delivery["destination"] == destination_id
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "destination.reconnect_needed"
    assert "Connect again" in delivery["error"]["message"]
    assert "Error validating access token" in delivery["error"]["message"]
    assert meta.of_kind("page_post") == []


def test_an_expired_token_marks_the_channel_and_later_posts_fail_at_once(
    start_relay, meta: FakeMeta
) -> None:
    server, token = crossposting_relay(start_relay)
    ids = connect_all(server, meta)
    meta.expire(meta.threads_token)
    first = settled(server, token, server.upload(token, title="Torget")["id"])
    expired = first[ids["threads"]]
    assert (expired["status"], expired["attempts"]) == ("failed", 1)
    assert expired["error"]["code"] == "destination.reconnect_needed"
    assert "Session has expired" in expired["error"]["message"]
    asked = len(meta.seen)
    # the other channels are not held up by it
    assert first[ids["facebook"]]["status"] == first[ids["instagram"]]["status"] == "delivered"

    # The next post does not ask Threads again: it fails at once and says what to do.
    second = settled(server, token, server.upload(token, file=False, title="Igen")["id"])
    again = second[ids["threads"]]
    assert (again["status"], again["attempts"]) == ("failed", 1)
    assert again["error"]["code"] == "destination.reconnect_needed"
    assert "Open Channels in the relay and choose Connect again" in again["error"]["message"]
    assert not [c for c in meta.seen[asked:] if c.path.startswith("/threads/")]
    assert len(meta.of_kind("thread")) == 0


def test_a_lost_publish_answer_makes_one_instagram_post(start_relay, meta: FakeMeta) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "instagram", meta.facebook_url, meta.user_token, f"ig_user_id={meta.ig_user_id}"
    )
    meta.lose("ig.publish")
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    [media] = meta.of_kind("ig_media")
    assert delivery["remote_url"] == media["permalink"]
    assert len(meta.calls("ig.publish")) == 1


def test_a_threads_token_near_its_end_is_renewed_before_posting(
    start_relay, meta: FakeMeta
) -> None:
    server, token = crossposting_relay(start_relay)
    ends_soon = int(time.time()) + 3 * 86400  # inside the week before its end
    server.add_destination(
        "threads",
        meta.threads_url,
        meta.threads_token,
        f"threads_user_id={meta.threads_user_id}",
        f"token_expires_at={ends_soon}",
    )
    old = meta.threads_token
    post = server.upload(token, file=False, title="Förnyat", text="Med en ny nyckel.")
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert delivery["status"] == "delivered", delivery
    [refresh] = meta.calls("threads.refresh")
    # as documented: a GET with the token as its access_token parameter (the fake takes no other)
    assert refresh.method == "GET" and "Authorization" not in refresh.headers
    assert meta.threads_token != old  # the fake no longer takes the old one
    [create] = meta.calls("threads.create")
    assert create.headers["Authorization"] == f"Bearer {meta.threads_token}"

    # renewed for 60 days: the next post does not renew again
    second = server.upload(token, file=False, title="Igen", text="Samma nyckel.")
    assert server.wait_delivery(token, second["id"], timeout=90)["status"] == "delivered"
    assert len(meta.calls("threads.refresh")) == 1


def test_a_clip_becomes_a_page_video_through_a_resumed_upload(
    start_relay, meta: FakeMeta, tmp_path: Path
) -> None:
    """A real clip: the relay's MP4 goes to the Page in a resumable upload session; the transfer
    is cut halfway, the relay asks Meta where it stopped and sends the rest from there; the
    poster becomes the video's thumbnail and the text its description."""
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "facebook",
        meta.facebook_url,
        meta.page_token,
        f"page_id={meta.page_id}",
        f"app_id={meta.app_id}",
    )
    clip = web_ready_mp4(tmp_path / "invigning.mov", "640x360", 3)
    meta.cut_uploads.append(40_000)
    post = server.upload(
        token,
        file=("invigning.mov", clip.read_bytes(), "video/quicktime"),
        title="Torget",
        text="Invigningen, på film.",
    )
    delivery = server.wait_delivery(token, post["id"], timeout=120)
    assert delivery["status"] == "delivered", delivery

    [video] = meta.of_kind("video")
    [item] = server.wait_post(token, post["id"])["items"]
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    with server.client(token) as client:
        sent = client.get(mp4["url"]).content
    assert video["data"] == sent and len(sent) > 40_000  # all of it, once, in order
    assert video["description"] == f"Torget\n\nInvigningen, på film.\n\n{post['url']}"
    assert video["title"] == "Torget" and video["thumb_size"] is not None
    [first, resumed] = meta.calls("upload.transfer")
    assert first.headers["file_offset"] == "0"
    assert resumed.headers["file_offset"] == "40000"
    assert resumed.headers["Content-Length"] == str(len(sent) - 40_000)
    assert first.headers["Authorization"] == f"OAuth {meta.page_token}"
    assert len(meta.calls("upload.state")) == 1
    assert delivery["remote_url"] == f"https://www.facebook.com{video['permalink_url']}"
    # the Page's feed shows it once; the clip's page link is in its text
    [page_post] = meta.of_kind("page_post")
    assert page_post["video"] == video["id"]


def test_without_the_app_id_a_clip_goes_as_the_page_link(
    start_relay, meta: FakeMeta, tmp_path: Path
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "facebook", meta.facebook_url, meta.page_token, f"page_id={meta.page_id}"
    )
    clip = web_ready_mp4(tmp_path / "clip.mp4", "320x240", 1)
    post = server.upload(token, file=("clip.mp4", clip.read_bytes(), "video/mp4"), title="Film")
    delivery = server.wait_delivery(token, post["id"], timeout=120)
    assert delivery["status"] == "delivered", delivery
    assert meta.calls("app.uploads") == [] and meta.of_kind("video") == []
    [page_post] = meta.of_kind("page_post")
    assert page_post["link"] == post["url"]


def test_an_edit_finding_the_token_dead_marks_the_channel_and_a_delete_then_asks_nothing(
    start_relay, meta: FakeMeta
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "facebook", meta.facebook_url, meta.page_token, f"page_id={meta.page_id}"
    )
    post = server.upload(token, file=False, title="Torget", text="Stavfel")
    assert server.wait_delivery(token, post["id"], timeout=90)["status"] == "delivered"
    meta.expire(meta.page_token)

    with server.client(token) as client:
        assert client.patch(f"/api/v1/posts/{post['id']}", json={"text": "Rättat"}).is_success

    def edit_failed() -> dict[str, Any] | None:
        with server.client(token) as client:
            [delivery] = client.get(f"/api/v1/posts/{post['id']}").json()["deliveries"]
        return delivery if delivery["error"] else None

    failed = wait_for(edit_failed, "the edit's outcome")
    assert failed["error"]["code"] == "destination.reconnect_needed"
    assert "Session has expired" in failed["error"]["message"]
    [page_post] = meta.of_kind("page_post")
    assert page_post["message"].startswith("Torget\n\nStavfel")
    asked = len(meta.seen)

    # The channel is marked now: the delete fails at once, without asking Meta.
    with server.client(token) as client:
        assert client.delete(f"/api/v1/posts/{post['id']}").status_code == 204

    def delete_said() -> dict[str, Any] | None:
        with server.client(token) as client:
            [delivery] = client.get(f"/api/v1/posts/{post['id']}").json()["deliveries"]
        message = delivery["error"]["message"] if delivery["error"] else ""
        return delivery if "Open Channels in the relay" in message else None

    said = wait_for(delete_said, "the delete's outcome")
    assert said["error"]["code"] == "destination.reconnect_needed"
    assert meta.seen[asked:] == [] and meta.of_kind("page_post") == [page_post]


def test_a_panorama_reaches_instagram_padded_to_1_91(start_relay, meta: FakeMeta) -> None:
    server, token = crossposting_relay(start_relay)
    connect_all(server, meta)
    wide = Image.new("RGB", (3000, 600), (200, 40, 40))  # 5:1, far wider than Instagram shows
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (59.0, 19.0, 45.48), 3: "E", 4: (18.0, 4.0, 6.96)}
    data = io.BytesIO()
    wide.save(data, "JPEG", quality=90, exif=exif)
    post = server.upload(token, file=("pano.jpg", data.getvalue(), "image/jpeg"), title="Utsikt")
    deliveries = settled(server, token, post["id"])
    assert all(d["status"] == "delivered" for d in deliveries.values()), deliveries

    shown = server.wait_settled(token, post["id"])
    [item] = shown["items"]
    # made by the Instagram delivery, and listed with the item's other renditions since
    fitted = next(r for r in item["renditions"] if r["name"] == "fit_instagram")
    assert (fitted["width"], fitted["height"]) == (1440, 754)
    [container] = [c for c in meta.of_kind("ig_container") if c.get("media_type") == "IMAGE"]
    assert container["image_url"] == fitted["url"] and container["size"] == (1440, 754)
    # What Instagram fetched: the whole panorama between bands of its own red, no position.
    with server.client(token) as client:
        received = client.get(fitted["url"])
    assert received.status_code == 200 and received.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(received.content)) as sent:
        assert (sent.format, sent.size) == ("JPEG", (1440, 754)) and not sent.getexif()
        band, picture = sent.crop((0, 0, 1440, 40)), sent.crop((0, 300, 1440, 450))
        colours = [image.resize((1, 1)).getpixel((0, 0)) for image in (band, picture)]
        assert all(abs(a - b) <= 3 for a, b in zip(*colours, strict=True)), colours
    # Threads fetched the photo as it is (the large rendition), not the padded one
    assert meta.fetched.count(fitted["url"]) == 1 and len(meta.fetched) == 2


PASSWORD = "ett långt lösenord"


def _names(server: RelayServer, token: str, post_id: str) -> list[str]:
    [item] = server.wait_post(token, post_id)["items"]
    return [r["name"] for r in item["renditions"]]


def _stored(server: RelayServer, name: str) -> list[str]:
    """The keys of the stored objects called ``name`` (the local store keeps each object's
    headers beside it, under ``.meta``)."""
    media = server.data_dir / "media"
    found = [p.relative_to(media).as_posix() for p in media.rglob(f"{name}.*")]
    return sorted(key for key in found if not key.startswith(".meta/"))


def _publish(server: RelayServer, token: str, post_id: str) -> None:
    with server.client(token) as client:
        assert client.post(f"/api/v1/posts/{post_id}/publish").is_success


def test_an_upright_photo_is_padded_once_when_instagram_gets_it(
    start_relay, meta: FakeMeta
) -> None:
    """An upright phone photo (3:4) is processed as any photo; the web app's preview already
    says Instagram gets it padded to 4:5; the Instagram delivery pads it, once, even when it
    has to try again."""
    from tests.e2e.test_web_users import _cli, _sign_in

    server, token = crossposting_relay(start_relay)
    assert _cli(server, "user", "password", "anna", password=PASSWORD).returncode == 0
    ids = connect_all(server, meta)
    post = server.upload(token, file=jpeg_part(900, 1200), title="Torget", draft="true")
    assert _names(server, token, post["id"]) == ["large", "medium", "small"]
    assert _stored(server, "fit_instagram") == []

    # The preview, before any delivery: Instagram will get it padded; nothing is made for it.
    asked = len(meta.seen)
    browser = _sign_in(server, "anna", PASSWORD)
    try:
        page = browser.get(f"/posts/{post['id']}")
    finally:
        browser.close()
    assert page.status_code == 200
    assert "the photo is padded to 4:5" in page.text
    assert meta.seen[asked:] == []
    assert _names(server, token, post["id"]) == ["large", "medium", "small"]

    meta.lose("ig.publish")  # the first try's answer is lost: the delivery tries again
    _publish(server, token, post["id"])
    deliveries = settled(server, token, post["id"])
    assert all(d["status"] == "delivered" for d in deliveries.values()), deliveries
    assert deliveries[ids["instagram"]]["attempts"] == 2

    # Made once: one rendition listed, one object stored, and that is what Instagram fetched.
    [item] = server.wait_post(token, post["id"])["items"]
    [fitted] = [r for r in item["renditions"] if r["name"] == "fit_instagram"]
    assert [r["name"] for r in item["renditions"]] == ["large", "medium", "small", "fit_instagram"]
    assert (fitted["width"], fitted["height"], fitted["mime"]) == (960, 1200, "image/jpeg")
    assert _stored(server, "fit_instagram") == [f"{post['id']}/{item['id']}/fit_instagram.jpg"]
    [container] = [c for c in meta.of_kind("ig_container") if c.get("media_type") == "IMAGE"]
    assert container["image_url"] == fitted["url"] and container["size"] == (960, 1200)
    large = next(r for r in item["renditions"] if r["name"] == "large")
    with server.client(token) as client:
        received = client.get(fitted["url"])
        as_large = client.get(large["url"])
    assert received.headers["content-type"] == "image/jpeg"
    # stored as the pipeline stores every rendition: served as long-lived as "large"
    assert "immutable" in received.headers["cache-control"]
    assert received.headers["cache-control"] == as_large.headers["cache-control"]
    with Image.open(io.BytesIO(received.content)) as sent:
        assert (sent.format, sent.size) == ("JPEG", (960, 1200)) and not sent.getexif()
        # the 900 px wide photo between bands of 30 px: its red top-left corner just inside
        r, g, b = sent.convert("RGB").getpixel((30 + 2, 1))
        assert r > 200 and g < 60 and b < 60
        r, g, b = sent.convert("RGB").getpixel((15, 1))
        assert not (r > 200 and g < 60 and b < 60)
    # Threads takes 3:4: it gets the photo as it is
    assert meta.fetched.count(fitted["url"]) == 1 and large["url"] in meta.fetched


def test_a_padding_that_fails_is_retried(start_relay, meta: FakeMeta) -> None:
    """The photo to pad cannot be read (its stored "large" is away): the Instagram delivery
    says why and tries again, and goes out once it can."""
    server, token = crossposting_relay(start_relay)
    server.add_destination(
        "instagram", meta.facebook_url, meta.user_token, f"ig_user_id={meta.ig_user_id}"
    )
    post = server.upload(token, file=jpeg_part(900, 1200), title="Torget", draft="true")
    [item] = server.wait_post(token, post["id"])["items"]
    large = server.data_dir / "media" / post["id"] / item["id"] / "large.jpg"
    aside = large.with_name("away.jpg")
    large.rename(aside)
    _publish(server, token, post["id"])

    def failed_once() -> dict[str, Any] | None:
        with server.client(token) as client:
            [delivery] = client.get(f"/api/v1/posts/{post['id']}").json()["deliveries"]
        return delivery if delivery["error"] else None

    delivery = wait_for(failed_once, "the padding's failure")
    assert delivery["status"] == "pending"  # tried again, not given up
    assert delivery["error"]["code"] == "publish.padding_failed"
    assert "padded copy of a photo" in delivery["error"]["message"]
    assert meta.of_kind("ig_container") == []
    aside.rename(large)
    delivery = server.wait_delivery(token, post["id"], timeout=90)
    assert (delivery["status"], delivery["error"]) == ("delivered", None), delivery
    assert _names(server, token, post["id"]).count("fit_instagram") == 1
