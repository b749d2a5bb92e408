"""Live: a phone's broadcast over RTMP into ``relay serve`` (relay/intake/live.py), against
ffmpeg alone doing the same work (``ffmpeg -listen 1 -i rtmp://…`` with the very HLS output
arguments the relay gives its ffmpeg, ``hls_output_args``), in the same run.

The sender is ffmpeg pushing a file made once (``-re -c copy``), so the sender's own encoding
is not in any figure:
- ``live first segment``: wall seconds from the sender's start to the first segment listed in
  the live playlist (the relay's includes the key check and making the post). Target: ≤ 4 s.
- ``live passthrough CPU``: 1080p30 H.264 at 6 Mbit/s with AAC, passed through: CPU of the
  relay's process tree (Python and its ffmpeg) as % of one core over the broadcast, against
  ffmpeg alone. Target: ≤ 5 % of a core.
- ``live transcode CPU``: 720p Sorenson Spark with MP3 (not H.264/AAC), transcoded: the same,
  as a ratio. Target: ≤ 1.05×.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import (
    Context,
    MemorySampler,
    Result,
    Target,
    relay_pid,
    relay_serve,
    tree,
    unavailable,
)
from bench.scenarios import Scenario
from tests.server import free_port

POLL = 0.02


def _source(ctx: Context, name: str, size: str, seconds: int, codecs: list[str]) -> Path:
    path = ctx.cache / f"live-{name}-{seconds}s.flv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-t", str(seconds), *codecs, "-f", "flv", str(path)],
            check=True, timeout=600,
        )  # fmt: skip
    return path


def _push(source: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(source),
         "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _first_playlist(folder: Path) -> Path | None:
    found = sorted(folder.glob("**/index.m3u8"))
    return found[0] if found else None


def _has_segment(playlist: Path | None) -> bool:
    if playlist is None or not playlist.exists():
        return False
    return any(line.endswith(".ts") for line in playlist.read_text().splitlines())


def _cpu_with_children(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its children it has waited for (an ffmpeg
    that ended is counted in its parent), and of its live descendants."""
    total = 0.0
    for each in tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _ffmpeg_running(pid: int) -> bool:
    for each in tree(pid)[1:]:
        with contextlib.suppress(OSError):
            if b"ffmpeg" in Path(f"/proc/{each}/cmdline").read_bytes():
                return True
    return False


def _broadcast(
    pusher: subprocess.Popen[bytes],
    folder: Path,
    pid: int,
    seconds: float,
    done: Callable[[], bool],
) -> tuple[float, float]:
    """Wait out one broadcast until ``done``: (seconds from the sender's start to the first
    segment listed, CPU seconds of ``pid``'s tree per second of media, as % of one core)."""
    started = time.monotonic()
    cpu_start = _cpu_with_children(pid)
    first: float | None = None
    cpu = 0.0
    while pusher.poll() is None or not done():
        if first is None and _has_segment(_first_playlist(folder)):
            first = time.monotonic() - started
        cpu = max(cpu, _cpu_with_children(pid) - cpu_start)
        if time.monotonic() - started > seconds + 120:
            raise RuntimeError("the broadcast did not end")
        time.sleep(POLL if first is None else 0.1)
    cpu = max(cpu, _cpu_with_children(pid) - cpu_start)
    if pusher.returncode != 0:
        raise RuntimeError(f"the sender failed: {pusher.stderr.read() if pusher.stderr else ''}")
    if first is None:
        first = time.monotonic() - started if _has_segment(_first_playlist(folder)) else None
    if first is None:
        raise RuntimeError("no segment at all")
    return first, 100 * cpu / seconds


