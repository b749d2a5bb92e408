"""End to end: N photos of 12 MP, sent by mail (20 SMTP sessions) or uploaded (4 HTTP clients,
``POST /api/v1/uploads`` with the photo as the raw body) to a default ``relay serve`` (its own
number of workers); photos per second until every post is ``ready``, and the latency of each
from its ``250``/``202`` to ``ready`` (p50, p99).

``photos-mail`` and ``photos-http``: the baseline, in the same run on the same photos, is pyvips
making the same three renditions on all cores with nothing else running
(``bench.baseline_photos``), the machine's limit for this work. ``photos-mail`` also gives the
door's rate while the relay processes what arrives, against the same client sending the same
mails to Postfix's ``smtp-sink``.

``photos-mail-postgres``, ``photos-http-postgres``: the same on PostgreSQL against SQLite, in the
same run. ``photos-workers``: the same mails to a relay with two workers against one.

Every photo is distinct (a JPEG comment with its number, 57 bytes, so that its base64 is the
shared one after the first two lines and each message costs the client one join); the pixels,
and so the work, are the same. ``ready`` is the posts' ``ready_at``, read through
``bench.databases.PostsReader`` (SQLite read-only, or PostgreSQL) every 0.2 s until all are
ready.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench import clients, media
from bench.clients import SmtpError, _command, _reply
from bench.databases import PostsReader, postgres_database, relay_database_url
from bench.harness import (
    ROOT,
    Context,
    MemorySampler,
    Result,
    Target,
    Unavailable,
    bench_user,
    cpu_seconds,
    ensure_postfix_tools,
    ensure_pyvips,
    relay_pid,
    relay_serve,
    tree_cpu_seconds,
    unavailable,
)
from bench.scenarios import Scenario
from bench.scenarios.smtp import smtp_sink
from tests.server import RelayServer

SESSIONS = 20
UPLOADERS = 4
"""HTTP clients uploading at once, each one photo after the other."""
SENDER = "anna@example.se"
LINE = 57
"""Bytes per base64 line of 76 characters, as mail clients write them."""
WAIT = 1800.0
WARM_UP = 4
"""Photos sent and waited for before the measured ones."""
DOORS = {
    "mail": ("photos by mail", "250", "mails"),
    "http": ("photos by upload", "202", "raw uploads"),
}
"""A door's rows' label, the answer its latency starts from, and what it is sent."""
COMPARED = 100
"""Photos in the scenarios that compare two relays (PostgreSQL, workers): two relay runs each,
so fewer than ``photos-mail``'s 200 to keep the whole bench within its time."""


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
    """One SMTP connection sending ``numbers`` one after the other: (post id, time of 250). The
    id is empty when the server gives none (smtp-sink)."""
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
            if code != 250:
                raise SmtpError(f"end of DATA: {text}")
            post = text.rsplit("queued as ", 1)[1].strip() if "queued as " in text else ""
            accepted.append((post, time.time()))
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    return accepted


async def _mails(
    port: int, recipient: str, photos: Photos, count: int, first: int = 0
) -> list[tuple[str, float]]:
    """Photos ``first`` to ``first + count - 1`` by mail, spread over up to ``SESSIONS``
    sessions."""
    run = str(time.time_ns())
    numbers = range(first, first + count)
    shares = [list(numbers[start::SESSIONS]) for start in range(SESSIONS)]
    done = await asyncio.gather(
        *(_session(port, recipient, photos, share, run) for share in shares if share)
    )
    return [accepted for session in done for accepted in session]


async def upload_photos(
    port: int,
    auth: dict[str, str],
    photos: Photos,
    count: int,
    first: int = 0,
    path: str = "/api/v1/uploads",
) -> list[tuple[str, float]]:
    """Photos ``first`` to ``first + count - 1`` as raw uploads from ``UPLOADERS`` clients, each
    taking the next photo when its last one is answered: (post id, time of 202). The id is
    empty when the server gives none (the bare aiohttp baseline)."""
    numbers = iter(range(first, first + count))
    accepted: list[tuple[str, float]] = []

    async def uploader() -> None:
        for number in numbers:
            headers = {
                **auth,
                "Content-Type": "image/jpeg",
                "Content-Disposition": f'attachment; filename="IMG_{number:04d}.jpeg"',
            }
            answer = await clients.http_request(port, "POST", path, headers, photos.variant(number))
            if answer.status != 202:
                raise RuntimeError(f"upload answered {answer.status}: {answer.body[:300]!r}")
            accepted.append((json.loads(answer.body).get("id", ""), time.time()))

    await asyncio.gather(*(uploader() for _ in range(UPLOADERS)))
    return accepted


