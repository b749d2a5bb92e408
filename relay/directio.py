"""Files written straight from memory to the disk (``O_DIRECT``), past the page cache.

On the machines measured (2-core VMs), putting a fresh megabyte into the page cache cost the
kernel ~0.6 ms of CPU and fsyncing it ~1 ms more; the same megabyte written with ``O_DIRECT``
from a page-aligned buffer, then fsynced, cost 0.18 ms. A spool file of a few MB is written once
and read once, so the cache gains it little. ``O_DIRECT`` wants the buffer's address, the length
and the offset aligned to the device's block size: buffers come from a ``StagePool`` of
page-aligned ``mmap``s, reused so that their pages stay mapped, and the last block is padded with
zeros and cut off afterwards by ``ftruncate``. A filesystem that refuses ``O_DIRECT`` (tmpfs on
older kernels, some network filesystems) gets the same bytes through the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ALIGN: Final = 4096
"""Alignment of ``O_DIRECT`` writes: a multiple of every common logical block size."""

_DIRECT: Final = getattr(os, "O_DIRECT", 0)
_HUGE: Final = getattr(mmap, "MADV_HUGEPAGE", None)


def _buffer(size: int) -> mmap.mmap:
    """``size`` bytes of private memory, on one huge page where the kernel gives one.

    A buffer made of scattered 4 KiB pages is sent to the disk as one segment a page, and a
    virtio disk takes at most 254 segments a request: four sessions writing 3.2 MB at once made
    ~9 requests a file and took 42-50 files/s, against 75-90 through the page cache (whose large
    folios are few segments). A 2 MiB buffer on a huge page is one segment. Private, not
    ``mmap``'s default shared mapping: shared anonymous memory is tmpfs, which gets no huge
    pages; a private mapping of 2 MiB is placed on a 2 MiB boundary, so one can back it."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if _HUGE is not None:
        buffer.madvise(_HUGE)
    return buffer


class StagePool:
    """Page-aligned buffers of ``SIZE`` bytes, at most ``limit`` lent at once.

    Returned buffers are kept for the next borrower, their pages still mapped: a new buffer
    costs a fault a page, and on a VM that hands free memory back to its host, ~5 ms a MB more
    (bench/README.md, "Memory the VM hands back"). ``keep`` of them stay for good; the rest
    are unmapped once unused for ``linger`` seconds, so that a burst's buffers serve the whole
    burst and an idle relay gives them back. With only 16 MiB kept (then 16 buffers of 1 MiB;
    now 8 of 2 MiB), 20 SMTP sessions of 4.4 MB mails mapped and unmapped most of theirs anew
    for every mail: the door took 8.3-10 ms of CPU a mail, against 6.0-6.7 ms with all kept."""

    SIZE: Final = 2 << 20
    """A huge page (``_buffer``)."""

    def __init__(self, limit: int = 80, keep: int = 8, linger: float = 10.0) -> None:
        self.limit = limit
        self.keep = keep
        self.linger = linger
        self._lent = 0
        self._free: list[tuple[float, mmap.mmap]] = []
        """Returned buffers and when, oldest first; the newest are lent first."""
        self._trimmer: threading.Timer | None = None
        self._lock = threading.Lock()

    def take(self, count: int) -> list[mmap.mmap] | None:
        """``count`` buffers, or None when that would pass the limit."""
        with self._lock:
            if self._lent + count > self.limit:
                return None
            self._lent += count
            split = max(0, len(self._free) - count)
            reused, self._free = self._free[split:], self._free[:split]
        return [buffer for _, buffer in reused] + [
            _buffer(self.SIZE) for _ in range(count - len(reused))
        ]

    @property
    def lent(self) -> int:
        return self._lent

    @property
    def kept(self) -> int:
        """Buffers returned and still mapped."""
        return len(self._free)

    def give(self, buffers: Sequence[mmap.mmap]) -> None:
        returned = time.monotonic()
        with self._lock:
            self._lent -= len(buffers)
            self._free.extend((returned, buffer) for buffer in buffers)
            self._arm()

    def _arm(self) -> None:
        """Under the lock: a trim ``linger`` seconds on, if more than ``keep`` wait."""
        if len(self._free) > self.keep and self._trimmer is None:
            self._trimmer = threading.Timer(self.linger, self.trim)
            self._trimmer.daemon = True
            self._trimmer.start()

    def trim(self) -> None:
        """Unmap the buffers past ``keep`` that have not been lent for ``linger`` seconds."""
        unused_since = time.monotonic() - self.linger
        with self._lock:
            self._trimmer = None
            stale = 0
            while len(self._free) - stale > self.keep and self._free[stale][0] <= unused_since:
                stale += 1
            gone, self._free = self._free[:stale], self._free[stale:]
            self._arm()
        for _, buffer in gone:
            buffer.close()


