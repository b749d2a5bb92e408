"""Several nodes: intake on the spool in the object store, against a bare boto3 ``put_object`` of
the same bytes to the same endpoint.

The endpoint is moto's S3 server in a process of its own (``python -m moto.server``) on
127.0.0.1: the same for both sides, so the ratio is what the relay adds to a PUT (the door, the
SMTP or HTTP protocol, the commit of the post and its job), not how fast a real S3 is. 20
senders at once, 1 MB each: the baseline's 20 threads each ``put_object``; the relay's 20 SMTP
sessions or HTTP uploads each get their ``250``/``202`` only once the object is complete in the
bucket and the post committed. ``RELAY_WORKERS=0``: what the doors take, not the pipeline.

``nodes-requests`` counts what one post costs the shared services, for sizing: S3 requests (a
proxy in front of the endpoint counts request lines) at intake and through processing, and
database transactions of a node with and without work (PostgreSQL's ``pg_stat_database`` of a
database of its own, when ``BENCH_DATABASE_URL`` names a server where the bench may create one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

from bench import clients
from bench.databases import postgres_database, server_url
from bench.harness import MB, Context, Result, Target, bench_user, relay_serve
from bench.scenarios import Scenario
from tests.server import free_port

SENDERS = 20
SENDER = "bench@example.org"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def s3_client(endpoint: str) -> object:
    return boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=SENDERS + 4,
            request_checksum_calculation="when_required",
        ),
    )


def new_bucket(endpoint: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    s3_client(endpoint).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def relay_env(endpoint: str, bucket: str, **more: str) -> dict[str, str]:
    return {
        **CREDENTIALS,
        "RELAY_STORAGE_URL": f"s3://{bucket}/media",
        "RELAY_S3_ENDPOINT_URL": endpoint,
        "RELAY_S3_ADDRESSING_STYLE": "path",
        "RELAY_S3_CHECKSUM": "when_required",
        **more,
    }


def baseline_puts(endpoint: str, bucket: str, body: bytes, count: int) -> float:
    """``count`` PUTs of ``body`` from ``SENDERS`` threads; wall seconds."""
    client = s3_client(endpoint)

    def put(n: int) -> None:
        client.put_object(Bucket=bucket, Key=f"baseline/{n}", Body=body)  # type: ignore[attr-defined]

    started = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as threads:
        list(threads.map(put, range(count)))
    return time.perf_counter() - started


async def _in_parallel(count: int, one) -> float:  # noqa: ANN001
    queue = iter(range(count))

    async def sender() -> None:
        for _ in queue:
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return time.perf_counter() - started


def relay_mails(port: int, address: str, body: bytes, count: int) -> float:
    lines = [body]

    async def one() -> None:
        await clients.smtp_stream(port, SENDER, address, lines)

    return asyncio.run(_in_parallel(count, one))


def relay_uploads(port: int, auth: dict[str, str], body: bytes, count: int) -> float:
    headers = {
        **auth,
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="bench.bin"',
    }

    async def one() -> None:
        answer = await clients.http_request(port, "POST", "/api/v1/uploads", headers, body)
        if answer.status != 202:
            raise RuntimeError(f"upload answered {answer.status}: {answer.body[:300]!r}")

    return asyncio.run(_in_parallel(count, one))


def mail_body(size: int) -> bytes:
    """``size`` bytes of 76-character lines that never need dot-stuffing."""
    line = b"A" * 76 + b"\r\n"
    return (line * (size // len(line) + 1))[:size].rsplit(b"\r\n", 1)[0] + b"\r\n"


def _intake(door: str) -> Scenario:
    name = f"nodes-s3-{door}"

    def run(ctx: Context) -> list[Result]:
        count = 100 if ctx.quick else 400
        body = mail_body(MB) if door == "smtp" else os.urandom(MB)
        baseline = rate = 0.0

        def put_objects() -> None:
            nonlocal baseline
            with moto_endpoint() as endpoint:
                bucket = new_bucket(endpoint)
                baseline = max(baseline, count / baseline_puts(endpoint, bucket, body, count))

        def relay_intake() -> None:
            nonlocal rate
            folder = ctx.scratch(name)
            try:
                with moto_endpoint() as endpoint:
                    env = relay_env(
                        endpoint,
                        new_bucket(endpoint),
                        RELAY_WORKERS="0",
                        # One address sends all: a session that just ended may still count.
                        RELAY_SMTP_MAX_CONNECTIONS_PER_CLIENT="100",
                    )
                    with relay_serve(folder, **env) as relay:
                        if door == "smtp":
                            address = relay.add_user("bench")["address"]
                            took = relay_mails(relay.smtp_port, address, body, count)
                        else:
                            took = relay_uploads(relay.http_port, bench_user(relay), body, count)
                rate = max(rate, count / took)
            finally:
                ctx.drop(folder)

        # Each side gets a moto server of its own, started afresh: moto keeps every object it
        # is sent, and a PUT cost it ~50% more CPU once it held the other side's 400 MB, so the
        # side that ran second was measured against a slower store. In the order baseline,
        # relay, relay, baseline, as the other throughput scenarios alternate.
        sides = [("baseline", put_objects), ("relay", relay_intake)]
        for round_ in range(ctx.rounds):
            for label, side in sides if round_ % 2 == 0 else sides[::-1]:
                ctx.log(f"{name} round {round_ + 1}: {label}, {count} × 1 MB")
                side()
        unit = "msg/s" if door == "smtp" else "uploads/s"
        return [
            Result(
                f"S3 spool intake, {door} 1MB",
                unit,
                relay=rate,
                baseline=baseline,
                target=Target(">=", 0.8),
                note=f"{count} × 1 MB, {SENDERS} senders; a fresh moto server for each side; "
                "answer after the object is complete and the post committed; "
                f"best of {ctx.rounds}",
            )
        ]

    about = f"{door} intake into the S3 spool vs boto3 put_object, 1 MB, {SENDERS} senders"
    return Scenario(name, "nodes", about, run)


# --- what a post costs the shared services ----------------------------------------------------

REQUEST_LINE = re.compile(rb"(?:^|\n)(GET|PUT|POST|DELETE|HEAD) (/[^ \r\n]*) HTTP/1\.1\r\n")


class CountingProxy:
    """127.0.0.1:``port`` → ``target``, counting the HTTP request lines that pass to it (a
    multipart step by its query: ``?uploads``, ``?partNumber``)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        tail = b""
        try:
            while data := source.recv(1 << 16):
                if count:
                    seen = tail + data
                    for method, path in REQUEST_LINE.findall(seen):
                        kind = method.decode()
                        for step in (b"uploadId", b"uploads", b"partNumber"):
                            if step in path:
                                kind += f" ?{step.decode()}"
                                break
                        if b"/spool/" in path:
                            kind += " spool"
                        with self._lock:
                            self.counts[kind] += 1
                    tail = seen[-300:] if b"\n" in seen[-300:] else b""
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def _requests(ctx: Context) -> list[Result]:
    from tests.media import phone_jpeg

    posts = 10 if ctx.quick else 30
    photo = phone_jpeg(3000, 2000)
    folder = ctx.scratch("nodes-requests")
    results: list[Result] = []
    try:
        with moto_endpoint() as endpoint:
            bucket = new_bucket(endpoint)
            proxy = CountingProxy(int(endpoint.rsplit(":", 1)[1]))
            env = relay_env(
                f"http://127.0.0.1:{proxy.port}",
                bucket,
                RELAY_WORKERS="0",
                # Two nodes, one database: SQLite's file is enough on one machine.
                RELAY_DATABASE_URL=f"sqlite:///{folder / 'shared.db'}",
                RELAY_SECRET_KEY="bench-nodes-share-one-secret-key",
            )
            try:
                with relay_serve(folder / "doors", **env) as doors:
                    user = doors.add_user("bench")
                    proxy.counts.clear()
                    for _ in range(posts):
                        doors.upload(user["token"], file=("p.jpg", photo, "image/jpeg"))
                    intake = sum(proxy.counts.values()) / posts
                    intake_kinds = dict(proxy.counts)
                    proxy.counts.clear()
                    # Processing on another node (a folder of its own): it fetches the spooled
                    # bytes from the store, as after a node's death.
                    worker_env = {**env, "RELAY_WORKERS": "2"}
                    with relay_serve(folder / "worker", **worker_env):
                        with doors.client(user["token"]) as client:
                            ids = [p["id"] for p in client.get("/api/v1/posts").json()["posts"]]
                        for post_id in ids:
                            doors.wait_post(user["token"], post_id, timeout=300)
                    processing = sum(proxy.counts.values()) / posts
                    processing_kinds = dict(proxy.counts)
            finally:
                proxy.close()
    finally:
        ctx.drop(folder)
    results.append(
        Result(
            "S3 requests per post, intake (1 photo)",
            "requests",
            relay=intake,
            note=f"{posts} uploads of a 3 MB photo: {_kinds(intake_kinds, posts)}",
        )
    )
    results.append(
        Result(
            "S3 requests per post, processing elsewhere",
            "requests",
            relay=processing,
            note=f"on a node that did not take it: {_kinds(processing_kinds, posts)}",
        )
    )
    results.extend(_database(ctx))
    return results


