"""SMTP intake: Postfix's ``smtp-source`` against the relay and against ``smtp-sink``.

smtp-sink accepts and discards; the relay answers ``250`` only after the message is fsynced in
its spool and the post is committed. Both get the same load: 20 sessions, each sending message
after message over one connection (``-d``). The relay runs without workers, so what is measured
is what the door accepts, not the pipeline that unpacks the mail afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench import clients
from bench.databases import PostsReader, postgres_database, relay_database_url
from bench.harness import (
    GB,
    MB,
    SMTP_SINK,
    SMTP_SOURCE,
    Context,
    MemorySampler,
    Result,
    Target,
    Unavailable,
    ensure_postfix_tools,
    relay_pid,
    relay_serve,
    unavailable,
)
from bench.scenarios import Scenario
from tests.server import free_port

SESSIONS = 20
SENDER = "bench@example.org"


def _source(port: int, count: int, size: int, recipient: str, timeout: float) -> float:
    """Run smtp-source; returns wall seconds. Fails unless every message got a 2xx."""
    command = [
        str(SMTP_SOURCE),
        "-d",
        "-s",
        str(SESSIONS),
        "-m",
        str(count),
        "-l",
        str(size),
        "-M",
        "bench.localhost",
        "-f",
        SENDER,
        "-t",
        recipient,
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source: {done.stdout[-300:]} {done.stderr[-300:]}")
    return elapsed


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's ``smtp-sink`` on a free port, accepting and discarding: its port."""
    port = free_port()
    sink = subprocess.Popen(
        [str(SMTP_SINK), "-u", "nobody", f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield port
    finally:
        sink.terminate()
        sink.wait(10)


def _sink_rate(count: int, size: int, timeout: float) -> float:
    with smtp_sink() as port:
        return count / _source(port, count, size, "sink@bench.localhost", timeout)


def _wait_port(port: int, seconds: float = 10) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _spooled(data_dir: Path) -> int:
    return sum(1 for _ in (data_dir / "spool" / "ready").iterdir())


def _accepted(data_dir: Path, env: dict[str, str]) -> tuple[int, str]:
    """How many messages the relay holds, and where they were counted: its spool when no
    worker runs, else its posts (the workers consume the spool as the mail arrives)."""
    if env.get("RELAY_WORKERS") == "0":
        return _spooled(data_dir), "in the spool"
    with PostsReader(relay_database_url(data_dir, env)) as posts:
        return posts.posts(), "posts in the database"


def _relay_rate(
    ctx: Context, name: str, count: int, size: int, timeout: float, env: dict[str, str]
) -> Result:
    """smtp-source's rate against a ``relay serve`` with ``env`` over its defaults; a row of
    scenario ``name`` to be labelled by the caller."""
    data_dir = ctx.scratch(name)
    try:
        with relay_serve(data_dir, **env) as relay:
            address = relay.add_user("bench")["address"]
            with MemorySampler(relay_pid(relay)) as memory:
                rate = count / _source(relay.smtp_port, count, size, address, timeout)
            held, where = _accepted(data_dir, env)
            if held != count:  # every 250 must stand for a message the relay holds
                raise RuntimeError(f"{count} messages answered 250, {held} {where}")
    finally:
        ctx.drop(data_dir)
    return Result(name, "msg/s", relay=rate, memory_mb=memory.growth_mb)


INTAKE = {"RELAY_WORKERS": "0"}
"""The intake rows' relay: the door alone, no pipeline taking CPU from it."""


def _throughput(
    label: str,
    size: int,
    full: int,
    quick: int,
    target: Target,
    busy: bool = False,
) -> Scenario:
    """smtp-source against smtp-sink and against a relay, alternated, best of each. The relay
    runs without workers, or with ``busy`` on its defaults, its workers processing every mail
    that arrives."""
    name = f"smtp-{label}-busy" if busy else f"smtp-{label}"
    row = f"smtp {label}, workers busy" if busy else f"smtp {label}"
    env = {} if busy else INTAKE

    def run(ctx: Context) -> list[Result]:
        try:
            ensure_postfix_tools()
        except Unavailable as exc:
            return unavailable([(row, "msg/s")], str(exc))
        count = quick if ctx.quick else full
        timeout = 600.0
        sink: list[float] = []
        relay: list[Result] = []
        for round_ in range(ctx.rounds):
            ctx.log(f"{name} round {round_ + 1}: smtp-sink, {count} messages of {size} bytes")
            sink.append(_sink_rate(count, size, timeout))
            ctx.log(f"{name} round {round_ + 1}: relay")
            relay.append(_relay_rate(ctx, name, count, size, timeout, env))
        result = max(relay, key=lambda r: r.relay or 0.0)
        result.scenario = row
        result.memory_mb = max(r.memory_mb or 0.0 for r in relay)
        result.baseline = max(sink)
        result.target = target
        result.note = (
            f"{count} msgs, {SESSIONS} sessions; 250 after fsync + commit; best of {ctx.rounds}"
        )
        if busy:
            result.note += "; default relay serve, its workers processing every mail that arrives"
        return [result]

    about = f"{SESSIONS} sessions of {label} messages via smtp-source: relay vs smtp-sink"
    if busy:
        about = f"as smtp-{label}, the relay on defaults (its workers processing the mail)"
    return Scenario(name, "smtp", about, run)


def _on_postgres(label: str, size: int, full: int, quick: int) -> Scenario:
    """smtp-source against a relay on PostgreSQL and one on SQLite (``RELAY_WORKERS=0`` both),
    alternated, best of each; a database of its own for each PostgreSQL run."""
    name = f"smtp-{label}-postgres"
    row = f"smtp {label}, PostgreSQL vs SQLite"

    def run(ctx: Context) -> list[Result]:
        count = quick if ctx.quick else full
        timeout = 600.0
        sqlite: list[Result] = []
        postgres: list[Result] = []
        try:
            ensure_postfix_tools()
            for round_ in range(ctx.rounds):
                ctx.log(f"{name} round {round_ + 1}: relay on SQLite, {count} × {size} bytes")
                sqlite.append(_relay_rate(ctx, name, count, size, timeout, INTAKE))
                ctx.log(f"{name} round {round_ + 1}: relay on PostgreSQL")
                with postgres_database() as url:
                    env = {**INTAKE, "RELAY_DATABASE_URL": url}
                    postgres.append(_relay_rate(ctx, name, count, size, timeout, env))
        except Unavailable as exc:
            return unavailable([(row, "msg/s")], str(exc))
        return [
            Result(
                row,
                "msg/s",
                relay=max(r.relay or 0.0 for r in postgres),
                baseline=max(r.relay or 0.0 for r in sqlite),
                target=Target(">=", 0.8),
                memory_mb=max(r.memory_mb or 0.0 for r in postgres),
                note=f"{count} msgs, {SESSIONS} sessions via smtp-source; 250 after fsync + "
                f"commit; RELAY_WORKERS=0; best of {ctx.rounds}",
            )
        ]

    about = f"smtp-{label} on PostgreSQL vs on SQLite, same run"
    return Scenario(name, "smtp", about, run)


def _memory(ctx: Context) -> list[Result]:
    size = 200 * MB if ctx.quick else 2 * GB
    label = f"memory, one {size // MB} MB message"
    data_dir = ctx.scratch("smtp-memory")
    block = clients.mail_lines_block()
    try:
        with relay_serve(
            data_dir, RELAY_WORKERS="0", RELAY_MAX_MESSAGE_BYTES=str(size + 64 * MB)
        ) as relay:
            address = relay.add_user("bench")["address"]
            with MemorySampler(relay_pid(relay)) as memory:
                started = time.perf_counter()
                body = (block for _ in range(size // len(block)))
                asyncio.run(clients.smtp_stream(relay.smtp_port, SENDER, address, body))
                elapsed = time.perf_counter() - started
    finally:
        ctx.drop(data_dir)
    return [
        Result(
            f"smtp {label}",
            "MB",
            relay=memory.growth_mb,
            target=Target("<", 64, on="relay", unit="MB"),
            memory_mb=memory.growth_mb,
            note=f"growth of relay serve over idle; {size / MB / elapsed:.0f} MB/s",
        )
    ]


SCENARIOS = [
    _throughput("1MB", 1_000_000, 2000, 200, Target(">=", 0.9)),
    _throughput("1MB", 1_000_000, 2000, 200, Target(">=", 0.9), busy=True),
    _on_postgres("1MB", 1_000_000, 2000, 200),
    _throughput("5MB", 5_000_000, 400, 40, Target(">=", 0.9)),
    _throughput("10KB", 10_000, 10000, 1000, Target(">=", 600, on="relay", unit="msg/s")),
    Scenario("smtp-memory", "smtp", "memory of relay serve during one 2 GB message", _memory),
]
