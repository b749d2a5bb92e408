"""Images: upright renditions without metadata, and an original that no longer says where it was.

The work happens in ``_process_image``, run through ``job.run_blocking`` (a process pool in
serve): its arguments and result are plain picklable values; our own errors (``MediaError``) are
raised there and cross the process boundary as they are.

Renditions are made by libvips (pyvips, on the ``pyvips-binary`` wheel). In the worker: open
lazily (header only) → refuse images over the pixel limit before any decoding → JPEG, PNG, WebP
and GIF are decoded by libvips itself, a JPEG at the smallest DCT scale (1/2, 1/4, 1/8) that
still covers the largest rendition (shrink-on-load); the types libvips cannot read here (HEIC,
BMP) and those whose identifying metadata only Pillow reads for us (TIFF, AVIF) are decoded by
Pillow and pillow-heif and handed over → 8-bit grey or sRGB, with alpha only where a pixel is
transparent → "large" made once, upright, and held in memory; "medium" and "small" are derived
from it. Renditions keep only the ICC profile.

Instagram's padded form of a photo whose shape it refuses (narrower than 4:5, wider than 1.91:1)
is not made here: it cost every such photo a third more CPU (every upright phone photo is one),
whether or not its owner has an Instagram channel. ``fit_instagram_file`` makes it from the
stored "large" when an Instagram delivery needs it (relay/publish/deliver.py), and
``instagram_pad`` says what size it will have without making it (the channel preview).

Then the served original. JPEG, PNG, WebP and GIF are cleaned at the container level: metadata
segments are dropped or rewritten and everything else is copied byte for byte, so the pixels and
the EXIF Orientation stay exactly as they were. Other formats carrying location or identifying
metadata are re-encoded at full resolution without it. An original with nothing worth removing is
served as it came (``served_original`` stays None).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pillow_heif
import pyvips
from PIL import Image, ImageCms, ImageFile

from handlers import hdr_still, scrub
from relay.directio import write_once
from relay.errors import (
    NO_SPACE_TEXTS,
    LimitExceeded,
    MediaError,
    RelayError,
    StorageError,
    out_of_space,
)
from relay.model import HandlerInput, HandlerOutput, Kind, RenditionFile

pillow_heif.register_heif_opener()
Image.init()
# Every job reads a new file once: cached operations would only keep a finished job's pixels
# (and the descriptors of its deleted work files) alive in the worker.
pyvips.cache_set_max(0)

# The sniffed type decides which parser may look at the bytes: a file sniffed as PNG is never
# handed to, say, the TIFF or PSD decoder.
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

_VIPS_LOADERS: Final[dict[str, str]] = {
    "image/jpeg": "jpegload",
    "image/png": "pngload",
    "image/gif": "gifload",
    "image/webp": "webpload",
}
"""The types libvips decodes itself (each has a container-level cleaner for its original, so
Pillow need not read its metadata); every other type goes through Pillow."""

MIMES: Final[frozenset[str]] = frozenset(_PARSERS)
"""The sniffed types ImageHandler accepts (AVIF only when this Pillow build decodes it)."""

RENDITIONS: Final[tuple[tuple[str, int], ...]] = (("large", 2048), ("medium", 1024), ("small", 320))
"""Rendition names and the longest side each may have; sources are never upscaled."""

_RENDITION_JPEG: Final = {"Q": 85, "optimize_coding": True, "interlace": True}
_ORIGINAL_JPEG: Final = {"Q": 92, "optimize_coding": True, "interlace": True}
_KEEP_ICC: Final = pyvips.enums.ForeignKeep.ICC
_ICC: Final = "icc-profile-data"
_ORIENTATION_FIELD: Final = "orientation"

# Pillow raises these for damaged input (Image.open turns struct/index errors raised while
# parsing headers into SyntaxError; decoders raise OSError; pillow_heif raises ValueError);
# libvips raises pyvips.Error, when the pixels are computed as well as when a header is read.
_DAMAGED: Final = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)
_DAMAGED_ANYWHERE: Final = (*_DAMAGED, pyvips.Error)
# What parsing or rewriting metadata a decoder tolerated may raise; the answer is a re-encode.
_UNFOLLOWED: Final = (*_DAMAGED, KeyError, IndexError, TypeError)

_ORIENTATION: Final = 0x0112
_TURNED: Final = frozenset({5, 6, 7, 8})
"""EXIF orientations whose upright picture swaps width and height."""


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
        served, served_mime, served_sha256 = outcome.served or (None, None, None)
        return HandlerOutput(
            renditions=[
                RenditionFile(f.name, f.path, f.mime, width=f.width, height=f.height)
                for f in outcome.renditions
            ],
            served_original=served,
            served_original_mime=served_mime,
            served_original_sha256=served_sha256,
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
    served: tuple[Path, str, str | None] | None = None
    """The cleaned original, its type, and its SHA-256 when it was made from bytes in hand."""


@dataclass(slots=True)
class _Source:
    """The first frame, ready for resizing: 8-bit grey or sRGB, alpha optional, its stored
    orientation and (only when it describes these pixels) its ICC profile attached."""

    image: pyvips.Image
    """Not decoded yet when libvips reads the file: pixels are computed on demand."""
    width: int
    height: int
    """The stored picture's size, before any shrink-on-load."""
    full: bool
    """``image`` has every pixel of the original and may be read again (it was neither shrunk
    on load nor opened for one sequential read)."""
    identifying: bool
    """Location, XMP or identifying EXIF in a type without a container-level cleaner."""


