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


def test_a_large_file_streams_to_disk_and_a_small_one_waits_for_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    small = spool.writer()
    small.write(b"x" * 1000)
    assert list(spool.tmp.iterdir()) == []  # created on the commit's thread, not the loop's
    large = spool.writer()
    large.write(b"y" * (large.BUFFER + 1))  # past the buffer: bytes go to the file as they come
    assert [p.stat().st_size for p in spool.tmp.iterdir()] == [large.BUFFER + 1]
    for writer, body in ((small, b"x" * 1000), (large, b"y" * (large.BUFFER + 1))):
        assert spool.path(writer.commit_sync()).read_bytes() == body
    aborted = spool.writer()
    aborted.write(b"z" * (aborted.BUFFER * 2))
    aborted.abort()
    assert list(spool.tmp.iterdir()) == []


def test_folder_sync_is_shared_but_always_starts_after_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renames made before a call are durable when it returns; callers waiting together share
    one fsync (twenty sessions, not twenty folder fsyncs); a failed fsync fails its caller."""
    import threading

    from relay import spool as spool_module

    starts: list[float] = []

    def slow_fsync(path: Path) -> None:
        starts.append(time.monotonic())
        time.sleep(0.2)

    monkeypatch.setattr(spool_module, "_fsync_dir", slow_fsync)
    sync = spool_module.FolderSync(tmp_path)
    called: list[tuple[float, float]] = []

    def caller() -> None:
        asked = time.monotonic()
        sync.sync()
        called.append((asked, time.monotonic()))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(called) == 20
    assert len(starts) <= 3  # the first caller's, then one for everyone who came meanwhile
    for asked, returned in called:  # some fsync began after the call and ended before return
        assert any(asked <= began and began + 0.2 <= returned for began in starts)

    def broken(path: Path) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(spool_module, "_fsync_dir", broken)
    with pytest.raises(OSError):
        sync.sync()
