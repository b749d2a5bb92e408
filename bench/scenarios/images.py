"""Images: one 12 MP phone JPEG (about 3 MB, Orientation 6, GPS) → renditions 2048/1024/320.

The relay's figure is ``handlers.image.ImageHandler.process`` with its blocking part in the
relay's own ``WorkPool`` (one worker process, as ``relay serve`` runs it), so it includes the
trip to the worker and the cleaned original the relay also serves. The baseline is pyvips in
process making the same three renditions (``bench.baseline_vips``, pyvips on the ``pyvips-binary``
wheel in the bench's own environment). Median of several runs after
a warm-up; memory is the worker's peak RSS (VmHWM), imports included.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import media
from bench.harness import (
    ROOT,
    Context,
    Result,
    Target,
    Unavailable,
    cpu_seconds,
    ensure_pyvips,
    status_kb,
    tree,
    unavailable,
)
from bench.scenarios import Scenario

LABEL = "image 12 MP → 2048/1024/320"
CPU_LABEL = "image 12 MP → 2048/1024/320, CPU"


class _Vips:
    """The pyvips baseline in a process of its own, one run per request."""

    def __init__(self, python: str, source: Path, outdir: Path) -> None:
        self.process = subprocess.Popen(
            [python, "-m", "bench.baseline_vips", str(source), str(outdir)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._line() != "ready":
            raise RuntimeError("the pyvips baseline did not start")

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the pyvips baseline stopped ({self.process.poll()})")
        return line

    def run(self) -> tuple[float, float]:
        """Wall and CPU seconds of one run."""
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        wall, cpu = self._line().split()
        return float(wall), float(cpu)

    def close(self) -> float:
        """Ends the process; its peak RSS in MB."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        peak = float(self._line())
        self.process.wait(30)
        return peak


@dataclass(slots=True)
class _Figures:
    relay: list[float] = field(default_factory=list)
    vips: list[float] = field(default_factory=list)
    relay_cpu: list[float] = field(default_factory=list)
    vips_cpu: list[float] = field(default_factory=list)
    relay_peak: float = 0.0
    vips_peak: float = 0.0


async def _measure(python: str, source: Path, work: Path, runs: int) -> _Figures:
    """Alternate one pyvips run and one relay run, ``runs`` times each, after a warm-up.

    CPU seconds are the wall's twin that others' load on a shared machine hardly moves: the
    worker's (its threads included) and the baseline's own ``process_time``."""
    from handlers.image import ImageHandler
    from relay.model import HandlerInput, Limits
    from relay.workpool import WorkPool

    pool = WorkPool(1)
    handler = ImageHandler()
    vips = await asyncio.to_thread(_Vips, python, source, work / "vips")
    figures = _Figures()

    def worker_cpu() -> float:
        mine = {os.getpid(), vips.process.pid}
        return sum(cpu_seconds(p) for p in tree(os.getpid()) if p not in mine)

    try:
        for attempt in range(runs + 1):
            vips_time, vips_cpu = await asyncio.to_thread(vips.run)
            workdir = work / f"relay-{attempt}"
            job = HandlerInput(
                source=source,
                mime="image/jpeg",
                filename="IMG_0042.jpeg",
                workdir=workdir,
                limits=Limits(),
                run_blocking=pool.run,
            )
            started, cpu = time.perf_counter(), worker_cpu()
            output = await handler.process(job)
            elapsed, cpu = time.perf_counter() - started, worker_cpu() - cpu
            if [r.name for r in output.renditions] != ["large", "medium", "small"]:
                raise RuntimeError(f"unexpected renditions {output.renditions}")
            if attempt:  # the first relay run starts the worker and loads Pillow
                figures.relay.append(elapsed)
                figures.vips.append(vips_time)
                figures.relay_cpu.append(cpu)
                figures.vips_cpu.append(vips_cpu)
            shutil.rmtree(workdir, ignore_errors=True)
        workers = [p for p in tree(os.getpid()) if p != os.getpid() and p != vips.process.pid]
        figures.relay_peak = max((status_kb(p, "VmHWM") for p in workers), default=0) / 1024
    finally:
        pool.close()
        figures.vips_peak = vips.close()
    return figures


def _run(ctx: Context) -> list[Result]:
    try:
        python, libvips = ensure_pyvips(ctx.cache)
    except Unavailable as exc:
        return unavailable([(LABEL, "ms"), (CPU_LABEL, "ms")], str(exc))
    runs = 3 if ctx.quick else 15
    work = ctx.scratch("images")
    source = work / "IMG_0042.jpeg"
    source.write_bytes(media.photo_jpeg())
    try:
        ctx.log(f"images: pyvips and the relay's handler, {runs} runs each, interleaved")
        figures = asyncio.run(_measure(python, source, work, runs))
        size_mb = source.stat().st_size / 1e6
    finally:
        ctx.drop(work)
    note = f"{size_mb:.1f} MB JPEG, median of {runs}; pyvips: libvips {libvips} of pyvips-binary"
    return [
        Result(
            LABEL,
            "ms",
            relay=statistics.median(figures.relay) * 1000,
            baseline=statistics.median(figures.vips) * 1000,
            target=Target("<=", 1.0),
            memory_mb=figures.relay_peak,
            memory_kind="peak",
            note=f"{note}; worker peak ≤ 150 MB wanted; pyvips peak {figures.vips_peak:.0f} MB",
        ),
        Result(
            CPU_LABEL,
            "ms",
            relay=statistics.median(figures.relay_cpu) * 1000,
            baseline=statistics.median(figures.vips_cpu) * 1000,
            target=Target("<=", 1.0),
            note=f"{note}; CPU of the worker process (threads included) vs pyvips' own",
        ),
    ]


SCENARIOS = [
    Scenario("images", "images", "12 MP JPEG → 3 renditions: relay's handler vs pyvips", _run)
]