Send = Callable[[int, int], list[tuple[str, float]]]
"""``send(count, first)``: photos ``first`` … through a door; (post id, time of the answer)."""


def door_sender(door: str, relay: RelayServer, photos: Photos) -> Send:
    """How photos reach ``relay`` through ``door`` (``mail`` or ``http``), for a new user."""
    if door == "mail":
        address = relay.add_user("bench")["address"]
        return lambda count, first: asyncio.run(
            _mails(relay.smtp_port, address, photos, count, first)
        )
    auth = bench_user(relay)
    return lambda count, first: asyncio.run(
        upload_photos(relay.http_port, auth, photos, count, first)
    )


def wait_ready(posts: PostsReader, post_ids: list[str]) -> dict[str, float]:
    deadline = time.monotonic() + WAIT
    while True:
        ready = posts.ready_at(post_ids)
        if len(ready) == len(post_ids):
            return ready
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)} of {len(post_ids)} posts ready after {WAIT:.0f} s")
        time.sleep(0.2)


@dataclass(slots=True)
class _Run:
    rate: float
    """Photos per second from the first byte sent to the last post ready."""
    latencies: list[float]
    """From each ``250``/``202`` to its post's ``ready``."""
    intake: float
    """Photos per second accepted by the door (while the workers process what arrived)."""
    cpu: float
    """CPU seconds of relay serve and its processes, per photo."""
    main_cpu: float
    """Of which relay serve's own process (doors, event loop, database, store)."""
    growth_mb: float

    def percentile(self, fraction: float) -> float:
        return _percentile(self.latencies, fraction)


def _relay(ctx: Context, photos: Photos, count: int, door: str, **env: str) -> _Run:
    """``count`` photos through ``door`` to a ``relay serve`` with ``env`` over its defaults."""
    folder = ctx.scratch(f"photos-{door}-relay")
    try:
        with (
            relay_serve(folder, **env) as relay,
            PostsReader(relay_database_url(folder, env)) as posts,
        ):
            send = door_sender(door, relay, photos)
            # Warm-up, as a relay that has been running is: the media workers started, their
            # libraries loaded. Numbers past ``count`` keep these photos apart from the run's.
            warm = send(WARM_UP, count)
            wait_ready(posts, [post for post, _ in warm])
            with MemorySampler(relay_pid(relay)) as memory:
                cpu, main = tree_cpu_seconds(relay_pid(relay)), cpu_seconds(relay_pid(relay))
                started = time.time()
                accepted = send(count, 0)
                sent = time.time()
                if not all(post for post, _ in accepted):
                    raise RuntimeError("an accepted photo has no post id in its answer")
                ready = wait_ready(posts, [post for post, _ in accepted])
                cpu = tree_cpu_seconds(relay_pid(relay)) - cpu
                main = cpu_seconds(relay_pid(relay)) - main
            not_ready = posts.items_not_ready()
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


def _sink_intake(photos: Photos, count: int) -> float:
    """Mails per second ``smtp-sink`` takes of the very mails ``_relay`` sends, same client."""
    with smtp_sink() as port:
        # The same warm-up as the relay's: the client's first connections cost more.
        asyncio.run(_mails(port, "sink@bench.localhost", photos, WARM_UP, first=count))
        started = time.time()
        asyncio.run(_mails(port, "sink@bench.localhost", photos, count))
        return count / (time.time() - started)


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


def _end_to_end(door: str) -> Callable[[Context], list[Result]]:
    label, answer, what = DOORS[door]

    def run(ctx: Context) -> list[Result]:
        rate_label = f"{label} → ready"
        names = [(rate_label, "photos/s"), (f"{label}: {answer} → ready p50", "s")]
        names.append((f"{label}: {answer} → ready p99", "s"))
        door_label = "photos by mail: door while processing"
        try:
            python, libvips = ensure_pyvips(ctx.cache)
        except Unavailable as exc:
            more = [(door_label, "mails/s")] if door == "mail" else []
            return unavailable(names + more, str(exc))
        count = ctx.photos or (20 if ctx.quick else 200)
        photos = Photos(media.photo_jpeg())
        size = len(photos.jpeg) / 1e6
        ctx.log(f"photos-{door}: pyvips on all cores, {count} photos of {size:.1f} MB")
        baseline, baseline_cpu = _baseline(python, ctx, photos, count)
        sink: float | Unavailable | None = None
        if door == "mail":
            try:
                ensure_postfix_tools()
                ctx.log(f"photos-mail: the same {count} mails to smtp-sink")
                sink = _sink_intake(photos, count)
            except Unavailable as exc:
                sink = exc
        clients_text = f"{SESSIONS} SMTP sessions" if door == "mail" else f"{UPLOADERS} clients"
        ctx.log(f"photos-{door}: {count} photos, {clients_text}, to relay serve (defaults)")
        run = _relay(ctx, photos, count, door)
        note = (
            f"{count} {what} of a {size:.1f} MB 12 MP JPEG, {clients_text}, default relay "
            f"serve; baseline pyvips (libvips {libvips}) on all cores; intake {run.intake:.1f} "
            f"photos/s; CPU per photo: relay {run.cpu * 1000:.0f} ms (whole process tree; "
            f"{run.main_cpu * 1000:.0f} ms in the main process), "
            f"pyvips {baseline_cpu * 1000:.0f} ms"
        )
        results = [
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
                Result(name, "s", relay=run.percentile(q), note=f"{count} photos")
                for (name, _), q in zip(names[1:], (0.5, 0.99), strict=True)
            ),
        ]
        if isinstance(sink, Unavailable):
            results += unavailable([(door_label, "mails/s")], str(sink))
        elif sink is not None:
            results.append(
                Result(
                    door_label,
                    "mails/s",
                    relay=run.intake,
                    baseline=sink,
                    target=Target(">=", 0.9),
                    note=f"the same {count} mails from the same client ({SESSIONS} sessions): "
                    "relay (workers processing what arrives) vs smtp-sink; one run each",
                )
            )
        return results

    return run


