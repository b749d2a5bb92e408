"""Channel secrets sealed at rest (relay/sealed.py, relay/db/destinations.py): the seal itself,
the destinations layer that seals and opens for its callers, migration 8 from a version-7
database with clear text, and a key that changed. SQLite, and PostgreSQL when
RELAY_TEST_DATABASE_URL is set."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text, update

from relay.db import Database, destinations, migrations, queries
from relay.db.schema import destinations as destinations_table
from relay.errors import PublishError
from relay.publish.deliver import destination_from_row
from relay.sealed import PREFIX, Sealer, Unreadable, is_sealed

KEY = Sealer.from_master(b"the relay's master key, long enough")
OTHER_KEY = Sealer.from_master(b"another relay's master key, as long")
TOKEN = "mastodon-access-token-0123456789"
SECRET = "whsec_c2VrcmV0LXNpZ25pbmcta2V5LTAxMjM0NQ=="


def test_a_sealed_value_opens_in_its_context_and_hides_the_clear_text() -> None:
    sealed = KEY.seal(TOKEN, "destination/d1/token")
    assert sealed.startswith(PREFIX) and is_sealed(sealed)
    assert TOKEN not in sealed
    assert KEY.open(sealed, "destination/d1/token") == TOKEN
    # A fresh nonce each time: the same token sealed twice does not show it is the same.
    assert KEY.seal(TOKEN, "destination/d1/token") != sealed


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],  # a changed byte
        lambda s: s[: len(PREFIX) + 8],  # cut short
        lambda s: s + "!!",  # not base64
        lambda s: s.removeprefix(PREFIX),  # not sealed at all
    ],
)
def test_an_altered_value_is_refused(tamper) -> None:
    sealed = KEY.seal(TOKEN, "destination/d1/token")
    with pytest.raises(Unreadable):
        KEY.open(tamper(sealed), "destination/d1/token")


def test_a_value_does_not_open_in_another_row_field_or_under_another_key() -> None:
    sealed = KEY.seal(TOKEN, "destination/d1/token")
    for context in ("destination/d2/token", "destination/d1/secret"):
        with pytest.raises(Unreadable):
            KEY.open(sealed, context)
    with pytest.raises(Unreadable):
        OTHER_KEY.open(sealed, "destination/d1/token")


def _raw(database: Database, destination_id: str) -> dict:
    with database.begin(write=False) as conn:
        row = conn.execute(
            select(destinations_table).where(destinations_table.c.id == destination_id)
        ).mappings()
        return dict(row.one())


def _user(database: Database) -> str:
    with database.begin() as conn:
        return queries.add_user(conn, "anna")


def test_the_destinations_layer_seals_what_it_stores_and_opens_what_it_reads(
    database: Database,
) -> None:
    database.sealer = KEY
    user_id = _user(database)
    config = {"handle": "anna.example", "client_secret": "oauth-client-secret-42"}
    with database.begin() as conn:
        made = destinations.add_destination(
            conn, user_id, "mastodon", "https://m.example", SECRET, TOKEN, config
        )
    raw = _raw(database, made)
    stored = json.dumps(raw)
    for clear in (TOKEN, SECRET, "oauth-client-secret-42"):
        assert clear not in stored
    assert is_sealed(raw["token"]) and is_sealed(raw["secret"])
    assert json.loads(raw["config"])["handle"] == "anna.example"  # not a secret: as it was

    with database.begin(write=False) as conn:
        row = destinations.destination_row(conn, made)
        [listed] = destinations.list_destinations(conn, user_id)
    for found in (row, listed):
        assert (found["token"], found["secret"]) == (TOKEN, SECRET)
        assert json.loads(found["config"]) == config
        assert found[destinations.UNREADABLE] == []
    adapter_view = destination_from_row(row)
    assert adapter_view.token == TOKEN and adapter_view.config == config


def test_a_new_token_is_sealed_too(database: Database) -> None:
    database.sealer = KEY
    user_id = _user(database)
    with database.begin() as conn:
        made = destinations.add_destination(conn, user_id, "mastodon", "https://m", None, "a", {})
        assert destinations.update_destination(conn, made, token="second-token-value")
    assert "second-token-value" not in json.dumps(_raw(database, made))
    with database.begin(write=False) as conn:
        assert destinations.destination_row(conn, made)["token"] == "second-token-value"


def test_a_changed_token_is_sealed_whatever_it_looks_like_and_only_on_an_active_row(
    database: Database,
) -> None:
    database.sealer = KEY
    user_id = _user(database)
    looks_sealed = "v1:pasted-by-someone"
    with database.begin() as conn:
        made = destinations.add_destination(conn, user_id, "mastodon", "https://m", None, "a", {})
        assert destinations.update_destination(conn, made, token=looks_sealed)
        assert destinations.destination_row(conn, made)["token"] == looks_sealed
        assert destinations.remove_destination(conn, made)
        assert not destinations.update_destination(conn, made, token="too late")


def test_a_sealed_token_copied_into_another_row_does_not_open(database: Database) -> None:
    database.sealer = KEY
    user_id = _user(database)
    with database.begin() as conn:
        mine = destinations.add_destination(conn, user_id, "mastodon", "https://m", None, TOKEN, {})
        theirs = destinations.add_destination(
            conn, user_id, "mastodon", "https://evil", None, "x", {}
        )
    copied = _raw(database, mine)["token"]
    with database.begin() as conn:
        conn.execute(
            update(destinations_table).where(destinations_table.c.id == theirs).values(token=copied)
        )
        row = destinations.destination_row(conn, theirs)
    assert row["token"] is None and row[destinations.UNREADABLE] == ["token"]


def test_a_changed_key_leaves_the_destination_unreadable_with_a_code_that_says_what_to_do(
    database: Database,
) -> None:
    database.sealer = KEY
    user_id = _user(database)
    with database.begin() as conn:
        made = destinations.add_destination(conn, user_id, "webhook", "https://h", SECRET, None, {})
    database.sealer = OTHER_KEY
    with database.begin(write=False) as conn:
        row = destinations.destination_row(conn, made)
        # The channel is still listed (mail to SECRET+webhook@ still finds it) ...
        assert [r["id"] for r in destinations.list_destinations(conn, user_id)] == [made]
        assert [r["id"] for r in destinations.unreadable_destinations(conn)] == [made]
    assert row["secret"] is None and row[destinations.UNREADABLE] == ["secret"]
    # ... and a delivery to it fails with a stable code whose message says what to do.
    with pytest.raises(PublishError) as refused:
        destination_from_row(row)
    assert refused.value.code == "destination.secret_unreadable"
    message = refused.value.public()["message"]
    assert "Connect the channel again" in message and "RELAY_SECRET_KEY" in message
    assert SECRET not in str(refused.value) and SECRET not in message


def test_a_database_opened_without_the_key_cannot_store_a_secret(database: Database) -> None:
    database.sealer = None
    user_id = _user(database)
    with pytest.raises(RuntimeError, match="without the relay's key"), database.begin() as conn:
        destinations.add_destination(conn, user_id, "webhook", "https://h", SECRET, None, {})
    with database.begin() as conn:  # nothing secret: nothing to seal
        destinations.add_destination(conn, user_id, "webhook", "https://h", None, None, {})


def _version_7_with_clear_text(database: Database) -> tuple[str, str]:
    """Rows as a relay of version 7 wrote them: secrets in clear text."""
    user_id = _user(database)
    with database.begin() as conn:
        for destination_id, secret, token, config in (
            ("d_webhook", SECRET, None, {}),
            ("d_bluesky", None, "app-pass-word-1234", {"handle": "a.bsky", "refresh_token": "rt1"}),
        ):
            conn.execute(
                destinations_table.insert().values(
                    id=destination_id,
                    user_id=user_id,
                    type=destination_id.removeprefix("d_"),
                    url="https://x.example",
                    secret=secret,
                    token=token,
                    config=json.dumps(config),
                    active=True,
                    created_at=1.0,
                )
            )
        conn.execute(text("UPDATE relay_schema_version SET version = 7"))
    return "d_webhook", "d_bluesky"


def test_migration_8_seals_the_clear_text_of_version_7(database: Database) -> None:
    webhook, bluesky = _version_7_with_clear_text(database)
    database.sealer = KEY
    assert database.migrate() == 7
    with database.begin(write=False) as conn:
        assert migrations.current_version(conn) == migrations.LATEST

    def stored() -> list[str]:
        config = json.loads(_raw(database, bluesky)["config"])
        return [_raw(database, webhook)["secret"], _raw(database, bluesky)["token"], config]

    sealed = stored()
    assert is_sealed(sealed[0]) and is_sealed(sealed[1]) and is_sealed(sealed[2]["refresh_token"])
    assert sealed[2]["handle"] == "a.bsky"
    with database.begin(write=False) as conn:
        assert destinations.destination_row(conn, webhook)["secret"] == SECRET
        row = destinations.destination_row(conn, bluesky)
    assert row["token"] == "app-pass-word-1234"
    assert json.loads(row["config"]) == {"handle": "a.bsky", "refresh_token": "rt1"}
    database.migrate()  # every start seals what is clear; what is sealed stays as it is
    assert stored() == sealed


def test_a_migration_without_the_key_leaves_clear_text_for_the_next_start_with_it(
    database: Database,
) -> None:
    database.sealer = None
    webhook, _ = _version_7_with_clear_text(database)
    assert database.migrate() == 7  # opened without a key: nothing it can seal
    assert _raw(database, webhook)["secret"] == SECRET
    with database.begin(write=False) as conn:  # clear text from before still reads
        assert destinations.destination_row(conn, webhook)["secret"] == SECRET
    database.sealer = KEY
    database.migrate()
    assert is_sealed(_raw(database, webhook)["secret"])