def _kinds(counts: dict[str, int], posts: int) -> str:
    return ", ".join(f"{kind} {n / posts:.1f}" for kind, n in sorted(counts.items()))


def _database(ctx: Context) -> list[Result]:
    """Transactions a second of one idle node, and connections it holds under load."""
    base = server_url(default=None)  # opt-in here: the intake rows need no database
    if not base:
        return []
    with postgres_database(base, prefix="bench_nodes") as url:
        return _database_load(ctx, base, url)


def _database_load(ctx: Context, base: str, url: str) -> list[Result]:
    from sqlalchemy import create_engine, text

    from relay.db import normalise_url

    name = url.rsplit("/", 1)[1]
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    folder = ctx.scratch("nodes-database")
    results: list[Result] = []

    def stats() -> tuple[int, int]:
        with admin.connect() as conn:
            commits = conn.execute(
                text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n"), {"n": name}
            ).scalar()
            backends = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            ).scalar()
        return int(commits or 0), int(backends or 0)

    try:
        with relay_serve(folder, RELAY_DATABASE_URL=url, RELAY_WORKERS="2") as node:
            token = node.add_user("bench")["token"]
            time.sleep(2)  # settled after start
            before, _ = stats()
            idle_seconds = 10.0
            time.sleep(idle_seconds)
            after, idle_backends = stats()
            per_second = (after - before) / idle_seconds
            most = [idle_backends]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.wait(0.2):
                    most.append(stats()[1])

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            uploads = 3 * SENDERS
            with ThreadPoolExecutor(SENDERS) as senders:
                posts = list(senders.map(lambda _: node.upload(token), range(uploads)))
            for post in posts:
                node.wait_post(token, post["id"], timeout=300)
            sampling.set()
            sampler.join()
            done, _ = stats()
        results.append(
            Result(
                "DB transactions a second, one idle node",
                "xact/s",
                relay=per_second,
                note=f"2 workers polling for jobs; {idle_backends} connection(s) held idle",
            )
        )
        results.append(
            Result(
                "DB connections of one node under load",
                "connections",
                relay=float(max(most)),
                note=f"most seen (every 0.2 s) during {uploads} uploads from {SENDERS} "
                "senders and their processing",
            )
        )
        results.append(
            Result(
                "DB transactions per post (upload to ready)",
                "xact",
                relay=(done - after) / uploads,
                note="one small photo each, processed by the node's 2 workers; includes the "
                "workers' idle polling meanwhile",
            )
        )
    finally:
        ctx.drop(folder)
        admin.dispose()
    return results


SCENARIOS = [
    _intake("smtp"),
    _intake("http"),
    Scenario(
        "nodes-requests",
        "nodes",
        "S3 requests per post (intake, processing on another node); DB load of a node",
        _requests,
    ),
]
