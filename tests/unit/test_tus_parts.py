"""The fencing of tus uploads in an S3 store (relay/db/tus_parts.py): a writer whose lease lapsed
and was taken over records nothing, and the new writer never reuses the part number the old one
may still be sending."""

from __future__ import annotations

from relay.db import Database, queries, tus_parts
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
