"""A post's whole life against a real ``relay serve``: drafts, publishing, scheduling (through a
restart), edits and removals carried to a webhook, deletion with its record, and bad input."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.fakes.life import wait_for
from tests.media import jpeg_part
from tests.receivers import Received, Receiver, webhook_receiver
from tests.server import RelayServer, crossposting_relay


def kinds(receiver: Receiver, secret: str) -> list[str]:
    return [Webhook(secret).verify(r.body, r.headers)["type"] for r in receiver.requests]


def get(server: RelayServer, token: str, path: str) -> httpx.Response:
    with server.client(token) as client:
        return client.get(path)


def events(server: RelayServer, token: str, post_id: str) -> list[dict[str, Any]]:
    response = get(server, token, f"/api/v1/posts/{post_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["events"]


def delivered(server: RelayServer, token: str, post_id: str, status: str = "delivered") -> Any:
    post = get(server, token, f"/api/v1/posts/{post_id}").json()
    return post if post["deliveries"] and post["deliveries"][0]["status"] == status else None


def rfc3339(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def test_a_draft_goes_nowhere_until_published_then_once(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        with server.client(token) as client:
            response = client.post(
                "/api/v1/uploads",
                files={"file": jpeg_part()},
                data={"title": "Utkast", "draft": "true", "tags": "a, b", "alt": "En bild"},
            )
        assert response.status_code == 202, response.text
        post = response.json()
        assert post["state"] == "draft" and post["tags"] == ["a", "b"]
        assert post["items"][0]["alt"] == "En bild"
        ready = server.wait_post(token, post["id"])
        assert ready["deliveries"] == [] and receiver.requests == []

        with server.client(token) as client:
            published = client.post(f"/api/v1/posts/{post['id']}/publish")
            assert published.status_code == 200, published.text
            assert published.json()["state"] == "published"
            again = client.post(f"/api/v1/posts/{post['id']}/publish")  # a repeat changes nothing
            assert again.status_code == 200
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery")
        assert kinds(receiver, secret) == ["post.published"]
        record = events(server, token, post["id"])
        assert [(e["kind"], e["door"]) for e in record] == [
            ("created", "api"),
            ("published", "api"),
        ]
        assert record[0]["detail"] == {"state": "draft"}
        assert record[1]["actor"] == record[0]["actor"]  # the user's id


def test_an_edit_reaches_the_webhook_signed_and_is_recorded(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        post = server.upload(token, title="Stavfel", text="Hej")
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery")
        item_id = post["items"][0]["id"]
        with server.client(token) as client:
            response = client.patch(
                f"/api/v1/posts/{post['id']}",
                json={"title": "Rättat", "items": [{"id": item_id, "alt": "Två kor"}]},
            )
        assert response.status_code == 200, response.text
        assert response.json()["title"] == "Rättat"
        wait_for(lambda: len(receiver.requests) == 2, "post.updated")
        [published, updated] = [
            Webhook(secret).verify(r.body, r.headers) for r in receiver.requests
        ]
        assert updated["type"] == "post.updated"
        assert updated["post"]["title"] == "Rättat"
        assert updated["post"]["items"][0]["alt"] == "Två kor"
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert ids[0] != ids[1]  # the edit is its own message: a receiver keeps both
        [edited] = [e for e in events(server, token, post["id"]) if e["kind"] == "edited"]
        assert edited["detail"]["changed"]["title"] == {"from": "Stavfel", "to": "Rättat"}
        assert edited["detail"]["changed"][f"items.{item_id}.alt"]["to"] == "Två kor"


def test_delete_takes_the_page_the_media_and_the_remote_copy(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        post = server.upload(token, title="Fel bild")
        ready = wait_for(lambda: delivered(server, token, post["id"]), "the delivery")
        sha256 = ready["items"][0]["original"]["sha256"]
        media = server.data_dir / "media" / post["id"]
        assert any(media.rglob("*.*"))
        with server.client(token) as client:
            assert client.get(ready["items"][0]["original"]["url"]).status_code == 200
            response = client.delete(f"/api/v1/posts/{post['id']}", params={"reason": "fel"})
            assert response.status_code == 204 and response.content == b""
            assert client.get(f"/p/{post['id']}").status_code == 410
            gone = client.patch(f"/api/v1/posts/{post['id']}", json={"title": "x"})
            assert gone.status_code == 410
            assert gone.json()["error"]["code"] == "post.gone"
            assert client.delete(f"/api/v1/posts/{post['id']}").status_code == 410
        wait_for(lambda: len(receiver.requests) == 2, "post.deleted")
        deleted = Webhook(secret).verify(receiver.requests[1].body, receiver.requests[1].headers)
        assert deleted == {"type": "post.deleted", "post": {"id": post["id"]}}
        wait_for(lambda: not any(p.is_file() for p in media.rglob("*")), "the media gone")
        after = wait_for(lambda: delivered(server, token, post["id"], "retracted"), "retracted")
        assert after["state"] == "deleted"
        record = events(server, token, post["id"])
        assert record[-1]["kind"] == "deleted"
        assert record[-1]["detail"]["reason"] == "fel"
        assert record[-1]["detail"]["originals"][0]["sha256"] == sha256


def test_bad_input(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    other = server.add_user("berit")["token"]
    post = server.upload(token, title="Min")
    path = f"/api/v1/posts/{post['id']}"
    with server.client(other) as client:
        for response in (
            client.patch(path, json={"title": "hack"}),
            client.post(path + "/publish"),
            client.delete(path),
            client.get(path + "/events"),
        ):
            assert response.status_code == 404, response.text
    with server.client(token) as client:
        for body in (
            {"colour": "red"},
            {"title": 5},
            {"private": "yes"},
            {"tags": "a,b"},
            {"items": [{"id": "x", "alt": "y", "extra": 1}]},
            {"publish_at": "tomorrow"},
            {"publish_at": "2026-12-24T09:00:00"},  # no offset: which zone?
            [],
        ):
            response = client.patch(path, json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"] == "request.invalid"
            assert set(response.json()["error"]) == {"code", "message"}
        response = client.patch(path, content=b"{not json", headers={"Content-Type": "x"})
        assert response.status_code == 422
        unknown_item = client.patch(path, json={"items": [{"id": "nope", "alt": "a"}]})
        assert unknown_item.status_code == 422
        assert client.get(path).json()["title"] == "Min"  # nothing of it was kept


def test_a_publish_at_in_the_past_publishes_now(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        server.add_destination("webhook", receiver.url)
        post = server.upload(token, title="Snart", draft="1")
        with server.client(token) as client:
            response = client.patch(
                f"/api/v1/posts/{post['id']}", json={"publish_at": rfc3339(-3600)}
            )
        assert response.status_code == 200
        assert response.json()["state"] == "published"
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery")


def test_a_scheduled_post_publishes_at_its_time(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        post = server.upload(token, title="Klockan", publish_at=rfc3339(2))
        assert post["state"] == "scheduled" and post["publish_at"]
        wait_for(lambda: delivered(server, token, post["id"]), "the scheduled delivery")
        assert kinds(receiver, secret) == ["post.published"]
        assert [e["kind"] for e in events(server, token, post["id"])] == ["created", "published"]
        assert events(server, token, post["id"])[1]["door"] == "system"


def test_a_restart_between_scheduling_and_the_time_still_publishes_once(
    start_relay, tmp_path: Path
) -> None:
    server = start_relay(tmp_path / "life", RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    token = server.add_user("anna")["token"]
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        publish_at = time.time() + 10  # ample for stopping the relay first on a busy machine
        post = server.upload(
            token,
            title="Efter omstart",
            publish_at=datetime.fromtimestamp(publish_at, UTC).isoformat(),
        )
        assert post["state"] == "scheduled"
        server.stop()  # before the time; its photo may even be unprocessed yet
        while time.time() < publish_at + 1:  # the relay is down when the time comes
            time.sleep(0.2)
        assert receiver.requests == []
        server.start()
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery after the restart")
        server.stop()  # and once more: nothing is left to publish it again
        server.start()
        with server.client(token) as client:
            assert client.get(f"/api/v1/posts/{post['id']}").json()["state"] == "published"
            client.post("/api/v1/uploads", data={"text": "a later post, delivered after"})
        wait_for(lambda: len(receiver.requests) == 2, "the later post")  # the queue has run
        assert kinds(receiver, secret)[:1] == ["post.published"]
        assert json.loads(receiver.requests[0].body)["post"]["id"] == post["id"]
        assert [json.loads(r.body)["post"]["id"] for r in receiver.requests].count(post["id"]) == 1
        assert kinds(receiver, secret) == ["post.published", "post.published"]
        published = [e for e in events(server, token, post["id"]) if e["kind"] == "published"]
        assert len(published) == 1


def test_a_delete_during_a_delivery_in_flight_leaves_no_copy(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    arrived = threading.Event()
    release = threading.Event()

    def answer(received: Received) -> int:
        if json.loads(received.body)["type"] == "post.published":
            arrived.set()
            release.wait(60)  # the delivery is in flight until the test lets it finish
        return 200

    with webhook_receiver(answer) as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        post = server.upload(token, title="I luften")
        assert arrived.wait(60)
        with server.client(token) as client:
            assert client.delete(f"/api/v1/posts/{post['id']}").status_code == 204
        release.set()
        wait_for(lambda: len(receiver.requests) == 2, "the removal after the delivery")
        assert kinds(receiver, secret) == ["post.published", "post.deleted"]
        wait_for(lambda: delivered(server, token, post["id"], "retracted"), "retracted")


def test_raw_upload_headers_and_tus_metadata_set_the_fields(start_relay) -> None:
    import base64

    server, token = crossposting_relay(start_relay)
    name, body, mime = jpeg_part()
    with server.client(token) as client:
        raw = client.post(
            "/api/v1/uploads",
            content=body,
            headers={
                "Content-Type": mime,
                "Content-Disposition": f'attachment; filename="{name}"',
                "Relay-Alt": "Tv%C3%A5%20kor",
                "Relay-Tags": "x,y",
                "Relay-Draft": "true",
                "Relay-Private": "1",
            },
        )
        assert raw.status_code == 202, raw.text
        found = raw.json()
        assert (found["state"], found["private"], found["tags"]) == ("draft", True, ["x", "y"])
        assert found["items"][0]["alt"] == "Två kor"
        bad = client.post(
            "/api/v1/uploads",
            content=body,
            headers={"Content-Type": mime, "Relay-Publish-At": "later"},
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "request.invalid"

        def meta(**values: str) -> str:
            return ",".join(
                f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items()
            )

        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(body))}
        refused = client.post(
            "/api/v1/tus/", headers={**tus, "Upload-Metadata": meta(draft="perhaps")}
        )
        assert refused.status_code == 422
        created = client.post(
            "/api/v1/tus/",
            headers={
                **tus,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Metadata": meta(
                    filename=name, alt="Ko", tags="z", publish_at=rfc3339(3600)
                ),
            },
            content=body,
        )
        assert created.status_code == 201, created.text
        post_id = wait_for(lambda: _newest_other(client, found["id"]), "the tus post")
        post = client.get(f"/api/v1/posts/{post_id}").json()
        assert post["state"] == "scheduled" and post["tags"] == ["z"]
        assert post["items"][0]["alt"] == "Ko"


def _newest_other(client: httpx.Client, not_this: str) -> str | None:
    posts = client.get("/api/v1/posts").json()["posts"]
    return posts[0]["id"] if posts and posts[0]["id"] != not_this else None


def test_retract_takes_it_down_and_publishing_again_sends_a_new_copy(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        secret = server.add_destination("webhook", receiver.url)["secret"]
        post = server.upload(token, title="Fram och tillbaka")
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery")
        path = f"/api/v1/posts/{post['id']}"
        with server.client(token) as client:
            retracted = client.patch(path, json={"draft": True})
            assert retracted.status_code == 200 and retracted.json()["state"] == "draft"
            wait_for(lambda: len(receiver.requests) == 2, "post.deleted")
            wait_for(lambda: delivered(server, token, post["id"], "retracted"), "retracted")
            # Taken down here too: a draft has no public page (its owner still reads it by API).
            assert client.get(f"/p/{post['id']}").status_code == 404
            assert client.get(path).json()["state"] == "draft"
            assert client.post(path + "/publish").json()["state"] == "published"
        wait_for(lambda: len(receiver.requests) == 3, "published again")
        assert kinds(receiver, secret) == ["post.published", "post.deleted", "post.published"]
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(set(ids)) == 3  # a new copy: a receiver must not drop it as a repeat
        assert [e["kind"] for e in events(server, token, post["id"])] == [
            "created",
            "retracted",
            "published",
        ]
