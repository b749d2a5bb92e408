"""Phone formats made on the spot: iPhone Live Photos (a HEIC or JPEG still and a MOV that share
Apple's content identifier) and Android Motion Photos (a JPEG with its MP4 appended, located by
the XMP of https://developer.android.com/media/platform/motion-photo-format).

The Apple MakerNote is laid out as exiftool documents it (https://exiftool.org/TagNames/Apple.html):
``Apple iOS\\0``, version 1, ``MM``, then a big-endian IFD whose offsets count from the
MakerNote's start; tag 0x0011 is the ContentIdentifier. The MOV carries the identifier in the
QuickTime metadata key ``com.apple.quicktime.content.identifier`` (ffmpeg writes ``mdta`` keys
with ``-movflags use_metadata_tags``), as an iPhone does.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pillow_heif
from PIL import Image

from tests.clips import ffmpeg, picture, tone
from tests.media import GPS_IFD

EXIF_IFD = 0x8769
MAKER_NOTE = 0x927C
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


def apple_maker_note(content_identifier: str) -> bytes:
    """An Apple MakerNote with a version (tag 0x0001) and the ContentIdentifier (0x0011)."""
    value = content_identifier.encode("ascii") + b"\x00"
    header = b"Apple iOS\x00" + b"\x00\x01" + b"MM"
    entries = 2
    ifd_size = 2 + 12 * entries + 4
    value_offset = len(header) + ifd_size
    ifd = struct.pack(">H", entries)
    ifd += struct.pack(">HHII", 0x0001, 9, 1, 14)  # MakerNoteVersion, SLONG
    ifd += struct.pack(">HHII", 0x0011, 2, len(value), value_offset)
    ifd += b"\x00\x00\x00\x00"
    return header + ifd + value


def _exif(content_identifier: str | None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (59.0, 19.0, 45.48), 3: "E", 4: (18.0, 4.0, 6.96)})
    if content_identifier is not None:
        exif.get_ifd(EXIF_IFD)[MAKER_NOTE] = apple_maker_note(content_identifier)
    return exif.tobytes()


def live_still(content_identifier: str | None, fmt: str = "HEIF") -> bytes:
    """A Live Photo's still (HEIF or JPEG) with the camera's MakerNote and a GPS position."""
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    out = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
        image.save(out, "HEIF", quality=80, exif=_exif(content_identifier))
    else:
        image.save(out, "JPEG", quality=85, exif=_exif(content_identifier))
    return out.getvalue()


def live_clip(path: Path, content_identifier: str | None, seconds: float = 1.5) -> Path:
    """A Live Photo's MOV: H.264 + AAC, a location and the content identifier."""
    metadata = ["-metadata", "location=+59.3293+018.0686+012.000/"]
    if content_identifier is not None:
        metadata += ["-metadata", f"com.apple.quicktime.content.identifier={content_identifier}"]
    ffmpeg(
        *picture("480x360", seconds),
        *tone(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-shortest", *metadata, "-movflags", "use_metadata_tags", "-f", "mov", str(path),
    )  # fmt: skip
    return path


def motion_photo_xmp(video_length: int, *, legacy: bool = False) -> bytes:
    """The XMP of a Motion Photo: format 1 (``Container:Directory``) or the older MicroVideo."""
    if legacy:
        description = (
            'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" '
            f'GCamera:MicroVideoOffset="{video_length}" '
            'GCamera:MicroVideoPresentationTimestampUs="500000">'
        )
        directory = ""
    else:
        description = (
            'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
            'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
            'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" '
            'GCamera:MotionPhotoPresentationTimestampUs="500000">'
        )
        directory = (
            "<Container:Directory><rdf:Seq>"
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" '
            'Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" '
            f'Item:Semantic="MotionPhoto" Item:Length="{video_length}" Item:Padding="0"/>'
            "</rdf:li></rdf:Seq></Container:Directory>"
        )
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 5.1.0-jc003">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" {description}{directory}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


def with_xmp(jpeg: bytes, xmp: bytes) -> bytes:
    """``jpeg`` with an XMP APP1 segment right after SOI (where cameras put metadata)."""
    body = XMP_HEADER + xmp
    segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + segment + jpeg[2:]


def motion_photo(jpeg: bytes, mp4: bytes, *, legacy: bool = False) -> bytes:
    """A Motion Photo: the still with the XMP that locates the clip, the MP4 appended."""
    return with_xmp(jpeg, motion_photo_xmp(len(mp4), legacy=legacy)) + mp4
