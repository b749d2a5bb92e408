"""The HLS ladder of a clip (rendition ``hls``): CMAF (fragmented MP4) segments of H.264 rungs at
1080, 720, 480 and 360 lines (the short side), never above the source, and one AAC audio
rendition, with a master playlist that says each rung's ``CODECS``, ``RESOLUTION``,
``BANDWIDTH`` (the peak of its segments, as RFC 8216 4.3.4.2 defines it) and ``FRAME-RATE``.

One ffmpeg process makes it all: one decode, the picture scaled (and an HDR clip tone-mapped, as
the MP4 is) once to the top rung, then ``split`` into the lower rungs' scalers and encoders, and
the hls muxer writes each output stream to its own folder (``-var_stream_map``). A clip the
video handler only remuxes keeps its bitstream as the top rung (``-c copy``); the lower rungs are
encoded from the same single decode.

The encoded rungs have a keyframe every ``SEGMENT_SECONDS`` (forced), so their segments line up
and a player switches between them on any segment boundary. Each is capped CRF: the quality of
the MP4 with a peak rate a phone on a slow network can still follow.

ffmpeg's own master playlist is not asked for: under CRF its ``BANDWIDTH`` is the audio's
alone, it writes no ``FRAME-RATE``, leaves ``CODECS`` out for a copied stream and lists the audio
as a variant of its own. The master is written here instead, from what was really made: the
codec strings from each rung's ``avcC``, the rates from the segments' sizes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from handlers import ffmpeg as av
from relay.errors import MediaError
from relay.model import HandlerInput, RenditionFile

HLS: Final = "hls"
PLAYLIST_MIME: Final = "application/vnd.apple.mpegurl"
SEGMENT_MIME: Final = "video/mp4"
MASTER: Final = "master.m3u8"
SEGMENT_SECONDS: Final = 4
RUNG_LINES: Final = (1080, 720, 480, 360)
PEAK_KBPS: Final = {1080: 6000, 720: 3000, 480: 1500, 360: 800}
"""The highest rate each rung may reach (libx264 ``maxrate``; the VBV buffer is twice it)."""
AUDIO_BITRATE: Final = "128k"
AUDIO_DIR: Final = "audio"
AAC_LC: Final = "mp4a.40.2"


@dataclass(frozen=True, slots=True)
class Rung:
    lines: int
    """The short side, as ladders name their rungs (a portrait 720 rung is 720x1280)."""
    width: int
    height: int
    copy: bool = False
    """The source's own bitstream, remuxed."""

    @property
    def name(self) -> str:
        return f"{self.lines}p"

    @property
    def peak_kbps(self) -> int:
        return next((PEAK_KBPS[lines] for lines in sorted(PEAK_KBPS) if self.lines <= lines), 6000)


