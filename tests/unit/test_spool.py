from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relay import directio
from relay.directio import StagePool
from relay.errors import TooLarge
from relay.spool import Spool, SpoolWriter


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


def test_small_and_staged_files_wait_for_commit_and_a_large_one_streams(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    sizes = {
        "small": 1000,
        "staged": 3 * StagePool.SIZE + 4097,  # four pool buffers, the last block partial
        "large": SpoolWriter.STAGED + 1,
    }
    bodies = {name: os.urandom(size) for name, size in sizes.items()}
    writers = {}
    for name, body in bodies.items():
        writer = writers[name] = spool.writer()
        for at in range(0, len(body), 65_536 + 7):  # as a door writes: odd-sized pieces
            writer.write(memoryview(body)[at : at + 65_536 + 7])
    # created on the commit's thread, not the loop's; only the large one streams meanwhile
    assert [p.stat().st_size for p in spool.tmp.iterdir()] == [sizes["large"]]
    for name, writer in writers.items():
        path = spool.path(writer.commit_sync())
        assert path.read_bytes() == bodies[name], name
    assert spool.direct  # this filesystem took O_DIRECT
    assert spool.stage.lent == 0  # every buffer back in the pool
    aborted = spool.writer()
    aborted.write(b"z" * (2 * StagePool.SIZE))
    aborted.abort()
    assert list(spool.tmp.iterdir()) == [] and spool.stage.lent == 0


def test_a_filesystem_that_refuses_o_direct_gets_the_bytes_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:  # as tmpfs on older kernels, and some network filesystems
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(directio.os, "open", refusing)
    spool = Spool(tmp_path)
    body = os.urandom(StagePool.SIZE + 3)
    writer = spool.writer()
    writer.write(body)
    assert spool.path(writer.commit_sync()).read_bytes() == body
    assert spool.direct is False  # asked once, then not again


def test_with_the_pool_lent_out_a_file_streams_instead(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.stage = StagePool(limit=1)
    first, second = spool.writer(), spool.writer()
    bodies = [os.urandom(SpoolWriter.BUFFER + 10), os.urandom(SpoolWriter.BUFFER + 20)]
    first.write(bodies[0])  # takes the pool's one buffer
    second.write(bodies[1])  # finds none: its file is created and written at once
    assert [p.stat().st_size for p in spool.tmp.iterdir()] == [len(bodies[1])]
    for writer, body in zip((first, second), bodies, strict=True):
        assert spool.path(writer.commit_sync()).read_bytes() == body
    assert spool.stage.lent == 0


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _staged(spool: Spool, size: int) -> SpoolWriter:
    writer = spool.writer()
    writer.write(os.urandom(size))  # held in the pool's buffers: written at commit
    assert writer._file is None and writer._staged.size == size  # noqa: SLF001
    return writer


def test_write_direct_closes_its_file_and_removes_it_on_any_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite
    calls = []

    def failing(fd: int, buffers: list[memoryview], offset: int) -> int:  # a failing disk
        calls.append(offset)
        if offset:
            raise OSError(errno.EIO, "Input/output error")
        return real_pwrite(fd, buffers[0], offset)  # a short write: the first buffer alone

    spool = Spool(tmp_path)
    writer = _staged(spool, 2 * StagePool.SIZE + 5)
    monkeypatch.setattr(directio.os, "pwritev", failing)
    before = _open_fds()
    with pytest.raises(OSError) as raised:
        writer.commit_sync()
    # The short write was carried on from where it stopped; then the error, not a fallback.
    assert raised.value.errno == errno.EIO and calls == [0, StagePool.SIZE]
    assert _open_fds() == before
    writer.abort()
    assert list(spool.tmp.iterdir()) == [] and list(spool.ready.iterdir()) == []
    assert spool.stage.lent == 0


def test_short_direct_writes_are_carried_on_to_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite

    def one_at_a_time(fd: int, buffers: list[memoryview], offset: int) -> int:
        return real_pwrite(fd, buffers[0][:THIRD], offset)  # a third of one buffer at most

    monkeypatch.setattr(directio.os, "pwritev", one_at_a_time)
    spool = Spool(tmp_path)
    body = os.urandom(2 * StagePool.SIZE + 4097)
    writer = spool.writer()
    writer.write(body)
    assert spool.path(writer.commit_sync()).read_bytes() == body
    assert spool.direct  # written with O_DIRECT, not through the cache after a refusal


THIRD = StagePool.SIZE // 3 // directio.ALIGN * directio.ALIGN


@pytest.fixture
def tiny_fs(small_fs: Callable[[Path, str], Path], tmp_path: Path) -> Path:
    return small_fs(tmp_path / "tiny", "1m")


def test_a_full_disk_at_commit_leaves_no_fd_and_no_file(tiny_fs: Path) -> None:
    spool = Spool(tiny_fs)
    staged = _staged(spool, 2 * StagePool.SIZE)
    before = _open_fds()
    with pytest.raises(OSError) as raised:
        staged.commit_sync()
    assert raised.value.errno == errno.ENOSPC
    assert _open_fds() == before
    staged.abort()
    assert list(spool.tmp.iterdir()) == [] and list(spool.ready.iterdir()) == []
    # A file too large for memory streams to the disk as it comes: it fails in write, and
    # abort closes it and frees the space.
    streamed = spool.writer()
    with pytest.raises(OSError):
        for _ in range(3):
            streamed.write(os.urandom(SpoolWriter.STAGED))
    assert list(spool.tmp.iterdir()) == []  # the space is given back at once
    streamed.abort()
    assert _open_fds() == before
    assert list(spool.tmp.iterdir()) == []
    small = spool.writer()  # and the spool takes the next one
    small.write(b"after")
    assert spool.path(small.commit_sync()).read_bytes() == b"after"


def _resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache (mincore(2) on a mapping that touches none)."""
    import ctypes
    import mmap

    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]  # fmt: skip
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, size, vector) == 0, ctypes.get_errno()
            return sum(byte & 1 for byte in vector.raw)
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def test_a_file_written_once_is_whole_and_takes_no_page_cache(tmp_path: Path) -> None:
    # A photo's cleaned original on its way into the store: 3.2 MB, no multiple of a block.
    body = os.urandom(3 * StagePool.SIZE + 12345)
    path = tmp_path / "original-clean.jpg"
    directio.write_once(path, body)
    assert _resident_pages(path) == 0
    (tmp_path / "cached.jpg").write_bytes(body)  # what the page cache would hold of it
    assert _resident_pages(tmp_path / "cached.jpg") == -(-len(body) // 4096)
    assert path.read_bytes() == body


def test_a_file_written_once_where_o_direct_is_refused_is_written_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(directio.os, "open", refusing)
    body = os.urandom(StagePool.SIZE + 3)
    directio.write_once(tmp_path / "original-clean.jpg", body)
    assert (tmp_path / "original-clean.jpg").read_bytes() == body


def test_a_bursts_buffers_serve_the_whole_burst_and_are_given_back_once_unused() -> None:
    pool = StagePool(limit=100, keep=2, linger=60.0)
    first = pool.take(10)
    assert first is not None
    pool.give(first)
    again = pool.take(10)  # the burst goes on: the same buffers, not ten mapped anew
    assert again is not None and {id(b) for b in again} == {id(b) for b in first}
    pool.give(again)
    pool.trim()  # not unused for a minute yet: all stay
    assert pool.kept == 10
    pool.linger = 0.0  # ... and now they have been
    pool.trim()
    assert pool.kept == 2
    assert sum(buffer.closed for buffer in again) == 8  # unmapped, their memory given back


def _huge_pages_offered() -> bool:
    try:
        setting = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return "[never]" not in setting


def _huge_kib() -> int:
    """``AnonHugePages`` of this whole process, in KiB."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise AssertionError("no AnonHugePages in smaps_rollup")


def test_staging_buffers_are_each_one_huge_page() -> None:
    """One huge page is one segment of a disk request; 4 KiB pages were ~9 requests a 3.2 MB
    file from four writers, and the door took uploads at 0.63-0.78x of the bare server."""
    if not _huge_pages_offered():
        pytest.skip("transparent huge pages are off on this kernel")
    pool = StagePool(limit=2, keep=2)
    before = _huge_kib()
    buffers = pool.take(2)
    assert buffers is not None
    for buffer in buffers:
        buffer[:] = b"\x01" * len(buffer)  # the first touch maps the page
        assert ctypes.addressof(ctypes.c_char.from_buffer(buffer)) % StagePool.SIZE == 0
    assert _huge_kib() - before >= 2 * StagePool.SIZE // 1024
    pool.give(buffers)
