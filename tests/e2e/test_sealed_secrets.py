"""Channel secrets at rest, through the real CLI and a real ``relay serve``: the database holds
no token or signing secret in clear (SQLite, and PostgreSQL when RELAY_TEST_DATABASE_URL is
set), deliveries still sign with them, and a changed RELAY_SECRET_KEY fails the deliveries of
the channels it locks out with a code that says what to do, while the relay keeps running."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from standardwebhooks import Webhook

from relay.db import Database
from relay.db.schema import destinations
from tests.receivers import webhook_receiver
from tests.server import RelayServer

KEY = "the-first-relay-secret-key-0123456789"
CHANGED_KEY = "someone-changed-the-relay-key-9876543210"
TOKEN = "mastodon-token-Zm9vYmFyYmF6cXV4"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
CLIENT_SECRET = "oauth-client-secret-c2VjcmV0"


def _raw_rows(database: Database) -> str:
    """Every destination row as stored, as one text to search."""
    with database.begin(write=False) as conn:
        rows = conn.execute(select(destinations)).mappings().all()
    return json.dumps([dict(row) for row in rows])


def test_relay_destination_add_stores_no_secret_in_clear(
    database: Database, tmp_path: Path
) -> None:
    cli = RelayServer(tmp_path / "data", RELAY_DATABASE_URL=database.url, RELAY_SECRET_KEY=KEY)
    cli.add_user("anna")
    webhook = cli.add_destination("webhook", "https://hooks.example/relay")
    cli.add_destination("mastodon", "https://m.example", TOKEN, f"client_secret={CLIENT_SECRET}")
    cli.add_destination("bluesky", None, APP_PASSWORD, "handle=anna.bsky.social")

    stored = _raw_rows(database)
    for secret in (webhook["secret"], TOKEN, APP_PASSWORD, CLIENT_SECRET):
        assert secret not in stored
    assert stored.count('"v1:') == 4  # each sealed, not dropped
    assert "anna.bsky.social" in stored  # what is not secret stays readable
    listed = json.loads(cli.cli("destination", "list", "--user", "anna", "--json").stdout)
    assert len(listed["destinations"]) == 3


def _post_and_wait(server: RelayServer, token: str, title: str) -> dict:
    post = server.upload(token, title=title)
    return server.wait_delivery(token, post["id"])


def test_a_changed_key_fails_deliveries_with_what_to_do_and_the_old_key_heals_them(
    start_relay, tmp_path: Path
) -> None:
    data = tmp_path / "relay"
    env = {"RELAY_ALLOW_PRIVATE_DESTINATIONS": "true", "RELAY_SECRET_KEY": KEY}
    server = start_relay(data, **env)
    token = server.add_user("anna")["token"]
    with webhook_receiver() as receiver:
        added = server.add_destination("webhook", receiver.url)
        secret = added["secret"]
        # Sealed at rest, and the delivery still signs with it.
        assert _post_and_wait(server, token, "Före")["status"] == "delivered"
        [first] = receiver.requests
        Webhook(secret).verify(first.body, first.headers)
        database = Database(f"sqlite:///{data / 'relay.db'}")
        try:
            assert secret not in _raw_rows(database)
        finally:
            database.close()

        server.stop()
        server.env["RELAY_SECRET_KEY"] = CHANGED_KEY
        server.start()
        delivery = _post_and_wait(server, token, "Efter")
        assert delivery["status"] == "failed"
        assert delivery["error"]["code"] == "destination.secret_unreadable"
        assert "Connect the channel again" in delivery["error"]["message"]
        assert "restore RELAY_SECRET_KEY" in delivery["error"]["message"]
        assert len(receiver.requests) == 1  # nothing went out unsigned or badly signed
        assert server.client().get("/healthz").status_code == 200  # and the relay runs on

        doctor = server.cli("doctor", "--json", check=False)
        assert doctor.returncode == 1
        secrets = json.loads(doctor.stdout)["checks"]["secrets"]
        assert secrets["ok"] is False and added["id"] in secrets["detail"]
        assert "connect them again" in secrets["detail"]

        server.stop()
        server.env["RELAY_SECRET_KEY"] = KEY  # the old key restored: the channel works again
        server.start()
        assert _post_and_wait(server, token, "Igen")["status"] == "delivered"
        Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    logged = server.log.read_text()
    assert "destination.secret_unreadable" in logged
    for clear in (secret, secret.removeprefix("whsec_"), KEY, CHANGED_KEY):
        assert clear not in logged
