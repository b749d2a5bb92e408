"""WorkPool: media work in low-priority worker processes whose large buffers may use huge pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import asyncio, json, os
from relay.workpool import WorkPool
from tests.unit.test_workpool import worker_view

async def main():
    pool = WorkPool(1)
    try:
        tunables, nice = await pool.run(worker_view)
    finally:
        pool.close()
    print(json.dumps({"worker": tunables, "nice": nice, "relay": os.environ.get("GLIBC_TUNABLES")}))

asyncio.run(main())
"""


def worker_view() -> tuple[str | None, int]:
    """What a worker sees (run there by the probe)."""
    return os.environ.get("GLIBC_TUNABLES"), os.getpriority(os.PRIO_PROCESS, 0)


def _probe(env_tunables: str | None) -> dict[str, object]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if env_tunables is not None:
        env["GLIBC_TUNABLES"] = env_tunables
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_workers_ask_glibc_for_huge_pages_and_run_at_low_priority() -> None:
    seen = _probe(None)
    assert seen["worker"] == "glibc.malloc.hugetlb=1"
    assert seen["nice"] == 19  # the lowest priority: the doors come first (MEDIA_NICE)
    assert seen["relay"] is None  # the relay's own environment, and so ffmpeg's, is untouched


def test_an_operators_own_glibc_tunables_are_kept() -> None:
    seen = _probe("glibc.malloc.arena_max=2")
    assert seen["worker"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert seen["relay"] == "glibc.malloc.arena_max=2"
