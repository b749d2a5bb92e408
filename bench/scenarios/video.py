"""Video: 30 s 1080p clips (5 s with ``--quick``) through ``handlers.video.VideoHandler``.

- H.264 in Matroska and HEVC in QuickTime are transcoded. The relay's figure is the handler's
  whole ``process`` (probe, transcode, probe of the result, poster, served original); the
  baseline is the ffmpeg command line with the very argument list the handler builds
  (``transcode_args``), on the same input.
- A 10-bit HLG HEVC clip is tone-mapped to SDR (``tone_map``): the same comparison, with the
  same filter graph in the CLI's argv.
- A web-ready MP4 is remuxed. Its figure is the handler's speed in seconds of media per CPU
  second, against the speed of transcoding the same file with the same ffmpeg arguments.

Figures are CPU seconds (user + system, of this process and the ffmpeg processes it waited
for), not wall seconds: on a machine shared with other work a transcode's wall time moved by 2×
from run to run, its CPU time by a few percent. Wall seconds are in the notes. Memory is the
growth of this process's tree (the handler's ffmpeg children) over idle.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import media
from bench.harness import Context, MemorySampler, Result, Target, unavailable
from bench.scenarios import Scenario


def _missing() -> str | None:
    if importlib.util.find_spec("handlers.video") is None:
        return "handlers/video.py does not exist yet"
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        return "ffmpeg/ffprobe not installed"
    return None


def _job(source: Path, workdir: Path) -> Any:
    from relay.config import Settings
    from relay.detect import sniff
    from relay.model import HandlerInput, Limits

    settings = Settings()
    return HandlerInput(
        source=source,
        mime=sniff(source),
        filename=source.name,
        workdir=workdir,
        limits=Limits(
            max_pixels=settings.max_image_pixels,
            max_duration=settings.max_duration_seconds,
            timeout=settings.processing_timeout_seconds,
        ),
        options={
            "video_crf": settings.video_crf,
            "video_preset": settings.video_preset,
            "ffmpeg_memory_bytes": settings.ffmpeg_memory_bytes,
            # The CLI baseline runs the handler's argv without a loudness pass; what loudness
            # costs is bench/scenarios/loudness.py's to measure.
            "audio_loudness_lufs": None,
        },
    )


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


async def _handler(source: Path, workdir: Path) -> tuple[float, float, list[str]]:
    """(CPU seconds, wall seconds, renditions made) of the handler on ``source``."""
    from handlers.video import VideoHandler

    shutil.rmtree(workdir, ignore_errors=True)
    cpu, started = _cpu(), time.perf_counter()
    output = await VideoHandler().process(_job(source, workdir))
    return _cpu() - cpu, time.perf_counter() - started, [r.name for r in output.renditions]


async def _cli_args(source: Path, workdir: Path) -> list[str]:
    """The handler's own transcode argument list for this input."""
    from handlers import ffmpeg as av
    from handlers import video

    job = _job(source, workdir)
    demuxer = av.demuxer_for(job.mime)
    probed = await av.probe(source, demuxer, timeout=60, memory_bytes=av.MEMORY_BYTES)
    return video.transcode_args(job, demuxer, probed, workdir / "cli.mp4")


def _cli(args: list[str], workdir: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the ffmpeg command line."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cpu, started = _cpu(), time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    return _cpu() - cpu, time.perf_counter() - started


def _transcode(
    codec: str, name: str, target: float = 1.05, seconds: tuple[int, int] = (30, 5)
) -> Scenario:
    """``seconds``: the clip's length in a full run and with ``--quick``."""
    label = f"video {codec} 1080p → web MP4"

    def run(ctx: Context) -> list[Result]:
        reason = _missing()
        if reason:
            return unavailable([(label, "CPU s")], reason)
        length = seconds[1] if ctx.quick else seconds[0]
        source = media.clip(ctx.cache, name, length)
        work = ctx.scratch(f"video-{codec}")
        try:
            args = asyncio.run(_cli_args(source, work / "cli"))
            ctx.log(f"video {codec}: ffmpeg CLI, {length} s clip")
            cli, cli_wall = _cli(args, work / "cli")
            ctx.log(f"video {codec}: relay handler")
            with MemorySampler(os.getpid(), idle_seconds=0.2) as memory:
                relay, relay_wall, made = asyncio.run(_handler(source, work / "relay"))
        finally:
            ctx.drop(work)
        return [
            Result(
                label,
                "CPU s",
                relay=relay,
                baseline=cli,
                target=Target("<=", target),
                memory_mb=memory.growth_mb,
                note=f"{length} s {name}, same ffmpeg argv; handler made {'+'.join(made)}; "
                f"wall {relay_wall:.1f} s vs {cli_wall:.1f} s",
            )
        ]

    return Scenario(f"video-{codec}", "video", f"{codec} 1080p: handler vs ffmpeg CLI", run)


def _remux(ctx: Context) -> list[Result]:
    label = "video web-ready MP4: remux vs transcode"
    reason = _missing()
    if reason:
        return unavailable([(label, "s media/CPU s")], reason)
    seconds = 5 if ctx.quick else 30
    source = media.clip(ctx.cache, "web.mp4", seconds)
    work = ctx.scratch("video-remux")
    try:
        ctx.log("video remux: transcode of the same file (ffmpeg CLI)")
        transcode, transcode_wall = _cli(asyncio.run(_cli_args(source, work / "cli")), work / "cli")
        ctx.log("video remux: relay handler")
        with MemorySampler(os.getpid(), idle_seconds=0.2) as memory:
            remux, remux_wall, made = asyncio.run(_handler(source, work / "relay"))
    finally:
        ctx.drop(work)
    return [
        Result(
            label,
            "s media/CPU s",
            relay=seconds / remux,
            baseline=seconds / transcode,
            target=Target(">=", 20),
            memory_mb=memory.growth_mb,
            note=f"{seconds} s clip: handler {remux:.2f} CPU s ({'+'.join(made)}), "
            f"transcode {transcode:.1f} CPU s; wall {remux_wall:.1f} s vs {transcode_wall:.1f} s",
        )
    ]


SCENARIOS = [
    _transcode("h264", "h264.mkv"),
    _transcode("hevc", "hevc.mov"),
    # HLG tone-mapped to SDR: the baseline runs the same filter graph (zscale + tonemap) on the
    # same clip, so the ratio is what the relay adds around it. Float tone mapping of 1080p is
    # slow on 2 cores: a short clip.
    _transcode("hlg", "hlg.mov", target=1.1, seconds=(10, 3)),
    Scenario("video-remux", "video", "web-ready MP4: handler remux vs transcode", _remux),
]
