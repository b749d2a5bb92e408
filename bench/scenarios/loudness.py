"""Loudness (handlers/loudness.py): what measuring and normalising the sound costs.

- A 1080p H.264 clip in Matroska (transcoded, 30 s; 5 s with ``--quick``) through the video
  handler with ``RELAY_AUDIO_LOUDNESS_LUFS`` at its default (-16: an ``ebur128`` pass over the
  audio alone, then one gain, or ``loudnorm`` where one gain would clip, in the transcode)
  against the same handler with it off.
- A web-ready 1080p MP4 (remuxed, its sound copied): the cost of only measuring it.
- A voice memo (WAV, 48 kHz stereo, a tone under noise; 10 min, 2 min with ``--quick``) through
  the audio handler to AAC, the same two ways. Audio alone is where loudnorm weighs most: the
  AAC encode is cheap and loudnorm works at 192 kHz.

Figures are CPU seconds (this process and the ffmpeg processes it waited for), as in
bench/scenarios/video.py; the baseline is the handler without loudness, in the same run.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import media
from bench.harness import Context, Result, Target, unavailable
from bench.scenarios import Scenario


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


def _memo(folder: Path, seconds: int) -> Path:
    target = folder / f"{seconds}s-memo.wav"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name("." + target.name)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=48000:duration={seconds}",
             "-f", "lavfi", "-i",
             f"anoisesrc=color=pink:amplitude=0.05:sample_rate=48000:duration={seconds}",
             "-filter_complex", "[0][1]amix=inputs=2,volume=-12dB", "-ac", "2",
             "-c:a", "pcm_s16le", "-f", "wav", str(tmp)],
            check=True,
            timeout=600,
        )  # fmt: skip
        tmp.rename(target)
    return target


async def _run(kind: str, source: Path, workdir: Path, loudness: float | None) -> float:
    """CPU seconds of the handler on ``source`` (``kind`` "audio": the audio handler)."""
    from handlers.audio import AudioHandler
    from handlers.video import VideoHandler
    from relay.detect import sniff
    from relay.model import HandlerInput

    shutil.rmtree(workdir, ignore_errors=True)
    options: dict[str, Any] = {"audio_loudness_lufs": loudness}
    job = HandlerInput(source, sniff(source), source.name, workdir, options=options)
    handler = AudioHandler() if kind == "audio" else VideoHandler()
    cpu = _cpu()
    await handler.process(job)
    return _cpu() - cpu


def _compare(kind: str, label: str, make: Any, target: Target | None) -> Scenario:
    def run(ctx: Context) -> list[Result]:
        if shutil.which("ffmpeg") is None:
            return unavailable([(label, "CPU s")], "ffmpeg not installed")
        source, seconds = make(ctx)
        what = "ebur128 only (sound copied)" if kind == "remux" else "ebur128, gain to -16 LUFS"
        work = ctx.scratch(f"loudness-{kind}")
        best: dict[str, float] = {}
        walls: dict[str, float] = {}
        try:
            for _ in range(ctx.rounds):
                for name, lufs in (("off", None), ("on", -16.0)):
                    ctx.log(f"loudness {kind}: handler, loudness {name}")
                    started = time.perf_counter()
                    cpu = asyncio.run(_run(kind, source, work / name, lufs))
                    walls[name] = time.perf_counter() - started
                    best[name] = min(best.get(name, cpu), cpu)
        finally:
            ctx.drop(work)
        return [
            Result(
                label,
                "CPU s",
                relay=best["on"],
                baseline=best["off"],
                target=target,
                note=f"{seconds} s {source.name.split('-', 1)[1]}; {what} "
                f"against the same handler with RELAY_AUDIO_LOUDNESS_LUFS=off; best of "
                f"{ctx.rounds}; wall {walls['on']:.1f} s vs {walls['off']:.1f} s",
            )
        ]

    return Scenario(f"loudness-{kind}", "loudness", label, run)


def _video_clip(ctx: Context) -> tuple[Path, int]:
    seconds = 5 if ctx.quick else 30
    return media.clip(ctx.cache, "h264.mkv", seconds), seconds


def _web_clip(ctx: Context) -> tuple[Path, int]:
    seconds = 5 if ctx.quick else 30
    return media.clip(ctx.cache, "web.mp4", seconds), seconds


def _audio_memo(ctx: Context) -> tuple[Path, int]:
    seconds = 120 if ctx.quick else 600
    return _memo(ctx.cache, seconds), seconds


SCENARIOS = [
    _compare(
        "video", "video h264 1080p transcode: loudness on vs off", _video_clip, Target("<=", 1.1)
    ),
    _compare("remux", "video web-ready MP4 remux: measured vs not", _web_clip, None),
    _compare("audio", "audio WAV → AAC: loudness on vs off", _audio_memo, None),
]
