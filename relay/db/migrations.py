"""Versioned schema migrations.

A new database gets the current schema in one step and is stamped with the latest version; an
existing one runs each later step in order, in one transaction per step. To change the schema:
edit ``schema.py`` and append a step here that brings a database of the previous version to it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from relay.db.schema import jobs, metadata, post_events, posts, schema_version, uploads

Step = Callable[[Connection], None]


def _add_uploads(conn: Connection) -> None:
    uploads.create(conn, checkfirst=True)


def _index_posts_by_message_id(conn: Connection) -> None:
    # Copies of a message are found by Message-ID now; its hash is made only for them.
    conn.execute(text("DROP INDEX IF EXISTS ix_posts_user_content"))
    [by_message] = [index for index in posts.indexes if index.name == "ix_posts_user_message"]
    by_message.create(conn, checkfirst=True)


def _post_life(conn: Connection) -> None:
    # Posts made before the post's life: a draft stays a draft, everything else was published.
    present = {column["name"] for column in inspect(conn).get_columns("posts")}
    for name in ("state", "publish_at", "deleted_at"):
        if name in present:
            continue  # a database stamped older than it is (tests do that)
        column = posts.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        extra = " NOT NULL DEFAULT 'published'" if name == "state" else ""
        conn.execute(text(f"ALTER TABLE posts ADD COLUMN {name} {kind}{extra}"))
    conn.execute(text("UPDATE posts SET state = 'draft' WHERE draft"))
    if conn.dialect.name == "postgresql":  # several destinations now; SQLite has no lengths
        conn.execute(text("ALTER TABLE posts ALTER COLUMN only_destination TYPE TEXT"))
    post_events.create(conn, checkfirst=True)  # with its append-only triggers
    if "timezone" not in {c["name"] for c in inspect(conn).get_columns("users")}:
        conn.execute(text("ALTER TABLE users ADD COLUMN timezone VARCHAR(64)"))


def _fair_jobs(conn: Connection) -> None:
    # Jobs already queued keep their order (their place in line is when they were due) and
    # belong to no one: they are claimed before anything queued after the upgrade, as before.
    have = {column["name"] for column in inspect(conn).get_columns("jobs")}
    if "owner" not in have:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN owner VARCHAR(32)"))
    if "fair_at" not in have:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN fair_at FLOAT"))
    conn.execute(text("UPDATE jobs SET fair_at = run_at WHERE fair_at IS NULL"))
    for index in jobs.indexes:
        if index.name in ("ix_jobs_fair", "ix_jobs_owner"):
            index.create(conn, checkfirst=True)


def _job_claims(conn: Connection) -> None:
    # Jobs already there start at 0 claims; a job running during the upgrade is claimed anew
    # by the upgraded relay (its old worker is gone), which makes its token 1.
    if "claims" not in {column["name"] for column in inspect(conn).get_columns("jobs")}:
        conn.execute(text("ALTER TABLE jobs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0"))


def _web_users(conn: Connection) -> None:
    # Passwords, admins and session generations for the web app; existing users have no
    # password (no web sign-in until `relay user password NAME`), are not admins, generation 0.
    have = {column["name"] for column in inspect(conn).get_columns("users")}
    if "password_hash" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN password_hash TEXT"))
    if "admin" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE"))
    if "session_gen" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN session_gen INTEGER NOT NULL DEFAULT 0"))


def _seal_channel_secrets(conn: Connection) -> None:
    # Destinations' secrets and tokens were clear text; now they are sealed (relay/sealed.py)
    # with a key from RELAY_SECRET_KEY. A step has no settings: the key comes with the
    # connection (the sealer the Database was opened with). Opened without one (tests), the
    # rows stay clear here and Database.migrate seals them at the next start that has the key:
    # it seals clear text after migrating, every start, idempotently. No column changes; the
    # version stops an older relay, which would send sealed values as tokens, from starting.
    from relay.db import destinations

    destinations.seal_clear_text(conn)


def _tus_parts(conn: Connection) -> None:
    # tus uploads in an S3 store: existing uploads have no multipart upload (their bytes are
    # in the data folder, as before) and begin at part 1.
    from relay.db.schema import upload_parts  # here: the import line above is everyone's

    have = {column["name"] for column in inspect(conn).get_columns("uploads")}
    for name, kind in (
        ("multipart_id", "TEXT"),
        ("tail_key", "VARCHAR(200)"),
        ("next_part", "INTEGER NOT NULL DEFAULT 1"),
    ):
        if name not in have:
            conn.execute(text(f"ALTER TABLE uploads ADD COLUMN {name} {kind}"))
    upload_parts.create(conn, checkfirst=True)


def _users_disabled(conn: Connection) -> None:
    # Everyone there before is enabled and not removed.
    have = {column["name"] for column in inspect(conn).get_columns("users")}
    if "disabled" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE"))
    if "removed_at" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN removed_at FLOAT"))


def _users_language(conn: Connection) -> None:
    # Everyone there before has no language of their own: RELAY_DEFAULT_LANGUAGE applies.
    if "language" not in {column["name"] for column in inspect(conn).get_columns("users")}:
        conn.execute(text("ALTER TABLE users ADD COLUMN language VARCHAR(8)"))


def _item_companions(conn: Connection) -> None:
    # Captions and Live Photo clips sent with an item (relay/pairing.py); items and
    # renditions there before have none.
    if "companions" not in {column["name"] for column in inspect(conn).get_columns("items")}:
        conn.execute(text("ALTER TABLE items ADD COLUMN companions TEXT"))
    if "lang" not in {column["name"] for column in inspect(conn).get_columns("renditions")}:
        conn.execute(text("ALTER TABLE renditions ADD COLUMN lang VARCHAR(35)"))


def _rendition_loudness(conn: Connection) -> None:
    # Renditions made before have no measurement: their loudness stays null.
    if "loudness" not in {column["name"] for column in inspect(conn).get_columns("renditions")}:
        conn.execute(text("ALTER TABLE renditions ADD COLUMN loudness TEXT"))


def _rendition_pages(conn: Connection) -> None:
    # Previews made before have no page count: it stays null (nothing is refused for it).
    if "pages" not in {column["name"] for column in inspect(conn).get_columns("renditions")}:
        conn.execute(text("ALTER TABLE renditions ADD COLUMN pages INTEGER"))


def _live(conn: Connection) -> None:
    # Stream keys and broadcasts are new tables; nothing existing changes.
    from relay.db.schema import broadcasts, stream_keys

    stream_keys.create(conn, checkfirst=True)
    broadcasts.create(conn, checkfirst=True)


# (version, step): version 1 is the first schema, created whole from schema.py.
STEPS: list[tuple[int, Step]] = [
    (2, _add_uploads),
    (3, _index_posts_by_message_id),
    (4, _post_life),
    (5, _fair_jobs),
    (6, _job_claims),
    (7, _web_users),
    (8, _seal_channel_secrets),
    (9, _tus_parts),
    (10, _users_disabled),
    (11, _users_language),
    (12, _live),
    (13, _item_companions),
    (14, _rendition_loudness),
    (15, _rendition_pages),
]

LATEST = max([1, *(version for version, _ in STEPS)])


def current_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(schema_version.name):
        return None
    return conn.execute(select(schema_version.c.version)).scalar()


class SchemaTooNew(RuntimeError):
    """A newer relay migrated the database: this one must not write to it."""


def migrate(conn: Connection) -> int:
    """Bring the database to ``LATEST``; returns the version it was at (0 for a new one)."""
    found = current_version(conn)
    if found is None:
        metadata.create_all(conn)
        conn.execute(schema_version.insert().values(version=LATEST))
        return 0
    if found > LATEST:
        raise SchemaTooNew(
            f"database schema version {found} is newer than this relay ({LATEST}): "
            "upgrade the relay"
        )
    for version, step in STEPS:
        if version > found:
            step(conn)
            conn.execute(schema_version.update().values(version=version))
    return found
