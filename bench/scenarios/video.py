"""Video: 30 s 1080p clips (5 s with ``--quick``) through ``handlers.video.VideoHandler``.

- H.264 in Matroska and HEVC in QuickTime are transcoded. The relay's figure is the handler's
  whole ``process`` (probe, transcode, probe of the result, poster, served original); the
  baseline is the ffmpeg command line with the very argument list the handler builds
  (``transcode_args``), on the same input.
- A 10-bit HLG HEVC clip is tone-mapped to SDR (``tone_map``): the same comparison, with the
  same filter graph in the CLI's argv.
- The HLS ladder (``video-hls``) of the 1080p H.264 clip: the handler's ladder step against the
  CLI with the same one-process argv, and the whole handler with the ladder against without.
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


def _job(source: Path, workdir: Path, *, hls: bool = False) -> Any:
    """The handler's input as ``serve`` builds it; ``hls``: with the HLS ladder (the setting's
    default). Off for the MP4 scenarios, which compare the MP4 alone with its ffmpeg argv."""
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
            "video_hls": hls,
        },
    )


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


async def _handler(
    source: Path, workdir: Path, *, hls: bool = False
) -> tuple[float, float, list[str]]:
    """(CPU seconds, wall seconds, renditions made) of the handler on ``source``."""
    from handlers.video import VideoHandler

    shutil.rmtree(workdir, ignore_errors=True)
    cpu, started = _cpu(), time.perf_counter()
    output = await VideoHandler().process(_job(source, workdir, hls=hls))
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


async def _ladder(source: Path, workdir: Path) -> tuple[float, float, list[str]]:
    """(CPU seconds, wall seconds, ladder argv) of the handler's ladder step alone: probe, the
    ladder's ffmpeg run, the master playlist written from its segments."""
    from handlers import ffmpeg as av
    from handlers import ladder, video

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    job = _job(source, workdir, hls=True)
    seen: list[list[str]] = []
    real = av._execute

    async def recording(args: list[str], **kwargs: Any) -> Any:
        seen.append(list(args))
        return await real(args, **kwargs)

    av._execute = recording  # type: ignore[assignment]
    try:
        cpu, started = _cpu(), time.perf_counter()
        demuxer = av.demuxer_for(job.mime)
        probed = await av.probe(source, demuxer, timeout=60, memory_bytes=av.MEMORY_BYTES)
        remuxed = video.web_ready(probed, job.mime)
        await video.make_ladder(job, demuxer, probed, remuxed, 0.0)
        spent, wall = _cpu() - cpu, time.perf_counter() - started
    finally:
        av._execute = real  # type: ignore[assignment]
    [args] = [a for a in seen if ladder.HLS in a and "-var_stream_map" in a]
    return spent, wall, args


def _hls(ctx: Context) -> list[Result]:
    """The HLS ladder of a 1080p H.264 clip: the handler's ladder step against the ffmpeg CLI
    running the same one-process ladder argv (one decode, split, four encodes); and the whole
    handler with the ladder against it without (the single MP4 of before), what the ladder
    costs. Both per second of input."""
    ladder_label = "video h264 1080p → HLS ladder"
    total_label = "video h264 1080p → MP4 + ladder vs MP4 alone"
    reason = _missing()
    if reason:
        return unavailable([(ladder_label, "CPU s/s"), (total_label, "CPU s/s")], reason)
    seconds = 5 if ctx.quick else 30
    source = media.clip(ctx.cache, "h264.mkv", seconds)
    work = ctx.scratch("video-hls")
    try:
        # Relay, CLI, CLI, relay; each side's best: on a shared machine other work only ever
        # adds CPU time (caches, hyper-threads), and the order evens out a drift in the load.
        ctx.log("video hls: the handler's ladder step")
        with MemorySampler(os.getpid(), idle_seconds=0.2) as memory:
            step, step_wall, args = asyncio.run(_ladder(source, work / "step"))
        ctx.log("video hls: ffmpeg CLI, the same ladder argv, twice")
        cli, cli_wall = min(_cli(args, work / "step"), _cli(args, work / "step"))
        if not ctx.quick:
            ctx.log("video hls: the handler's ladder step again")
            step, step_wall, _ = min(
                (step, step_wall, args), asyncio.run(_ladder(source, work / "step"))
            )
        ctx.log("video hls: whole handler, MP4 alone")
        alone, alone_wall, _ = asyncio.run(_handler(source, work / "alone"))
        ctx.log("video hls: whole handler, MP4 + ladder")
        both, both_wall, made = asyncio.run(_handler(source, work / "both", hls=True))
    finally:
        ctx.drop(work)
    return [
        Result(
            ladder_label,
            "CPU s/s",
            relay=step / seconds,
            baseline=cli / seconds,
            target=Target("<=", 1.05),
            memory_mb=memory.growth_mb,
            note=f"{seconds} s h264.mkv, 1080/720/480/360 + AAC, same ffmpeg argv; "
            f"best of 2 each (relay, CLI, CLI, relay); wall {step_wall:.1f} s vs {cli_wall:.1f} s",
        ),
        Result(
            total_label,
            "CPU s/s",
            relay=both / seconds,
            baseline=alone / seconds,
            note=f"what RELAY_VIDEO_HLS costs: handler made {'+'.join(made)}; "
            f"wall {both_wall:.1f} s vs {alone_wall:.1f} s",
        ),
    ]


SCENARIOS = [
    _transcode("h264", "h264.mkv"),
    _transcode("hevc", "hevc.mov"),
    # HLG tone-mapped to SDR: the baseline runs the same filter graph (zscale + tonemap) on the
    # same clip, so the ratio is what the relay adds around it. Float tone mapping of 1080p is
    # slow on 2 cores: a short clip.
    _transcode("hlg", "hlg.mov", target=1.1, seconds=(10, 3)),
    Scenario("video-remux", "video", "web-ready MP4: handler remux vs transcode", _remux),
    Scenario("video-hls", "video", "h264 1080p: HLS ladder vs ffmpeg CLI; its cost", _hls),
]
