"""Audio: every clip becomes an AAC ``.m4a`` rendition named ``audio``, with its duration; an MP3
stays MP3 (its frames are copied, not re-encoded) so that clients always find ``audio``. The AAC
is brought to -16 LUFS, an MP3 only measured (handlers/loudness.py).

Tags and cover art are dropped from the rendition: only the first audio stream is kept. An
original whose container says where it was recorded (location tags, timed metadata tracks) is not
served as it came: see ``served_original``, which the video handler shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from handlers import ffmpeg as av
from handlers import loudness
from relay.errors import MediaError
from relay.model import HandlerInput, HandlerOutput, Kind, RenditionFile

AUDIO: Final = "audio"

_STRIP: Final = {"map_metadata": -1, "map_chapters": -1, "dn": None, "sn": None}
_KEEP_RATES: Final = frozenset({44100, 48000})

# Containers an original can be cleaned in by copying its streams without the metadata; any
# other container that carries location is served as its rendition instead.
_CLEAN_MUXERS: Final[dict[str, tuple[str, str]]] = {
    "video/mp4": ("mp4", ".mp4"),
    "video/x-m4v": ("mp4", ".m4v"),
    "video/quicktime": ("mov", ".mov"),
    "video/3gpp": ("3gp", ".3gp"),
    "video/3gpp2": ("3g2", ".3g2"),
    "audio/mp4": ("mp4", ".m4a"),
    "audio/x-m4a": ("mp4", ".m4a"),
    "video/webm": ("webm", ".webm"),
    "audio/webm": ("webm", ".webm"),
    "video/x-matroska": ("matroska", ".mkv"),
}


class AudioHandler:
    kind = Kind.AUDIO

    async def process(self, job: HandlerInput) -> HandlerOutput:
        demuxer = av.demuxer_for(job.mime)
        if job.source.stat().st_size == 0:
            raise MediaError("media.empty")
        job.workdir.mkdir(parents=True, exist_ok=True)
        probed = await av.probe(
            job.source,
            demuxer,
            timeout=job.limits.timeout,
            memory_bytes=av.memory_limit(job.options),
        )
        return await convert(job, demuxer, probed)


async def convert(job: HandlerInput, demuxer: str, probed: av.Probe) -> HandlerOutput:
    """The ``audio`` rendition of ``job.source``'s first audio stream (any video is ignored)."""
    stream = probed.audio
    if stream is None:
        raise MediaError("media.corrupt", "no audio stream")
    av.refuse_over_limits(probed, job.limits)
    memory = av.memory_limit(job.options)
    job.progress(0.0)
    source = av.open_input(job.source, demuxer)[str(stream.index)]
    measured = await loudness.measure(job, demuxer, probed)
    copied = demuxer == "mp3" and stream.codec == "mp3"
    if copied:
        target, mime, out_demuxer = job.workdir / "audio.mp3", "audio/mpeg", "mp3"
        # No ID3 tag at all: that is where names, comments and cover art live.
        node = av.output(source, path=target, muxer="mp3", acodec="copy", id3v2_version=0, **_STRIP)
    else:
        target, mime, out_demuxer = job.workdir / "audio.m4a", "audio/mp4", "mov"
        channels = 1 if stream.channels == 1 else 2
        rate = stream.sample_rate if stream.sample_rate in _KEEP_RATES else 48000
        node = av.output(
            loudness.apply(source, measured, rate),
            path=target,
            muxer="mp4",
            acodec="aac",
            audio_bitrate=f"{64 * channels}k",
            ac=channels,
            ar=rate,
            movflags="+faststart",
            **_STRIP,
        )
    await av.transcode(
        av.compile_args(node),
        timeout=av.budget(probed.duration, job.limits.timeout),
        memory_bytes=memory,
        duration=probed.duration,
        progress=lambda fraction: job.progress(0.9 * fraction),
        max_seconds=job.limits.max_duration + 1,
    )
    made = await av.probe(target, out_demuxer, timeout=job.limits.timeout, memory_bytes=memory)
    rendition = RenditionFile(
        AUDIO,
        target,
        mime,
        duration=made.duration,
        loudness=loudness.recorded(measured, reencoded=not copied),
    )
    served, served_mime = await served_original(job, demuxer, probed, rendition)
    job.progress(1.0)
    return HandlerOutput(
        renditions=[rendition], served_original=served, served_original_mime=served_mime
    )


async def served_original(
    job: HandlerInput, demuxer: str, probed: av.Probe, rendition: RenditionFile
) -> tuple[Path | None, str | None]:
    """What to serve as the original: None when it says nothing about where it was made, else
    its audio and video streams copied without metadata, else the rendition itself."""
    if not probed.identifying:
        return None, None
    muxer, suffix = _CLEAN_MUXERS.get(job.mime.lower(), (None, ""))
    if muxer is not None:
        target = job.workdir / f"original-clean{suffix}"
        inp = av.open_input(job.source, demuxer)
        # "V" leaves out cover art; the display matrix of a copied stream is kept.
        node = av.output(inp["V?"], inp["a?"], path=target, muxer=muxer, c="copy", **_STRIP)
        try:
            await av.transcode(
                av.compile_args(node),
                timeout=av.budget(probed.duration, job.limits.timeout),
                memory_bytes=av.memory_limit(job.options),
            )
        except MediaError:
            pass  # streams this muxer will not take: the rendition is a clean original too
        else:
            return target, job.mime
    return rendition.path, rendition.mime
