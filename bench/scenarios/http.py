"""HTTP uploads: ``POST /api/v1/uploads`` against the bare aiohttp server of
``bench.baseline_http``, raw and multipart, one and four clients at once, each sending 1 GB
(100 MB with ``--quick``). Both answer only after the bytes are fsynced and renamed into place;
the relay also commits the post. MB/s is all clients' bytes over the wall time of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

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
)
from bench.scenarios import Scenario

Body = Callable[[], tuple[dict[str, str], Iterable[bytes | memoryview], int]]


def raw_body(size: int) -> Body:
    def make() -> tuple[dict[str, str], Iterable[bytes | memoryview], int]:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": 'attachment; filename="upload.bin"',
        }
        return headers, clients.blocks(size), size

    return make


def multipart_body(size: int) -> Body:
    def make() -> tuple[dict[str, str], Iterable[bytes | memoryview], int]:
        form = clients.Multipart(size)
        return {"Content-Type": form.content_type}, form.body(), form.length

    return make


async def _batch(port: int, path: str, auth: dict[str, str], body: Body, count: int) -> float:
    """``count`` uploads at once; wall seconds until the last answer."""

    async def one() -> None:
        headers, chunks, length = body()
        response = await clients.http_request(
            port, "POST", path, {**auth, **headers}, chunks, length
        )
        if response.status not in (200, 201, 202):
            raise RuntimeError(f"upload answered {response.status}: {response.body[:300]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - started


def _throughput(kind: str, clients_count: int) -> Scenario:
    name = f"http-{kind}-{clients_count}"
    label = f"http {kind}, {clients_count} client{'s' if clients_count > 1 else ''}"

    def run(ctx: Context) -> list[Result]:
        size = 100 * MB if ctx.quick else GB
        body = (raw_body if kind == "raw" else multipart_body)(size)
        total_mb = size * clients_count / MB
        baseline = rate = memory_mb = 0.0
        for round_ in range(ctx.rounds):
            ctx.log(f"{name} round {round_ + 1}: baseline, {clients_count} × {size // MB} MB")
            folder = ctx.scratch(f"{name}-baseline")
            try:
                with baseline_http(folder) as (port, _):
                    took = asyncio.run(_batch(port, "/upload", {}, body, clients_count))
                baseline = max(baseline, total_mb / took)
            finally:
                ctx.drop(folder)
            ctx.log(f"{name} round {round_ + 1}: relay")
            folder = ctx.scratch(f"{name}-relay")
            try:
                with relay_serve(folder, RELAY_WORKERS="0") as relay:
                    auth = bench_user(relay)
                    with MemorySampler(relay_pid(relay)) as memory:
                        took = asyncio.run(
                            _batch(relay.http_port, "/api/v1/uploads", auth, body, clients_count)
                        )
                    rate = max(rate, total_mb / took)
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
                note=f"{clients_count} × {size // MB} MB, fsync before 202; best of {ctx.rounds}",
            )
        ]

    about = f"{kind} uploads, {clients_count} at once: relay vs bare aiohttp with fsync"
    return Scenario(name, "http", about, run)


def _memory(kind: str) -> Scenario:
    name = f"http-{kind}-memory"

    def run(ctx: Context) -> list[Result]:
        size = 200 * MB if ctx.quick else 2 * GB
        body = (raw_body if kind == "raw" else multipart_body)(size)
        folder = ctx.scratch(name)
        try:
            with relay_serve(folder, RELAY_WORKERS="0") as relay:
                auth = bench_user(relay)
                with MemorySampler(relay_pid(relay)) as memory:
                    took = asyncio.run(_batch(relay.http_port, "/api/v1/uploads", auth, body, 1))
        finally:
            ctx.drop(folder)
        return [
            Result(
                f"http {kind} memory, one {size // MB} MB upload",
                "MB",
                relay=memory.growth_mb,
                target=Target("<", 64, on="relay", unit="MB"),
                memory_mb=memory.growth_mb,
                note=f"growth of relay serve over idle; {size / MB / took:.0f} MB/s",
            )
        ]

    return Scenario(name, "http", f"memory of relay serve during one 2 GB {kind} upload", run)


SCENARIOS = [
    _throughput("raw", 1),
    _throughput("raw", 4),
    _throughput("multipart", 1),
    _throughput("multipart", 4),
    _memory("raw"),
    _memory("multipart"),
]