def _process_image(source: Path, mime: str, workdir: Path, max_pixels: int) -> _Outcome:
    cleaner, suffix = scrub.CLEANERS.get(mime, (None, ""))
    try:
        if mime in _VIPS_LOADERS:
            opened = _open_vips(source, mime, max_pixels, RENDITIONS[0][1])
        else:
            opened = _open_pillow(source, mime, max_pixels)
        opened = _as_sdr(source, mime, opened)
        # The container-level clean of the original needs only the file's bytes: it runs on a
        # thread while libvips decodes and resizes (which releases the GIL), and so does the
        # wait for the disk to take the cleaned file.
        cleaned = workdir / f"original-clean{suffix}"
        cleaning = _threads().submit(_clean_original, cleaner, source, cleaned) if cleaner else None
        try:
            renditions, transparent = _write_renditions(opened, workdir)
        except BaseException:
            if cleaning is not None:
                wait([cleaning])  # not writing into the work folder as the job's end clears it
            raise
        served = _served_original(source, mime, workdir, opened, transparent, cleaning, cleaned)
    except _DAMAGED_ANYWHERE as exc:
        raise _failure(exc) from None
    return _Outcome(renditions=renditions, served=served)


def _failure(exc: BaseException) -> RelayError:
    """What an error while reading or writing pictures means: our own disk full is an outage
    the job waits out (``storage.full``, never the photo's fault); anything else, a picture
    that cannot be read."""
    detail = f"{type(exc).__name__}: {exc}"
    if out_of_space(exc) or (
        isinstance(exc, pyvips.Error) and any(text in str(exc) for text in NO_SPACE_TEXTS)
    ):
        return StorageError("storage.full", detail)
    return MediaError("media.corrupt", detail)


def _as_sdr(source: Path, mime: str, opened: _Source) -> _Source:
    """An HDR photo as the SDR sRGB picture it should look like (handlers/hdr_still.py): PQ or
    HLG tone-mapped from 16 bits, a gain-map photo's SDR base in sRGB; any other as it was."""
    hdr = hdr_still.heif_hdr(source, mime)
    if hdr is not None:
        decoded = hdr_still.decode_16bit(source, mime, opened.image)
        if (decoded.width, decoded.height) != (opened.image.width, opened.image.height):
            raise MediaError("media.corrupt", "the HDR picture is not the size its header says")
        image = hdr_still.tone_mapped(decoded, *hdr)
        orientation = _orientation(opened.image)
        if orientation != 1:
            image.set_type(pyvips.GValue.gint_type, _ORIENTATION_FIELD, orientation)
        opened.image = image
    elif (mime == "image/jpeg" and hdr_still.jpeg_has_gain_map(opened.image)) or (
        hdr_still.heif_has_gain_map(source, mime)
    ):
        opened.image = hdr_still.as_srgb(opened.image)
    return opened


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise LimitExceeded("media.too_many_pixels", f"{width}x{height} over {max_pixels} pixels")
    if width < 1 or height < 1:
        raise MediaError("media.corrupt", f"{width}x{height}")


