"""Cross-posting to a Standard Webhooks endpoint: signed, once, with retries that show."""

from __future__ import annotations

import json
import time

from standardwebhooks import Webhook

from tests.receivers import webhook_receiver
from tests.server import RelayServer, crossposting_relay


def _destination(server: RelayServer, url: str) -> tuple[str, str]:
    added = server.add_destination("webhook", url)
    assert added["secret"].startswith("whsec_")
    return added["id"], added["secret"]


def test_signed_delivery_once_per_post(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        destination_id, secret = _destination(server, receiver.url)
        post = server.upload(token, title="Hej")
        delivery = server.wait_delivery(token, post["id"])
        assert delivery == {
            "destination": destination_id,
            "status": "delivered",
            "remote_url": None,
            "attempts": 1,
            "error": None,
        }
        [request] = receiver.requests
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "post.published"
        assert payload["post"]["id"] == post["id"] and payload["post"]["status"] == "ready"
        assert payload["post"]["items"][0]["renditions"]
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
        time.sleep(1.5)
        assert len(receiver.requests) == 1  # once


def test_transient_failures_retry_with_the_same_webhook_id(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        receiver.answers = [503, 500]
        _, secret = _destination(server, receiver.url)
        post = server.upload(token, title="Hej")
        delivery = server.wait_delivery(token, post["id"])
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        for request in receiver.requests:
            Webhook(secret).verify(request.body, request.headers)


def test_permanent_failure_stops_and_says_why(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        receiver.answers = [401]
        _destination(server, receiver.url)
        post = server.upload(token, title="Hej")
        delivery = server.wait_delivery(token, post["id"])
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        assert delivery["error"]["code"] == "publish.unauthorized"
        time.sleep(2)
        assert len(receiver.requests) == 1


def test_private_addresses_are_refused_by_default(start_relay) -> None:
    server = start_relay()  # RELAY_ALLOW_PRIVATE_DESTINATIONS unset
    token = server.add_user("anna")["token"]
    with webhook_receiver() as receiver:
        _destination(server, receiver.url)
        post = server.upload(token, title="Hej")
        delivery = server.wait_delivery(token, post["id"])
        assert delivery["status"] == "failed"
        assert delivery["error"]["code"] == "publish.private_address"
        assert receiver.requests == []


def test_private_posts_are_never_delivered_and_text_posts_are(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        _destination(server, receiver.url)
        private = server.upload(token, title="Hej", private="true")
        assert server.wait_post(token, private["id"])["deliveries"] == []
        text = server.upload(token, file=False, text="bara text")
        delivery = server.wait_delivery(token, text["id"])
        assert delivery["status"] == "delivered"
        time.sleep(1)
        assert [json.loads(r.body)["post"]["id"] for r in receiver.requests] == [text["id"]]


def test_destination_cli_lists_tests_and_removes(start_relay) -> None:
    server, _ = crossposting_relay(start_relay)
    with webhook_receiver() as receiver:
        destination_id, _ = _destination(server, receiver.url)
        listed = json.loads(server.cli("destination", "list", "--user", "anna", "--json").stdout)
        assert [d["id"] for d in listed["destinations"]] == [destination_id]
        checked = server.cli("destination", "test", destination_id)
        assert "answered 200" in checked.stdout
        assert json.loads(receiver.requests[0].body) == {"type": "relay.check"}
        receiver.answers = [403]
        failed = server.cli("destination", "test", destination_id, check=False)
        assert failed.returncode != 0 and "publish.unauthorized" in failed.stderr
        server.cli("destination", "remove", destination_id)
        listed = json.loads(server.cli("destination", "list", "--user", "anna", "--json").stdout)
        assert listed == {"destinations": []}


def test_ipv6_forms_of_loopback_are_refused_by_default(start_relay) -> None:
    """NAT64, 6to4 and IPv4-compatible addresses carry 127.0.0.1; without
    RELAY_ALLOW_PRIVATE_DESTINATIONS they are refused like 127.0.0.1 itself."""
    server = start_relay()
    token = server.add_user("anna")["token"]
    with webhook_receiver() as receiver:
        port = receiver.url.split(":")[-1].split("/")[0]
        for host in ("[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]"):
            server.add_destination("webhook", f"http://{host}:{port}/")
        post_id = server.upload(token, title="Hej")["id"]
        deadline = time.monotonic() + 60
        post = server.wait_post(token, post_id)
        while any(d["status"] == "pending" for d in post["deliveries"]):
            assert time.monotonic() < deadline, post["deliveries"]
            time.sleep(0.2)
            post = server.wait_post(token, post_id)
        assert [d["status"] for d in post["deliveries"]] == ["failed"] * 3
        assert {d["error"]["code"] for d in post["deliveries"]} == {"publish.private_address"}
        assert receiver.requests == []
