"""HDR photos come out as SDR sRGB JPEGs that look right: a PQ or HLG AVIF or HEIC tone-mapped
like ffmpeg's own tone-mapping of the same picture (mean and spread of luma within a few levels),
a gain-map photo's SDR base used and taken to sRGB; every such rendition tagged sRGB."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

import pillow_heif
import pytest
import pyvips
from PIL import Image, ImageCms, ImageStat

from handlers.image import ImageHandler
from tests.clips import ffmpeg, has_encoder
from tests.handlers_support import run_handler
from tests.stills import HLG_CICP, PQ_CICP, TRANSFERS, avif, hdr_png, with_gain_map

run = partial(run_handler, ImageHandler)

REFERENCE = (
    "format=gbrpf32le,zscale=tin={transfer}:pin=bt2020:p=bt2020:min=gbr:rin=full:t=linear:npl=100,"
    "zscale=p=bt709,tonemap=hable:desat=0,zscale=t=iec61966-2-1:m=gbr:r=full,format=rgb24"
)
"""handlers/video.py's tone-mapping, ending in sRGB instead of BT.709 video."""
LEVELS = 3


def luma(image: Image.Image) -> tuple[float, float]:
    stat = ImageStat.Stat(image.convert("L"))
    return stat.mean[0], stat.stddev[0]


def reference(source_png: Path, transfer: int, tmp_path: Path) -> tuple[float, float]:
    target = tmp_path / "reference.png"
    ffmpeg(
        "-i", str(source_png), "-vf", REFERENCE.format(transfer=TRANSFERS[transfer]), str(target)
    )
    with Image.open(target) as image:
        return luma(image)


def large(path: Path) -> Image.Image:
    output = run(path)
    [rendition] = [r for r in output.renditions if r.name == "large"]
    assert (rendition.mime, rendition.width, rendition.height) == ("image/jpeg", 320, 240)
    return Image.open(rendition.path)


def profile_name(image: Image.Image) -> str:
    icc = image.info.get("icc_profile")
    assert icc, "the rendition has no ICC profile"
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))


def assert_looks_like(made: Image.Image, expected: tuple[float, float]) -> None:
    mean, spread = luma(made)
    assert mean == pytest.approx(expected[0], abs=LEVELS), (mean, spread, expected)
    assert spread == pytest.approx(expected[1], abs=LEVELS), (mean, spread, expected)


@pytest.mark.skipif(not has_encoder("libaom-av1"), reason="no AV1 encoder to make an AVIF")
@pytest.mark.parametrize("transfer", [PQ_CICP, HLG_CICP], ids=["pq", "hlg"])
def test_an_hdr_avif_is_tone_mapped_to_srgb(tmp_path: Path, transfer: int) -> None:
    photo = avif(tmp_path / "photo.avif", transfer)
    expected = reference(photo.with_suffix(".png"), transfer, tmp_path)
    with Image.open(photo) as naive:  # the HDR signal shown as it is: far off
        assert abs(luma(naive)[0] - expected[0]) > 4 * LEVELS
    with large(photo) as made:
        assert_looks_like(made, expected)
        assert "sRGB" in profile_name(made)


def test_an_hdr_heic_is_tone_mapped_to_srgb(tmp_path: Path) -> None:
    source = hdr_png(tmp_path / "source.png", PQ_CICP)
    pixels = pyvips.Image.new_from_file(str(source))
    photo = tmp_path / "photo.heic"
    heif = pillow_heif.from_bytes("RGB;16", (pixels.width, pixels.height), pixels.write_to_memory())
    heif.save(
        photo,
        quality=95,
        color_primaries=9,
        transfer_characteristics=PQ_CICP,
        matrix_coefficients=9,
        full_range_flag=1,
    )
    expected = reference(source, PQ_CICP, tmp_path)
    with large(photo) as made:
        assert_looks_like(made, expected)
        assert "sRGB" in profile_name(made)


def sdr_pattern(tmp_path: Path) -> pyvips.Image:
    pattern = tmp_path / "pattern.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1", str(pattern))
    return pyvips.Image.new_from_file(str(pattern))


def assert_srgb_like(photo: Path, sdr: pyvips.Image) -> None:
    """The rendition is the SDR picture in sRGB, tagged so; the photo as stored (Display P3
    values, were they read as sRGB) is not."""
    expected = [sdr[band].avg() for band in range(3)]
    with Image.open(photo) as stored:
        means = ImageStat.Stat(stored.convert("RGB")).mean
        assert max(abs(a - b) for a, b in zip(means, expected, strict=True)) > 4
    with large(photo) as made:
        assert "sRGB" in profile_name(made)
        assert ImageStat.Stat(made.convert("RGB")).mean == pytest.approx(expected, abs=LEVELS)


def test_an_iphone_heic_with_a_gain_map_shows_its_sdr_base_in_srgb(tmp_path: Path) -> None:
    sdr = sdr_pattern(tmp_path)
    base = sdr.icc_transform("p3", input_profile="srgb")
    gain_map = Image.new("L", (160, 120), 128)
    heif = pillow_heif.from_bytes("RGB", (base.width, base.height), base.write_to_memory())
    heif.add_from_pillow(gain_map)
    stored = io.BytesIO()
    heif.save(stored, format="HEIF", quality=95, icc_profile=pyvips.Image.profile_load("p3"))
    photo = tmp_path / "IMG_0001.HEIC"
    photo.write_bytes(with_gain_map(stored.getvalue()))
    assert list(pillow_heif.open_heif(photo).info["aux"]) == [
        "urn:com:apple:photo:2020:aux:hdrgainmap"
    ]
    assert_srgb_like(photo, sdr)


def ultra_hdr_jpeg(path: Path, sdr: pyvips.Image) -> Path:
    """An Ultra HDR JPEG as a phone writes it: the SDR picture in Display P3 with its profile,
    the gain-map XMP (https://developer.android.com/media/platform/hdr-image-format) and the
    gain map (a grey JPEG) after the primary image."""
    base = sdr.icc_transform("p3", input_profile="srgb")
    base.set_type(pyvips.GValue.blob_type, "xmp-data", ULTRA_HDR_XMP)
    keep = pyvips.enums.ForeignKeep.ICC | pyvips.enums.ForeignKeep.XMP
    gain_map = pyvips.Image.black(80, 60).new_from_image(128).cast("uchar")
    path.write_bytes(base.jpegsave_buffer(Q=95, keep=keep) + gain_map.jpegsave_buffer(Q=90, keep=0))
    return path


ULTRA_HDR_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def test_an_ultra_hdr_jpeg_shows_its_sdr_base_in_srgb(tmp_path: Path) -> None:
    sdr = sdr_pattern(tmp_path)
    assert_srgb_like(ultra_hdr_jpeg(tmp_path / "PXL_0001.jpg", sdr), sdr)
