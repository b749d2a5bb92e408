"""Cross-posting to a Micropub site (h-entry, media endpoint) against a strict local fake."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.fakes import life
from tests.fakes.micropub import LOST, fake_micropub
from tests.server import crossposting_relay


def _large(post: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in post["items"][0]["renditions"] if r["name"] == "large")


def test_entry_arrives_with_photo_from_the_media_endpoint_and_alt(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub() as mp:
        destination_id = server.add_destination("micropub", mp.endpoint, mp.token)["id"]
        private = server.upload(token, title="Hej", private="true")
        post = server.upload(token, title="Hej", text="Från relä")
        post = server.wait_settled(token, post["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"], delivery["error"]) == (
            "delivered",
            1,
            None,
        )

        [entry] = mp.entries
        assert delivery["remote_url"] == entry["url"]
        properties = entry["properties"]
        assert properties["name"] == ["Hej"]
        assert properties["content"] == [f"Från relä\n\n{post['url']}"]
        [photo] = properties["photo"]
        assert photo["alt"] == "Hej" and photo["value"].startswith(f"{mp.url}/media/")
        assert entry["commands"]["mp-slug"] == [entry["slug"]]
        # the photo is the relay's large rendition, uploaded as the one multipart part "file"
        mime, data = mp.files[photo["value"].removeprefix(mp.url)]
        assert (mime, data) == ("image/jpeg", httpx.get(_large(post)["url"]).content)
        [upload] = mp.seen("POST", "/micropub/media")
        assert "Transfer-Encoding" not in upload.headers  # a length, for servers without chunked
        assert int(upload.headers["Content-Length"]) == len(upload.body)
        [create] = mp.seen("POST", "/micropub")
        assert create.headers["Content-Type"] == "application/json"
        assert create.headers["Authorization"] == f"Bearer {mp.token}"
        assert json.loads(create.body)["type"] == ["h-entry"]

        assert server.wait_post(token, private["id"])["deliveries"] == []
        time.sleep(1)
        assert len(mp.entries) == 1 and len(mp.seen("POST", "/micropub")) == 1

        checked = server.cli("destination", "test", destination_id)
        assert "answered 200" in checked.stdout and f"{mp.url}/micropub/media" in checked.stdout


def test_without_a_media_endpoint_the_entry_points_at_the_relay(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub(media_endpoint=False, accepted=True) as mp:  # 202 Accepted, as some do
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert delivery["status"] == "delivered"
        [entry] = mp.entries
        assert entry["properties"]["photo"] == [{"value": _large(post)["url"], "alt": "Hej"}]
        assert mp.seen("POST", "/micropub/media") == []


def test_transient_failure_is_retried_into_one_entry(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub() as mp:
        mp.script("create", 503)
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
        assert len(mp.seen("POST", "/micropub")) == 2 and len(mp.entries) == 1


def test_lost_response_with_a_server_that_honours_idempotency_keys(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub(idempotency=True) as mp:
        mp.script("create", LOST)  # created, then the answer is lost (502)
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
        [entry] = mp.entries
        assert delivery["remote_url"] == entry["url"]
        creates = mp.seen("POST", "/micropub")
        assert len(creates) == 2
        assert len({c.headers["Idempotency-Key"] for c in creates}) == 1
        assert len(mp.files) == 1  # the upload's own key got the same file back


def test_lost_response_with_a_server_that_lists_its_posts(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub(source_query=True) as mp:  # no idempotency keys, but q=source
        mp.script("create", LOST)
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
        [entry] = mp.entries
        assert delivery["remote_url"] == entry["url"]
        assert len(mp.seen("POST", "/micropub")) == 1  # found, not created again
        queries = [r.query.get("q") for r in mp.seen("GET", "/micropub")]
        assert queries.count("source") == 2  # looked before each try


def test_bad_token_stops_and_says_why(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub() as mp:
        destination_id = server.add_destination("micropub", mp.endpoint, "not-the-token")["id"]
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        assert delivery["error"]["code"] == "publish.unauthorized"
        assert "forbidden" in delivery["error"]["message"]
        time.sleep(1)  # a failed delivery is done: nothing follows
        assert mp.entries == [] and len(mp.requests) == 1

        failed = server.cli("destination", "test", destination_id, check=False)
        assert failed.returncode != 0 and "publish.unauthorized" in failed.stderr


def test_private_address_is_refused_by_default(start_relay) -> None:
    server = start_relay()
    token = server.add_user("anna")["token"]
    with fake_micropub() as mp:
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.wait_settled(token, server.upload(token, title="Hej")["id"])
        [delivery] = post["deliveries"]
        assert delivery["status"] == "failed"
        assert delivery["error"]["code"] == "publish.private_address"
        assert mp.requests == []


# --- edits and deletions ------------------------------------------------------------------------


def test_an_edit_is_an_update_action_and_a_delete_a_delete_action(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with fake_micropub() as mp:
        server.add_destination("micropub", mp.endpoint, mp.token)
        post = server.upload(token, title="Stavfel", text="Hej")
        delivery = server.wait_delivery(token, post["id"])
        [entry] = mp.entries
        photo = entry["properties"]["photo"][0]["value"]
        mp.script("create", LOST)  # the update is applied, then the answer is lost (502)
        life.edit(
            server,
            token,
            post["id"],
            title="Rättat",
            items=[{"id": post["items"][0]["id"], "alt": "Två kor"}],
        )
        actions = lambda kind: [  # noqa: E731
            json.loads(r.body)
            for r in mp.seen("POST", "/micropub")
            if r.body.startswith(b"{") and json.loads(r.body).get("action") == kind
        ]
        life.wait_for(lambda: len(actions("update")) >= 2, "the retried update")
        life.wait_for(lambda: life.delivery(server, token, post["id"])["error"] is None, "done")
        first, repeat = actions("update")[:2]
        assert first == repeat and first["url"] == delivery["remote_url"]
        assert entry["properties"]["name"] == ["Rättat"]
        assert entry["properties"]["photo"] == [{"value": photo, "alt": "Två kor"}]
        assert entry["properties"]["content"] == [f"Hej\n\n{post['url']}"]
        assert entry.get("revisions") == 1 and len(mp.entries) == 1  # one change, no new post
        bearer = [r.headers.get("Authorization") for r in mp.seen("POST", "/micropub")]
        assert set(bearer) == {f"Bearer {mp.token}"}

        mp.script("create", LOST)  # deleted, then the answer is lost
        life.delete(server, token, post["id"])
        life.retracted(server, token, post["id"])
        assert mp.entries == [] and mp.deleted == [entry]
        # The repeat was told there is no post there (400), and q=source confirmed it.
        assert actions("delete") == [{"action": "delete", "url": delivery["remote_url"]}] * 2
