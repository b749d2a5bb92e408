"""The spool: where bytes wait, durable, between the door and the pipeline.

A file is written under ``tmp/``, fsynced, renamed into ``ready/`` and the folder fsynced; only
then may its name be committed to the database, and only after that commit does a door answer.
``recover`` runs at start-up: files in ``tmp/`` were never acknowledged, and files in ``ready/``
that no row names belong to a door that crashed before its commit (so before its answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from relay.auth import new_id
from relay.directio import Staged, StagePool, write_direct
from relay.errors import TooLarge

if TYPE_CHECKING:
    from relay.config import Settings
    from relay.storage import Store

SYNC_THREADS = 32


def fsync_path(path: Path) -> None:
    """fsync of a file or a folder, by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderSync:
    """fsync of one folder, shared: a caller waits for a sync that started after its call, and
    every caller waiting meanwhile is served by the same one.

    Twenty sessions renaming into ``ready/`` made twenty folder fsyncs, queued on the disk; a
    sync that starts after a rename makes that rename durable, whoever asked for it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._started = 0
        self._done = 0
        self._running = False

    def sync(self) -> None:
        with self._cond:
            wanted = self._started + 1  # the one in flight, if any, began before this call
            while self._done < wanted:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                try:
                    self._cond.release()
                    try:
                        fsync_path(self.path)
                    finally:
                        self._cond.acquire()
                finally:
                    self._running = False
                    self._cond.notify_all()
                self._done = mine  # reached only when the fsync succeeded


def sha256_file(path: Path, offset: int = 0) -> str:
    """The file's SHA-256 (from ``offset`` on), read in 1 MiB pieces (blocking: call it off the
    event loop)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SpoolWriter:
    """Streams one file into the spool; ``write`` is cheap, ``commit`` is durable.

    Bytes wait in memory and the file is created only at ``commit``, on a thread: creating a
    file in a busy folder blocked the event loop for longer than a small message takes to
    arrive. Up to ``BUFFER`` bytes wait in a ``bytearray`` and are written through the page
    cache; up to ``STAGED`` in the spool's page-aligned buffers, written with ``O_DIRECT``
    (``directio``: ~1.4 ms less CPU a MB; the pool lends 160 MiB at most). Past that, or with
    the pool lent out, the file is created and the bytes stream into it as they come.
    """

    BUFFER = 256 * 1024
    STAGED = 8 * 1024 * 1024

    def __init__(self, spool: Spool, limit: int | None = None, code: str = "upload.too_large"):
        self.spool = spool
        self.name = new_id()
        self.limit = limit
        self.code = code
        self.size = 0
        self._tmp = spool.tmp / self.name
        self._buffer = bytearray()
        self._staged = Staged(spool.stage)
        self._file: BinaryIO | None = None

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise TooLarge(self.code, f"over {self.limit} bytes")
        if self._file is None:
            if self.size <= self.BUFFER:
                self._buffer += chunk
                return
            if self.size <= self.STAGED and self._stage(chunk):
                return
        try:
            self._open().write(chunk)
        except BaseException:
            # A full disk: give the space back now, not once the sender has sent the rest.
            self.abort()
            raise

    def _stage(self, chunk: bytes | bytearray | memoryview) -> bool:
        if self._buffer:
            if not self._staged.append(self._buffer):
                return False
            self._buffer = bytearray()
        return self._staged.append(chunk)

    def _held(self) -> list[memoryview]:
        """The bytes waiting in memory."""
        if self._staged.size:
            return self._staged.views()
        return [memoryview(self._buffer)] if self._buffer else []

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
            self._file.writelines(self._held())
            self._buffer = bytearray()
            self._staged.release()
        return self._file

    def commit_sync(self) -> str:
        if self._file is None:
            self._write_staged()
        else:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        target = self.spool.path(self.name)
        os.replace(self._tmp, target)
        try:
            self.spool.ready_sync.sync()
        except BaseException:
            # Not durable, so never acknowledged: nothing may stay in ready/ for it either.
            target.unlink(missing_ok=True)
            raise
        return self.name

    def _write_staged(self) -> None:
        try:
            if self._staged.size and self.spool.direct:
                if write_direct(self._tmp, self._staged):
                    return
                self.spool.direct = False  # this filesystem will not: say so once, not per file
            with open(self._tmp, "wb") as file:
                file.writelines(self._held())
                file.flush()
                os.fsync(file.fileno())
        finally:
            self._buffer = bytearray()
            self._staged.release()

    async def commit(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self.spool.syncing(), self.commit_sync
        )

    def abort(self) -> None:
        self._buffer = bytearray()
        self._staged.release()
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):  # a full disk fails the flush in close() too
                self._file.close()
        # Also when no file was opened here: a commit that failed half-way (a full disk) may
        # have left a part in tmp/, which would hold the space the next message needs.
        self._tmp.unlink(missing_ok=True)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.ready = root / "ready"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.ready.mkdir(parents=True, exist_ok=True)
        self.ready_sync = FolderSync(self.ready)
        self._syncing: ThreadPoolExecutor | None = None
        self.stage = StagePool()
        self.direct = True
        """Spool files of more than ``SpoolWriter.BUFFER`` bytes are written with ``O_DIRECT``;
        False once the filesystem refused it."""

    def syncing(self) -> ThreadPoolExecutor:
        """Threads that wait on fsync: as many as sessions commit at once, not asyncio's
        default of cores + 4 (the disk takes concurrent fsyncs in one journal commit; queued
        behind six threads, twenty sessions waited for each other's)."""
        if self._syncing is None:
            self._syncing = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="relay-spool")
        return self._syncing

    def trim_cache(self, max_age: float = 0.0) -> int:
        """Nothing to trim: a local spool's files are the only copy."""
        return 0

    def close(self) -> None:
        if self._syncing is not None:
            self._syncing.shutdown(wait=True)
            self._syncing = None

    def writer(
        self, limit: int | None = None, code: str = "upload.too_large", *, reread: bool = True
    ) -> SpoolWriter:
        """``reread``: the door reads the file back (here it always can)."""
        return SpoolWriter(self, limit, code)

    def put_bytes(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return writer.commit_sync()

    def path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad spool name {name!r}")
        return self.ready / name

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    @property
    def scratch(self) -> Path:
        """Where a job writes (and fsyncs) files it will then ``adopt``: same filesystem."""
        return self.tmp

    def local_sync(self, name: str) -> Path:
        return self.path(name)

    async def local(self, name: str) -> Path:
        """The spooled file, on this node's disk (it is here or nowhere)."""
        return self.path(name)

    async def adopt_async(self, source: Path, name: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self.syncing(), self.adopt, source, name
        )

    def adopt(self, source: Path, name: str) -> str:
        """Make a complete file durable and move it into ``ready/`` as ``name``. A rename where
        the spool shares the filesystem, else a copy made durable the same way as a writer's.
        The fsync is here, on the spool's syncing threads, not in whoever wrote the file: a
        mail's parts are written by a media process, which would sit idle through it."""
        target = self.path(name)
        fsync_path(source)
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = self.tmp / name
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
            source.unlink()
        self.ready_sync.sync()
        return name

    def recover(self, in_use: set[str], grace: float = 0.0) -> list[str]:
        """Remove what was never acknowledged; returns the names removed from ``ready/``.

        ``grace`` spares files younger than that many seconds: another node sharing this spool
        may be between its rename and its commit.
        """
        now = time.time()
        for leftover in self.tmp.iterdir():
            if now - leftover.stat().st_mtime >= grace:
                leftover.unlink(missing_ok=True)
        removed = []
        for path in self.ready.iterdir():
            if path.name not in in_use and now - path.stat().st_mtime >= grace:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed


class SpoolWriterLike(Protocol):
    name: str
    size: int

    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    async def commit(self) -> str:
        """Durable when it returns: only then may the post be committed and the door answer."""
        ...

    def abort(self) -> None: ...


class SpoolBackend(Protocol):
    """What doors and jobs use of a spool: ``Spool`` (a local folder, fsynced) or
    ``relay.spool_s3.S3Spool`` (the object store, when nodes share one)."""

    root: Path

    @property
    def scratch(self) -> Path: ...

    def writer(
        self, limit: int | None = None, code: str = "upload.too_large", *, reread: bool = True
    ) -> Any:
        """``reread=False``: the door will not read the bytes back (``path``), so a spool that
        keeps a local copy only for that may skip it."""
        ...

    def put_bytes(self, data: bytes) -> str: ...

    def path(self, name: str) -> Path: ...

    def local_sync(self, name: str) -> Path: ...

    async def local(self, name: str) -> Path: ...

    def adopt(self, source: Path, name: str) -> str: ...

    async def adopt_async(self, source: Path, name: str) -> str: ...

    def remove(self, name: str) -> None: ...

    def syncing(self) -> ThreadPoolExecutor: ...

    def recover(self, in_use: set[str], grace: float = ...) -> list[str]: ...

    def trim_cache(self, max_age: float = ...) -> int:
        """Drop copies of spooled files that are only a cache (the object store's spool)."""
        ...

    def close(self) -> None: ...


async def remove_spooled(spool: SpoolBackend, *names: str) -> None:
    """``spool.remove`` of each of ``names``, on the spool's own threads: unlinking a mail or a
    photo of a few megabytes held the event loop ~2 ms (ext4 frees its blocks then), ~0.8 s in
    all over 200 photo mails, with the doors waiting behind it."""

    def remove() -> None:
        for name in names:
            spool.remove(name)

    await asyncio.get_running_loop().run_in_executor(spool.syncing(), remove)


def open_spool(settings: Settings, store: Store) -> SpoolBackend:
    """The object store's spool when media go to S3 (so nothing acknowledged lives on one
    node's disk), else the local folder."""
    from relay.storage.s3 import S3Store

    if isinstance(store, S3Store):
        from relay.spool_s3 import S3Spool

        return S3Spool(store, settings.data_dir / "spool-cache")
    return Spool(settings.spool_dir)
