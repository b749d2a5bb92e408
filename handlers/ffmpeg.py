"""The one door to ffmpeg and ffprobe; the only module that imports ffmpeg-python.

ffmpeg-python (unmaintained since 2019) is used only to build argument lists; running them is
ours: an asyncio subprocess in a session of its own, at nice 19 under an address-space limit,
with a timeout, and the whole process group killed on timeout, on cancellation (the relay cancels
its workers on shutdown) or on any error while we wait.

Every input is opened as ``file:PATH`` with ``-protocol_whitelist file,pipe`` and the demuxer
forced from ``DEMUXERS``, keyed by the sniffed type: a text playlist named ``clip.mp4`` is read by
the MP4 demuxer and rejected, never followed. No playlist or indirection demuxer (hls, concat,
image2, …) is on that list.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import resource
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import ffmpeg

from relay.errors import LimitExceeded, MediaError
from relay.model import Limits

PROTOCOLS: Final = "file,pipe"

DEMUXERS: Final[dict[str, str]] = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "video/x-m4v": "mov",
    "video/3gpp": "mov",
    "video/3gpp2": "mov",
    "video/webm": "matroska",
    "video/x-matroska": "matroska",
    "video/x-msvideo": "avi",
    "video/avi": "avi",
    "video/mp2t": "mpegts",
    "video/mpeg": "mpeg",
    "video/x-flv": "flv",
    "video/ogg": "ogg",
    "audio/mp4": "mov",
    "audio/x-m4a": "mov",
    "audio/webm": "matroska",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/amr": "amr",
    "audio/aac": "aac",
    "audio/x-hx-aac-adts": "aac",
    "audio/x-aiff": "aiff",
}
"""Sniffed type → the only demuxer ffmpeg may use on it."""

ALLOWED_DEMUXERS: Final = frozenset(DEMUXERS.values())

MEMORY_BYTES: Final = 2 << 30
"""Default address-space limit of one ffmpeg/ffprobe process."""

_PROBE_SECONDS: Final = 30.0
_BASE_SECONDS: Final = 60.0
_SECONDS_PER_SECOND: Final = 10.0
"""Transcoding budget per second of media: 4K HEVC decodes at a fraction of real time on two
cores; the relay's own processing timeout caps it in any case."""
_STDERR_TAIL: Final = 4000
_PROBE_MAX_BYTES: Final = 8 << 20
_GLOBAL_ARGS: Final = ("-nostdin", "-hide_banner", "-loglevel", "error", "-nostats")


def demuxer_for(mime: str) -> str:
    demuxer = DEMUXERS.get(mime.lower())
    if demuxer is None:
        raise MediaError("media.unsupported", f"no demuxer allowed for {mime}")
    return demuxer


def memory_limit(options: dict[str, Any]) -> int:
    """The address-space limit of one ffmpeg process, from the handler options."""
    try:
        return max(0, int(options.get("ffmpeg_memory_bytes", MEMORY_BYTES)))
    except (TypeError, ValueError):
        return MEMORY_BYTES


def budget(duration: float | None, cap: float) -> float:
    """Seconds one ffmpeg run over ``duration`` seconds of media may take, at most ``cap``."""
    if duration is None:
        return cap
    return min(cap, _BASE_SECONDS + _SECONDS_PER_SECOND * duration)


# --- building argument lists ----------------------------------------------------------------


def open_input(path: Path, demuxer: str, **options: Any) -> Any:
    """An ffmpeg-python input node that can only read ``path`` with ``demuxer``."""
    if demuxer not in ALLOWED_DEMUXERS:
        raise ValueError(f"demuxer {demuxer!r} is not allowed")
    # "file:" keeps a name with a colon from being read as another protocol's URL.
    return ffmpeg.input(
        f"file:{path.resolve()}", f=demuxer, protocol_whitelist=PROTOCOLS, **options
    )


def output(*streams: Any, path: Path, muxer: str, **options: Any) -> Any:
    return ffmpeg.output(*streams, f"file:{path.resolve()}", f=muxer, **options)


