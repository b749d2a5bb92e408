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

import json
import shutil
import subprocess
import time
from pathlib import Path

from bench.harness import (
    Context,
    MemorySampler,
    Result,
    Target,
    relay_pid,
    relay_serve,
    tree_cpu_seconds,
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


def _broadcast(pusher: subprocess.Popen[bytes], folder: Path, pid: int) -> tuple[float, float]:
    """Wait out one broadcast: (seconds to the first segment, CPU % of one core of ``pid``'s
    tree from the start to the sender's last moment, while its ffmpeg still runs)."""
    started = time.monotonic()
    cpu_start = tree_cpu_seconds(pid)
    first: float | None = None
    cpu, wall = 0.0, 0.0
    while pusher.poll() is None:
        if first is None and _has_segment(_first_playlist(folder)):
            first = time.monotonic() - started
        cpu, wall = tree_cpu_seconds(pid) - cpu_start, time.monotonic() - started
        time.sleep(POLL if first is None else 0.25)
    if pusher.returncode != 0:
        raise RuntimeError(f"the sender failed: {pusher.stderr.read() if pusher.stderr else ''}")
    if first is None:
        raise RuntimeError("no segment before the sender ended")
    return first, 100 * cpu / wall


def _relay(ctx: Context, source: Path, name: str) -> tuple[float, float, float]:
    folder = ctx.scratch(f"live-relay-{name}")
    try:
        with relay_serve(folder / "relay") as server:
            server.add_user("bench")
            out = server.cli("live", "key", "add", "--user", "bench", "--json").stdout
            url = json.loads(out)["rtmp_url"]
            pid = relay_pid(server)
            time.sleep(1.0)  # idle first, as the baseline starts idle
            with MemorySampler(pid) as memory:
                first, cpu = _broadcast(_push(source, url), folder / "relay" / "live", pid)
            return first, cpu, memory.growth_mb
    finally:
        ctx.drop(folder)


def _baseline(ctx: Context, source: Path, name: str, passthrough: bool) -> tuple[float, float]:
    from relay.intake.live import hls_output_args

    folder = ctx.scratch(f"live-ffmpeg-{name}")
    port = free_port()
    listener = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error",
         "-listen", "1", "-f", "flv", "-i", f"rtmp://127.0.0.1:{port}/live/bench",
         *hls_output_args(folder, passthrough)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # listening
        pusher = _push(source, f"rtmp://127.0.0.1:{port}/live/bench")
        return _broadcast(pusher, folder, listener.pid)
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
    base_first, base_cpu = _baseline(ctx, h264, "passthrough", True)
    first, cpu, memory = _relay(ctx, h264, "passthrough")
    base_t_first, base_t_cpu = _baseline(ctx, spark, "transcode", False)
    t_first, t_cpu, t_memory = _relay(ctx, spark, "transcode")
    note = f"{seconds} s pushed with ffmpeg -re -c copy; CPU of the whole process tree"
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