def encoder_threads(most: int, cores: int | None = None) -> int:
    """Threads of one rung's encoder: libx264's own choice (1.5 a core), at most ``most`` (8
    for the top rung, 4 below). Four encoders at once, each with 1.5 threads a core and frame
    buffers per thread, pass ``RELAY_FFMPEG_MEMORY_BYTES`` (an address-space limit) on a machine
    of many cores: measured on 2 s of 1080p, the ladder needs 1.25 GiB at 3 threads a rung and
    2 GiB at 8; a small rung gains little from more threads anyway."""
    return max(1, min(most, (3 * (cores or os.cpu_count() or 1)) // 2))


def enabled(options: dict[str, Any]) -> bool:
    """``RELAY_VIDEO_HLS`` (on unless switched off)."""
    value = options.get("video_hls", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off")
    return bool(value)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _at_lines(width: int, height: int, lines: int) -> tuple[int, int]:
    scale = lines / min(width, height)
    return _even(width * scale), _even(height * scale)


def rungs(displayed: tuple[int, int], *, copy_top: bool, long_side: int = 1920) -> list[Rung]:
    """The ladder for a picture of ``displayed`` size, top first. The top rung is the picture
    as the MP4 has it (at most ``long_side`` long) at 1080 lines at most; the lower rungs are
    the standard ones below it. ``copy_top``: the source may be remuxed as the top rung (it
    must then be no more than 1080 lines, or it is encoded like any other)."""
    width, height = displayed
    scale = min(1.0, long_side / max(width, height))
    fitted = (_even(width * scale), _even(height * scale))
    top_lines = min(min(fitted), RUNG_LINES[0])
    if copy_top and min(width, height) <= RUNG_LINES[0] and max(width, height) <= long_side:
        top = Rung(min(width, height), width, height, copy=True)
    elif top_lines == min(fitted):
        top = Rung(top_lines, *fitted)
    else:
        top = Rung(top_lines, *_at_lines(*fitted, top_lines))
    lower = [Rung(lines, *_at_lines(*fitted, lines)) for lines in RUNG_LINES if lines < top.lines]
    return [top, *lower]


def ladder_args(
    job: HandlerInput,
    demuxer: str,
    probed: av.Probe,
    folder: Path,
    ladder: list[Rung],
    *,
    prepare: Any,
    crf: int,
    preset: str,
    prepare_audio: Any = None,
) -> list[str]:
    """The argv of the one ffmpeg run that writes the ladder into ``folder``.

    ``prepare(node, width, height)`` is the video handler's own chain for the MP4 (scale,
    frame-rate cap, tone mapping, 4:2:0), so the top rung is the picture the MP4 has;
    ``prepare_audio(node)`` its sound chain (the loudness gain), so both sound alike."""
    video = probed.video
    assert video is not None
    inp = av.open_input(job.source, demuxer)
    source = inp[str(video.index)]
    encoded = [r for r in ladder if not r.copy]
    pictures: list[Any] = []
    if encoded:
        top = prepare(source, encoded[0].width, encoded[0].height)
        if len(encoded) > 1:
            split = top.filter_multi_output("split", len(encoded))
            pictures = [split.stream(0)] + [
                split.stream(i).filter("scale", r.width, r.height).filter("setsar", 1)
                for i, r in enumerate(encoded[1:], 1)
            ]
        else:
            pictures = [top]
    streams: list[Any] = []
    per_stream: dict[str, Any] = {}
    picture_iter = iter(pictures)
    for i, rung in enumerate(ladder):
        if rung.copy:
            streams.append(source)
            per_stream[f"c:v:{i}"] = "copy"
            continue
        streams.append(next(picture_iter))
        per_stream.update(
            {
                f"c:v:{i}": "libx264",
                f"crf:v:{i}": crf,
                f"preset:v:{i}": preset,
                f"profile:v:{i}": "high",
                f"pix_fmt:v:{i}": "yuv420p",
                f"maxrate:v:{i}": f"{rung.peak_kbps}k",
                f"bufsize:v:{i}": f"{2 * rung.peak_kbps}k",
                f"force_key_frames:v:{i}": f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
                f"threads:v:{i}": encoder_threads(most=8 if i == 0 else 4),
            }
        )
    if video.hdr:
        per_stream.update(color_primaries="bt709", color_trc="bt709", colorspace="bt709")
    group = ",agroup:audio" if probed.audio is not None else ""
    stream_map = [f"v:{i}{group},name:{rung.name}" for i, rung in enumerate(ladder)]
    if probed.audio is not None:
        sound = inp[str(probed.audio.index)]
        streams.append(prepare_audio(sound) if prepare_audio is not None else sound)
        per_stream.update({"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": 48000, "ac": 2})
        stream_map.append(f"a:0{group},name:{AUDIO_DIR}")
    node = av.output_folder(
        *streams,
        playlist=folder / "%v" / "index.m3u8",
        f="hls",
        hls_time=SEGMENT_SECONDS,
        hls_playlist_type="vod",
        hls_segment_type="fmp4",
        hls_flags="independent_segments",
        hls_fmp4_init_filename="init.mp4",
        hls_segment_filename=str((folder / "%v" / "seg%05d.m4s").resolve()),
        var_stream_map=" ".join(stream_map),
        map_metadata=-1,
        map_chapters=-1,
        dn=None,
        sn=None,
        max_muxing_queue_size=1024,
        **per_stream,
    )
    return av.compile_args(node)


async def make(
    job: HandlerInput,
    demuxer: str,
    probed: av.Probe,
    *,
    copy_top: bool,
    prepare: Any,
    crf: int,
    preset: str,
    fps_cap: int,
    progress: Any,
    timeout: float | None = None,
    prepare_audio: Any = None,
) -> RenditionFile:
    """Run the ladder's ffmpeg and write its master playlist; the rendition's ``files`` are
    every playlist and segment, the master's folder their root."""
    video = probed.video
    assert video is not None
    folder = job.workdir / HLS
    folder.mkdir(parents=True, exist_ok=True)
    ladder = rungs(video.displayed, copy_top=copy_top)
    args = ladder_args(
        job,
        demuxer,
        probed,
        folder,
        ladder,
        prepare=prepare,
        crf=crf,
        preset=preset,
        prepare_audio=prepare_audio,
    )
    await av.transcode(
        args,
        timeout=min(av.budget(probed.duration, job.limits.timeout), timeout or float("inf")),
        memory_bytes=av.memory_limit(job.options),
        duration=probed.duration,
        progress=progress,
        max_seconds=job.limits.max_duration + 1,
    )
    frame_rate = video.fps if video.fps is not None else None
    fps = {
        rung.name: float(frame_rate if rung.copy else min(frame_rate, fps_cap))
        for rung in ladder
        if frame_rate is not None
    }
    text = master_playlist(folder, ladder, fps, with_audio=probed.audio is not None)
    master = folder / MASTER
    master.write_text(text)
    top = ladder[0]
    files = tuple(sorted(p for p in folder.rglob("*") if p.is_file() and p != master))
    return RenditionFile(
        HLS,
        master,
        PLAYLIST_MIME,
        width=top.width,
        height=top.height,
        duration=probed.duration,
        files=files,
    )


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line (``#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a,b"``)."""
    _, _, rest = line.partition(":")
    return {key: value.strip('"') for key, value in _ATTRIBUTE.findall(rest)}


def avc_codec(init: Path) -> str:
    """The RFC 6381 codec string of an H.264 track (``avc1.PPCCLL``: profile, constraint
    flags, level) from the ``avcC`` box of its initialisation segment."""
    data = init.read_bytes()
    at = data.find(b"avcC")
    if at < 0 or len(data) < at + 8:
        raise MediaError("media.failed", f"no H.264 configuration in {init.parent.name}")
    return "avc1." + data[at + 5 : at + 8].hex().upper()


@dataclass(frozen=True, slots=True)
class Rates:
    peak: int
    average: int


def segment_rates(playlist: Path) -> Rates:
    """Peak and average bits per second of a media playlist's segments, from their sizes."""
    durations: list[tuple[float, int]] = []
    pending: float | None = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and pending is not None:
            durations.append((pending, (playlist.parent / line).stat().st_size))
            pending = None
    if not durations:
        raise MediaError("media.failed", f"no segments in {playlist.parent.name}")
    peak = max(size * 8 / max(seconds, 0.001) for seconds, size in durations)
    total_seconds = sum(seconds for seconds, _ in durations)
    average = sum(size for _, size in durations) * 8 / max(total_seconds, 0.001)
    return Rates(round(peak), round(average))


def master_playlist(
    folder: Path,
    ladder: list[Rung],
    fps: dict[str, float],
    *,
    with_audio: bool,
) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio = Rates(0, 0)
    audio_codec = ""
    if with_audio:
        audio = segment_rates(folder / AUDIO_DIR / "index.m3u8")
        audio_codec = AAC_LC
        lines.append(
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'URI="{AUDIO_DIR}/index.m3u8"'
        )
    for rung in ladder:
        rates = segment_rates(folder / rung.name / "index.m3u8")
        video_codec = avc_codec(next((folder / rung.name).glob("init*.mp4")))
        attrs = [
            f"BANDWIDTH={rates.peak + audio.peak}",
            f"AVERAGE-BANDWIDTH={rates.average + audio.average}",
            f'CODECS="{",".join(c for c in (video_codec, audio_codec) if c)}"',
            f"RESOLUTION={rung.width}x{rung.height}",
        ]
        if rung.name in fps:
            attrs.append(f"FRAME-RATE={fps[rung.name]:.3f}")
        if with_audio:
            attrs.append('AUDIO="audio"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{rung.name}/index.m3u8"]
    return "\n".join(lines) + "\n"