def output_folder(*streams: Any, playlist: Path, **options: Any) -> Any:
    """An output that writes a folder of files (the hls muxer): named without ``file:``, since
    the muxer makes the folders of its segment names itself and would make one named ``file:``
    in the working directory. Only our own work folders are written so, never a name we got."""
    path = str(playlist.resolve())
    if ":" in path:
        raise ValueError(f"output folder {path!r} has a colon")
    return ffmpeg.output(*streams, path, **options)


def compile_args(node: Any, loglevel: str = "error") -> list[str]:
    """The argv for an output node, global options first, reporting progress on stdout.
    ``loglevel="info"``: a run whose filters report what they measured (``transcode`` gives
    the end of the log)."""
    args = ffmpeg.compile(node, cmd="ffmpeg", overwrite_output=True)
    globals_ = [*_GLOBAL_ARGS]
    globals_[globals_.index("-loglevel") + 1] = loglevel
    return [args[0], *globals_, "-progress", "pipe:1", *args[1:]]


def probe_args(path: Path, demuxer: str) -> list[str]:
    if demuxer not in ALLOWED_DEMUXERS:
        raise ValueError(f"demuxer {demuxer!r} is not allowed")
    # ffprobe is not ffmpeg-python's to build; the list mirrors open_input's.
    return [
        "ffprobe",
        "-hide_banner",
        "-loglevel",
        "error",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "-f",
        demuxer,
        "-protocol_whitelist",
        PROTOCOLS,
        "-i",
        f"file:{path.resolve()}",
    ]


# --- what ffprobe says -----------------------------------------------------------------------


HDR_TRANSFERS: Final = frozenset({"arib-std-b67", "smpte2084"})
"""HLG and PQ, as ffprobe names them."""


@dataclass(frozen=True, slots=True)
class VideoStream:
    index: int
    codec: str
    profile: str
    pix_fmt: str
    width: int
    height: int
    fps: float | None
    rotation: int
    """Display rotation, a multiple of 90 in 0..270 (anything else counts as 0)."""
    sar: Fraction
    field_order: str
    color_transfer: str = ""
    """ffprobe's name of the transfer function: ``arib-std-b67`` is HLG, ``smpte2084`` is PQ."""
    color_primaries: str = ""

    @property
    def hdr(self) -> bool:
        """HLG or PQ (HDR10): shown as it is, it looks washed out on an SDR screen."""
        return self.color_transfer in HDR_TRANSFERS

    @property
    def displayed(self) -> tuple[int, int]:
        """Width and height as a player shows them: square pixels, rotation applied."""
        width = round(self.width * self.sar) if self.sar > 0 else self.width
        return (self.height, width) if self.rotation in (90, 270) else (width, self.height)


@dataclass(frozen=True, slots=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True, slots=True)
class Probe:
    format_name: str
    duration: float | None
    video: VideoStream | None
    """The first video stream that is not cover art."""
    audio: AudioStream | None
    identifying: bool
    """Location tags or timed metadata tracks: the original must not be served as it came."""


