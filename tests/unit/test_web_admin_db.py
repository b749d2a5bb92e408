"""The database side of the settings and admin pages, on SQLite and (with
RELAY_TEST_DATABASE_URL) PostgreSQL: migration 10, what a disabled or removed user can no longer
do, a user's own addresses and tokens, and the health figures."""

from __future__ import annotations

import time

from sqlalchemy import select, text

from relay import jobs
from relay.db import Database, migrations, queries
from relay.db.schema import addresses, tokens, users


def test_users_of_version_7_migrate_enabled_and_not_removed(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        for name in ("disabled", "removed_at"):
            conn.execute(text(f"ALTER TABLE users DROP COLUMN {name}"))
        conn.execute(text("UPDATE relay_schema_version SET version = 7"))
    assert database.migrate() == 7
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().one()
        assert (row["disabled"], row["removed_at"]) == (False, None)
        assert [u["name"] for u in queries.list_users(conn)] == ["anna"]


def test_a_disabled_user_cannot_sign_in_use_a_token_or_mail_in(database: Database) -> None:
    with database.begin() as conn:
        anna = queries.add_user(conn, "anna")
        queries.set_password(conn, anna, "hash")
        token = queries.add_token(conn, anna)
        secret = queries.add_address(conn, anna)
        assert queries.set_disabled(conn, anna, True)
    with database.begin() as conn:
        assert queries.user_for_token(conn, token) is None
        assert queries.user_for_address(conn, secret) is None
        assert queries.recipient(conn, secret) is None
        assert queries.user_login(conn, "anna") is None
        assert queries.user_session(conn, anna) is None
        [listed] = queries.list_users(conn)
        assert listed["disabled"] and listed["has_password"]
        queries.set_disabled(conn, anna, False)
    with database.begin() as conn:
        assert queries.user_for_token(conn, token) == anna
        assert queries.recipient(conn, secret)["user_id"] == anna
        # Disabling ended the sessions issued before it: the generation moved on.
        assert queries.user_session(conn, anna) == ("anna", 1, False, True)


def test_a_removed_user_is_gone_from_the_list_and_their_name_is_free(database: Database) -> None:
    with database.begin() as conn:
        anna = queries.add_user(conn, "anna")
        token = queries.add_token(conn, anna)
        secret = queries.add_address(conn, anna)
        assert queries.remove_user(conn, anna)
        assert not queries.remove_user(conn, anna)  # once
        assert queries.list_users(conn) == []
        assert queries.user_for_token(conn, token) is None
        assert queries.recipient(conn, secret) is None
        again = queries.add_user(conn, "anna")
        assert [u["id"] for u in queries.list_users(conn)] == [again]


def test_own_addresses_and_tokens_by_id_never_another_users(database: Database) -> None:
    with database.begin() as conn:
        anna, bo = queries.add_user(conn, "anna"), queries.add_user(conn, "bo")
        secret = queries.add_address(conn, anna)
        queries.add_token(conn, anna)
        [address] = queries.live_addresses(conn, anna)
        [token] = queries.live_tokens(conn, anna)
        assert address["hint"] == secret[:8] and token["hint"].startswith("rly_")
        assert not queries.set_own_address_policy(conn, bo, address["id"], "dkim", ["@x.se"])
        assert queries.set_own_address_policy(conn, anna, address["id"], "dkim", ["@x.se"])
        assert queries.recipient(conn, secret)["allowed_senders"] == ["@x.se"]
        assert not queries.revoke_own(conn, addresses, bo, address["id"])
        assert not queries.revoke_own(conn, tokens, bo, token["id"])
        assert queries.revoke_own(conn, addresses, anna, address["id"])
        assert queries.revoke_own(conn, tokens, anna, token["id"])
        assert queries.live_addresses(conn, anna) == [] and queries.live_tokens(conn, anna) == []
        assert queries.recipient(conn, secret) is None


def test_queue_health_counts_due_waiting_running_and_failed_jobs(database: Database) -> None:
    with database.begin() as conn:
        assert queries.queue_health(conn, time.time()) == {
            "due": 0,
            "later": 0,
            "running": 0,
            "failed": 0,
        }
        jobs.enqueue(conn, "item", "a")
        jobs.enqueue(conn, "item", "b", delay=3600)
        running = jobs.enqueue(conn, "item", "c")
        dead = jobs.enqueue(conn, "deliver", "d")
        conn.execute(jobs.jobs.update().where(jobs.jobs.c.id == running).values(status="running"))
        conn.execute(
            jobs.jobs.update()
            .where(jobs.jobs.c.id == dead)
            .values(status="dead", last_error="HTTP 500")
        )
        assert queries.queue_health(conn, time.time()) == {
            "due": 1,
            "later": 1,
            "running": 1,
            "failed": 1,
        }
        [failed] = queries.failed_jobs(conn, 10)
        assert (failed["kind"], failed["ref"], failed["last_error"]) == ("deliver", "d", "HTTP 500")
        assert queries.stored_bytes(conn) == 0
