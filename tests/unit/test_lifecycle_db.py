"""The post's life in the database: the migration from the schema that landed before it (version
3), and the record that nothing rewrites. SQLite, and PostgreSQL with RELAY_TEST_DATABASE_URL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from relay import lifecycle
from relay.db import Database, migrations, queries
from relay.db.schema import post_events, posts


def _back_to_version_3(database: Database) -> None:
    """The schema as it landed before the post's life: no state columns, no record."""
    with database.begin() as conn:
        conn.execute(text("DROP TABLE post_events"))
        if database.is_postgres:
            conn.execute(text("DROP FUNCTION relay_post_events_append_only()"))
        for name in ("state", "publish_at", "deleted_at"):
            conn.execute(text(f"ALTER TABLE posts DROP COLUMN {name}"))
        conn.execute(text("ALTER TABLE users DROP COLUMN timezone"))
        conn.execute(text("UPDATE relay_schema_version SET version = 3"))


def test_posts_of_the_landed_schema_migrate_to_published_or_draft(database: Database) -> None:
    _back_to_version_3(database)
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        for post_id, draft in (("old1", False), ("old2", True)):
            conn.execute(
                text(
                    "INSERT INTO posts (id, user_id, title, text, status, source, private, draft,"
                    " tags, created_at) VALUES (:id, :user, '', '', 'ready', 'http', false,"
                    " :draft, '[]', :now)"
                ),
                {"id": post_id, "user": user_id, "draft": draft, "now": time.time()},
            )
    assert database.migrate() == 3
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        states = dict(conn.execute(select(posts.c.id, posts.c.state)).all())
        assert states == {"old1": "published", "old2": "draft"}
        # and the record works on the migrated database, append-only included
        lifecycle.record(conn, "old2", "published", user_id, "cli", {"from": "draft"})
    _assert_append_only(database)


def _assert_append_only(database: Database) -> None:
    for statement in (post_events.update().values(kind="x"), post_events.delete()):
        with pytest.raises(DBAPIError, match="append-only"), database.begin() as conn:
            conn.execute(statement)
    with database.begin() as conn:
        assert conn.execute(select(post_events.c.kind)).scalars().all() == ["published"]


def test_a_new_database_refuses_to_rewrite_the_record(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        conn.execute(
            text(
                "INSERT INTO posts (id, user_id, title, text, status, source, private, draft,"
                " tags, created_at, state) VALUES ('p1', :user, '', '', 'ready', 'http', false,"
                " false, '[]', 0, 'draft')"
            ),
            {"user": user_id},
        )
        lifecycle.record(conn, "p1", "published", user_id, "api")
    _assert_append_only(database)


def _ready_post(database: Database, state: str = "draft") -> tuple[str, str]:
    from relay.db import destinations

    with database.begin() as conn:
        user_id = queries.add_user(conn, f"u{time.time_ns()}")
        destinations.add_destination(conn, user_id, "webhook", "http://x", "s", None, {})
        post_id = f"p{time.time_ns()}"
        conn.execute(
            text(
                "INSERT INTO posts (id, user_id, title, text, status, source, private, draft,"
                " tags, created_at, state) VALUES (:id, :user, '', '', 'ready', 'http', false,"
                " false, '[]', 0, :state)"
            ),
            {"id": post_id, "user": user_id, "state": state},
        )
    return user_id, post_id


def _jobs(database: Database, kind: str) -> list:
    from relay.db.schema import jobs as jobs_table

    with database.begin() as conn:
        return conn.execute(select(jobs_table).where(jobs_table.c.kind == kind)).mappings().all()


def test_a_scheduled_post_publishes_once_however_often_its_job_runs(database: Database) -> None:
    from relay import jobs

    user_id, post_id = _ready_post(database)
    with database.begin() as conn:
        lifecycle.schedule(conn, post_id, time.time() + 3600, user_id, "api")
        lifecycle.schedule(conn, post_id, time.time() + 7200, user_id, "api")  # moved later
    queued = _jobs(database, lifecycle.PUBLISH)
    assert len(queued) == 2 and all(j["run_at"] > time.time() + 3000 for j in queued)
    fake = [jobs.Job(j["id"], j["kind"], j["ref"], 1, 25) for j in queued]
    with database.begin() as conn:  # the first time comes: the post was moved, nothing happens
        assert not lifecycle.run_publish_job(conn, fake[0])
        # the second time comes (as if the clock had moved on)
        conn.execute(posts.update().where(posts.c.id == post_id).values(publish_at=time.time()))
        assert lifecycle.run_publish_job(conn, fake[1])
        assert not lifecycle.run_publish_job(conn, fake[1])  # a repeat after a crash
        assert not lifecycle.publish(conn, post_id, user_id, "api")
    assert len(_jobs(database, lifecycle.DELIVER)) == 1
    with database.begin() as conn:
        kinds = [e["kind"] for e in lifecycle.events(conn, post_id)]
        assert kinds == ["scheduled", "scheduled", "published"]
    assert _jobs(database, lifecycle.PUBLISH) == []


def test_delete_cancels_queued_deliveries_and_keeps_the_record(database: Database) -> None:
    import pytest as _pytest

    from relay.errors import RelayError

    user_id, post_id = _ready_post(database, "published")
    with database.begin() as conn:
        lifecycle.settle(conn, post_id)  # already ready: opens nothing twice
        lifecycle.publish(conn, post_id, user_id, "api")  # published already: no-op
        lifecycle._open_deliveries(conn, post_id)
        lifecycle.delete(conn, post_id, user_id, "cli", "wrong photo")
        [status] = conn.execute(text("SELECT status FROM deliveries")).scalars().all()
        assert status == "cancelled"
        with _pytest.raises(RelayError, match="post.gone"):
            lifecycle.delete(conn, post_id, user_id, "cli")
    assert _jobs(database, lifecycle.DELIVER) == [] and _jobs(database, lifecycle.RETRACT) == []
    assert len(_jobs(database, lifecycle.PURGE)) == 1
    with database.begin() as conn:
        [deleted] = lifecycle.events(conn, post_id)
        assert deleted["detail"]["reason"] == "wrong photo" and deleted["door"] == "cli"
