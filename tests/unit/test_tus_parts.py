"""The fencing of tus uploads in an S3 store (relay/db/tus_parts.py): a writer whose lease lapsed
and was taken over records nothing, and the new writer never reuses the part number the old one
may still be sending."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from relay.db import Database, migrations, queries, tus_parts
from relay.db.schema import metadata, schema_version, upload_parts
from relay.db.tus_parts import Part
from relay.intake import tus


def _upload(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        tus._insert(
            conn,
            {
                "id": "u1",
                "user_id": user_id,
                "length": 20_000_000,
                "received": 0,
                "upload_metadata": "",
                "created_at": 0.0,
                "expires_at": 1000.0,
                "multipart_id": "mp-1",
            },
        )


def test_a_writer_that_lost_its_lease_records_nothing(database: Database) -> None:
    _upload(database)
    five = 5 * 1024 * 1024
    with database.begin() as conn:
        assert tus._claim(conn, "u1", "writer-a", now=10.0)[0]
        lease = {"locked_until": 10.0 + tus.LEASE}
        first = Part(1, '"etag-a1"', five)
        assert tus_parts.record(conn, "u1", "writer-a", lease, [first], received=five, next_part=2)
        # A's lease lapses (its node hangs); B takes the upload over.
        taken, row = tus._claim(conn, "u1", "writer-b", now=10.0 + tus.LEASE + 1)
        assert taken and row is not None
        assert row["received"] == five
        # B's first part is not 2, the number A may still be sending.
        assert row["next_part"] == 3
        # A wakes up: its part 2 and its offset are not recorded, nor is its tail.
        late = Part(2, '"etag-a2"', five)
        assert not tus_parts.record(
            conn, "u1", "writer-a", lease, [late], received=2 * five, next_part=3, tail_key="t"
        )
        assert tus._load(conn, "u1")["received"] == five
        assert tus._load(conn, "u1")["tail_key"] is None
        assert tus_parts.parts_of(conn, "u1") == [first]
        # B records its own part.
        mine = Part(3, '"etag-b3"', 1000)
        assert tus_parts.record(conn, "u1", "writer-b", lease, [mine], received=five + 1000)
        assert tus_parts.parts_of(conn, "u1") == [first, mine]
        assert tus._load(conn, "u1")["received"] == five + 1000


def test_a_lease_given_back_skips_no_part_number(database: Database) -> None:
    _upload(database)
    with database.begin() as conn:
        assert tus._claim(conn, "u1", "writer-a", now=10.0)[0]
        released = {"locked_until": None, "locked_by": None}
        assert tus_parts.record(conn, "u1", "writer-a", released, [], next_part=2)
        taken, row = tus._claim(conn, "u1", "writer-b", now=11.0)
        assert taken and row is not None and row["next_part"] == 2


def test_the_sweep_forgets_the_parts_of_removed_uploads(database: Database) -> None:
    _upload(database)
    with database.begin() as conn:
        assert tus._claim(conn, "u1", "writer-a", now=10.0)[0]
        released = {"locked_until": None, "locked_by": None}
        assert tus_parts.record(conn, "u1", "writer-a", released, [Part(1, '"e"', 5)])
        assert tus_parts.stored_objects(conn, ["u1"]) == [("u1", "mp-1", None)]
        assert tus._forget(conn, ["u1"], now=2000.0) == 1
        assert tus_parts.parts_of(conn, "u1") == []


def test_a_version_7_database_gets_the_parts(tmp_path: Path) -> None:
    """Migration 9 on an existing database: its uploads go on from part 1."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        metadata.create_all(
            conn, tables=[t for t in metadata.sorted_tables if t is not upload_parts]
        )
        for column in ("multipart_id", "tail_key", "next_part"):
            conn.execute(text(f"ALTER TABLE uploads DROP COLUMN {column}"))
        conn.execute(schema_version.insert().values(version=7))
        user_id = queries.add_user(conn, "anna")
        conn.execute(
            text(
                "INSERT INTO uploads (id, user_id, length, received, upload_metadata, "
                "created_at, expires_at) VALUES ('old', :user, 10, 3, '', 0, 100)"
            ),
            {"user": user_id},
        )
    with engine.begin() as conn:
        assert migrations.migrate(conn) == 7
    with engine.begin() as conn:
        assert inspect(conn).has_table("upload_parts")
        assert migrations.current_version(conn) == migrations.LATEST
        row = tus._load(conn, "old")
        assert row is not None
        assert (row["next_part"], row["multipart_id"], row["tail_key"]) == (1, None, None)
    engine.dispose()
