"""A user's own language (migration 11), on SQLite and (with RELAY_TEST_DATABASE_URL)
PostgreSQL: users there before have none (the operator's default applies), and it is set and
cleared."""

from __future__ import annotations

from sqlalchemy import text

from relay.db import Database, migrations, queries


def test_users_of_version_10_migrate_without_a_language(database: Database) -> None:
    with database.begin() as conn:
        anna = queries.add_user(conn, "anna")
        conn.execute(text("ALTER TABLE users DROP COLUMN language"))
        conn.execute(text("UPDATE relay_schema_version SET version = 10"))
    assert database.migrate() == 10
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        assert queries.user_language(conn, anna) is None
        queries.set_user_language(conn, anna, "sv")
    with database.begin() as conn:
        assert queries.user_language(conn, anna) == "sv"
        queries.set_user_language(conn, anna, None)
        assert queries.user_language(conn, anna) is None
