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
