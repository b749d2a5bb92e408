"""tus uploads: 1 GB (100 MB with ``--quick``) in 8 MiB PATCHes against the relay's tus door,
and the same requests against ``bench.baseline_http``'s ``/files``, which appends each body and
fsyncs before answering, as the tus protocol requires of any server. Plus the relay's memory
while one 2 GB PATCH streams in.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import time
from urllib.parse import urlparse

from bench import clients
from bench.harness import (
    GB,
    MB,
    Context,
    MemorySampler,
    Result,
    Target,
    baseline_http,
    bench_user,
    relay_pid,
    relay_serve,
    unavailable,
)
from bench.scenarios import Scenario

CHUNK = 8 * MB
TUS = {"Tus-Resumable": "1.0.0"}


def _missing() -> str | None:
    if importlib.util.find_spec("relay.intake.tus") is None:
        return "relay/intake/tus.py does not exist yet"
    return None


async def _upload(
    port: int, create_path: str, auth: dict[str, str], size: int, chunk: int
) -> float:
    """Create an upload and PATCH it in ``chunk``-sized requests; wall seconds."""
    started = time.perf_counter()
    meta = "filename " + base64.b64encode(b"upload.bin").decode()
    created = await clients.http_request(
        port,
        "POST",
        create_path,
        {**TUS, **auth, "Upload-Length": str(size), "Upload-Metadata": meta},
    )
    if created.status != 201:
        raise RuntimeError(f"tus create answered {created.status}: {created.body[:300]!r}")
    path = urlparse(created.headers["location"]).path
    offset = 0
    while offset < size:
        length = min(chunk, size - offset)
        headers = {
            **TUS,
            **auth,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        }
        answer = await clients.http_request(
            port, "PATCH", path, headers, clients.blocks(length), length
        )
        if answer.status != 204:
            raise RuntimeError(f"PATCH at {offset} answered {answer.status}: {answer.body[:300]!r}")
        offset = int(answer.headers["upload-offset"])
    return time.perf_counter() - started


def _throughput(ctx: Context) -> list[Result]:
    label = "tus, 8 MiB chunks"
    reason = _missing()
    if reason:
        return unavailable([(label, "MB/s")], reason)
    size = 100 * MB if ctx.quick else GB
    baseline = rate = memory_mb = 0.0
    for round_ in range(ctx.rounds):
        ctx.log(f"tus round {round_ + 1}: baseline, {size // MB} MB")
        folder = ctx.scratch("tus-baseline")
        try:
            with baseline_http(folder) as (port, _):
                took = asyncio.run(_upload(port, "/files", {}, size, CHUNK))
            baseline = max(baseline, size / MB / took)
        finally:
            ctx.drop(folder)
        ctx.log(f"tus round {round_ + 1}: relay")
        folder = ctx.scratch("tus-relay")
        try:
            with relay_serve(folder, RELAY_WORKERS="0") as relay:
                auth = bench_user(relay)
                with MemorySampler(relay_pid(relay)) as memory:
                    took = asyncio.run(_upload(relay.http_port, "/api/v1/tus/", auth, size, CHUNK))
                rate = max(rate, size / MB / took)
                memory_mb = max(memory_mb, memory.growth_mb)
        finally:
            ctx.drop(folder)
    return [
        Result(
            label,
            "MB/s",
            relay=rate,
            baseline=baseline,
            target=Target(">=", 0.8),
            memory_mb=memory_mb,
            note=f"{size // MB} MB, fsync before each 204; best of {ctx.rounds}",
        )
    ]


def _memory(ctx: Context) -> list[Result]:
    size = 200 * MB if ctx.quick else 2 * GB
    label = f"tus memory, one {size // MB} MB PATCH"
    reason = _missing()
    if reason:
        return unavailable([(label, "MB")], reason)
    folder = ctx.scratch("tus-memory")
    try:
        with relay_serve(folder, RELAY_WORKERS="0") as relay:
            auth = bench_user(relay)
            with MemorySampler(relay_pid(relay)) as memory:
                took = asyncio.run(_upload(relay.http_port, "/api/v1/tus/", auth, size, size))
    finally:
        ctx.drop(folder)
    return [
        Result(
            label,
            "MB",
            relay=memory.growth_mb,
            target=Target("<", 64, on="relay", unit="MB"),
            memory_mb=memory.growth_mb,
            note=f"growth of relay serve over idle; {size / MB / took:.0f} MB/s",
        )
    ]


SCENARIOS = [
    Scenario("tus", "tus", "1 GB in 8 MiB PATCHes: relay vs bare aiohttp with fsync", _throughput),
    Scenario("tus-memory", "tus", "memory of relay serve during one 2 GB PATCH", _memory),
]