class Staged:
    """Bytes held in a pool's buffers, in order; ``views`` are valid until ``release``."""

    def __init__(self, pool: StagePool) -> None:
        self.pool = pool
        self.buffers: list[mmap.mmap] = []
        self.size = 0

    def append(self, data: bytes | bytearray | memoryview) -> bool:
        """Copy ``data`` in; False (and nothing copied) when the pool has no room for it."""
        length = len(data)
        size = self.pool.SIZE
        room = len(self.buffers) * size - self.size
        if length > room:
            more = self.pool.take(-(-(length - room) // size))
            if more is None:
                return False
            self.buffers.extend(more)
        source = memoryview(data)
        done = 0
        while done < length:
            index, at = divmod(self.size, size)
            step = min(size - at, length - done)
            self.buffers[index][at : at + step] = source[done : done + step]
            done += step
            self.size += step
        return True

    def views(self) -> list[memoryview]:
        """The bytes, as views of the buffers."""
        size = self.pool.SIZE
        return [
            memoryview(buffer)[: min(size, self.size - index * size)]
            for index, buffer in enumerate(self.buffers)
        ]

    def release(self) -> None:
        buffers, self.buffers = self.buffers, []
        self.size = 0
        self.pool.give(buffers)


def write_direct(path: Path, staged: Staged) -> bool:
    """Write ``staged`` to a new file at ``path`` with ``O_DIRECT`` and fsync it; False, with
    nothing left at ``path``, when the filesystem refuses ``O_DIRECT``. Any other failure
    (ENOSPC, EIO) raises, also with nothing left at ``path`` and no descriptor left open."""
    if not _DIRECT or not staged.buffers:
        return False
    size = staged.size
    end = -(-size // ALIGN) * ALIGN
    last, at = divmod(size, staged.pool.SIZE)
    if at:  # zeros, not another message's bytes, fill the last block up to ``end``
        staged.buffers[last][at : at + end - size] = bytes(end - size)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _DIRECT, 0o600)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    # Every way out closes the descriptor, and every failure removes the file: on a full disk
    # a partial file in tmp/ would hold the space that the next message needs.
    try:
        # One call for all the buffers: the kernel sends them to the disk together, where one
        # pwrite a buffer waited for each in turn (3.2 MB: 3.4-4.2 ms against 3.6-4.6 ms).
        step = staged.pool.SIZE
        views = [
            memoryview(buffer)[: min(step, end - index * step)]
            for index, buffer in enumerate(staged.buffers)
        ]
        offset = 0
        while views:
            written = os.pwritev(fd, views, offset)
            offset += written
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if written:
                views[0] = views[0][written:]
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        if exc.errno != errno.EINVAL:
            raise
        return False
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


_ONCE_POOL: Final = StagePool(keep=2)
"""``write_once``'s buffers: a media process writes one such file at a time."""


def write_once(path: Path, data: bytes | bytearray | memoryview) -> None:
    """``path.write_bytes(data)``, fsynced, past the page cache where the filesystem allows:
    for a file written once and seldom read soon, such as a photo's cleaned original on its
    way into the store.

    On the VMs measured, memory that was freed and stood unused for ~2 s is handed back to the
    host (the balloon's free page reporting), and the guest's next use of it costs ~5 ms a MB:
    a 3.2 MB original put into the page cache cost 16-18 ms of CPU where reused memory costs
    0.8 ms. The store keeps every original, so through the page cache each photo took that
    much fresh memory; written with ``O_DIRECT`` from this process's reused buffers it takes
    none. The buffers (2 MiB each, two kept) are this process's own: a media process writes
    one file at a time."""
    staged = Staged(_ONCE_POOL)
    try:
        if staged.append(data) and write_direct(path, staged):
            return
    finally:
        staged.release()
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
