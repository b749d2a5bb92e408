"""Images: upright renditions without metadata, and an original that no longer says where it was.

The work happens in ``_process_image``, run through ``job.run_blocking`` (a process pool in
serve): its arguments and result are plain picklable values; our own errors (``MediaError``) are
raised there and cross the process boundary as they are.

In the worker: open lazily (header only) → refuse images over the pixel limit before any decoding
→ decode the first frame once, at a reduced JPEG DCT scale when that still covers the largest
rendition (libjpeg-turbo's M/8 scales through simplejpeg, else Pillow's 1/2, 1/4 and 1/8) →
convert to 8-bit L, LA, RGB or RGBA → resize to "large", turning it upright, and derive "medium"
and "small" from it. Renditions keep only the ICC profile.

Then the served original. JPEG, PNG, WebP and GIF are cleaned at the container level: metadata
segments are dropped or rewritten and everything else is copied byte for byte, so the pixels and
the EXIF Orientation stay exactly as they were. Other formats carrying location or identifying
metadata are re-encoded at full resolution without it. An original with nothing worth removing is
served as it came (``served_original`` stays None).
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pillow_heif
import simplejpeg
from PIL import Image, ImageCms, ImageFile

from handlers import scrub
from relay.errors import LimitExceeded, MediaError
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


@dataclass(slots=True)
class _Pixels:
    image: Image.Image
    """8-bit L, LA, RGB or RGBA, in stored orientation."""
    transparent: bool
    icc: bytes | None
    """The source's ICC profile when it describes ``image``'s colour space, else None."""


@dataclass(frozen=True, slots=True)
class _Metadata:
    """Read once, before any output is written (writing clears the image's info)."""

    orientation: int
    icc: bytes | None
    identifying: bool
    """Location, XMP or identifying EXIF: the original must not be served as it came."""


_BLOCKS_KEPT: Final = 2
"""Freed pixel blocks (up to 16 MB each) Pillow keeps for reuse while one image is processed.

The workers hand every allocation of 1 MiB or more back to the system when it is freed
(relay/workpool.py), so each new image buffer (the resampler's intermediates, the strips, the
upright copies) costs fresh page faults, ~36k for a 12 MP photo. With two blocks kept, the
next buffer reuses the last one freed: ~8k faults fewer, ~5% less CPU, the same peak. They
are released when the job ends."""


def _process_image(source: Path, mime: str, workdir: Path, max_pixels: int) -> _Outcome:
    kept = Image.core.get_blocks_max()
    Image.core.set_blocks_max(max(kept, _BLOCKS_KEPT))
    try:
        return _process(source, mime, workdir, max_pixels)
    finally:
        Image.core.set_blocks_max(kept)  # frees the blocks kept beyond that


def _process(source: Path, mime: str, workdir: Path, max_pixels: int) -> _Outcome:
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
            # The file is read once, for the cleaner and the JPEG decoder both. The
            # container-level clean of the original needs only its bytes: it runs on a thread
            # while the pixels are decoded (which releases the GIL).
            cleaner, suffix = scrub.CLEANERS.get(mime, (None, ""))
            data = source.read_bytes() if cleaner is not None else None
            cleaning = _threads().submit(cleaner, data) if cleaner is not None else None
            decoded = _decode(img, data, sizes[0][1])
            meta = _read_metadata(img)
            pixels = _normalize(decoded, meta.icc)
            renditions = _write_renditions(pixels, sizes, meta.orientation, workdir)
            full = pixels if pixels.image.size == (width, height) else None
            served = _served_original(source, mime, workdir, meta, full, cleaning, suffix)
    except _DAMAGED as exc:
        raise MediaError("media.corrupt", f"{type(exc).__name__}: {exc}") from None
    return _Outcome(renditions=renditions, served=served)


_SCALED_MODES: Final = {"RGB": "RGB", "L": "GRAY"}
"""Pillow's JPEG modes that simplejpeg decodes to the same pixels, and its name for each.
(Decoding to RGBX, Pillow's own layout, would spare the copy into Pillow, but its resampler
then works on four bands instead of three: measured slower.)"""


def _decode(img: Image.Image, data: bytes | None, size: tuple[int, int]) -> Image.Image:
    """The first frame's pixels, at the smallest JPEG DCT scale still covering ``size``
    (``data``: the file's bytes, which every JPEG has read for its cleaner)."""
    if img.format in ("JPEG", "MPO") and img.size != size:
        scaled = _decode_scaled(data, img.mode, size) if data is not None else None
        if scaled is not None:
            return scaled
        img.draft(None, size)  # libjpeg picks a DCT scale still >= the size asked
    img.load()
    return img


def _decode_scaled(data: bytes, mode: str, size: tuple[int, int]) -> Image.Image | None:
    """The JPEG decoded at the smallest of libjpeg-turbo's M/8 scales that covers ``size``, or
    None when it is not a plain RGB or grey JPEG libjpeg decodes without a complaint.

    Pillow's draft mode offers 1/2, 1/4 and 1/8 only, so a 12 MP photo (4032 wide) was decoded
    whole for its 2048 rendition. At 5/8 the resize to 2048 reads 2.6× fewer pixels: that resize
    was half the handler's time. Anything libjpeg warns about (a truncated scan, stray bytes
    before a marker) goes back to Pillow's decoder, whose verdict stands as before.
    """
    colorspace = _SCALED_MODES.get(mode)
    if colorspace is None:
        return None  # CMYK and YCCK go through Pillow's conversion and the ICC profile
    width, height = size
    try:
        array = simplejpeg.decode_jpeg(
            data, colorspace=colorspace, min_width=width, min_height=height
        )
    except ValueError:
        return None
    rows, columns = array.shape[:2]
    return Image.frombuffer(mode, (columns, rows), array, "raw", mode, 0, 1)


def _fit(width: int, height: int, cap: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= cap:
        return width, height
    scale = cap / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_metadata(img: Image.Image) -> _Metadata:
    exif = img.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    try:
        identifying = bool(img.info.get("xmp")) or bool(scrub.identifying(exif))
    except _UNFOLLOWED:
        identifying = True  # EXIF we cannot read is EXIF we cannot vouch for
    return _Metadata(
        orientation=orientation if isinstance(orientation, int) else 1,
        icc=img.info.get("icc_profile") or None,
        identifying=identifying,
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


_THREADS: Final = max(2, min(4, os.cpu_count() or 1))
_STRIP_PIXELS: Final = 1 << 18
"""Outputs of at least this many pixels are resampled in strips, one per thread."""
_POOL: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """This worker process's threads for image work: Pillow releases the GIL while it
    decodes, resamples and encodes, so one image can use more than one core."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS, "image")
    return _POOL


def _write_renditions(
    pixels: _Pixels, sizes: list[tuple[str, tuple[int, int]]], orientation: int, workdir: Path
) -> list[_Written]:
    # The largest rendition is resized in strips, each turned upright on the thread that made
    # it; the smaller ones are derived from the upright one (the caps are the same either way),
    # so no turn is left for the encodes' critical path. Each rendition is encoded on a thread
    # while the next, smaller one is derived, on this thread alone once an encode is under way
    # (the encode has the other core; strips on both would only slow the encode down).
    pool = _threads()
    saving: list[Future[_Written]] = []
    current: Image.Image | None = None
    for name, size in sizes:
        if current is None:
            current = _resize_upright(pixels.image, size, orientation, pool)
        else:
            upright = (size[1], size[0]) if orientation in _TURNED else size
            if current.size != upright:
                current = current.resize(upright, Image.Resampling.LANCZOS, reducing_gap=3.0)
        saving.append(pool.submit(_save, current, workdir / name, name, pixels, _RENDITION_JPEG))
    return [future.result() for future in saving]


_TURNED: Final = frozenset({5, 6, 7, 8})
"""EXIF orientations whose upright picture swaps width and height."""


def _resize_upright(
    img: Image.Image, size: tuple[int, int], orientation: int, pool: ThreadPoolExecutor
) -> Image.Image:
    """``_upright(img.resize(size, LANCZOS), orientation)``, computed in horizontal strips on
    several threads, each strip turned upright where it was made.

    Resampling a strip with ``box`` reads the source rows around it as the whole would (no
    seams), with the same filter. Pillow may order a strip's two passes otherwise than the
    whole's, and rounds to 8 bits between them: on photos a pixel differs by a level or two (a
    test bounds that), on pixel-level noise by up to ~15 levels (2400×1801 of noise → 2048),
    noise either way. Turning is exact. The 4032 → 2048 step of a 12 MP photo was half of the
    handler's time on one core.
    """
    width, height = size
    if img.size == size:
        return _upright(img, orientation)
    if width * height < _STRIP_PIXELS or height < 2 * _THREADS:
        return _upright(img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), orientation)
    scale = img.height / height
    bounds = [height * i // _THREADS for i in range(_THREADS + 1)]
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))

    def strip(top: int, bottom: int) -> Image.Image:
        box = (0.0, top * scale, float(img.width), bottom * scale)
        made = img.resize(
            (width, bottom - top), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0
        )
        return _upright(made, orientation)

    others = [pool.submit(strip, top, bottom) for top, bottom in spans[1:]]
    first = strip(*spans[0])  # this thread takes a strip too, rather than only waiting
    out = Image.new(first.mode, (height, width) if orientation in _TURNED else size)
    out.paste(first, _upright_corner(0, spans[0][1], size, orientation))
    for (top, bottom), future in zip(spans[1:], others, strict=True):
        out.paste(future.result(), _upright_corner(top, bottom, size, orientation))
    return out


def _upright_corner(
    top: int, bottom: int, size: tuple[int, int], orientation: int
) -> tuple[int, int]:
    """Where rows ``top:bottom`` of a ``size`` picture land once it is turned upright: the
    upper left corner of their box, after mapping both corners of it."""
    width, height = size
    corners = [
        _upright_point(x, y, width, height, orientation) for x, y in ((0, top), (width, bottom))
    ]
    return min(x for x, _ in corners), min(y for _, y in corners)


def _upright_point(x: int, y: int, width: int, height: int, orientation: int) -> tuple[int, int]:
    turn = _UPRIGHT_POINTS.get(orientation)
    return turn(x, y, width, height) if turn is not None else (x, y)


_UPRIGHT_POINTS: Final[dict[int, Callable[[int, int, int, int], tuple[int, int]]]] = {
    # Where (x, y) of a width × height picture goes under each of ``_UPRIGHT``'s turns.
    2: lambda x, y, w, h: (w - x, y),
    3: lambda x, y, w, h: (w - x, h - y),
    4: lambda x, y, w, h: (x, h - y),
    5: lambda x, y, w, h: (y, x),
    6: lambda x, y, w, h: (h - y, x),
    7: lambda x, y, w, h: (h - y, w - x),
    8: lambda x, y, w, h: (y, w - x),
}


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    method = _UPRIGHT.get(orientation)
    return img.transpose(method) if method is not None else img


def _save(
    img: Image.Image, stem: Path, name: str, pixels: _Pixels, jpeg_options: dict[str, object]
) -> _Written:
    # Derived images inherit the source's info (EXIF, XMP, comments), and some encoders read
    # parts of it (JPEG writes a comment from it); only the ICC profile may reach an output.
    # ``img`` may be the opened file itself when nothing needed resizing or converting.
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
    source: Path,
    mime: str,
    workdir: Path,
    meta: _Metadata,
    full: _Pixels | None,
    cleaning: Future[bytes | None] | None,
    suffix: str,
) -> tuple[Path, str] | None:
    """``cleaning``: the container-level clean under way (None: the type has no cleaner)."""
    if cleaning is not None:
        try:
            cleaned = cleaning.result()
        except _UNFOLLOWED:
            pass  # decodable, but not a structure we can clean safely: re-encode it
        else:
            if cleaned is None:
                return None
            path = workdir / f"original-clean{suffix}"
            path.write_bytes(cleaned)
            return path, mime
    elif not meta.identifying:
        return None
    written = _reencode(source, mime, workdir, meta, full)
    return written.path, written.mime


def _reencode(
    source: Path, mime: str, workdir: Path, meta: _Metadata, full: _Pixels | None
) -> _Written:
    if full is None:  # the renditions were decoded at a reduced scale
        with Image.open(source, formats=[_PARSERS[mime]]) as img:
            img.load()
            full = _normalize(img, meta.icc)
    upright = _upright(full.image, meta.orientation)
    return _save(upright, workdir / "original-clean", "original", full, _ORIGINAL_JPEG)
