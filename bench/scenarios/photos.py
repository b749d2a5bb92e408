"""End to end: N mails, each with a 12 MP phone photo, over 20 SMTP sessions to a default
``relay serve`` (its own number of workers); photos per second until every post is ``ready``,
and the latency of each from its ``250`` to ``ready`` (p50, p99).

The baseline, in the same run on the same photos: pyvips making the same three renditions on
all cores with nothing else running (``bench.baseline_photos``), the machine's limit for this
work. Every photo is distinct (a JPEG comment with its number, 57 bytes, so that its base64 is
the shared one after the first two lines and each message costs the client one join); the
pixels, and so the work, are the same.

``ready`` is read from the posts' ``ready_at`` in the relay's SQLite database, opened read-only
(WAL: the reader never blocks the relay's writer), every 0.2 s until all are ready.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import media
from bench.clients import SmtpError, _command, _reply
from bench.harness import (
    ROOT,
    Context,
    MemorySampler,
    Result,
    Target,
    Unavailable,
    cpu_seconds,
    ensure_pyvips,
    relay_pid,
    relay_serve,
    tree_cpu_seconds,
    unavailable,
)
from bench.scenarios import Scenario

SESSIONS = 20
SENDER = "anna@example.se"
LINE = 57
"""Bytes per base64 line of 76 characters, as mail clients write them."""
WAIT = 1800.0
WARM_UP = 4
"""Mails sent and waited for before the measured ones."""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Photos:
    """One phone photo and its numbered variants: ``SOI, COM(number), the rest``."""

    def __init__(self, jpeg: bytes) -> None:
        assert jpeg[:2] == b"\xff\xd8"
        self.jpeg = jpeg
        # With a 57-byte COM segment, byte 57 + j of a variant is byte j of the photo from j = 2
        # on: its base64 lines from the third on are the photo's from the second on.
        self.shared = _base64_lines(jpeg[LINE:])

    def variant(self, number: int) -> bytes:
        text = f"relay bench photo {number:08d}".encode().ljust(LINE - 4, b" ")
        segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        assert len(segment) == LINE
        return self.jpeg[:2] + segment + self.jpeg[2:]

    def base64_body(self, number: int) -> list[bytes]:
        head = self.variant(number)[: 2 * LINE]
        return [_base64_lines(head), self.shared]


def _base64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def _message(photos: Photos, number: int, recipient: str, run: str) -> list[bytes]:
    head = (
        f"From: Anna Andersson <{SENDER}>\r\n"
        f"To: <{recipient}>\r\n"
        f"Subject: Bild {number}\r\n"
        f"Message-ID: <bench-{run}-{number}@example.se>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="bench-boundary"\r\n'
        "\r\n"
        "--bench-boundary\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Photo {number} from the bench.\r\n"
        "--bench-boundary\r\n"
        f'Content-Type: image/jpeg; name="IMG_{number:04d}.jpeg"\r\n'
        f'Content-Disposition: inline; filename="IMG_{number:04d}.jpeg"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
    ).encode()
    return [head, *photos.base64_body(number), b"--bench-boundary--\r\n"]


async def _session(
    port: int, recipient: str, photos: Photos, numbers: list[int], run: str
) -> list[tuple[str, float]]:
    """One SMTP connection sending ``numbers`` one after the other: (post id, time of 250)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted: list[tuple[str, float]] = []
    try:
        code, text = await _reply(reader)
        if code != 220:
            raise SmtpError(text)
        await _command(reader, writer, "EHLO bench.localhost", 250)
        for number in numbers:
            await _command(reader, writer, f"MAIL FROM:<{SENDER}>", 250)
            await _command(reader, writer, f"RCPT TO:<{recipient}>", 250)
            await _command(reader, writer, "DATA", 354)
            for chunk in _message(photos, number, recipient, run):  # base64: no dot-stuffing
                writer.write(chunk)
                await writer.drain()
            writer.write(b".\r\n")
            code, text = await _reply(reader)
            if code != 250 or "queued as " not in text:
                raise SmtpError(f"end of DATA: {text}")
            accepted.append((text.rsplit("queued as ", 1)[1].strip(), time.time()))
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    return accepted


async def _send(
    port: int, recipient: str, photos: Photos, count: int, first: int = 0
) -> list[tuple[str, float]]:
    """Photos ``first`` to ``first + count - 1``, spread over up to ``SESSIONS`` sessions."""
    run = str(time.time_ns())
    numbers = range(first, first + count)
    shares = [list(numbers[start::SESSIONS]) for start in range(SESSIONS)]
    done = await asyncio.gather(
        *(_session(port, recipient, photos, share, run) for share in shares if share)
    )
    return [accepted for session in done for accepted in session]


def _read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)


def _ready_at(database: Path, post_ids: list[str]) -> dict[str, float]:
    """``ready_at`` of those of ``post_ids`` that are ready."""
    with contextlib.closing(_read_only(database)) as conn:
        rows = conn.execute("SELECT id, ready_at FROM posts WHERE ready_at IS NOT NULL")
        wanted = set(post_ids)
        return {post_id: at for post_id, at in rows if post_id in wanted}


