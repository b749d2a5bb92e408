"""The image baseline: pyvips, in process, making the relay's three renditions of one JPEG.

It runs in an environment of its own (``harness.ensure_pyvips``): pyvips on the
``pyvips-binary`` wheel, the best libvips available, whatever the machine has installed.

``python -m bench.baseline_vips SOURCE OUTDIR``: after a warm-up it prints ``ready``, then for
each line read on stdin makes the renditions once and prints the wall and CPU seconds it took
(libvips' threads included); at the end of input it prints its peak RSS in MB. The caller
interleaves these runs with the relay's, so both see the same machine (others' processes come
and go on a shared one).

Same outputs as ``handlers/image.py``: longest side 2048, 1024 and 320, upright (EXIF
orientation applied), no metadata but the ICC profile, baseline-free JPEG at quality 85 with
optimised Huffman tables and progressive scans. libvips' ``thumbnail`` shrinks on load (the
JPEG DCT scale) and each smaller size is derived from the larger one held in memory, the
fastest way libvips offers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pyvips

SIZES = (("large", 2048), ("medium", 1024), ("small", 320))
JPEG = {"Q": 85, "optimize_coding": True, "interlace": True, "keep": "icc"}


def renditions(source: Path, outdir: Path) -> None:
    current = pyvips.Image.thumbnail(str(source), SIZES[0][1], height=SIZES[0][1], size="down")
    for index, (name, cap) in enumerate(SIZES):
        if index:
            current = current.thumbnail_image(cap, height=cap, size="down")
        current = current.copy_memory()  # computed once, then each smaller size starts from it
        current.jpegsave(str(outdir / f"{name}.jpg"), **JPEG)


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    # The relay's media workers run at nice 19 (relay/workpool.py); so does the baseline, or
    # on a shared machine the comparison would measure the scheduler, not the code.
    os.nice(19)
    source, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    pyvips.cache_set_max(0)  # every run decodes the file again, as the relay does
    renditions(source, outdir)  # warm-up: libraries loaded, pages touched
    print("ready", flush=True)
    for _ in sys.stdin:
        started, cpu = time.perf_counter(), time.process_time()
        renditions(source, outdir)
        print(time.perf_counter() - started, time.process_time() - cpu, flush=True)
    print(_hwm_mb(), flush=True)


if __name__ == "__main__":
    main()
