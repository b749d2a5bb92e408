"""HDR photos as SDR sRGB: what a phone's HDR still looks like on every other screen.

Three kinds reach the relay:

- **PQ or HLG** (an HDR AVIF, an Android HEIC in HDR): the pixels are HDR signal values. Shown as
  they are, they look washed out. They are decoded at 16 bits and tone-mapped the way the video
  handler does it (handlers/video.py ``tone_map``, ffmpeg's zscale + tonemap): to linear light
  with 100 nits as SDR white, BT.2020 to BT.709 primaries, the highlights rolled off by Hable's
  curve on the brightest component (peak 1000 nits, as ffmpeg assumes without metadata, no
  desaturation), then the sRGB transfer. The maths run in libvips, in float, on the image once.
- **A gain map** (an iPhone HEIC, an Ultra HDR JPEG): the image is SDR already and the gain map
  beside it only tells an HDR screen how to brighten it; the base image is used as it is, and
  only its colours (often Display P3) are taken to sRGB.

Either way the rendition is 8-bit sRGB with libvips' sRGB ICC profile attached, so a browser or
a channel's re-encoder does not take it for anything else.

The transfer is read from the primary image's ``nclx`` colour description (libheif, through
pillow-heif, which reads AVIF headers even where it cannot decode AV1); ITU-T H.273 numbers the
transfers: 16 is PQ (SMPTE ST 2084), 18 is HLG (ARIB STD-B67).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import pillow_heif
import pyvips

PQ: Final = 16
HLG: Final = 18
_HEIF_MIMES: Final = frozenset(
    {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence", "image/avif"}
)
_GAIN_MAP_AUX: Final = ("hdrgainmap", "gainmap")
"""Apple's ``urn:com:apple:photo:2020:aux:hdrgainmap`` and other gain-map auxiliary images."""
_ULTRA_HDR_XMP: Final = b"http://ns.adobe.com/hdr-gain-map/1.0/"
"""The namespace of ``hdrgm:Version``, which an Ultra HDR JPEG's XMP declares."""

_SDR_WHITE_NITS: Final = 100.0
_PEAK: Final = 10.0
"""1000 nits over SDR white: ffmpeg's tonemap assumes it for linear input without metadata."""
_TO_BT709: Final[dict[int, list[list[float]]]] = {
    9: [  # BT.2020, what HDR photos nearly always use
        [1.660491, -0.587641, -0.072850],
        [-0.124550, 1.132900, -0.008349],
        [-0.018151, -0.100579, 1.118730],
    ],
    12: [  # Display P3 (P3-D65)
        [1.224940, -0.224940, 0.0],
        [-0.042057, 1.042057, 0.0],
        [-0.019638, -0.078636, 1.098274],
    ],
    1: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],  # BT.709 already
}
"""Linear RGB in the photo's primaries (H.273 numbers) to BT.709/sRGB primaries."""
_HABLE: Final = (0.15, 0.50, 0.10, 0.20, 0.02, 0.30)
_ICC: Final = "icc-profile-data"


def heif_hdr(source: Path, mime: str) -> tuple[int, int] | None:
    """(transfer, primaries) when the primary image of a HEIF or AVIF says it is PQ or HLG;
    None for anything else. Primaries other than BT.2020, P3 and BT.709 are taken for BT.2020."""
    if mime not in _HEIF_MIMES:
        return None
    try:
        heif = pillow_heif.open_heif(source, convert_hdr_to_8bit=False)
    except (OSError, ValueError, RuntimeError):
        return None  # the ordinary decoder says what is wrong with it
    nclx = heif.info.get("nclx_profile") or {}
    transfer = nclx.get("transfer_characteristics")
    if transfer not in (PQ, HLG):
        return None
    primaries = nclx.get("color_primaries")
    return transfer, primaries if primaries in _TO_BT709 else 9


def heif_has_gain_map(source: Path, mime: str) -> bool:
    if mime not in _HEIF_MIMES:
        return False
    try:
        aux = pillow_heif.open_heif(source).info.get("aux") or {}
    except (OSError, ValueError, RuntimeError):
        return False
    return any(word in str(kind).lower() for kind in aux for word in _GAIN_MAP_AUX)


def jpeg_has_gain_map(image: pyvips.Image) -> bool:
    """An Ultra HDR (or Adobe gain-map) JPEG, by its XMP."""
    if not image.get_typeof("xmp-data"):
        return False
    return _ULTRA_HDR_XMP in bytes(image.get("xmp-data"))


