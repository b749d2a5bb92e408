"""Video: every clip becomes an MP4 that plays in every browser (rendition ``mp4``) and a poster
JPEG (rendition ``poster``), both upright, with width, height and duration.

Probe first (ffprobe, under a timeout), refuse what is too long or has too many pixels, then:

- already web-ready (``web_ready``): remux, copying the streams byte for byte into an MP4 with
  the index in front. The display matrix is copied with the stream, so a portrait phone clip
  still plays upright; the rendition reports the displayed (rotated) width and height.
- anything else: transcode to H.264 (libx264, CRF and preset from the options), yuv420p, even
  dimensions, at most 1920 px on the long side, at most 60 fps, AAC 128 kb/s 48 kHz stereo
  at -16 LUFS (handlers/loudness.py; a remuxed clip's sound is measured, not changed).
  ffmpeg's autorotate turns the pixels upright and writes no rotation.
- HDR (HLG or PQ, by ffprobe's ``color_transfer``) is always transcoded, never remuxed, and
  tone-mapped to BT.709 SDR (``tone_map``), tagged BT.709, 8-bit 4:2:0.

Either way only the first video and the first audio stream are kept, without any metadata,
chapters, data or subtitle streams. The poster comes from the MP4 (small, upright, H.264):
frames of its first ten seconds, dark ones skipped, the most representative one by histogram;
the keyframes alone when one of them will do, which spares decoding all the others.

A file sniffed as video that holds only audio (an ``.m4a`` that libmagic calls ``video/mp4``, a
song with cover art) gets the audio handler's ``audio`` rendition; its kind stays ``video``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Final

from handlers import audio, ladder, loudness
from handlers import ffmpeg as av
from relay.errors import MediaError
from relay.model import HandlerInput, HandlerOutput, Kind, RenditionFile

MP4: Final = "mp4"
POSTER: Final = "poster"
LONG_SIDE: Final = 1920
MAX_FPS: Final = 60

WEB_PROFILES: Final = frozenset({"High", "Main", "Baseline", "Constrained Baseline"})
_REMUXABLE: Final = frozenset({"video/mp4", "video/quicktime", "video/x-m4v"})
_PRESETS: Final = frozenset(
    {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"}
)
_STRIP: Final = {
    "map_metadata": -1,
    "map_chapters": -1,
    "dn": None,
    "sn": None,
    "movflags": "+faststart",
    "max_muxing_queue_size": 1024,  # audio far ahead of video must not fail the mux
}

_BT709_TAGS: Final = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709"}
"""What a tone-mapped clip says it is, so players do not take it for BT.601 or HDR."""

_LADDER_SHARE: Final = 0.9
"""Of the item's time limit, what the MP4 and the ladder may take; the rest is the poster's."""

log = logging.getLogger("handlers.video")

_POSTER_WINDOW: Final = 10.0
_POSTER_FPS: Final = 4
_DARK: Final = 24
"""Mean luma (0-255) a poster frame must exceed; black in limited range is 16."""


class VideoHandler:
    kind = Kind.VIDEO

    async def process(self, job: HandlerInput) -> HandlerOutput:
        demuxer = av.demuxer_for(job.mime)
        if job.source.stat().st_size == 0:
            raise MediaError("media.empty")
        job.workdir.mkdir(parents=True, exist_ok=True)
        memory = av.memory_limit(job.options)
        probed = await av.probe(
            job.source, demuxer, timeout=job.limits.timeout, memory_bytes=memory
        )
        if probed.video is None:
            return await audio.convert(job, demuxer, probed)
        av.refuse_over_limits(probed, job.limits)
        job.progress(0.0)

        started, limit = time.monotonic(), job.limits.timeout
        target = job.workdir / "video.mp4"
        remuxed = web_ready(probed, job.mime)
        measured = await loudness.measure(job, demuxer, probed)
        args = (
            remux_args(job, demuxer, probed, target)
            if remuxed
            else transcode_args(job, demuxer, probed, target, measured)
        )
        hls = ladder.enabled(job.options)
        share = _mp4_share(remuxed) if hls else 0.9
        await av.transcode(
            args,
            timeout=av.budget(probed.duration, job.limits.timeout),
            memory_bytes=memory,
            duration=probed.duration,
            progress=lambda fraction: job.progress(share * fraction),
            max_seconds=job.limits.max_duration + 1,
        )
        made = await av.probe(target, "mov", timeout=job.limits.timeout, memory_bytes=memory)
        if made.video is None:
            raise MediaError("media.corrupt", "no video frame could be decoded")
        width, height = made.video.displayed
        mp4 = RenditionFile(
            MP4,
            target,
            "video/mp4",
            width=width,
            height=height,
            duration=made.duration,
            loudness=loudness.recorded(measured, reencoded=not remuxed),
        )
        renditions = [mp4]
        if hls:
            made_ladder = await make_ladder(
                job, demuxer, probed, remuxed, share, deadline=started + _LADDER_SHARE * limit,
                measured=None if remuxed else measured,
            )  # fmt: skip
            if made_ladder is not None:
                renditions.append(made_ladder)
        job.progress(0.92)
        poster = await make_poster(job, target, made)
        if poster is not None:
            renditions.append(poster)
        served, served_mime = await audio.served_original(job, demuxer, probed, mp4)
        job.progress(1.0)
        return HandlerOutput(
            renditions=renditions, served_original=served, served_original_mime=served_mime
        )


def web_ready(probed: av.Probe, mime: str) -> bool:
    """Plays everywhere as it is: only the container needs rewriting."""
    video = probed.video
    if video is None or mime.lower() not in _REMUXABLE:
        return False
    return (
        not video.hdr  # remuxed, it would stay HDR: washed out on almost every screen
        and video.codec == "h264"
        and video.profile in WEB_PROFILES
        and video.pix_fmt == "yuv420p"
        and video.sar == 1
        and video.field_order in ("progressive", "unknown")
        and max(video.displayed) <= LONG_SIDE
        and video.fps is not None
        and video.fps <= MAX_FPS + 0.01
        and (probed.audio is None or probed.audio.codec == "aac")
    )


def fit(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """Even dimensions with the same aspect, the long side at most ``long_side``."""
    scale = min(1.0, long_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def remux_args(job: HandlerInput, demuxer: str, probed: av.Probe, target: Path) -> list[str]:
    inp = av.open_input(job.source, demuxer)
    return av.compile_args(
        av.output(*_streams(inp, probed), path=target, muxer="mp4", c="copy", **_STRIP)
    )


def transcode_args(
    job: HandlerInput,
    demuxer: str,
    probed: av.Probe,
    target: Path,
    measured: loudness.Measured | None = None,
) -> list[str]:
    video = probed.video
    assert video is not None
    inp = av.open_input(job.source, demuxer)
    # Autorotate runs before these filters, so they see the displayed orientation.
    width, height = fit(*video.displayed)
    picture = inp[str(video.index)].filter("scale", width, height).filter("setsar", 1)
    if video.fps is None or video.fps > MAX_FPS:
        picture = picture.filter("fps", MAX_FPS)
    if video.hdr:
        picture = tone_map(picture, video)
    picture = picture.filter("format", "yuv420p")
    streams: list[Any] = [picture]
    sound: dict[str, Any] = {}
    if probed.audio is not None:
        streams.append(loudness.apply(inp[str(probed.audio.index)], measured))
        sound = {"acodec": "aac", "audio_bitrate": "128k", "ar": 48000, "ac": 2}
    options = job.options
    return av.compile_args(
        av.output(
            *streams,
            path=target,
            muxer="mp4",
            vcodec="libx264",
            crf=_crf(options.get("video_crf", 23)),
            preset=_preset(options.get("video_preset", "veryfast")),
            pix_fmt="yuv420p",
            **{"profile:v": "high"},
            **(_BT709_TAGS if video.hdr else {}),
            **sound,
            **_STRIP,
        )
    )


def _mp4_share(remuxed: bool) -> float:
    """The part of the progress bar the MP4 takes when a ladder follows it: a remux is nearly
    free, a transcode about a third of the whole (the ladder encodes 1.75 times its pixels)."""
    return 0.05 if remuxed else 0.3


async def make_ladder(
    job: HandlerInput,
    demuxer: str,
    probed: av.Probe,
    remuxed: bool,
    start: float,
    *,
    deadline: float | None = None,
    measured: loudness.Measured | None = None,
) -> RenditionFile | None:
    """The HLS ladder (handlers/ladder.py), its top rung the MP4's picture: the same scale,
    frame-rate cap and tone mapping, or the same copied bitstream when the MP4 is a remux.

    The ladder is the MP4's companion, not the item: when it cannot be made (or not before
    ``deadline``, a ``time.monotonic()`` that leaves the poster its time within the item's
    limit) the clip stays playable from its MP4 and the page plays that, so this says why in
    the log and gives None instead of failing the item."""
    video = probed.video
    assert video is not None
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 1:
        log.warning("no HLS ladder: the MP4 took the item's time")
        return None

    def prepare(source: Any, width: int, height: int) -> Any:
        picture = source.filter("scale", width, height).filter("setsar", 1)
        if video.fps is None or video.fps > MAX_FPS:
            picture = picture.filter("fps", MAX_FPS)
        if video.hdr:
            picture = tone_map(picture, video)
        return picture.filter("format", "yuv420p")

    try:
        return await ladder.make(
            job,
            demuxer,
            probed,
            # A display matrix is not carried into the segments: a turned clip is encoded upright.
            copy_top=remuxed and video.rotation == 0,
            prepare=prepare,
            crf=_crf(job.options.get("video_crf", 23)),
            preset=_preset(job.options.get("video_preset", "veryfast")),
            fps_cap=MAX_FPS,
            progress=lambda fraction: job.progress(start + (0.9 - start) * fraction),
            timeout=left,
            # The MP4's loudness gain (``measured``: None for a remux, whose sound stays).
            prepare_audio=lambda sound: loudness.apply(sound, measured),
        )
    except MediaError as exc:
        log.warning("no HLS ladder: %s", exc)
        return None


def tone_map(picture: Any, video: av.VideoStream) -> Any:
    """HLG or PQ BT.2020 to BT.709 SDR, 8 bits: to linear light (100 nits is SDR white), the
    BT.709 primaries in float, the highlights rolled off by Hable's curve without desaturating,
    then the BT.709 transfer and matrix in limited range. It runs after scaling, on as few
    pixels as the output has. The input's transfer is given, not read from the frames, so a clip
    tagged only in its container is read right too."""
    primaries = video.color_primaries if video.color_primaries == "bt2020" else "bt2020"
    return (
        picture.filter(
            "zscale", tin=video.color_transfer, pin=primaries, min="bt2020nc", t="linear", npl=100
        )
        .filter("format", "gbrpf32le")
        .filter("zscale", p="bt709")
        .filter("tonemap", "hable", desat=0)
        .filter("zscale", t="bt709", m="bt709", r="tv")
    )


def _streams(inp: Any, probed: av.Probe) -> list[Any]:
    assert probed.video is not None
    streams = [inp[str(probed.video.index)]]
    if probed.audio is not None:
        streams.append(inp[str(probed.audio.index)])
    return streams


def _crf(value: Any) -> int:
    try:
        return max(0, min(51, int(value)))
    except (TypeError, ValueError):
        return 23


def _preset(value: Any) -> str:
    return value if value in _PRESETS else "veryfast"


async def make_poster(job: HandlerInput, mp4: Path, made: av.Probe) -> RenditionFile | None:
    """A JPEG of a representative, not dark frame of the MP4's first seconds (any frame if all
    are dark); None only if no frame decodes at all.

    Decoding every frame of ten seconds of 1080p costs more than remuxing the whole clip, so the
    keyframes are tried first: each decodes on its own, and a clip has one every few seconds at
    most. Only when every keyframe of the window is dark (a fade in from black with the next
    keyframe far away) are all its frames decoded, as many as ``_POSTER_FPS`` a second kept.
    """
    video = made.video
    assert video is not None
    target = job.workdir / "poster.jpg"
    window = min(made.duration or _POSTER_WINDOW, _POSTER_WINDOW)
    frames = max(1, round(window * _POSTER_FPS))
    for skip_dark in (True, False):
        for keyframes_only in (True, False):
            await _poster_pass(job, mp4, target, window, frames, keyframes_only, skip_dark)
            if target.is_file() and target.stat().st_size > 0:
                width, height = video.displayed
                return RenditionFile(POSTER, target, "image/jpeg", width=width, height=height)
    return None


async def _poster_pass(
    job: HandlerInput,
    mp4: Path,
    target: Path,
    window: float,
    frames: int,
    keyframes_only: bool,
    skip_dark: bool,
) -> None:
    """One ffmpeg run writing the best frame of the window to ``target``, or nothing."""
    options: dict[str, Any] = {"t": f"{window:.3f}"}
    if keyframes_only:
        options["skip_frame"] = "nokey"  # the decoder skips all other frames undecoded
    # At most _POSTER_FPS frames a second go on, and none twice: thumbnail keeps them all in
    # memory, and a clip of keyframes only (all intra) must not take ten seconds of them.
    picture = av.open_input(mp4, "mov", **options)["v:0"].filter(
        "select", f"isnan(prev_selected_t)+gte(t-prev_selected_t,{1 / _POSTER_FPS})"
    )
    if skip_dark:
        picture = picture.filter("signalstats").filter(
            "metadata",
            mode="select",
            key="lavfi.signalstats.YAVG",
            value=_DARK,
            function="greater",
        )
    picture = picture.filter("thumbnail", n=frames)
    node = av.output(
        picture,
        path=target,
        muxer="mjpeg",
        vcodec="mjpeg",
        pix_fmt="yuvj420p",
        map_metadata=-1,
        **{"frames:v": 1, "q:v": 3},
    )
    await av.transcode(
        av.compile_args(node),
        timeout=av.budget(window, job.limits.timeout),
        memory_bytes=av.memory_limit(job.options),
    )
