"""HTTP uploads: ``POST /api/v1/uploads`` against the bare aiohttp server of
``bench.baseline_http``, raw and multipart, one and four clients at once, each sending 1 GB
(100 MB with ``--quick``). Both answer only after the bytes are fsynced and renamed into place;
the relay also commits the post. MB/s is all clients' bytes over the wall time of the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator

from bench import clients, media
from bench.databases import PostsReader, postgres_database, relay_database_url
from bench.harness import (
    GB,
    MB,
    ROOT,
    Context,
    MemorySampler,
    Result,
    Target,
    Unavailable,
    baseline_http,
    bench_user,
    ensure_pyvips,
    relay_pid,
    relay_serve,
    unavailable,
)
from bench.scenarios import Scenario
from bench.scenarios.photos import UPLOADERS, WARM_UP, Photos, upload_photos, wait_ready

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


def _relay_batch(
    ctx: Context, name: str, body: Body, clients_count: int, env: dict[str, str]
) -> tuple[float, float]:
    """One batch of uploads to a ``relay serve`` with ``env`` over its defaults: wall seconds,
    and the growth of its memory."""
    folder = ctx.scratch(f"{name}-relay")
    try:
        with relay_serve(folder, **env) as relay:
            auth = bench_user(relay)
            with MemorySampler(relay_pid(relay)) as memory:
                took = asyncio.run(
                    _batch(relay.http_port, "/api/v1/uploads", auth, body, clients_count)
                )
    finally:
        ctx.drop(folder)
    return took, memory.growth_mb


INTAKE = {"RELAY_WORKERS": "0"}
"""The intake rows' relay: the door alone, no pipeline taking CPU from it."""


def _label(kind: str, clients_count: int) -> str:
    return f"http {kind}, {clients_count} client{'s' if clients_count > 1 else ''}"


def _throughput(kind: str, clients_count: int) -> Scenario:
    name = f"http-{kind}-{clients_count}"
    label = _label(kind, clients_count)

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
            took, growth = _relay_batch(ctx, name, body, clients_count, INTAKE)
            rate = max(rate, total_mb / took)
            memory_mb = max(memory_mb, growth)
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


def _on_postgres(kind: str, clients_count: int) -> Scenario:
    """The uploads of ``http-KIND-N`` to a relay on PostgreSQL and to one on SQLite
    (``RELAY_WORKERS=0`` both), alternated, best of each; a database of its own per run."""
    name = f"http-{kind}-{clients_count}-postgres"
    label = f"{_label(kind, clients_count)}, PostgreSQL vs SQLite"

    def run(ctx: Context) -> list[Result]:
        size = 100 * MB if ctx.quick else GB
        body = (raw_body if kind == "raw" else multipart_body)(size)
        total_mb = size * clients_count / MB
        sqlite = postgres = memory_mb = 0.0
        try:
            for round_ in range(ctx.rounds):
                ctx.log(f"{name} round {round_ + 1}: relay on SQLite")
                took, _ = _relay_batch(ctx, name, body, clients_count, INTAKE)
                sqlite = max(sqlite, total_mb / took)
                ctx.log(f"{name} round {round_ + 1}: relay on PostgreSQL")
                with postgres_database() as url:
                    env = {**INTAKE, "RELAY_DATABASE_URL": url}
                    took, growth = _relay_batch(ctx, name, body, clients_count, env)
                postgres = max(postgres, total_mb / took)
                memory_mb = max(memory_mb, growth)
        except Unavailable as exc:
            return unavailable([(label, "MB/s")], str(exc))
        return [
            Result(
                label,
                "MB/s",
                relay=postgres,
                baseline=sqlite,
                target=Target(">=", 0.8),
                memory_mb=memory_mb,
                note=f"{clients_count} × {size // MB} MB, fsync before 202; RELAY_WORKERS=0; "
                f"best of {ctx.rounds}",
            )
        ]

    about = f"http-{kind}-{clients_count} on PostgreSQL vs on SQLite, same run"
    return Scenario(name, "http", about, run)


BUSY_UPLOADS = 200
BESIDE_PHOTOS = 80
"""Photos the pyvips baseline works on beside the bare aiohttp server: more than it makes while
the uploads go on."""