Side = tuple[str, dict[str, str]]
"""A relay compared: its name in the note, and its settings over the defaults."""


def _compare(
    door: str, row: str, sides: Callable[[], contextlib.AbstractContextManager[list[Side]]]
) -> Callable[[Context], list[Result]]:
    """Two relay runs on the same photos through ``door``: the row's baseline with the first of
    ``sides()``, its relay figure with the second."""
    _, answer, what = DOORS[door]
    unit = "photos/s"

    def run(ctx: Context) -> list[Result]:
        count = ctx.photos or (20 if ctx.quick else COMPARED)
        photos = Photos(media.photo_jpeg())
        try:
            with sides() as compared:
                runs = []
                for name, env in compared:
                    ctx.log(f"{row}: {count} photos by {door}, relay serve on {name}")
                    runs.append(_relay(ctx, photos, count, door, **env))
        except Unavailable as exc:
            return unavailable([(row, unit)], str(exc))
        base, relay = runs
        names = [name for name, _ in compared]
        note = f"{count} {what} of a 12 MP JPEG, one run each; " + "; ".join(
            f"{name}: CPU per photo {r.cpu * 1000:.0f} ms ({r.main_cpu * 1000:.0f} ms main "
            f"process), {answer} → ready p50 {r.percentile(0.5):.1f} s, p99 "
            f"{r.percentile(0.99):.1f} s, intake {r.intake:.1f} photos/s"
            for name, r in zip(names, (base, relay), strict=True)
        )
        target = Target(">=", 0.8) if "postgres" in row.lower() else None
        return [
            Result(
                row,
                unit,
                relay=relay.rate,
                baseline=base.rate,
                target=target,
                memory_mb=relay.growth_mb,
                note=note,
            )
        ]

    return run


@contextlib.contextmanager
def _sqlite_postgres() -> Iterator[list[Side]]:
    with postgres_database() as url:  # made first: no server, no SQLite run for nothing
        yield [("SQLite", {}), ("PostgreSQL", {"RELAY_DATABASE_URL": url})]


@contextlib.contextmanager
def _one_two_workers() -> Iterator[list[Side]]:
    yield [("1 worker", {"RELAY_WORKERS": "1"}), ("2 workers", {"RELAY_WORKERS": "2"})]


SCENARIOS = [
    Scenario(
        "photos-mail",
        "photos",
        "N mails of a 12 MP photo over 20 sessions → all ready: relay vs pyvips on all cores",
        _end_to_end("mail"),
    ),
    Scenario(
        "photos-http",
        "photos",
        "N raw uploads of a 12 MP photo from 4 clients → all ready: relay vs pyvips",
        _end_to_end("http"),
    ),
    Scenario(
        "photos-mail-postgres",
        "photos",
        "photos-mail's mails → all ready on PostgreSQL vs on SQLite, same run",
        _compare("mail", "photos by mail → ready, PostgreSQL vs SQLite", _sqlite_postgres),
    ),
    Scenario(
        "photos-http-postgres",
        "photos",
        "photos-http's uploads → all ready on PostgreSQL vs on SQLite, same run",
        _compare("http", "photos by upload → ready, PostgreSQL vs SQLite", _sqlite_postgres),
    ),
    Scenario(
        "photos-workers",
        "photos",
        "photos-mail's mails → all ready with RELAY_WORKERS=2 vs 1, same run",
        _compare("mail", "photos by mail → ready, 2 workers vs 1", _one_two_workers),
    ),
]