def _wait_ready(database: Path, post_ids: list[str]) -> dict[str, float]:
    deadline = time.monotonic() + WAIT
    while True:
        ready = _ready_at(database, post_ids)
        if len(ready) == len(post_ids):
            return ready
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)} of {len(post_ids)} posts ready after {WAIT:.0f} s")
        time.sleep(0.2)


def _failed_items(database: Path) -> int:
    with contextlib.closing(_read_only(database)) as conn:
        return conn.execute("SELECT count(*) FROM items WHERE status != 'ready'").fetchone()[0]


@dataclass(slots=True)
class _Run:
    rate: float
    """Photos per second from the first byte sent to the last post ready."""
    latencies: list[float]
    """From each ``250`` to its post's ``ready``."""
    intake: float
    """Mails per second accepted."""
    cpu: float
    """CPU seconds of relay serve and its processes, per photo."""
    main_cpu: float
    """Of which relay serve's own process (doors, event loop, database, store)."""
    growth_mb: float


def _relay(ctx: Context, photos: Photos, count: int) -> _Run:
    folder = ctx.scratch("photos-relay")
    try:
        with relay_serve(folder) as relay:
            address = relay.add_user("bench")["address"]
            # Warm-up, as a relay that has been running is: the media workers started, their
            # libraries loaded. Numbers past ``count`` keep these photos apart from the run's.
            warm = asyncio.run(_send(relay.smtp_port, address, photos, WARM_UP, first=count))
            _wait_ready(folder / "relay.db", [post for post, _ in warm])
            with MemorySampler(relay_pid(relay)) as memory:
                cpu, main = tree_cpu_seconds(relay_pid(relay)), cpu_seconds(relay_pid(relay))
                started = time.time()
                accepted = asyncio.run(_send(relay.smtp_port, address, photos, count))
                sent = time.time()
                ready = _wait_ready(folder / "relay.db", [post for post, _ in accepted])
                cpu = tree_cpu_seconds(relay_pid(relay)) - cpu
                main = cpu_seconds(relay_pid(relay)) - main
            not_ready = _failed_items(folder / "relay.db")
            if not_ready:
                raise RuntimeError(f"{not_ready} items did not end ready; see {relay.log}")
    finally:
        ctx.drop(folder)
    return _Run(
        rate=count / (max(ready.values()) - started),
        latencies=[ready[post] - at for post, at in accepted],
        intake=count / (sent - started),
        cpu=cpu / count,
        main_cpu=main / count,
        growth_mb=memory.growth_mb,
    )


def _baseline(python: str, ctx: Context, photos: Photos, count: int) -> tuple[float, float]:
    """Photos per second, and CPU seconds per photo."""
    folder = ctx.scratch("photos-baseline")
    try:
        source = folder / "in"
        source.mkdir()
        for number in range(count):
            (source / f"IMG_{number:04d}.jpeg").write_bytes(photos.variant(number))
        command = [python, "-m", "bench.baseline_photos", str(source), str(folder / "out")]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=WAIT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"baseline_photos: {done.stderr[-300:]}")
        rate, cpu = done.stdout.split()[-2:]
        return float(rate), float(cpu)
    finally:
        ctx.drop(folder)


def _run(ctx: Context) -> list[Result]:
    rate_label = "photos by mail → ready"
    names = [(rate_label, "photos/s"), ("photos by mail: 250 → ready p50", "s")]
    names.append(("photos by mail: 250 → ready p99", "s"))
    try:
        python, libvips = ensure_pyvips(ctx.cache)
    except Unavailable as exc:
        return unavailable(names, str(exc))
    count = ctx.photos or (20 if ctx.quick else 200)
    photos = Photos(media.photo_jpeg())
    size = len(photos.jpeg) / 1e6
    ctx.log(f"photos: pyvips on all cores, {count} photos of {size:.1f} MB")
    baseline, baseline_cpu = _baseline(python, ctx, photos, count)
    ctx.log(f"photos: {count} mails over {SESSIONS} sessions to relay serve (defaults)")
    run = _relay(ctx, photos, count)
    note = (
        f"{count} mails of a {size:.1f} MB 12 MP JPEG, {SESSIONS} SMTP sessions, default relay "
        f"serve; baseline pyvips (libvips {libvips}) on all cores; intake {run.intake:.1f} "
        f"mails/s; CPU per photo: relay {run.cpu * 1000:.0f} ms (whole process tree; "
        f"{run.main_cpu * 1000:.0f} ms in the main process), "
        f"pyvips {baseline_cpu * 1000:.0f} ms"
    )
    return [
        Result(
            rate_label,
            "photos/s",
            relay=run.rate,
            baseline=baseline,
            target=Target(">=", 0.8),
            memory_mb=run.growth_mb,
            note=note,
        ),
        *(
            Result(name, "s", relay=_percentile(run.latencies, q), note=f"{count} photos")
            for (name, _), q in zip(names[1:], (0.5, 0.99), strict=True)
        ),
    ]


SCENARIOS = [
    Scenario(
        "photos-mail",
        "photos",
        "N mails of a 12 MP photo over 20 sessions → all ready: relay vs pyvips on all cores",
        _run,
    )
]
