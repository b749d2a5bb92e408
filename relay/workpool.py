"""The process pool that runs blocking media work (libvips, Pillow, pdfium, MIME parsing) off
the event loop, each worker at low priority under an address-space limit, so that one hostile
file can neither starve the doors nor take the relay's memory."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import multiprocessing.context
import os
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Any

from relay.errors import MediaError


class WorkerDied(RuntimeError):
    """Retried by the queue: a file that kills its worker every time ends ``failed``."""


_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _one_arena() -> None:
    """One malloc arena for all of a worker's threads.

    libvips' threads (and the handler's encoders) each got an arena of their own, each keeping
    its freed blocks: a 12 MP photo's renditions peaked at ~150 MB in a worker. With one they
    peak at ~100-105 MB (a 24 MP photo's too), with far fewer page faults and less CPU (the
    threads hardly allocate at the same moment).

    glibc's own mmap threshold is left to move: freed pixel buffers stay in the heap for the
    next photo. A fixed 1 MiB threshold (every buffer mapped and unmapped, so given back at
    once) cost ~4,000 page faults and ~7 ms of system time per 12 MP photo, and photos by upload
    reached ``ready`` 4% slower (bench ``photos-http``: 180-182 against 183-191 ms of CPU a
    photo); what it gave back was ~15 MB of an idle worker after 24 MP photos, none after 12 MP
    ones, and the peak is the same."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)


_HUGE_PAGES = "glibc.malloc.hugetlb=1"


def _forkserver() -> multiprocessing.context.BaseContext:
    """The forkserver context, its server (and so every worker) started with glibc told to
    ask for transparent huge pages for what it maps (``madvise``, which the kernel's default
    THP mode honours).

    The pixel buffers of an image job, where the heap grows to hold them or they are mapped,
    were touched in ~19k page faults for a 12 MP photo, 15% of its CPU time; with 2 MiB pages
    it took ~7k. Tunables are read when a process starts, so they go into the forkserver's
    environment, and only there.
    """
    context = multiprocessing.get_context("forkserver")
    before = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = f"{before}:{_HUGE_PAGES}" if before else _HUGE_PAGES
    try:
        forkserver.ensure_running()  # no-op when it already runs, started by an earlier pool
    finally:
        if before is None:
            del os.environ["GLIBC_TUNABLES"]
        else:
            os.environ["GLIBC_TUNABLES"] = before
    return context


MEDIA_NICE = 19
"""The media workers' niceness: the lowest priority there is. At nice 10 (a weight of 110 against
the doors' 1024) two busy workers still took a quarter of the main process's core on a 2-core
machine, and photo uploads were taken 25% slower while they worked; at 19 (a weight of 15) the
doors get ~97% of a core when they want it, and the workers all that the doors leave."""


def _limit_worker(memory_bytes: int) -> None:
    os.nice(MEDIA_NICE)
    _one_arena()
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


class WorkPool:
    def __init__(self, workers: int, memory_bytes: int = 4 << 30) -> None:
        self.workers = max(1, workers)
        self.memory_bytes = memory_bytes
        self._pool: ProcessPoolExecutor | None = None

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=_forkserver(),
                initializer=_limit_worker,
                initargs=(self.memory_bytes,),
            )
        return self._pool

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self._ensure()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool as exc:
            # A worker died (killed, or out of memory): start afresh for the next job.
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerDied(f"worker process died: {exc}") from exc
        except MemoryError as exc:
            raise MediaError("media.too_many_pixels", "out of memory in worker") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
