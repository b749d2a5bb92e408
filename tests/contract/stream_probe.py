"""Run as a child process by the conformance suite: put one file into the store that the
``RELAY_*`` environment describes, stream it back, and print its digest and the peak memory of
the transfer as JSON. A child of its own, so nothing else (moto's server holding the object, the
test runner, pytest's capture) counts, and so the peak can be read from the kernel.

    python -m tests.contract.stream_probe FILE KEY [--hog BYTES]

``--hog`` allocates BYTES instead of transferring, to show that the probe sees growth at all.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any


def status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak read later is this
    transfer's, not the imports'. Where that is not allowed, the peak since the start is an
    upper bound of the transfer's, so the check can only get stricter."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def probe(source: Path, key: str, hog: int) -> dict[str, Any]:
    from relay.config import Settings
    from relay.storage import open_store

    settings = Settings()
    store = open_store(settings.storage_url, settings)
    # Warm up first: imports, botocore's service model, the connection pool and the threads are
    # the same for a 1 KiB and a 1 TiB object; only what grows with the object is measured.
    warm = source.with_name(source.name + ".warm")
    warm.write_bytes(b"w" * 1024)
    await store.check()
    await store.put_file(key + ".warm", warm, "application/octet-stream")
    _ = [chunk async for chunk in store.read(key + ".warm")]
    await store.delete(key + ".warm")

    before = status("VmRSS")
    was_reset = reset_peak()
    digest = hashlib.sha256()
    size = 0
    if hog:
        ballast = b"x" * hog  # really touched, unlike a calloc'ed bytearray
        size = len(ballast)
    else:
        await store.put_file(key, source, "application/octet-stream")
        async for chunk in store.read(key):
            digest.update(chunk)
            size += len(chunk)
    peak = status("VmHWM")
    return {
        "sha256": digest.hexdigest(),
        "size": size,
        "rss_before": before,
        "peak": peak,
        "growth": peak - before,
        "peak_reset": was_reset,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("key")
    parser.add_argument("--hog", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(probe(args.source, args.key, args.hog))))


if __name__ == "__main__":
    main()
