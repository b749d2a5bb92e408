"""The tables, as SQLAlchemy Core. Times are UNIX seconds (float) so that SQLite and PostgreSQL
compare them the same way. A change here needs a step in ``migrations.py``."""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    false,
)

metadata = MetaData()

ID = String(32)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("reply_to_sender", Boolean, nullable=False, default=False),
    Column("timezone", String(64)),  # IANA name; NULL: RELAY_TIMEZONE
    Column("created_at", Float, nullable=False),
    # The web app (relay/web/app): an argon2 hash (NULL: no password, no web sign-in), whether
    # the user administers the relay, and the session generation every session cookie carries
    # (raised by "sign out everywhere", which so ends every cookie issued before).
    Column("password_hash", Text),
    Column("admin", Boolean, nullable=False, default=False),
    Column("session_gen", Integer, nullable=False, default=0),
    # An admin's choices (relay/web/app/admin.py): a disabled user cannot sign in, use a token
    # or mail in; a removed one is also gone from the list (the row stays: its posts' record
    # names it), its name freed for someone new.
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("removed_at", Float),
    # The language of the reply mail ("en", "sv"); NULL: RELAY_DEFAULT_LANGUAGE.
    Column("language", String(8)),
)

addresses = Table(
    "addresses",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("sender_policy", String(16), nullable=False, default="anyone"),
    Column("allowed_senders", Text, nullable=False, default="[]"),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

posts = Table(
    "posts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("text", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("spool_name", String(64)),
    Column("message_id", Text),
    Column("sender", Text),
    Column("private", Boolean, nullable=False, default=False),
    Column("draft", Boolean, nullable=False, default=False),
    Column("tags", Text, nullable=False, default="[]"),
    Column("only_destination", Text),  # ids or types, comma-joined (upload `destinations`)
    Column("content_sha256", String(64)),
    Column("auth_results", Text),
    Column("created_at", Float, nullable=False),
    Column("ready_at", Float),
    # The post's life (relay/lifecycle.py): draft | scheduled | published | deleted.
    Column("state", String(16), nullable=False, default="published", server_default="published"),
    Column("publish_at", Float),
    Column("deleted_at", Float),
    Index("ix_posts_user_created", "user_id", "created_at"),
    Index("ix_posts_user_message", "user_id", "message_id"),
)

items = Table(
    "items",
    metadata,
    Column("id", ID, primary_key=True),
    Column("post_id", ID, ForeignKey("posts.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("filename", Text, nullable=False),
    Column("declared_mime", String(255)),
    Column("alt", Text),
    Column("spool_name", String(64)),
    Column("kind", String(16)),
    Column("status", String(16), nullable=False),
    Column("progress", Float),
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("original_key", Text),
    Column("original_mime", String(255)),
    Column("original_bytes", Integer),
    Column("original_sha256", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Files sent with this one that are part of it, until it is processed (relay/pairing.py):
    # JSON [{"role": "captions"|"motion", "spool_name", "filename", "lang"}].
    Column("companions", Text),
)

renditions = Table(
    "renditions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", ID, ForeignKey("items.id"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("key", Text, nullable=False),
    Column("mime", String(255), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("duration", Float),
    Column("lang", String(35)),  # a captions rendition's language (BCP 47)
    Column("loudness", Text),  # JSON: handlers/loudness.py Measured.as_json
    Column("pages", Integer),  # a PDF's page count, on its preview (handlers/document.py)
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("locked_by", String(64)),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    # Fair claiming between users (relay/jobs.py): whose job it is, and its place in line.
    Column("owner", ID),
    Column("fair_at", Float),
    # The fencing token (relay/jobs.py): counts every claim, never goes back (unlike attempts,
    # which a postponement gives back), so a worker whose lease lapsed and whose job another
    # worker claimed cannot overwrite that worker's state.
    Column("claims", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_jobs_claim", "status", "run_at"),
    Index("ix_jobs_fair", "status", "fair_at"),
    Index("ix_jobs_owner", "owner", "fair_at"),
)

destinations = Table(
    "destinations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("type", String(32), nullable=False),
    Column("url", Text),
    Column("secret", Text),
    Column("token", Text),
    Column("config", Text, nullable=False, default="{}"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column("post_id", ID, ForeignKey("posts.id"), nullable=False, index=True),
    Column("destination_id", ID, ForeignKey("destinations.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("remote_url", Text),
    Column("remote_id", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# tus uploads (relay/intake/tus.py): a row from creation until expiry; a finished one keeps its
# post_id so the upload URL leads to the post. BigInteger: PostgreSQL's Integer stops at 2 GiB.
uploads = Table(
    "uploads",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("length", BigInteger),  # NULL while deferred (Upload-Defer-Length)
    Column("received", BigInteger, nullable=False, default=0),
    Column("upload_metadata", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("locked_until", Float),
    Column("locked_by", String(64)),
    Column("spool_name", String(64)),  # set with the last byte, before the move into the spool
    Column("post_id", ID),
    Column("terminated_at", Float),
    # With an S3 store (relay/intake/tus_s3.py): the upload's S3 multipart upload, the object
    # holding its bytes past the last full part, and the number its next part gets.
    Column("multipart_id", Text),
    Column("tail_key", String(200)),
    Column("next_part", Integer, nullable=False, default=1, server_default="1"),
)

# The parts of a tus upload's S3 multipart upload, recorded under the writer's lease.
upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", ID, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("etag", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
)

# The post's record: every change of state, appended, never updated or deleted (triggers below
# refuse both, on SQLite and PostgreSQL, so that not even a bug or a hand in psql rewrites it).
post_events = Table(
    "post_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_id", ID, ForeignKey("posts.id"), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", Text),  # a user id, or a verified sender address
    Column("door", String(16), nullable=False),  # api | cli | mail | web | system
    Column("detail", Text, nullable=False, default="{}"),  # JSON: what changed
)

event.listen(
    post_events,
    "after_create",
    DDL(
        "CREATE TRIGGER post_events_no_update BEFORE UPDATE ON post_events "
        "BEGIN SELECT RAISE(ABORT, 'post_events is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    post_events,
    "after_create",
    DDL(
        "CREATE TRIGGER post_events_no_delete BEFORE DELETE ON post_events "
        "BEGIN SELECT RAISE(ABORT, 'post_events is append-only'); END"
    ).execute_if(dialect="sqlite"),
)
event.listen(
    post_events,
    "after_create",
    DDL(
        "CREATE OR REPLACE FUNCTION relay_post_events_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'post_events is append-only'; END $$"
    ).execute_if(dialect="postgresql"),
)
event.listen(
    post_events,
    "after_create",
    DDL(
        "CREATE TRIGGER post_events_append_only BEFORE UPDATE OR DELETE ON post_events "
        "FOR EACH ROW EXECUTE FUNCTION relay_post_events_append_only()"
    ).execute_if(dialect="postgresql"),
)

# Live broadcasting (relay/intake/live.py): a user's stream keys, kept as secret addresses are
# (only the SHA-256 of the key, its first characters as a hint), and each broadcast made with
# one: the post it became, why it ended.
stream_keys = Table(
    "stream_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("key_id", ID, ForeignKey("stream_keys.id"), nullable=False, index=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("post_id", ID, ForeignKey("posts.id"), nullable=False),
    Column("state", String(16), nullable=False),  # live | ended
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("end_reason", String(64)),  # an error code (relay/errors.py) or "ended"
    Column("seconds", Float),
    Column("node", String(64)),  # the process that takes it in (relay/node.py)
)

schema_version = Table(
    "relay_schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)