def _relay(ctx: Context, source: Path, name: str, seconds: float) -> tuple[float, float, float]:
    folder = ctx.scratch(f"live-relay-{name}")
    try:
        # No workers: the replay's processing after the end is the video scenario's business.
        with relay_serve(folder / "relay", RELAY_WORKERS="0") as server:
            server.add_user("bench")
            out = server.cli("live", "key", "add", "--user", "bench", "--json").stdout
            url = json.loads(out)["rtmp_url"]
            pid = relay_pid(server)
            time.sleep(1.0)  # idle first, as the baseline starts idle
            with MemorySampler(pid) as memory:
                pusher = _push(source, url)
                time.sleep(0.5)  # its ffmpeg starts once the first tags are in

                def done() -> bool:
                    return not _ffmpeg_running(pid)

                first, cpu = _broadcast(pusher, folder / "relay" / "live", pid, seconds, done)
            return first, cpu, memory.growth_mb
    finally:
        ctx.drop(folder)


def _baseline(
    ctx: Context, source: Path, name: str, passthrough: bool, seconds: float
) -> tuple[float, float]:
    from relay.intake.live import hls_output_args

    folder = ctx.scratch(f"live-ffmpeg-{name}")
    port = free_port()
    listener = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error",
         "-listen", "1", "-f", "flv", "-i", f"rtmp://127.0.0.1:{port}/live/bench",
         *hls_output_args(folder, passthrough)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.nice(5),  # as the relay runs its ffmpeg: the same scheduling
    )  # fmt: skip
    try:
        time.sleep(1.0)  # listening
        pusher = _push(source, f"rtmp://127.0.0.1:{port}/live/bench")
        return _broadcast(
            pusher, folder, listener.pid, seconds, lambda: listener.poll() is not None
        )
    finally:
        try:
            listener.wait(30)
        except subprocess.TimeoutExpired:
            listener.kill()
            listener.wait()
        ctx.drop(folder)


NAMES = [
    ("live first segment", "s"),
    ("live passthrough CPU", "% core"),
    ("live transcode CPU", "% core"),
]


def _run(ctx: Context) -> list[Result]:
    if shutil.which("ffmpeg") is None:
        return unavailable(NAMES, "ffmpeg not installed")
    seconds = 6 if ctx.quick else 20
    h264 = _source(
        ctx, "1080p-6M", "1920x1080", seconds,
        ["-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-maxrate", "6M",
         "-bufsize", "12M", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"],
    )  # fmt: skip
    spark = _source(
        ctx, "720p-spark", "1280x720", seconds,
        ["-c:v", "flv", "-b:v", "3M", "-g", "60", "-c:a", "libmp3lame", "-b:a", "128k"],
    )  # fmt: skip
    base_first, base_cpu = _baseline(ctx, h264, "passthrough", True, seconds)
    first, cpu, memory = _relay(ctx, h264, "passthrough", seconds)
    base_t_first, base_t_cpu = _baseline(ctx, spark, "transcode", False, seconds)
    t_first, t_cpu, t_memory = _relay(ctx, spark, "transcode", seconds)
    note = f"{seconds} s pushed with ffmpeg -re -c copy; CPU of the process tree per media second"
    return [
        Result(
            "live first segment",
            "s",
            relay=first,
            baseline=base_first,
            target=Target("<=", 4.0, on="relay", unit="s"),
            note=f"1080p H.264/AAC passed through; transcoded: relay {t_first:.2f} s, "
            f"ffmpeg alone {base_t_first:.2f} s",
        ),
        Result(
            "live passthrough CPU",
            "% core",
            relay=cpu,
            baseline=base_cpu,
            target=Target("<=", 5.0, on="relay", unit="% core"),
            memory_mb=memory,
            note=f"1080p30 H.264 6 Mbit/s + AAC; {note}",
        ),
        Result(
            "live transcode CPU",
            "% core",
            relay=t_cpu,
            baseline=base_t_cpu,
            target=Target("<=", 1.05),
            memory_mb=t_memory,
            note=f"720p30 Sorenson Spark 3 Mbit/s + MP3 → H.264/AAC; {note}",
        ),
    ]


SCENARIOS = [Scenario("live", "live", "RTMP broadcast → live HLS: first segment, CPU", _run)]
