"""Removing what says where a photo was taken, or who took it, from an image file without
re-encoding it: metadata segments are dropped or rewritten at the container level (JPEG, PNG,
WebP, GIF) and everything else is copied byte for byte, so pixels and the EXIF Orientation stay
exactly as they were.

Each cleaner takes the whole file and returns the cleaned file, or None when nothing needed
removing; it raises ValueError (or an IndexError, KeyError…) on a structure it does not
follow, and the caller then re-encodes instead.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Final

from PIL import Image

# What may say where a photo was taken or who took it, and is not needed to show it right.
_IFD0_DROP: Final = (
    0x8825,  # GPS IFD
    0x02BC,  # XMP (TIFF)
    0x83BB,  # IPTC (TIFF): city, sublocation, byline
    0x8649,  # Photoshop resources, which embed IPTC
    0xC62F,  # camera serial number (DNG)
)
_EXIF_IFD: Final = 0x8769
_EXIF_IFD_DROP: Final = (
    0x927C,  # MakerNote: vendor blobs, some with location or serial numbers
    0xA430,  # camera owner name
    0xA431,  # body serial number
    0xA435,  # lens serial number
)


def identifying(exif: Image.Exif) -> list[tuple[int | None, int]]:
    found: list[tuple[int | None, int]] = [(None, tag) for tag in _IFD0_DROP if tag in exif]
    if _EXIF_IFD in exif:
        sub = exif.get_ifd(_EXIF_IFD)
        found += [(_EXIF_IFD, tag) for tag in _EXIF_IFD_DROP if tag in sub]
    return found


def _clean_exif(data: bytes) -> bytes | None:
    """The EXIF block without location or identifying tags (``Exif\\0\\0`` header included), or
    None when there is nothing to remove. Orientation, camera model and the rest are kept."""
    exif = Image.Exif()
    exif.load(data)
    found = identifying(exif)
    if not found:
        return None
    for ifd, tag in found:
        del (exif if ifd is None else exif.get_ifd(ifd))[tag]
    return exif.tobytes()


# Each cleaner takes the whole file and returns the cleaned file, or None when nothing needed
# removing; it raises ValueError on a structure it does not follow.


def _clean_jpeg(data: bytes) -> bytes | None:
    kept: list[bytes | memoryview] = []
    changed = False
    mpf_at: int | None = None
    for marker, piece in _jpeg_pieces(data):
        # Only the segments looked into are copied out; the rest (the entropy-coded data, most
        # of the file) is joined straight from ``data``.
        payload = bytes(piece).lstrip(b"\xff")[3:] if marker in (0xE1, 0xE2) else b""
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            exif = _clean_exif(payload)
            if exif is not None:
                if len(exif) + 2 > 0xFFFF:
                    raise ValueError("cleaned EXIF does not fit one segment")
                piece = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
                changed = True
        elif marker in (0xE1, 0xED):  # XMP (main and extended), Photoshop/IPTC: free-form
            changed = True
            continue
        elif marker == 0xE2 and payload.startswith(b"MPF\x00"):
            mpf_at = len(kept)
        elif marker == _TRAILER:
            # Data after EOI: MPF secondary images (each with its own EXIF), or anything else.
            if piece.strip(b"\x00\xff"):
                changed = True
                if mpf_at is not None:
                    del kept[mpf_at]  # it indexes the images just dropped
            continue
        kept.append(piece)
    return b"".join(kept) if changed else None


_SCAN: Final = 0
_TRAILER: Final = -1


# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), a restart marker or another
# 0xFF (fill); any other byte after it starts the next segment, which begins at that last 0xFF.
_SCAN_END: Final = re.compile(b"\xff[^\x00\xff\xd0-\xd7]")


def _jpeg_pieces(data: bytes) -> Iterator[tuple[int, bytes | memoryview]]:
    """Split a JPEG into (marker, bytes) pieces that join back into ``data`` exactly; entropy-coded
    data comes as ``_SCAN`` (a view into ``data``), anything after EOI as ``_TRAILER``."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("no SOI")
    yield 0xD8, data[:2]
    pos, end = 2, len(data)
    while pos < end:
        start = pos
        while pos + 1 < end and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 1 >= end or data[pos] != 0xFF:
            raise ValueError(f"expected a marker at {pos}")
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:
            yield marker, data[start:pos]
            if pos < end:
                yield _TRAILER, data[pos:]
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            yield marker, data[start:pos]
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise ValueError(f"segment {marker:#x} overruns the file")
        pos += length
        yield marker, data[start:pos]
        if marker == 0xDA:
            found = _SCAN_END.search(data, pos)
            if found is None:
                raise ValueError("no EOI")
            yield _SCAN, memoryview(data)[pos : found.start()]
            pos = found.start()
    raise ValueError("no EOI")


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT: Final = (b"tEXt", b"zTXt", b"iTXt")
_PNG_HARMLESS_TEXT: Final = (b"Software", b"Creation Time")


