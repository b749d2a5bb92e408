"""The end-to-end photos baseline: pyvips making the relay's three renditions of every photo in
a folder, on all cores, with nothing else to do: the machine's limit for this work.

``python -m bench.baseline_photos FOLDER OUTDIR`` runs in the image baseline's own environment
(pyvips on the ``pyvips-binary`` wheel, see ``harness.ensure_pyvips``). One process per core
takes photo after photo from a shared list; after a warm-up in each it prints the photos per
second over the whole batch and the CPU seconds per photo.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import pyvips

from bench.baseline_vips import renditions


def _start(outdir: Path) -> None:
    # At nice 19, like the relay's media workers (relay/workpool.py) and the image baseline.
    os.nice(19)
    pyvips.cache_set_max(0)


def _one(job: tuple[Path, Path]) -> float:
    """Makes one photo's renditions; the CPU seconds it took (libvips' threads included: the
    process works on one photo at a time)."""
    source, outdir = job
    target = outdir / source.stem
    target.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    renditions(source, target)
    return time.process_time() - started


def main() -> None:
    folder, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    photos = sorted(folder.glob("*.jpeg"))
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores, _start, (outdir,)) as pool:
        pool.map(_one, [(photos[0], outdir / "warm")] * cores, chunksize=1)
        started = time.perf_counter()
        cpu = sum(pool.map(_one, [(photo, outdir) for photo in photos], chunksize=1))
        elapsed = time.perf_counter() - started
    print(len(photos) / elapsed, cpu / len(photos), flush=True)


if __name__ == "__main__":
    main()