# --- decoding ----------------------------------------------------------------------------------


def _open_vips(source: Path, mime: str, max_pixels: int, cap: int | None) -> _Source:
    """The first frame through libvips' loader for ``mime`` only; a JPEG shrunk on load to the
    smallest DCT scale whose longest side still covers ``cap`` (None: full resolution)."""
    load = getattr(pyvips.Image, _VIPS_LOADERS[mime])
    # "truncated": a file cut short is corrupt, as it was to Pillow; lesser warnings (stray
    # bytes before a marker, which cameras write) are tolerated, as they were.
    options: dict[str, object] = {"fail_on": "truncated"}
    if cap is not None:
        options["access"] = "sequential"  # decoded as the resize reads it: no full-size buffer
    header = load(str(source), **options)  # reads the header only
    width, height = header.width, header.height
    _check_size(width, height, max_pixels)
    image = header
    shrink = _jpeg_shrink(width, height, cap) if mime == "image/jpeg" and cap else 1
    if shrink > 1:
        image = load(str(source), shrink=shrink, **options)
    return _Source(_normalize(image), width, height, full=cap is None, identifying=False)


def _jpeg_shrink(width: int, height: int, cap: int) -> int:
    longest = max(width, height)
    return next((s for s in (8, 4, 2) if longest // s >= cap), 1)


def _normalize(image: pyvips.Image) -> pyvips.Image:
    """8-bit grey or sRGB, 1 to 4 bands; the ICC profile dropped unless it describes them."""
    icc = _field(image, _ICC)
    if image.interpretation == "cmyk":
        image, icc = _cmyk_to_srgb(image, icc), None
    elif image.format != "uchar" or image.interpretation not in ("b-w", "srgb"):
        # 16-bit PNGs are scaled to 8 bits here, not clipped.
        image = image.colourspace("b-w" if image.bands in (1, 2) else "srgb")
    if not _icc_fits(icc, image.bands):
        image = _without(image, _ICC)
    return image


def _cmyk_to_srgb(image: pyvips.Image, icc: bytes | None) -> pyvips.Image:
    if icc and icc[16:20] == b"CMYK":
        # A profile libvips cannot use falls back to its own CMYK profile.
        converted = image.icc_transform("srgb", embedded=True, input_profile="cmyk")
        return _without(converted.copy(interpretation="srgb"), _ICC)
    # No profile: the plain conversion Pillow made, which keeps pure inks pure.
    white = 255 - image[3]
    rgb = ((255 - image[0:3]) * white / 255).rint().cast("uchar")
    return rgb.copy(interpretation="srgb")


def _icc_fits(icc: bytes | None, bands: int) -> bool:
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if bands in (1, 2) else b"RGB ")


def _field(image: pyvips.Image, name: str) -> bytes | None:
    return image.get(name) if image.get_typeof(name) else None


def _without(image: pyvips.Image, name: str) -> pyvips.Image:
    if not image.get_typeof(name):
        return image
    image = image.copy()
    image.remove(name)
    return image


def _open_pillow(source: Path, mime: str, max_pixels: int) -> _Source:
    # Pillow's own bomb guard would fire inside Image.open with its own exception; our limit is
    # the one that decides, and it is checked right after the header is read.
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(source, formats=[_PARSERS[mime]]) as img:
        width, height = img.size
        _check_size(width, height, max_pixels)
        img.load()
        exif = img.getexif()
        orientation = exif.get(_ORIENTATION, 1)
        try:
            identifying = bool(img.info.get("xmp")) or bool(scrub.identifying(exif))
        except _UNFOLLOWED:
            identifying = True  # EXIF we cannot read is EXIF we cannot vouch for
        icc = img.info.get("icc_profile") or None
        pixels, icc = _pillow_8bit(img, icc)
    image = pyvips.Image.new_from_memory(
        pixels.tobytes(), pixels.width, pixels.height, len(pixels.mode), "uchar"
    ).copy(interpretation="b-w" if pixels.mode in ("L", "LA") else "srgb")
    if isinstance(orientation, int) and orientation in range(2, 9):
        image.set_type(pyvips.GValue.gint_type, _ORIENTATION_FIELD, orientation)
    if _icc_fits(icc, image.bands):
        image.set_type(pyvips.GValue.blob_type, _ICC, icc)
    return _Source(image, width, height, full=True, identifying=identifying)


def _pillow_8bit(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """L, LA, RGB or RGBA, and the ICC profile still describing it."""
    mode = img.mode
    if mode == "CMYK":
        img, icc = _pillow_cmyk_to_rgb(img, icc), None
    elif mode.startswith(("I", "F")):
        img = _to_8bit_grey(img)
    elif mode in ("P", "PA", "RGBa", "La", "RGBX", "YCbCr", "LAB", "HSV", "1"):
        has_alpha = mode in ("PA", "RGBa", "La") or "transparency" in img.info
        img = img.convert(("LA" if mode == "La" else "RGBA") if has_alpha else _base_mode(mode))
    elif mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert(mode + "A" if mode == "L" else "RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return img, icc


def _base_mode(mode: str) -> str:
    return "L" if mode == "1" else "RGB"


def _pillow_cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
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


# --- renditions --------------------------------------------------------------------------------


_POOL: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """This worker's threads for the original's clean and the renditions' encodes, which run
    while the next rendition is made (libvips and the cleaner's C parts release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(2, "image")
    return _POOL


def _fit(width: int, height: int, cap: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= cap:
        return width, height
    scale = cap / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _upright_size(source: _Source) -> tuple[int, int]:
    turned = _orientation(source.image) in _TURNED
    return (source.height, source.width) if turned else (source.width, source.height)


def _orientation(image: pyvips.Image) -> int:
    if not image.get_typeof(_ORIENTATION_FIELD):
        return 1
    value = image.get(_ORIENTATION_FIELD)
    return value if isinstance(value, int) else 1


def _write_renditions(source: _Source, workdir: Path) -> tuple[list[_Written], bool]:
    """The renditions, and whether they carry transparency (PNG) or not (JPEG).

    Each size comes from the original's stored size (``_fit``), forced exactly, so a JPEG
    shrunk on load (which rounds its size up) gives the sizes a full decode would. "large" is
    turned upright by libvips' thumbnail (which then drops the orientation) and computed once
    into memory: the only decode; each smaller size is resampled from it. Each rendition is
    encoded on a thread while the next one is made."""
    upright = _upright_size(source)
    saving: list[Future[_Written]] = []
    current: pyvips.Image | None = None
    transparent = False
    for name, cap in RENDITIONS:
        width, height = _fit(*upright, cap)
        if current is None:
            current = _resized(source.image, width, height).copy_memory()
            current, transparent = _opaque_unless_transparent(current)
        elif (current.width, current.height) != (width, height):
            current = _resized(current, width, height).copy_memory()
        saving.append(_threads().submit(_save, current, workdir / name, name, transparent))
    return [future.result() for future in saving], transparent


# --- a rendition Instagram takes ---------------------------------------------------------------

FIT_INSTAGRAM: Final = "fit_instagram"
"""A photo's rendition padded to a shape Instagram takes, made from "large" only when an
Instagram delivery needs one (``fit_instagram_file``)."""
INSTAGRAM_ASPECTS: Final = ((4, 5), (191, 100))
"""Instagram's narrowest (4:5) and widest (1.91:1) aspect ratios for a feed photo."""
INSTAGRAM_WIDTHS: Final = (320, 1440)
"""Instagram's narrowest and widest photo widths (it scales anything else itself)."""
_ASPECT_SLACK: Final = 0.005
"""The rounding a photo already at 4:5 or 1.91:1 may show (the adapter allows the same)."""
_WHITE: Final = (255.0, 255.0, 255.0)
_LARGE_PIXELS: Final = RENDITIONS[0][1] * RENDITIONS[0][1]
"""The most pixels a "large" rendition can have: a stored file claiming more is not one."""


@dataclass(frozen=True, slots=True)
class InstagramPad:
    """Where a picture goes on the canvas Instagram is sent: the arithmetic of
    ``instagram_fit``, apart, so that the channel preview can say what it will make."""

    width: int
    height: int
    """The canvas: 4:5 or 1.91:1, 320 to 1440 px wide."""
    picture_width: int
    picture_height: int
    """The picture, scaled, in the middle of the canvas."""
    wide: bool
    """Padded to 1.91:1 (bands above and below); False: to 4:5 (bands left and right)."""


def instagram_pad(width: int, height: int) -> InstagramPad | None:
    """The canvas a ``width`` × ``height`` upright picture is padded to for Instagram; None when
    Instagram shows its shape as it is."""
    (tall_w, tall_h), (wide_w, wide_h) = INSTAGRAM_ASPECTS
    ratio = width / height
    if ratio > wide_w / wide_h + _ASPECT_SLACK:
        aspect, canvas_w = (wide_w, wide_h), float(width)
    elif ratio < tall_w / tall_h - _ASPECT_SLACK:
        aspect, canvas_w = (tall_w, tall_h), height * tall_w / tall_h
    else:
        return None
    low, high = INSTAGRAM_WIDTHS
    scale = min(max(canvas_w, low), high) / canvas_w
    out_w = min(max(round(canvas_w * scale), low), high)
    out_h = round(out_w * aspect[1] / aspect[0])
    return InstagramPad(
        width=out_w,
        height=out_h,
        picture_width=min(out_w, max(1, round(width * scale))),
        picture_height=min(out_h, max(1, round(height * scale))),
        wide=aspect == (wide_w, wide_h),
    )


def instagram_fit(image: pyvips.Image) -> pyvips.Image | None:
    """``image`` (upright, 8-bit grey or sRGB) padded, never cropped, to the nearest aspect
    ratio Instagram shows, 320 to 1440 px wide, opaque sRGB; None when it already fits.

    Instagram refuses feed photos narrower than 4:5 or wider than 1.91:1; cropping would cut off
    what the person chose to show, so the picture is kept whole on a band of its own mean edge
    colour (white where it is transparent), as a print is mounted."""
    width, height = image.width, image.height
    pad = instagram_pad(width, height)
    if pad is None:
        return None
    picture = _srgb_opaque(image)
    if (pad.picture_width, pad.picture_height) != (width, height):
        picture = picture.resize(
            pad.picture_width / width, vscale=pad.picture_height / height, kernel="lanczos3"
        )
    background = _edge_colour(picture, wide=pad.wide)
    return picture.embed(
        (pad.width - pad.picture_width) // 2,
        (pad.height - pad.picture_height) // 2,
        pad.width,
        pad.height,
        extend="background",
        background=list(background),
    )


def fit_instagram_file(
    source: Path, mime: str, workdir: Path, max_pixels: int = _LARGE_PIXELS
) -> RenditionFile | None:
    """A stored rendition (``source``, the "large" JPEG or PNG) padded for Instagram into
    ``workdir``, as ``fit_instagram``: an sRGB JPEG saved as every rendition is (q85,
    progressive, optimised, only the ICC profile kept). None when Instagram takes its shape.

    Runs in the worker pool (plain picklable arguments and result). The size is checked against
    ``max_pixels`` from the header, before any decoding, as the handler checks an original."""
    if mime not in _VIPS_LOADERS:
        raise MediaError("media.unsupported", f"no rendition loader for {mime}")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        opened = _open_vips(source, mime, max_pixels, None)
        # Renditions are stored upright; one that says otherwise is turned as the handler would.
        image = opened.image.autorot() if _orientation(opened.image) != 1 else opened.image
        fitted = instagram_fit(image)
        if fitted is None:
            return None
        written = _save(fitted, workdir / FIT_INSTAGRAM, FIT_INSTAGRAM, False)
    except _DAMAGED_ANYWHERE as exc:
        raise _failure(exc) from None
    return RenditionFile(
        written.name, written.path, written.mime, width=written.width, height=written.height
    )


def _srgb_opaque(image: pyvips.Image) -> pyvips.Image:
    """Three sRGB bands: grey made colour, any other profile converted to sRGB, transparency
    laid on white (a JPEG has no alpha)."""
    if _field(image, _ICC) and image.bands in (3, 4):
        image = image.icc_transform("srgb", embedded=True)
    elif image.bands in (1, 2):
        image = _without(image, _ICC).colourspace("srgb")
    if image.hasalpha():
        image = image.flatten(background=list(_WHITE))
    return image.cast("uchar").copy(interpretation="srgb")


def _edge_colour(image: pyvips.Image, *, wide: bool) -> tuple[float, float, float]:
    """The mean colour of the edges the padding will meet: top and bottom rows for a wide
    picture, left and right columns for a tall one."""
    if wide:
        edges = [image.crop(0, 0, image.width, 1), image.crop(0, image.height - 1, image.width, 1)]
    else:
        edges = [image.crop(0, 0, 1, image.height), image.crop(image.width - 1, 0, 1, image.height)]
    means = [sum(edge[band].avg() for edge in edges) / len(edges) for band in range(3)]
    return (means[0], means[1], means[2])


def _resized(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    # thumbnail_image: the resize libvips' own thumbnailer does (a box shrink, then Lanczos 3,
    # with alpha premultiplied), turning the picture upright first; width and height are upright.
    return image.thumbnail_image(width, height=height, size="force")


def _opaque_unless_transparent(image: pyvips.Image) -> tuple[pyvips.Image, bool]:
    """An alpha channel nobody uses is not transparency: it is dropped."""
    if not image.hasalpha():
        return image, False
    if image[image.bands - 1].min() >= 255:
        return image[0 : image.bands - 1], False
    return image, True


def _save(
    image: pyvips.Image,
    stem: Path,
    name: str,
    transparent: bool,
    jpeg: dict[str, object] | None = None,
) -> _Written:
    # Loaders attach EXIF, XMP, comments and more; only the ICC profile may reach an output.
    if transparent:
        path, mime = stem.with_suffix(".png"), "image/png"
        image.pngsave(str(path), keep=_KEEP_ICC)
    else:
        path, mime = stem.with_suffix(".jpg"), "image/jpeg"
        image.jpegsave(str(path), keep=_KEEP_ICC, **(jpeg or _RENDITION_JPEG))
    return _Written(name, path, mime, image.width, image.height)


# --- the served original -----------------------------------------------------------------------


class _Uncleanable(Exception):
    """The original decodes, but its structure is not one the cleaner follows safely: it is
    re-encoded instead."""


def _clean_original(
    cleaner: Callable[[bytes], bytes | None], source: Path, target: Path
) -> str | None:
    """The original cleaned at the container level into ``target``: its SHA-256; None when
    there was nothing to remove; ``_Uncleanable`` when the cleaner does not follow it.
    Reading or writing errors are raised as they are (a full disk is not the photo's fault)."""
    data = source.read_bytes()
    try:
        cleaned = cleaner(data)
    except _UNFOLLOWED as exc:
        raise _Uncleanable from exc
    if cleaned is None:
        return None
    write_once(target, cleaned)  # the store keeps it; nothing reads it soon
    # Hashed here, from the bytes in hand: read back for it, the file just written past the
    # page cache would fill as much of it anew.
    return hashlib.sha256(cleaned).hexdigest()


def _served_original(
    source: Path,
    mime: str,
    workdir: Path,
    opened: _Source,
    transparent: bool,
    cleaning: Future[str | None] | None,
    cleaned: Path,
) -> tuple[Path, str, str | None] | None:
    """``cleaning``: ``_clean_original`` under way into ``cleaned`` (None: the type has no
    cleaner)."""
    if cleaning is not None:
        try:
            sha256 = cleaning.result()
        except _Uncleanable:
            pass  # re-encoded below
        else:
            return None if sha256 is None else (cleaned, mime, sha256)
    elif not opened.identifying:
        return None
    written = _reencode(source, mime, workdir, opened, transparent)
    return written.path, written.mime, None


def _reencode(
    source: Path, mime: str, workdir: Path, opened: _Source, transparent: bool
) -> _Written:
    full = opened if opened.full else _open_vips(source, mime, opened.width * opened.height, None)
    image = full.image
    if image.hasalpha() and not transparent:
        image = image[0 : image.bands - 1]
    return _save(
        image.autorot(), workdir / "original-clean", "original", transparent, _ORIGINAL_JPEG
    )
