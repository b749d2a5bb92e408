"""Moving photos: an iPhone Live Photo's clip and an Android Motion Photo's clip, as a ``motion``
rendition of the still (a short web MP4: H.264, no sound, no metadata, so no location).

Live Photo: the still (HEIC or JPEG) and the clip (MOV) are two files that belong together when
they carry the same content identifier: the still in its Apple MakerNote, tag 0x0011
``ContentIdentifier`` (https://exiftool.org/TagNames/Apple.html), the MOV in the QuickTime
metadata key ``com.apple.quicktime.content.identifier``
(https://developer.apple.com/documentation/avfoundation/avmetadataidentifier/quicktimemetadatacontentidentifier).

Motion Photo (https://developer.android.com/media/platform/motion-photo-format): one JPEG with
an MP4 appended, located from the end of the file by the XMP: ``Container:Directory`` with an
``Item:Semantic="MotionPhoto"`` item and its ``Item:Length`` (format 1), or the older
``GCamera:MicroVideoOffset`` (bytes from the MP4's start to the end of the file).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Final

from PIL import Image

from handlers import ffmpeg as av
from handlers.video import MAX_FPS, fit, tone_map
from relay.errors import MediaError
from relay.model import HandlerInput, RenditionFile

MOTION: Final = "motion"
LONG_SIDE: Final = 1280
"""A Live Photo is shown small, on demand; 720p is plenty and keeps it light."""
MAX_SECONDS: Final = 30.0
"""A Live Photo is 3 s, a Motion Photo up to a few; anything longer is not one."""

_MAKER_NOTE: Final = 0x927C
_EXIF_IFD: Final = 0x8769
_APPLE: Final = b"Apple iOS\x00"
_CONTENT_IDENTIFIER: Final = 0x0011
_IDENTIFIER: Final = re.compile(r"^[0-9A-Za-z-]{8,64}$")
_XMP_IDENTIFIER: Final = re.compile(rb"ContentIdentifier(?:=\"|>)([0-9A-Za-z-]{8,64})")

_XMP_HEADER: Final = b"http://ns.adobe.com/xap/1.0/\x00"
_MICRO_VIDEO_OFFSET: Final = re.compile(rb"MicroVideoOffset(?:=\"|>)\s*(\d{1,12})")
_CONTAINER_ITEM: Final = re.compile(rb"<[\w.-]*:?Item\b[^>]*>")
_ATTRIBUTE: Final = re.compile(rb"\b[\w.-]*:?(Semantic|Length)=\"([^\"]*)\"")

_STRIP: Final = {
    "map_metadata": -1,
    "map_chapters": -1,
    "an": None,
    "dn": None,
    "sn": None,
    "movflags": "+faststart",
}
_BT709: Final = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709"}


# --- Live Photo: the content identifier -------------------------------------------------------


def still_identifier(path: Path) -> str | None:
    """The Apple content identifier of a HEIC or JPEG still, or None. Blocking."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            note = exif.get_ifd(_EXIF_IFD).get(_MAKER_NOTE)
            xmp = image.info.get("xmp") or b""
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # not a still we can read: it is processed (and refused) as an item
    found = apple_content_identifier(note) if isinstance(note, bytes) else None
    if found is None and isinstance(xmp, bytes | str):
        raw = xmp.encode() if isinstance(xmp, str) else xmp
        match = _XMP_IDENTIFIER.search(raw)
        found = match.group(1).decode() if match else None
    return found.upper() if found else None


def apple_content_identifier(note: bytes) -> str | None:
    """Tag 0x0011 of an Apple MakerNote: ``Apple iOS\\0``, a version, ``MM``, then a
    big-endian IFD whose offsets count from the MakerNote's start."""
    if not note.startswith(_APPLE) or note[12:14] not in (b"MM", b"II"):
        return None
    order: Any = "big" if note[12:14] == b"MM" else "little"
    try:
        count = int.from_bytes(note[14:16], order)
        for n in range(min(count, 256)):
            entry = note[16 + 12 * n : 28 + 12 * n]
            if len(entry) < 12:
                return None
            tag = int.from_bytes(entry[0:2], order)
            kind = int.from_bytes(entry[2:4], order)
            length = int.from_bytes(entry[4:8], order)
            if tag != _CONTENT_IDENTIFIER or kind != 2 or not 0 < length <= 128:
                continue
            if length <= 4:
                raw = entry[8 : 8 + length]
            else:
                offset = int.from_bytes(entry[8:12], order)
                raw = note[offset : offset + length]
            value = raw.split(b"\x00", 1)[0].decode("ascii")
            return value if _IDENTIFIER.match(value) else None
    except (UnicodeDecodeError, ValueError):
        return None
    return None