def decode_16bit(source: Path, mime: str, fallback: pyvips.Image) -> pyvips.Image:
    """The primary image as 16-bit RGB(A) signal values, full range: libvips decodes AV1,
    pillow-heif (libde265) HEVC. ``fallback`` (the 8-bit decode) when libvips has no AV1
    decoder: tone-mapped from 8 bits, it bands a little but is no longer washed out."""
    if mime == "image/avif":
        try:
            image = pyvips.Image.heifload(str(source), access="sequential")
        except pyvips.Error:
            image = fallback
        return image if image.format == "ushort" else (image.cast("ushort") * 257).cast("ushort")
    heif = pillow_heif.open_heif(source, convert_hdr_to_8bit=False)
    frame = heif[heif.primary_index]
    bands = 4 if frame.has_alpha else 3
    width, height = frame.size
    bytes_per_sample = 2 if frame.mode.endswith(";16") else 1
    stride_pixels = frame.stride // (bands * bytes_per_sample)
    image = pyvips.Image.new_from_memory(
        bytes(frame.data),
        stride_pixels,
        height,
        bands,
        "ushort" if bytes_per_sample == 2 else "uchar",
    ).crop(0, 0, width, height)
    return image if bytes_per_sample == 2 else (image.cast("ushort") * 257).cast("ushort")


def tone_mapped(image: pyvips.Image, transfer: int, primaries: int = 9) -> pyvips.Image:
    """16-bit PQ or HLG signal (BT.2020 primaries unless told) → 8-bit sRGB with the sRGB
    profile attached."""
    alpha = image[3] if image.bands == 4 else None
    signal = image[0:3].cast("float") / 65535.0
    light = _pq_to_linear(signal) if transfer == PQ else _hlg_to_linear(signal)
    light = light.recomb(_TO_BT709.get(primaries, _TO_BT709[9]))
    light = _hable(light)
    out = (_srgb_oetf(_clip(light)) * 255).rint().cast("uchar")
    if alpha is not None:
        out = out.bandjoin((alpha / 257).rint().cast("uchar"))
    return as_srgb(out.copy(interpretation="srgb"))


def as_srgb(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB tagged with the sRGB profile: colours in another RGB profile (Display P3)
    converted, untagged ones taken for sRGB."""
    if image.get_typeof(_ICC):
        icc = bytes(image.get(_ICC))
        if icc[16:20] == b"RGB " and image.bands in (3, 4):
            try:
                converted = image.icc_transform("srgb", embedded=True)
            except pyvips.Error:
                pass  # a profile lcms cannot use: the pixels are taken for sRGB
            else:
                image = converted.cast("uchar").copy(interpretation="srgb")
        image = image.copy()
        image.remove(_ICC)
    else:
        image = image.copy()
    if image.bands in (3, 4):
        image.set_type(pyvips.GValue.blob_type, _ICC, pyvips.Image.profile_load("srgb"))
    return image


def _clip(image: pyvips.Image, high: float = 1.0) -> pyvips.Image:
    image = (image < 0).ifthenelse(0, image)
    return (image > high).ifthenelse(high, image)


def _pq_to_linear(signal: pyvips.Image) -> pyvips.Image:
    """SMPTE ST 2084 EOTF, in units of SDR white (100 nits)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    power = _clip(signal) ** (1 / m2)
    ratio = _clip(power - c1, math.inf) / (c2 - c3 * power)
    return ratio ** (1 / m1) * (10000.0 / _SDR_WHITE_NITS)


def _hlg_to_linear(signal: pyvips.Image) -> pyvips.Image:
    """ARIB STD-B67 inverse OETF and a 1000-nit display's OOTF (gamma 1.2), in units of SDR
    white. The OOTF is applied per component, as zimg (ffmpeg's zscale) does, not on luminance
    as BT.2100 writes it: the video path and this one must agree on the same picture."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    signal = _clip(signal)
    scene = (signal <= 0.5).ifthenelse(signal * signal / 3, (((signal - c) / a).exp() + b) / 12)
    return (scene > 0).ifthenelse(scene**1.2, 0) * (1000.0 / _SDR_WHITE_NITS)


def _hable_curve(x: pyvips.Image | float) -> pyvips.Image | float:
    a, b, c, d, e, f = _HABLE
    return (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f


def _hable(light: pyvips.Image) -> pyvips.Image:
    """ffmpeg's tonemap=hable:desat=0: the brightest component is mapped, and all three scaled
    by the same factor, which keeps hues."""
    r, g, b = light[0], light[1], light[2]
    brightest = (r > g).ifthenelse(r, g)
    brightest = (brightest > b).ifthenelse(brightest, b)
    brightest = (brightest < 1e-6).ifthenelse(1e-6, brightest)
    scale = _hable_curve(brightest) / _hable_curve(_PEAK) / brightest
    return light * scale


def _srgb_oetf(light: pyvips.Image) -> pyvips.Image:
    return (light <= 0.0031308).ifthenelse(light * 12.92, 1.055 * light ** (1 / 2.4) - 0.055)