async def probe(path: Path, demuxer: str, *, timeout: float, memory_bytes: int) -> Probe:
    result = await _execute(
        probe_args(path, demuxer),
        timeout=min(timeout, _PROBE_SECONDS),
        memory_bytes=memory_bytes,
        collect_stdout=True,
    )
    if result.returncode != 0:
        raise MediaError("media.corrupt", f"ffprobe: {result.stderr_tail}")
    try:
        data = json.loads(result.stdout)
        return parse_probe(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MediaError("media.corrupt", f"ffprobe output: {exc!r}") from None


async def format_tags(
    path: Path, demuxer: str, *, timeout: float, memory_bytes: int
) -> dict[str, str]:
    """The container's metadata tags as ffprobe reads them (a Live Photo's MOV carries Apple's
    ``com.apple.quicktime.content.identifier`` there); empty when it cannot be read."""
    result = await _execute(
        probe_args(path, demuxer),
        timeout=min(timeout, _PROBE_SECONDS),
        memory_bytes=memory_bytes,
        collect_stdout=True,
    )
    if result.returncode != 0:
        return {}
    try:
        tags = (json.loads(result.stdout).get("format") or {}).get("tags") or {}
    except (ValueError, AttributeError):
        return {}
    return {str(key): str(value) for key, value in tags.items()} if isinstance(tags, dict) else {}


def parse_probe(data: dict[str, Any]) -> Probe:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = audio = None
    durations = [_float(fmt.get("duration"))]
    identifying = _locating(fmt.get("tags"))
    for s in streams:
        kind = s.get("codec_type")
        identifying = identifying or kind == "data" or _locating(s.get("tags"))
        cover_art = bool((s.get("disposition") or {}).get("attached_pic"))
        if kind == "video" and video is None and not cover_art:
            video = _video_stream(s)
            durations.append(_float(s.get("duration")))
        elif kind == "audio" and audio is None:
            audio = AudioStream(
                index=int(s["index"]),
                codec=str(s.get("codec_name") or ""),
                channels=int(s.get("channels") or 0),
                sample_rate=int(s.get("sample_rate") or 0),
            )
            durations.append(_float(s.get("duration")))
    if video is None and audio is None:
        raise MediaError("media.corrupt", "no audio or video stream")
    known = [d for d in durations if d is not None and d > 0]
    return Probe(
        format_name=str(fmt.get("format_name") or ""),
        duration=known[0] if known else None,
        video=video,
        audio=audio,
        identifying=identifying,
    )


def _video_stream(s: dict[str, Any]) -> VideoStream:
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError("media.corrupt", f"video stream of {width}x{height}")
    return VideoStream(
        index=int(s["index"]),
        codec=str(s.get("codec_name") or ""),
        profile=str(s.get("profile") or ""),
        pix_fmt=str(s.get("pix_fmt") or ""),
        width=width,
        height=height,
        fps=_rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")),
        rotation=_rotation(s),
        sar=_rate(s.get("sample_aspect_ratio"), ":") or Fraction(1),
        field_order=str(s.get("field_order") or "progressive"),
        color_transfer=str(s.get("color_transfer") or ""),
        color_primaries=str(s.get("color_primaries") or ""),
    )


def _rotation(s: dict[str, Any]) -> int:
    angle: Any = (s.get("tags") or {}).get("rotate")
    for side in s.get("side_data_list") or []:
        if "rotation" in side:
            angle = side["rotation"]
    value = _float(angle)
    if value is None or value % 90:
        return 0
    return int(value) % 360


def _rate(value: Any, sep: str = "/") -> Fraction | None:
    try:
        num, _, den = str(value).partition(sep)
        rate = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _locating(tags: Any) -> bool:
    if not isinstance(tags, dict):
        return False
    return any(
        word in str(key).lower() for key in tags for word in ("location", "xyz", "gps", "6709")
    )


def refuse_over_limits(probed: Probe, limits: Limits) -> None:
    """Refuse what is too long or too large before anything is decoded."""
    if probed.duration is not None and probed.duration > limits.max_duration:
        raise LimitExceeded(
            "media.too_long", f"{probed.duration:.1f}s over {limits.max_duration:.0f}s"
        )
    video = probed.video
    if video is not None and video.width * video.height > limits.max_pixels:
        raise LimitExceeded(
            "media.too_many_pixels",
            f"{video.width}x{video.height} over {limits.max_pixels} pixels",
        )


# --- running -----------------------------------------------------------------------------------


async def transcode(
    args: list[str],
    *,
    timeout: float,
    memory_bytes: int,
    duration: float | None = None,
    progress: Callable[[float], None] | None = None,
    max_seconds: float | None = None,
) -> str:
    """Run an ffmpeg argv from ``compile_args``; report the fraction done from ``-progress``;
    give the end of its log.

    ``max_seconds`` stops a clip whose header understated its length once the output passes it.
    """

    def on_line(line: str) -> None:
        key, _, value = line.partition("=")
        if key != "out_time_us" or not value.strip().lstrip("-").isdigit():
            return
        seconds = int(value) / 1e6
        if max_seconds is not None and seconds > max_seconds:
            raise LimitExceeded("media.too_long", f"output passed {max_seconds:.0f}s")
        if progress is not None and duration:
            progress(max(0.0, min(1.0, seconds / duration)))

    result = await _execute(args, timeout=timeout, memory_bytes=memory_bytes, on_line=on_line)
    if result.returncode != 0:
        tail = result.stderr_tail
        if result.returncode < 0 or "Cannot allocate memory" in tail:
            raise MediaError("media.failed", f"ffmpeg exit {result.returncode}: {tail}")
        raise MediaError("media.corrupt", f"ffmpeg exit {result.returncode}: {tail}")
    return result.stderr_tail


@dataclass(frozen=True, slots=True)
class _Result:
    returncode: int
    stdout: bytes
    stderr_tail: str


def _limit_child(memory_bytes: int) -> None:
    # Runs in the forked child before exec: only two system calls, nothing that takes a lock.
    # The lowest priority, as the media workers (relay/workpool.py MEDIA_NICE): the doors first.
    os.nice(19)
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _child_env() -> dict[str, str]:
    # glibc reserves 64 MiB of address space per malloc arena and thread; with many cores that
    # alone would exhaust RLIMIT_AS. Nothing else from our environment (proxies, ...) is passed.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MALLOC_ARENA_MAX": "2", "LC_ALL": "C"}


async def _execute(
    args: list[str],
    *,
    timeout: float,
    memory_bytes: int,
    on_line: Callable[[str], None] | None = None,
    collect_stdout: bool = False,
) -> _Result:
    program = shutil.which(args[0])
    if program is None:
        raise RuntimeError(f"{args[0]} is not installed")  # the queue retries; doctor says why
    process = await asyncio.create_subprocess_exec(
        program,
        *args[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=functools.partial(_limit_child, memory_bytes),
        env=_child_env(),
    )
    try:
        async with asyncio.timeout(max(0.01, timeout)):
            stdout, tail = await asyncio.gather(
                _read_stdout(process.stdout, on_line, collect_stdout), _tail(process.stderr)
            )
            returncode = await process.wait()
    except BaseException as exc:  # timeout, cancellation, a limit passed, anything
        await _kill_group(process)
        if isinstance(exc, TimeoutError):
            raise MediaError("media.timeout", f"{args[0]} over {timeout:.1f}s") from None
        raise
    return _Result(returncode, stdout, tail)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The child leads its own session, so its pid is the group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    # SIGKILL is quick; waiting lets the pipes close while the event loop still runs. A second
    # cancellation still goes through; asyncio's child watcher reaps the child in any case.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), 5)


async def _read_stdout(
    stream: asyncio.StreamReader | None, on_line: Callable[[str], None] | None, collect: bool
) -> bytes:
    assert stream is not None
    if collect:
        data = bytearray()
        while chunk := await stream.read(1 << 16):
            data += chunk
            if len(data) > _PROBE_MAX_BYTES:
                raise MediaError("media.corrupt", "ffprobe's description is implausibly long")
        return bytes(data)
    while line := await stream.readline():
        if on_line is not None:
            on_line(line.decode("ascii", "replace").strip())
    return b""


async def _tail(stream: asyncio.StreamReader | None) -> str:
    assert stream is not None
    kept: collections.deque[bytes] = collections.deque()
    size = 0
    while chunk := await stream.read(1 << 14):
        kept.append(chunk)
        size += len(chunk)
        while size - len(kept[0]) >= _STDERR_TAIL:
            size -= len(kept.popleft())
    return b"".join(kept)[-_STDERR_TAIL:].decode("utf-8", "replace").strip()
