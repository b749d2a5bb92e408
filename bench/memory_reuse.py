"""What this machine charges for memory it has not used lately.

``python -m bench.memory_reuse [DIR]``

Writes 100 files of 3.2 MB (a phone photo) under DIR, removes them and writes them again: at
once, then after pauses of 5 and 10 s. On a VM whose balloon reports free memory to its host,
memory left free for ~2 s is handed back, and the next write pays the host's faults: the
figures after a pause are many times the one at once (bench/README.md, "Memory the VM hands
back"). Elsewhere the three are alike.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SIZE = 3_200_000
COUNT = 100


def _write_all(folder: Path, data: bytes) -> float:
    """CPU seconds of this process per file written; the files are removed afterwards."""
    started = time.process_time()
    for number in range(COUNT):
        (folder / f"f{number}").write_bytes(data)
    took = (time.process_time() - started) / COUNT
    for number in range(COUNT):
        (folder / f"f{number}").unlink()
    return took


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(dir=argv[0] if argv else None) as name:
        folder, data = Path(name), os.urandom(SIZE)
        _write_all(folder, data)  # the first: whatever the machine did before
        rows = [("again at once", _write_all(folder, data))]
        for pause in (5, 10):
            time.sleep(pause)
            rows.append((f"again after {pause} s unused", _write_all(folder, data)))
    for label, took in rows:
        print(f"{label:<24} {took * 1000:6.2f} ms of CPU per {SIZE / 1e6:.1f} MB file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