async def clip_identifier(path: Path, *, timeout: float, memory_bytes: int) -> str | None:
    """The content identifier in a MOV's QuickTime metadata, or None."""
    try:
        tags = await av.format_tags(path, "mov", timeout=timeout, memory_bytes=memory_bytes)
    except MediaError:  # ffprobe timed out: no pair, and the clip is processed on its own
        return None
    value = tags.get("com.apple.quicktime.content.identifier", "").strip()
    return value.upper() if _IDENTIFIER.match(value) else None


# --- Motion Photo: the MP4 inside the JPEG ----------------------------------------------------


def embedded_clip_start(data: bytes) -> int | None:
    """Where a Motion Photo's MP4 starts in ``data`` (a JPEG), or None when it is not one."""
    return _clip_start(io.BytesIO(data), len(data))


def _clip_start(f: BinaryIO, size: int) -> int | None:
    """``embedded_clip_start`` of the ``size`` bytes of ``f``, reading its header's segments and
    four bytes of its tail, not the whole file."""
    xmp = _first_xmp(f)
    if xmp is None:
        return None
    length: int | None = None
    for item in _CONTAINER_ITEM.findall(xmp):
        attributes = {name: value for name, value in _ATTRIBUTE.findall(item)}
        if (
            attributes.get(b"Semantic") == b"MotionPhoto"
            and attributes.get(b"Length", b"").isdigit()
        ):
            length = int(attributes[b"Length"])
    if length is None and (match := _MICRO_VIDEO_OFFSET.search(xmp)):
        length = int(match.group(1))
    if not length or length >= size:
        return None
    start = size - length
    # The appended file must be an ISO BMFF file (MP4 or QuickTime), whatever the XMP says.
    f.seek(start + 4)
    return start if f.read(4) == b"ftyp" else None


def _first_xmp(f: BinaryIO) -> bytes | None:
    """The XMP packet of a JPEG's APP1 segment, read from the header only."""
    if f.read(2) != b"\xff\xd8":
        return None
    while len(segment := f.read(4)) == 4 and segment[0] == 0xFF:
        marker = segment[1]
        if marker in (0xDA, 0xD9):  # image data begins: no metadata after it
            return None
        length = int.from_bytes(segment[2:4], "big")
        if length < 2:
            return None
        if marker == 0xE1:
            body = f.read(length - 2)
            if body.startswith(_XMP_HEADER):
                return body[len(_XMP_HEADER) :]
        else:
            f.seek(length - 2, os.SEEK_CUR)
    return None


def split_motion_photo(source: Path, target: Path) -> bool:
    """Write a Motion Photo's MP4 to ``target``; False when ``source`` is not one. Blocking, but
    a still that is no Motion Photo costs a read of its header only."""
    with open(source, "rb") as f:
        start = _clip_start(f, os.fstat(f.fileno()).st_size)
        if start is None:
            return False
        f.seek(start)
        with open(target, "wb") as out:
            shutil.copyfileobj(f, out)
    return True


# --- the motion rendition ---------------------------------------------------------------------


async def motion_rendition(job: HandlerInput, clip: Path) -> RenditionFile:
    """``clip`` (MOV or MP4) as the small, silent web MP4 shown on demand beside the still."""
    memory = av.memory_limit(job.options)
    probed = await av.probe(clip, "mov", timeout=job.limits.timeout, memory_bytes=memory)
    video = probed.video
    if video is None:
        raise MediaError("media.corrupt", "the moving photo has no picture")
    if probed.duration is not None and probed.duration > MAX_SECONDS:
        raise MediaError("media.too_long", f"a moving photo of {probed.duration:.0f}s")
    av.refuse_over_limits(probed, job.limits)
    target = job.workdir / "motion.mp4"
    inp = av.open_input(clip, "mov")
    width, height = fit(*video.displayed, LONG_SIDE)
    picture = inp[str(video.index)].filter("scale", width, height).filter("setsar", 1)
    if video.fps is None or video.fps > MAX_FPS:
        picture = picture.filter("fps", MAX_FPS)
    if video.hdr:
        picture = tone_map(picture, video)
    picture = picture.filter("format", "yuv420p")
    args = av.compile_args(
        av.output(
            picture,
            path=target,
            muxer="mp4",
            vcodec="libx264",
            crf=26,
            preset="veryfast",
            pix_fmt="yuv420p",
            **{"profile:v": "high"},
            **(_BT709 if video.hdr else {}),
            **_STRIP,
        )
    )
    await av.transcode(
        args,
        timeout=av.budget(probed.duration, job.limits.timeout),
        memory_bytes=memory,
        max_seconds=MAX_SECONDS + 1,
    )
    made = await av.probe(target, "mov", timeout=job.limits.timeout, memory_bytes=memory)
    if made.video is None:
        raise MediaError("media.corrupt", "no frame of the moving photo could be decoded")
    shown_width, shown_height = made.video.displayed
    return RenditionFile(
        MOTION,
        target,
        "video/mp4",
        width=shown_width,
        height=shown_height,
        duration=made.duration,
    )
