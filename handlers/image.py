"""Images: upright renditions without metadata, and an original that no longer says where it was.

The work happens in ``_process_image``, run through ``job.run_blocking`` (a process pool in
serve): its arguments and result are plain picklable values, and our own errors come back as data
because ``RelayError`` does not survive pickling.

In the worker: open lazily (header only) → refuse images over the pixel limit before any decoding
→ decode the first frame once, at a reduced JPEG DCT scale when that still covers the largest
rendition → convert to 8-bit L, LA, RGB or RGBA → resize to "large" and derive "medium" and
"small" from it → turn each upright. Renditions keep only the ICC profile.

Then the served original. JPEG, PNG, WebP and GIF are cleaned at the container level: metadata
segments are dropped or rewritten and everything else is copied byte for byte, so the pixels and
the EXIF Orientation stay exactly as they were. Other formats carrying location or identifying
metadata are re-encoded at full resolution without it. An original with nothing worth removing is
served as it came (``served_original`` stays None).
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pillow_heif
from PIL import Image, ImageCms, ImageFile

from relay.errors import LimitExceeded, MediaError, RelayError
from relay.model import HandlerInput, HandlerOutput, Kind, RenditionFile

pillow_heif.register_heif_opener()
Image.init()

# The sniffed type decides which Pillow parser may look at the bytes: a file sniffed as PNG is
# never handed to, say, the TIFF or PSD decoder.
_PARSERS: Final[dict[str, str]] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/heic-sequence": "HEIF",
    "image/heif-sequence": "HEIF",
    "image/avif": "AVIF",
    "image/tiff": "TIFF",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",  # what older libmagic says for BMP
}
_PARSERS = {mime: parser for mime, parser in _PARSERS.items() if parser in Image.ID}

MIMES: Final[frozenset[str]] = frozenset(_PARSERS)
"""The sniffed types ImageHandler accepts (AVIF only when this Pillow build decodes it)."""

RENDITIONS: Final[tuple[tuple[str, int], ...]] = (("large", 2048), ("medium", 1024), ("small", 320))
"""Rendition names and the longest side each may have; sources are never upscaled."""

_RENDITION_JPEG: Final = {"quality": 85, "optimize": True, "progressive": True}
_ORIGINAL_JPEG: Final = {"quality": 92, "optimize": True, "progressive": True}

# Pillow raises these for damaged input (Image.open turns struct/index errors raised while
# parsing headers into SyntaxError; decoders raise OSError; pillow_heif raises ValueError).
_DAMAGED: Final = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
# What parsing or rewriting metadata a decoder tolerated may raise; the answer is a re-encode.
_UNFOLLOWED: Final = (*_DAMAGED, KeyError, IndexError, TypeError)

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
_ORIENTATION: Final = 0x0112
_UPRIGHT: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageHandler:
    kind = Kind.IMAGE

    async def process(self, job: HandlerInput) -> HandlerOutput:
        if job.mime not in _PARSERS:
            raise MediaError("media.unsupported", f"no image parser for {job.mime}")
        if job.source.stat().st_size == 0:
            raise MediaError("media.empty")
        job.workdir.mkdir(parents=True, exist_ok=True)
        job.progress(0.0)
        try:
            outcome: _Outcome = await asyncio.wait_for(
                job.run_blocking(
                    _process_image, job.source, job.mime, job.workdir, job.limits.max_pixels
                ),
                timeout=job.limits.timeout,
            )
        except TimeoutError:
            raise MediaError("media.timeout", f"image over {job.limits.timeout}s") from None
        if outcome.error is not None:
            code, detail = outcome.error
            raise (LimitExceeded if code == "media.too_many_pixels" else MediaError)(code, detail)
        job.progress(1.0)
        served, served_mime = outcome.served or (None, None)
        return HandlerOutput(
            renditions=[
                RenditionFile(f.name, f.path, f.mime, width=f.width, height=f.height)
                for f in outcome.renditions
            ],
            served_original=served,
            served_original_mime=served_mime,
        )


@dataclass(frozen=True, slots=True)
class _Written:
    name: str
    path: Path
    mime: str
    width: int
    height: int


@dataclass(slots=True)
class _Outcome:
    renditions: list[_Written] = field(default_factory=list)
    served: tuple[Path, str] | None = None
    """The cleaned original and its type."""
    error: tuple[str, str] | None = None
    """(catalog code, detail) instead of an exception, so it crosses a process boundary."""


@dataclass(slots=True)
class _Pixels:
    image: Image.Image
    """8-bit L, LA, RGB or RGBA, in stored orientation."""
    transparent: bool
    icc: bytes | None
    """The source's ICC profile when it describes ``image``'s colour space, else None."""


@dataclass(slots=True)
class _Metadata:
    orientation: int
    icc: bytes | None
    exif: Image.Exif
    has_xmp: bool


def _process_image(source: Path, mime: str, workdir: Path, max_pixels: int) -> _Outcome:
    # Pillow's own bomb guard would fire inside Image.open with its own exception; our limit is
    # the one that decides, and it is checked right after the header is read.
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(source, formats=[_PARSERS[mime]]) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise LimitExceeded(
                    "media.too_many_pixels", f"{width}x{height} over {max_pixels} pixels"
                )
            if width < 1 or height < 1:
                raise MediaError("media.corrupt", f"{width}x{height}")
            sizes = [(name, _fit(width, height, cap)) for name, cap in RENDITIONS]
            if img.format in ("JPEG", "MPO") and sizes[0][1] != img.size:
                img.draft(None, sizes[0][1])  # libjpeg picks a DCT scale still >= the size asked
            img.load()
            meta = _read_metadata(img)
            pixels = _normalize(img, meta.icc)
            renditions = _write_renditions(pixels, sizes, meta.orientation, workdir)
            full = pixels if pixels.image.size == (width, height) else None
            served = _served_original(source, mime, workdir, meta, full)
    except RelayError as exc:
        return _Outcome(error=(exc.code, exc.detail))
    except _DAMAGED as exc:
        return _Outcome(error=("media.corrupt", f"{type(exc).__name__}: {exc}"))
    return _Outcome(renditions=renditions, served=served)


def _fit(width: int, height: int, cap: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= cap:
        return width, height
    scale = cap / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_metadata(img: Image.Image) -> _Metadata:
    exif = img.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    return _Metadata(
        orientation=orientation if isinstance(orientation, int) else 1,
        icc=img.info.get("icc_profile") or None,
        exif=exif,
        has_xmp=bool(img.info.get("xmp")),
    )


# --- pixels ----------------------------------------------------------------------------------


def _normalize(img: Image.Image, icc: bytes | None) -> _Pixels:
    mode = img.mode
    if mode == "CMYK":
        img, icc = _cmyk_to_rgb(img, icc), None
    elif mode.startswith(("I", "F")):
        img = _to_8bit_grey(img)
    elif mode in ("P", "PA", "RGBa", "La", "RGBX", "YCbCr", "LAB", "HSV", "1"):
        has_alpha = mode in ("PA", "RGBa", "La") or "transparency" in img.info
        img = img.convert(("LA" if mode == "La" else "RGBA") if has_alpha else _base_mode(mode))
    elif mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert(mode + "A" if mode == "L" else "RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    if img.mode in ("LA", "RGBA") and img.getchannel("A").getextrema()[0] == 255:
        img = img.convert(img.mode[:-1])  # an alpha channel nobody uses is not transparency
    transparent = img.mode in ("LA", "RGBA")
    return _Pixels(img, transparent, icc if _icc_fits(icc, img.mode) else None)


def _base_mode(mode: str) -> str:
    return "L" if mode == "1" else "RGB"


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and icc[16:20] == b"CMYK":
        try:
            converted = ImageCms.profileToProfile(
                img,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: Pillow's plain conversion is still a fair picture
        else:
            if converted is not None:
                return converted
    return img.convert("RGB")


def _to_8bit_grey(img: Image.Image) -> Image.Image:
    # Pillow's own conversion clips instead of scaling, which turns 16-bit images white.
    if img.mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v / 257).convert("L")
    low, high = img.getextrema()
    if low >= 0 and high <= 255:
        return img.convert("L")
    scale = 255 / (high - low) if high > low else 0.0  # 32-bit and float samples have no range
    return img.point(lambda v: v * scale - low * scale).convert("L")


def _icc_fits(icc: bytes | None, mode: str) -> bool:
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if mode in ("L", "LA") else b"RGB ")


def _write_renditions(
    pixels: _Pixels, sizes: list[tuple[str, tuple[int, int]]], orientation: int, workdir: Path
) -> list[_Written]:
    # Resize in stored orientation and turn each result upright afterwards: turning the small
    # images is far cheaper than turning the full one, and the caps are the same either way.
    written = []
    current = pixels.image
    for name, size in sizes:
        if current.size != size:
            current = current.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        upright = _upright(current, orientation)
        written.append(_save(upright, workdir / name, name, pixels, _RENDITION_JPEG))
    return written


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    method = _UPRIGHT.get(orientation)
    return img.transpose(method) if method is not None else img


def _save(
    img: Image.Image, stem: Path, name: str, pixels: _Pixels, jpeg_options: dict[str, object]
) -> _Written:
    # Derived images inherit the source's info (EXIF, XMP, comments), and some encoders read
    # parts of it (JPEG writes a comment from it); only the ICC profile may reach an output.
    img.info = {}
    if pixels.transparent:
        path, mime = stem.with_suffix(".png"), "image/png"
        img.save(path, "PNG", icc_profile=pixels.icc)
    else:
        path, mime = stem.with_suffix(".jpg"), "image/jpeg"
        img.save(path, "JPEG", icc_profile=pixels.icc, **jpeg_options)
    return _Written(name, path, mime, img.width, img.height)


# --- the served original -----------------------------------------------------------------------


def _served_original(
    source: Path, mime: str, workdir: Path, meta: _Metadata, full: _Pixels | None
) -> tuple[Path, str] | None:
    cleaner, suffix = _CLEANERS.get(mime, (None, ""))
    if cleaner is not None:
        try:
            cleaned = cleaner(source.read_bytes())
        except _UNFOLLOWED:
            pass  # decodable, but not a structure we can clean safely: re-encode it
        else:
            if cleaned is None:
                return None
            path = workdir / f"original-clean{suffix}"
            path.write_bytes(cleaned)
            return path, mime
    elif not _worth_cleaning(meta):
        return None
    written = _reencode(source, mime, workdir, meta, full)
    return written.path, written.mime


def _worth_cleaning(meta: _Metadata) -> bool:
    try:
        return meta.has_xmp or bool(_identifying(meta.exif))
    except _UNFOLLOWED:
        return True  # EXIF we cannot read is EXIF we cannot vouch for


def _reencode(
    source: Path, mime: str, workdir: Path, meta: _Metadata, full: _Pixels | None
) -> _Written:
    if full is None:  # the renditions were decoded at a reduced scale
        with Image.open(source, formats=[_PARSERS[mime]]) as img:
            img.load()
            full = _normalize(img, meta.icc)
    upright = _upright(full.image, meta.orientation)
    return _save(upright, workdir / "original-clean", "original", full, _ORIGINAL_JPEG)


def _identifying(exif: Image.Exif) -> list[tuple[int | None, int]]:
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
    found = _identifying(exif)
    if not found:
        return None
    for ifd, tag in found:
        del (exif if ifd is None else exif.get_ifd(ifd))[tag]
    return exif.tobytes()


# Each cleaner takes the whole file and returns the cleaned file, or None when nothing needed
# removing; it raises ValueError on a structure it does not follow.


def _clean_jpeg(data: bytes) -> bytes | None:
    kept: list[bytes] = []
    changed = False
    mpf_at: int | None = None
    for marker, piece in _jpeg_pieces(data):
        payload = piece.lstrip(b"\xff")[3:]
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


def _jpeg_pieces(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split a JPEG into (marker, bytes) pieces that join back into ``data`` exactly; entropy-coded
    data comes as ``_SCAN``, anything after EOI as ``_TRAILER``."""
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
            scan = pos
            while True:  # entropy-coded data runs to the first 0xFF that starts a real marker
                ff = data.find(b"\xff", scan)
                if ff < 0 or ff + 1 >= end:
                    raise ValueError("no EOI")
                following = data[ff + 1]
                if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
                    scan = ff + 1
                    continue
                yield _SCAN, data[pos:ff]
                pos = ff
                break
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


_CLEANERS: Final = {
    "image/jpeg": (_clean_jpeg, ".jpg"),
    "image/png": (_clean_png, ".png"),
    "image/webp": (_clean_webp, ".webp"),
    "image/gif": (_clean_gif, ".gif"),
}
