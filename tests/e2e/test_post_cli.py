"""``relay post list|show|edit|publish|delete`` against the database a running relay uses: the
CLI changes the post through the lifecycle, and the relay's workers carry it out."""

from __future__ import annotations

import json

from tests.e2e.test_post_life import delivered, events, wait_for
from tests.receivers import webhook_receiver
from tests.server import crossposting_relay


def test_the_post_commands(start_relay) -> None:
    server, token = crossposting_relay(start_relay)
    server.add_user("berit")
    with webhook_receiver() as receiver:
        server.add_destination("webhook", receiver.url)
        post = server.upload(token, title="Från CLI", draft="yes")
        server.wait_post(token, post["id"])

        def run(*args: str) -> dict:
            return json.loads(server.cli("post", *args, "--json").stdout)

        listed = run("list", "--user", "anna")
        assert [p["id"] for p in listed["posts"]] == [post["id"]]
        assert listed["posts"][0]["state"] == "draft"
        shown = run("show", post["id"])
        assert shown["title"] == "Från CLI" and shown["items"][0]["sha256"]
        refused = server.cli("post", "show", post["id"], "--user", "berit", check=False)
        assert refused.returncode != 0 and "no post" in refused.stderr
        item_id = shown["items"][0]["id"]
        edited = run(
            "edit", post["id"], "--title", "Rättad", "--alt", f"{item_id}=Ko", "--tags", "a,b"
        )
        assert (edited["title"], edited["tags"], edited["items"][0]["alt"]) == (
            "Rättad",
            ["a", "b"],
            "Ko",
        )
        bad = server.cli("post", "edit", post["id"], "--publish-at", "soon", check=False)
        assert bad.returncode != 0
        assert run("publish", post["id"], "--user", "anna")["state"] == "published"
        wait_for(lambda: delivered(server, token, post["id"]), "the delivery")
        deleted = run("delete", post["id"], "--reason", "fel")
        assert deleted["state"] == "deleted"
        again = server.cli("post", "delete", post["id"], check=False)
        assert again.returncode != 0 and "post.gone" in again.stderr
        wait_for(lambda: len(receiver.requests) == 2, "post.deleted")
        record = events(server, token, post["id"])
        assert [(e["kind"], e["door"]) for e in record] == [
            ("created", "api"),
            ("edited", "cli"),
            ("published", "cli"),
            ("deleted", "cli"),
        ]
        shown = run("show", post["id"], "--events")
        assert [e["kind"] for e in shown["events"]][-1] == "deleted"
        human = server.cli("post", "list", "--user", "anna").stdout
        assert post["id"] in human and "deleted" in human
