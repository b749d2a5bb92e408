"""The tus door's pieces that need no server: metadata, the uploads migration, the spool's
``adopt``, and the client's rate and state file."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import click
import pytest
from sqlalchemy import create_engine, inspect

from relay.client.upload import State, identity, parse_rate
from relay.db import Database, migrations, queries
from relay.db.schema import metadata, schema_version, uploads
from relay.errors import IntakeError
from relay.intake.tus import parse_metadata
from relay.spool import Spool


def test_metadata_pairs_flags_and_empty_values() -> None:
    parsed = parse_metadata("filename bcO2dGUucGRm,is_confidential,title ,text SGk=")
    assert parsed == {
        "filename": "möte.pdf".encode(),
        "is_confidential": b"",
        "title": b"",
        "text": b"Hi",
    }
    assert parse_metadata("") == {}


@pytest.mark.parametrize("header", ["a YQ==,a YQ==", "a !!!", "a YQ", "é YQ=="])
def test_bad_metadata_is_refused(header: str) -> None:
    with pytest.raises(IntakeError):
        parse_metadata(header)


def test_a_version_1_database_gets_the_uploads_table(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not uploads])
        conn.execute(schema_version.insert().values(version=1))
    with engine.begin() as conn:
        assert migrations.migrate(conn) == 1
    with engine.begin() as conn:
        assert inspect(conn).has_table("uploads")
        assert migrations.current_version(conn) == migrations.LATEST >= 2
    engine.dispose()


def test_adopt_moves_a_file_into_ready(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    source = tmp_path / "upload"
    source.write_bytes(b"finished upload")
    assert spool.adopt(source, "abc") == "abc"
    assert spool.path("abc").read_bytes() == b"finished upload"
    assert not source.exists()


def test_adopt_copies_across_filesystems(tmp_path: Path, monkeypatch) -> None:
    spool = Spool(tmp_path / "spool")
    source = tmp_path / "upload"
    source.write_bytes(b"x" * 3_000_000)
    real_replace = os.replace

    def replace(src, dst) -> None:  # noqa: ANN001
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    spool.adopt(source, "abc")
    assert spool.path("abc").read_bytes() == b"x" * 3_000_000
    assert not source.exists() and list(spool.tmp.iterdir()) == []


def test_rates() -> None:
    assert parse_rate(None) is None
    assert parse_rate("500K") == 500 * 1024
    assert parse_rate("5M") == 5 * 1024**2
    assert parse_rate("1.5g") == 1.5 * 1024**3
    assert parse_rate("1000") == 1000
    with pytest.raises(click.BadParameter):
        parse_rate("fast")


def test_state_is_keyed_by_file_identity(tmp_path: Path) -> None:
    state = State(tmp_path / "state" / "uploads.json")
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"one")
    key = identity("http://relay", path)
    assert state.get(key) is None
    state.put(key, "http://relay/api/v1/tus/x")
    assert State(state.path).get(key) == "http://relay/api/v1/tus/x"
    assert identity("http://other", path) != key
    path.write_bytes(b"changed")  # another size (and mtime): another upload
    assert identity("http://relay", path) != key
    state.drop(key)
    assert state.get(key) is None
    state.path.write_text(json.dumps({"old": {"url": "u", "saved": time.time() - 40 * 86400}}))
    state.put(key, "v")
    assert state.get("old") is None and state.get(key) == "v"  # a month-old entry is forgotten
    state.path.write_text("{not json")
    assert state.get(key) is None  # a damaged state file only forgets


def test_the_lease_lets_one_writer_in_on_both_databases(database: Database) -> None:
    """The cross-node guard: one conditional UPDATE; a lapsed lease can be taken over."""
    from relay.intake import tus

    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        row = {
            "id": "u1",
            "user_id": user_id,
            "length": 5_000_000_000,  # past 32 bits
            "received": 0,
            "upload_metadata": "",
            "created_at": 0.0,
            "expires_at": 100.0,
        }
        tus._insert(conn, row)
    with database.begin() as conn:
        taken, found = tus._claim(conn, "u1", "node-a", now=10.0)
        assert taken and found["length"] == 5_000_000_000
        assert tus._claim(conn, "u1", "node-b", now=11.0)[0] is False
        assert tus._renew(conn, "u1", "node-b", 12.0, received=7) is False
        assert tus._renew(conn, "u1", "node-a", 12.0, received=4_500_000_000) is True
        assert tus._claim(conn, "u1", "node-b", now=12.0 + tus.LEASE + 1)[0] is True  # lapsed
        assert tus._renew(conn, "u1", "node-a", 50.0) is False  # so node a must stop
        tus._release(conn, "u1", "node-b")
        assert tus._load(conn, "u1")["received"] == 4_500_000_000
        # a stranger's request never takes the lease of someone else's upload
        assert tus._claim(conn, "u1", "node-c", 60.0, user_id="someone-else")[0] is False
        assert tus._claim(conn, "u1", "node-c", 60.0, user_id=user_id)[0] is True
        # the write that records a PATCH's offset gives the lease back in the same statement
        assert tus._renew(conn, "u1", "node-c", 61.0, True, received=4_600_000_000) is True
        freed = tus._load(conn, "u1")
        assert freed["locked_by"] is None and freed["received"] == 4_600_000_000
        assert tus._claim(conn, "u1", "node-d", 62.0)[0] is True
        tus._release(conn, "u1", "node-d")
    with database.begin() as conn:
        assert tus._sweepable(conn, now=99.0) == ([], [])
        assert tus._sweepable(conn, now=101.0)[0] == ["u1"]
        assert tus._forget(conn, ["u1"], now=101.0) == 1
        assert tus._load(conn, "u1") is None
