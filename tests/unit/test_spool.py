from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from relay.errors import TooLarge
from relay.spool import Spool


def test_commit_makes_a_durable_file_under_ready(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.writer()
    writer.write(b"hello ")
    writer.write(b"world")
    assert list(spool.ready.iterdir()) == []  # not visible before commit
    name = asyncio.run(writer.commit())
    assert spool.path(name).read_bytes() == b"hello world"
    assert list(spool.tmp.iterdir()) == []
    assert writer.size == 11
    assert writer.sha256 == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"


def test_limit_aborts_and_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.writer(limit=10)
    writer.write(b"x" * 10)
    with pytest.raises(TooLarge) as raised:
        writer.write(b"x")
    assert raised.value.code == "upload.too_large"
    assert list(spool.tmp.iterdir()) == [] and list(spool.ready.iterdir()) == []


def test_recover_removes_what_no_row_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    kept = spool.put_bytes(b"acknowledged")
    orphan = spool.put_bytes(b"crashed before commit")
    spool.writer().write(b"half written")  # left in tmp/
    removed = spool.recover({kept})
    assert removed == [orphan]
    assert spool.path(kept).exists() and not spool.path(orphan).exists()
    assert list(spool.tmp.iterdir()) == []


def test_recover_spares_young_files_within_grace(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    young = spool.put_bytes(b"another node is committing this")
    old = spool.put_bytes(b"old")
    past = time.time() - 3600
    os.utime(spool.path(old), (past, past))
    assert spool.recover(set(), grace=60) == [old]
    assert spool.path(young).exists()


def test_names_cannot_escape_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            spool.path(bad)