def _clean_png(data: bytes) -> bytes | None:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    kept = [_PNG_SIGNATURE]
    changed = False
    pos, end = len(_PNG_SIGNATURE), len(data)
    while True:
        if pos + 12 > end:
            raise ValueError("no IEND")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if pos > end:
            raise ValueError(f"chunk {kind!r} overruns the file")
        if kind == b"eXIf":
            exif = _clean_exif(body)
            if exif is not None:
                chunk = _png_chunk(kind, exif.removeprefix(b"Exif\x00\x00"))
                changed = True
        elif kind in _PNG_TEXT and body.split(b"\x00", 1)[0] not in _PNG_HARMLESS_TEXT:
            changed = True  # XMP, ImageMagick's raw EXIF/IPTC profiles, comments, authors
            continue
        kept.append(chunk)
        if kind == b"IEND":
            changed = changed or bool(data[pos:].strip(b"\x00"))
            break
    return b"".join(kept) if changed else None


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body).to_bytes(4, "big")
    return len(body).to_bytes(4, "big") + kind + body + crc


_VP8X_XMP: Final = 0x04
_VP8X_EXIF: Final = 0x08


def _clean_webp(data: bytes) -> bytes | None:
    # Cleaning the RIFF chunks keeps animation and lossless pixels, unlike a re-encode.
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP RIFF")
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        raise ValueError("RIFF overruns the file")
    chunks: list[tuple[bytes, bytes]] = []
    changed = bool(data[riff_end:].strip(b"\x00"))
    pos = 12
    while pos < riff_end:
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > riff_end:
            raise ValueError(f"chunk {fourcc!r} overruns the RIFF")
        body = data[pos + 8 : pos + 8 + size]
        chunk = data[pos : min(pos + 8 + size + (size & 1), riff_end)]
        pos += 8 + size + (size & 1)
        if fourcc == b"XMP ":
            changed = True
            continue
        if fourcc == b"EXIF":
            exif = _clean_exif(body)
            if exif is not None:
                body = exif.removeprefix(b"Exif\x00\x00")
                chunk = fourcc + len(body).to_bytes(4, "little") + body + b"\x00" * (len(body) & 1)
                changed = True
        chunks.append((fourcc, chunk))
    if not changed:
        return None
    has_exif = any(fourcc == b"EXIF" for fourcc, _ in chunks)
    out = []
    for fourcc, chunk in chunks:
        if fourcc == b"VP8X" and len(chunk) > 8:  # its flags announce the metadata chunks
            flags = chunk[8] & ~_VP8X_XMP & (0xFF if has_exif else ~_VP8X_EXIF)
            chunk = chunk[:8] + bytes([flags & 0xFF]) + chunk[9:]
        out.append(chunk)
    body = b"".join(out)
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body


_GIF_ANIMATION_APPS: Final = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def _clean_gif(data: bytes) -> bytes | None:
    # GIF has no EXIF, but comment and application extensions (XMP among them) hold free text.
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise ValueError("not a GIF")
    pos = 13 + _gif_colour_table(data[10])
    kept = [data[:pos]]
    changed = False
    while True:
        if pos >= len(data):
            raise ValueError("no GIF trailer")
        introducer = data[pos]
        if introducer == 0x3B:
            kept.append(data[pos : pos + 1])
            changed = changed or bool(data[pos + 1 :].strip(b"\x00"))
            break
        if introducer == 0x21:
            label = data[pos + 1 : pos + 2]
            end = _gif_skip_blocks(data, pos + 2)
            app = data[pos + 3 : pos + 14]
            if label == b"\xfe" or (label == b"\xff" and app not in _GIF_ANIMATION_APPS):
                changed = True
                pos = end
                continue
        elif introducer == 0x2C:
            if pos + 10 > len(data):
                raise ValueError("truncated image descriptor")
            # descriptor, local colour table, LZW minimum code size, then data sub-blocks
            end = _gif_skip_blocks(data, pos + 10 + _gif_colour_table(data[pos + 9]) + 1)
        else:
            raise ValueError(f"unknown GIF block {introducer:#x}")
        kept.append(data[pos:end])
        pos = end
    return b"".join(kept) if changed else None


def _gif_colour_table(flags: int) -> int:
    return 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0


def _gif_skip_blocks(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise ValueError("truncated GIF sub-blocks")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


CLEANERS: Final = {
    "image/jpeg": (_clean_jpeg, ".jpg"),
    "image/png": (_clean_png, ".png"),
    "image/webp": (_clean_webp, ".webp"),
    "image/gif": (_clean_gif, ".gif"),
}