@contextlib.contextmanager
def _pyvips_working(python: str, ctx: Context, photos: Photos) -> Iterator[None]:
    """pyvips (``bench.baseline_photos``) making renditions on all cores at nice 19, as the
    relay's media workers do, in the bench's own session (so that its niceness weighs against
    the server beside it, as the relay's workers' does against its doors)."""
    folder = ctx.scratch("http-busy-pyvips")
    source = folder / "in"
    source.mkdir()
    for number in range(BESIDE_PHOTOS):
        (source / f"IMG_{number:04d}.jpeg").write_bytes(photos.variant(10_000 + number))
    command = [python, "-m", "bench.baseline_photos", str(source), str(folder / "out")]
    # A process group of its own, to stop its pool's processes with it; not a session of its
    # own, which the kernel's autogroup would weigh as a peer of the bench's, nice or not.
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0
    )
    try:
        time.sleep(PYVIPS_WARM_UP)  # its processes started, libvips loaded, the first photos
        if process.poll() is not None:
            raise RuntimeError(f"baseline_photos ended early ({process.returncode})")
        yield
        if process.poll() is not None:
            raise RuntimeError("baseline_photos ended before the uploads did: give it more")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        ctx.drop(folder)


PYVIPS_WARM_UP = 2.0


def _busy(ctx: Context) -> list[Result]:
    """Photos uploaded by ``UPLOADERS`` clients to a default relay whose workers process them as
    they arrive, against the bare aiohttp server taking the same uploads on an idle machine, and
    against the same server beside pyvips making renditions on all cores (what the machine
    leaves a door while photos are processed)."""
    count = 40 if ctx.quick else BUSY_UPLOADS
    photos = Photos(media.photo_jpeg())
    size = len(photos.jpeg) / 1e6
    try:
        python, _ = ensure_pyvips(ctx.cache)
    except Unavailable:
        python = None
    baseline = beside = rate = memory_mb = 0.0
    for round_ in range(ctx.rounds):
        ctx.log(f"http-busy round {round_ + 1}: baseline, {count} photos of {size:.1f} MB")
        folder = ctx.scratch("http-busy-baseline")
        try:
            with baseline_http(folder) as (port, _):
                asyncio.run(upload_photos(port, {}, photos, WARM_UP, count, path="/upload"))
                started = time.perf_counter()
                asyncio.run(upload_photos(port, {}, photos, count, path="/upload"))
                baseline = max(baseline, count / (time.perf_counter() - started))
                if python is not None:
                    ctx.log(f"http-busy round {round_ + 1}: baseline beside pyvips")
                    with _pyvips_working(python, ctx, photos):
                        started = time.perf_counter()
                        asyncio.run(upload_photos(port, {}, photos, count, count, "/upload"))
                        beside = max(beside, count / (time.perf_counter() - started))
        finally:
            ctx.drop(folder)
        ctx.log(f"http-busy round {round_ + 1}: relay (defaults, workers processing)")
        folder = ctx.scratch("http-busy-relay")
        try:
            with (
                relay_serve(folder) as relay,
                PostsReader(relay_database_url(folder, {})) as posts,
            ):
                auth = bench_user(relay)
                # Warm-up: the media workers started and their libraries loaded.
                warm = asyncio.run(upload_photos(relay.http_port, auth, photos, WARM_UP, count))
                wait_ready(posts, [post for post, _ in warm])
                with MemorySampler(relay_pid(relay)) as memory:
                    started = time.perf_counter()
                    asyncio.run(upload_photos(relay.http_port, auth, photos, count))
                    rate = max(rate, count / (time.perf_counter() - started))
                memory_mb = max(memory_mb, memory.growth_mb)
                held = posts.posts() - WARM_UP  # the workers consume the spool: count posts
                if held != count:
                    raise RuntimeError(f"{count} uploads answered 202, {held} posts")
        finally:
            ctx.drop(folder)
    label = f"http photos, {UPLOADERS} clients, workers busy"
    note = (
        f"{count} raw uploads of a {size:.1f} MB 12 MP JPEG (distinct), {UPLOADERS} clients; "
        f"default relay serve, its workers processing what arrives; fsync before 202; best of "
        f"{ctx.rounds}"
    )
    results = [
        Result(
            label,
            "uploads/s",
            relay=rate,
            baseline=baseline,
            target=Target(">=", 0.8),
            memory_mb=memory_mb,
            note=note,
        )
    ]
    if python is None:
        return results + unavailable(
            [(f"{label}, vs bare aiohttp beside pyvips", "uploads/s")],
            "pyvips-binary could not be installed",
        )
    return results + [
        Result(
            f"{label}, vs bare aiohttp beside pyvips",
            "uploads/s",
            relay=rate,
            baseline=beside,
            note=f"the same relay figure; baseline: the bare aiohttp server while pyvips "
            f"(bench.baseline_photos, nice 19) makes the same renditions on all cores; "
            f"idle, it took {baseline:.0f} uploads/s",
        )
    ]


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
    _on_postgres("raw", 4),
    _throughput("multipart", 1),
    _throughput("multipart", 4),
    _memory("raw"),
    _memory("multipart"),
    Scenario(
        "http-busy",
        "http",
        "raw uploads of a 12 MP photo, 4 clients, to a relay whose workers process them: "
        "relay vs bare aiohttp",
        _busy,
    ),
]
