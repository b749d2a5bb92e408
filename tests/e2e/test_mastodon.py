"""Cross-posting to Mastodon: a real ``relay serve`` delivering to a strict fake instance."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.fakes.life import delete, edit, retracted, wait_for
from tests.fakes.life import delivery as delivery_of
from tests.fakes.mastodon import FakeMastodon, countable_length
from tests.server import crossposting_relay


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon() as fake:
        yield fake


def test_photo_post_with_its_picture_and_link(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    destination_id = server.add_destination(
        "mastodon", mastodon.url, mastodon.token, "visibility=unlisted"
    )["id"]
    post = server.upload(token, title="Torget", text="Invigningen av torget i dag.")
    delivery = server.wait_delivery(token, post["id"])
    [status] = mastodon.statuses
    assert delivery == {
        "destination": destination_id,
        "status": "delivered",
        "remote_url": status["url"],
        "attempts": 1,
        "error": None,
    }
    assert status["text"] == f"Torget\n\nInvigningen av torget i dag.\n\n{post['url']}"
    assert f'href="{post["url"]}"' in status["content"]
    assert status["visibility"] == "unlisted"
    [attachment] = status["media_attachments"]
    assert attachment["type"] == "image" and attachment["url"]
    assert attachment["meta"]["focus"] == {"x": 0.0, "y": 0.0}
    # Uploads carry the item's alt text; the relay takes none at upload yet, so none is sent
    # rather than a made-up one.
    assert attachment["description"] is None
    [medium] = mastodon.media.values()
    with Image.open(io.BytesIO(medium.data)) as sent:
        assert (sent.format, sent.size) == ("JPEG", (640, 480))
    assert len(mastodon.calls("media.get")) == 2  # 206 while processing, then 200
    [create] = mastodon.calls("statuses.create")
    assert create.headers["Idempotency-Key"].startswith("msg_")


def test_long_text_is_cut_before_the_link(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    words = " ".join(f"ord{n}" for n in range(400))
    post = server.upload(token, file=False, title="Torget", text=f"{words} https://example.org/mer")
    assert server.wait_delivery(token, post["id"])["status"] == "delivered"
    [status] = mastodon.statuses
    assert status["text"].startswith("Torget\n\nord0 ord1 ")
    assert status["text"].endswith(f"…\n\n{post['url']}")
    assert 480 < countable_length(status["text"]) <= 500
    assert status["media_attachments"] == []


def test_transient_failure_is_retried_into_one_status(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    mastodon.fail("statuses.create", 503, {"error": "Service Unavailable"})
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    assert len(mastodon.statuses) == 1
    assert delivery["remote_url"] == mastodon.statuses[0]["url"]


def test_a_lost_answer_is_found_again_not_posted_twice(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    mastodon.lose("statuses.create")  # posted, but the connection drops before the answer
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    [status] = mastodon.statuses
    assert delivery["remote_url"] == status["url"]
    # The retry saw the status among the account's latest and did not post again.
    assert len(mastodon.calls("statuses.create")) == 1


def test_a_lost_answer_is_answered_by_the_idempotency_key(
    start_relay, mastodon: FakeMastodon
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    mastodon.listed = False  # the retry cannot see the status: only the key saves it
    mastodon.lose("statuses.create")
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    [status] = mastodon.statuses
    assert delivery["remote_url"] == status["url"]
    keys = [c.headers["Idempotency-Key"] for c in mastodon.calls("statuses.create")]
    assert len(keys) == 2 and len(set(keys)) == 1


def test_revoked_token_stops_and_says_why(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    mastodon.revoke()
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "publish.unauthorized"
    assert "The access token is invalid" in delivery["error"]["message"]
    seen = len(mastodon.seen)
    time.sleep(2.5)
    assert len(mastodon.seen) == seen and mastodon.statuses == []


def test_refused_status_stops_with_the_instance_reason(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    mastodon.fail("statuses.create", 422, {"error": "Validation failed: Text is not allowed"})
    post = server.upload(token, title="Torget")
    delivery = server.wait_delivery(token, post["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["error"]["code"] == "publish.rejected"
    assert "Validation failed: Text is not allowed" in delivery["error"]["message"]
    assert mastodon.statuses == []


def test_private_posts_are_never_delivered(start_relay, mastodon: FakeMastodon) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    private = server.upload(token, title="Torget", private="true")
    assert server.wait_post(token, private["id"])["deliveries"] == []
    time.sleep(1)
    assert mastodon.seen == [] and mastodon.statuses == []


def test_destination_test_verifies_the_token(start_relay, mastodon: FakeMastodon) -> None:
    server, _ = crossposting_relay(start_relay)
    destination_id = server.add_destination("mastodon", mastodon.url, mastodon.token)["id"]
    checked = server.cli("destination", "test", destination_id)
    host = mastodon.url.removeprefix("http://")
    assert checked.stdout.strip() == f"authenticated as @anna on {host}"
    mastodon.revoke()
    failed = server.cli("destination", "test", destination_id, check=False)
    assert failed.returncode != 0
    assert "publish.unauthorized" in failed.stderr and "access token is invalid" in failed.stderr


# --- edits and deletions ------------------------------------------------------------------------


def test_an_edit_changes_the_status_in_place_once_after_a_lost_answer(
    start_relay, mastodon: FakeMastodon
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    post = server.upload(token, title="Torgte", text="Invigningen i dag.")
    delivery = server.wait_delivery(token, post["id"])
    [status] = mastodon.statuses
    status_id = status["id"]
    [attachment_id] = [a["id"] for a in status["media_attachments"]]
    mastodon.lose("statuses.update")  # edited, but the answer never arrives
    edit(
        server,
        token,
        post["id"],
        title="Torget",
        items=[{"id": post["items"][0]["id"], "alt": "Folk på torget"}],
    )
    wait_for(lambda: status.get("edited_at"), "the status edited")
    # The PUT is repeated after the lost answer (aiohttp itself resends an idempotent request
    # whose connection dropped): the same edit again, which Mastodon does not record twice.
    wait_for(lambda: len(mastodon.calls("statuses.update")) >= 2, "the repeat")
    assert status["id"] == status_id and mastodon.statuses == [status]  # the same status
    assert status["text"] == f"Torget\n\nInvigningen i dag.\n\n{post['url']}"
    assert mastodon.media[attachment_id].description == "Folk på torget"
    assert [a["id"] for a in status["media_attachments"]] == [attachment_id]  # kept
    assert len(mastodon.history[status_id]) == 1  # one edit, not two
    after = delivery_of(server, token, post["id"])
    assert after["error"] is None
    assert after["remote_url"] == delivery["remote_url"] and after["status"] == "delivered"


def test_a_delete_removes_the_status_and_a_repeat_finds_it_gone(
    start_relay, mastodon: FakeMastodon
) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_destination("mastodon", mastodon.url, mastodon.token)
    post = server.upload(token, file=False, title="Fel", text="Detta var fel.")
    assert server.wait_delivery(token, post["id"])["status"] == "delivered"
    [status] = mastodon.statuses
    mastodon.lose("statuses.delete")  # deleted, but the answer never arrives
    delete(server, token, post["id"])
    retracted(server, token, post["id"])
    assert mastodon.statuses == [] and [s["id"] for s in mastodon.deleted] == [status["id"]]
    # The repeat got Mastodon's 404 for a deleted status, and took it as done.
    assert len(mastodon.calls("statuses.delete")) == 2
