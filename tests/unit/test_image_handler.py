"""ImageHandler: upright renditions at the right sizes, no metadata but the ICC profile, limits
before decoding, and a served original that no longer carries a position."""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageStat, PngImagePlugin

from handlers import handler_for, scrub
from handlers.image import MIMES, ImageHandler
from relay.errors import LimitExceeded, MediaError, StorageError
from relay.model import HandlerInput, HandlerOutput, Kind, Limits
from relay.worker import is_outage
from tests.handlers_support import run_handler

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
ORIENTATION = 0x0112
MAKE = 0x010F
MAKER_NOTE = 0x927C
XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/"
# The IFD0 entry pointing at the GPS IFD (tag, type LONG, count 1), in both byte orders: long
# enough not to turn up by chance in compressed pixels, unlike the bare tag number.
GPS_ENTRIES = (b"\x88\x25\x00\x04\x00\x00\x00\x01", b"\x25\x88\x04\x00\x01\x00\x00\x00")
MAKER_NOTE_BYTES = b"Apple iOS\x00\x00\x01MM location-ish vendor blob"
XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" exif:GPSLatitude="59,19.758N" '
    b'exif:GPSLongitude="18,4.116E"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- helpers ---------------------------------------------------------------------------------


process = partial(run_handler, ImageHandler)


def by_name(output: HandlerOutput) -> dict[str, Any]:
    return {r.name: r for r in output.renditions}


def sizes(output: HandlerOutput) -> dict[str, tuple[int, int]]:
    return {r.name: (r.width, r.height) for r in output.renditions}


def gps_exif(orientation: int = 1, *, maker_note: bool = True) -> Image.Exif:
    """EXIF as a phone writes it: position in Stockholm, make and model, a vendor MakerNote."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Apple"
    exif[0x0110] = "iPhone 13"
    exif[GPS_IFD] = {1: "N", 2: (59.0, 19.0, 45.48), 3: "E", 4: (18.0, 4.0, 6.96)}
    exif[EXIF_IFD] = {0x9003: "2024:06:06 12:00:00"}
    if maker_note:
        exif[EXIF_IFD][MAKER_NOTE] = MAKER_NOTE_BYTES
    return exif


def make_phone_jpeg(path: Path, width: int = 4032, height: int = 3024) -> Path:
    """A 12-megapixel JPEG as an iPhone stores a portrait shot: landscape pixels with EXIF
    Orientation 6, a GPS IFD, Make/Model, a MakerNote and an XMP packet with the position too.
    Gradient plus noise, so it compresses like a photo. In stored pixels a red block marks the
    top-left corner and a blue one the bottom-left; shown upright (turned 90° clockwise) they
    sit top-right and top-left."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.effect_noise((width, height), 40)
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    block = height // 5
    draw.rectangle((0, 0, block, block), fill=(255, 0, 0))
    draw.rectangle((0, height - block, block, height), fill=(0, 0, 255))
    image.save(path, "JPEG", quality=90, exif=gps_exif(6).tobytes(), xmp=XMP_PACKET)
    return path


@pytest.fixture(scope="module")
def phone_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_phone_jpeg(tmp_path_factory.mktemp("phone") / "IMG_0042.jpeg")


def signature(path: Path, shape: tuple[int, int]) -> Image.Image:
    return Image.open(path).convert("L").resize(shape, Image.Resampling.BOX)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return ImageStat.Stat(ImageChops.difference(a, b)).mean[0]


def mostly(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    stat = ImageStat.Stat(image.convert("RGB").crop(box))
    return tuple(round(v) for v in stat.mean)


def near(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def leaks(data: bytes) -> list[str]:
    found = [f"GPS IFD entry {entry.hex()}" for entry in GPS_ENTRIES if entry in data]
    if XMP_NAMESPACE in data:
        found.append("XMP")
    if MAKER_NOTE_BYTES in data:
        found.append("MakerNote")
    return found


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_16bit(path: Path, width: int, height: int, colour_type: int, pixel: Callable) -> Path:
    """Pillow writes no 16-bit colour PNGs, so the bytes are laid out by hand."""
    rows = b"".join(b"\x00" + b"".join(pixel(x, y) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )
    return path


def assert_no_metadata(path: Path) -> None:
    data = path.read_bytes()
    assert leaks(data) == [], path
    with Image.open(path) as image:
        assert not image.getexif(), path
        assert not {"exif", "xmp", "comment"} & set(image.info), (path, image.info.keys())


# --- the EXIF orientation corpus ---------------------------------------------------------------

CORPUS_NAMES = [f"{shape}_{n}.jpg" for shape in ("Landscape", "Portrait") for n in range(9)]


@pytest.fixture(scope="module")
def corpus_outputs(
    corpora: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, HandlerOutput]:
    folder = corpora / "exif-orientation"
    workdir = tmp_path_factory.mktemp("corpus")
    return {name: process(folder / name, "image/jpeg", workdir / name) for name in CORPUS_NAMES}


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_corpus_photo_is_upright_at_every_size(
    name: str, corpus_outputs: dict[str, HandlerOutput]
) -> None:
    shape = name.split("_")[0]
    landscape = shape == "Landscape"
    output = corpus_outputs[name]
    expected = (
        {"large": (1800, 1200), "medium": (1024, 683), "small": (320, 213)}
        if landscape
        # 2:3 is narrower than Instagram's 4:5, but only an Instagram delivery pads it
        else {"large": (1200, 1800), "medium": (683, 1024), "small": (213, 320)}
    )
    assert sizes(output) == expected
    reference = by_name(corpus_outputs[f"{shape}_1.jpg"])
    thumb = (48, 32) if landscape else (32, 48)
    for rendition in output.renditions:
        assert rendition.mime == "image/jpeg"
        with Image.open(rendition.path) as image:
            assert image.format == "JPEG"
            assert image.size == (rendition.width, rendition.height)
        assert_no_metadata(rendition.path)
        ours = signature(rendition.path, thumb)
        upright = signature(reference[rendition.name].path, thumb)
        # Same photo: well under 1 grey level apart. Turned or mirrored: over 30.
        assert mean_difference(ours, upright) < 5, rendition.name
        assert mean_difference(ours.transpose(Image.Transpose.ROTATE_180), upright) > 20
    assert output.served_original is None  # orientation and resolution tags are no secret


def test_the_upright_check_tells_a_mirror_from_the_original(
    corpus_outputs: dict[str, HandlerOutput],
) -> None:
    upright = signature(by_name(corpus_outputs["Portrait_1.jpg"])["medium"].path, (32, 48))
    for method in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM):
        assert mean_difference(upright.transpose(method), upright) > 20


# --- the phone photo ---------------------------------------------------------------------------


def test_phone_photo_renditions_are_upright_and_clean(phone_jpeg: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(phone_jpeg.read_bytes()).hexdigest()
    output = process(phone_jpeg, "image/jpeg", tmp_path / "work")
    assert hashlib.sha256(phone_jpeg.read_bytes()).hexdigest() == before, "source modified"
    # 3:4 is narrower than Instagram's 4:5: an Instagram delivery pads it, the handler does not
    assert sizes(output) == {"large": (1536, 2048), "medium": (768, 1024), "small": (240, 320)}
    for rendition in output.renditions:
        assert rendition.mime == "image/jpeg"
        assert rendition.path.parent == tmp_path / "work"
        assert_no_metadata(rendition.path)
        with Image.open(rendition.path) as image:
            w, h = image.size
            corner = w // 10
            assert near(mostly(image, (w - corner, 0, w, corner)), (255, 0, 0), 30), "top-right"
            assert near(mostly(image, (0, 0, corner, corner)), (0, 0, 255), 30), "top-left"


def test_phone_photo_renditions_are_progressive_optimised_quality_85(
    phone_jpeg: Path, tmp_path: Path
) -> None:
    # Progressive scans show a whole picture early on slow phone links (libjpeg makes optimised
    # Huffman tables for every progressive JPEG); the quantisation tables are libjpeg's at
    # quality 85, the same whichever library drives it.
    output = process(phone_jpeg, "image/jpeg", tmp_path / "work")
    reference = io.BytesIO()
    Image.new("RGB", (64, 64)).save(reference, "JPEG", quality=85)
    with Image.open(reference) as made:
        tables = made.quantization
    for rendition in output.renditions:
        with Image.open(rendition.path) as image:
            assert image.info.get("progressive") == 1, rendition.name
            assert image.quantization == tables, rendition.name


def test_phone_photo_original_is_served_without_position_losslessly(
    phone_jpeg: Path, tmp_path: Path
) -> None:
    source = phone_jpeg.read_bytes()
    assert len(leaks(source)) == 3, "the scan must see GPS, XMP and MakerNote in the source"
    output = process(phone_jpeg, "image/jpeg", tmp_path)
    served = output.served_original
    assert served is not None and served.parent == tmp_path
    assert output.served_original_mime == "image/jpeg"
    data = served.read_bytes()
    assert leaks(data) == []
    with Image.open(served) as image, Image.open(phone_jpeg) as original:
        exif = image.getexif()
        assert not exif.get_ifd(GPS_IFD)
        assert MAKER_NOTE not in exif.get_ifd(EXIF_IFD)
        assert exif[ORIENTATION] == 6  # not rotated, so the tag still has to say how to show it
        assert exif[MAKE] == "Apple"
        assert exif.get_ifd(EXIF_IFD)[0x9003] == "2024:06:06 12:00:00"
        assert "xmp" not in image.info
        assert image.size == original.size == (4032, 3024)
        assert image.tobytes() == original.tobytes()
    # The compressed image data itself is copied, not re-encoded.
    assert data[data.index(b"\xff\xda") :] == source[source.index(b"\xff\xda") :]


def test_an_original_the_cleaner_cannot_follow_is_served_re_encoded_without_position(
    phone_jpeg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A structure the container-level cleaner gives up on (ValueError and the like) is not
    served as it came: it is re-encoded, upright, without its location."""

    def gives_up(data: bytes) -> bytes | None:
        raise ValueError("segment 0xe1 overruns the file")

    monkeypatch.setitem(scrub.CLEANERS, "image/jpeg", (gives_up, ".jpg"))
    output = process(phone_jpeg, "image/jpeg", tmp_path)
    served = output.served_original
    assert served is not None and output.served_original_mime == "image/jpeg"
    assert output.served_original_sha256 is None  # hashed when stored, not from bytes in hand
    assert leaks(served.read_bytes()) == []
    with Image.open(served) as image:
        assert image.size == (3024, 4032)  # turned upright: no orientation tag to say how


# --- colour, transparency and modes ------------------------------------------------------------


def test_icc_profile_is_the_only_metadata_kept(tmp_path: Path) -> None:
    source = tmp_path / "icc.jpg"
    image = Image.new("RGB", (3000, 2000), (200, 120, 40))
    image.save(source, "JPEG", icc_profile=SRGB, exif=gps_exif().tobytes(), comment=b"hi there")
    output = process(source, "image/jpeg", tmp_path / "work")
    assert sizes(output) == {"large": (2048, 1365), "medium": (1024, 683), "small": (320, 213)}
    for rendition in output.renditions:
        assert_no_metadata(rendition.path)
        with Image.open(rendition.path) as result:
            assert result.info.get("icc_profile") == SRGB
            assert near(mostly(result, (0, 0, 50, 50)), (200, 120, 40), 4)
    assert output.served_original is not None  # it carried a position


def test_no_icc_profile_is_invented(corpus_outputs: dict[str, HandlerOutput]) -> None:
    for rendition in corpus_outputs["Landscape_3.jpg"].renditions:
        with Image.open(rendition.path) as image:
            assert not image.info.get("icc_profile")


def test_transparent_png_stays_png_with_alpha(tmp_path: Path) -> None:
    source = tmp_path / "logo.png"
    image = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((100, 100, 700, 500), fill=(20, 200, 60, 255))
    image.save(source, "PNG", icc_profile=SRGB)
    output = process(source, "image/png", tmp_path / "work")
    assert sizes(output) == {"large": (800, 600), "medium": (800, 600), "small": (320, 240)}
    for rendition in output.renditions:
        assert rendition.mime == "image/png"
        assert_no_metadata(rendition.path)
        with Image.open(rendition.path) as result:
            assert result.format == "PNG" and result.mode == "RGBA"
            assert result.getchannel("A").getextrema() == (0, 255)
            assert result.getpixel((result.width // 2, result.height // 2))[1] > 180
            assert result.info.get("icc_profile") == SRGB
    assert output.served_original is None


def test_rgba_png_without_transparent_pixels_becomes_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "opaque.png"
    Image.new("RGBA", (640, 480), (10, 20, 200, 255)).save(source)
    output = process(source, "image/png", tmp_path / "work")
    assert {r.mime for r in output.renditions} == {"image/jpeg"}
    with Image.open(by_name(output)["small"].path) as small:
        assert small.mode == "RGB" and small.size == (320, 240)
        assert near(mostly(small, (0, 0, 320, 240)), (10, 20, 200), 6)


def test_palette_gif_becomes_rgb_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "palette.gif"
    image = Image.new("RGB", (400, 300), (250, 200, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 199, 299), fill=(0, 90, 200))
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(source)
    output = process(source, "image/gif", tmp_path / "work")
    assert sizes(output)["small"] == (320, 240)
    with Image.open(by_name(output)["large"].path) as large:
        assert large.format == "JPEG" and large.mode == "RGB"
        assert near(mostly(large, (10, 10, 150, 290)), (0, 90, 200))
        assert near(mostly(large, (250, 10, 390, 290)), (250, 200, 0))


def test_gif_with_a_transparent_colour_becomes_png(tmp_path: Path) -> None:
    source = tmp_path / "cutout.gif"
    image = Image.new("P", (100, 100), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    ImageDraw.Draw(image).rectangle((25, 25, 75, 75), fill=1)
    image.save(source, transparency=0)
    output = process(source, "image/gif", tmp_path / "work")
    with Image.open(by_name(output)["small"].path) as small:
        assert small.format == "PNG" and small.mode == "RGBA"
        assert small.getpixel((0, 0))[3] == 0
        assert small.getpixel((50, 50)) == (255, 0, 0, 255)


def test_animated_gif_renditions_show_the_first_frame(tmp_path: Path) -> None:
    source = tmp_path / "blink.gif"
    frames = [Image.new("RGB", (500, 400), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100, loop=0)
    output = process(source, "image/gif", tmp_path / "work")
    assert sizes(output) == {"large": (500, 400), "medium": (500, 400), "small": (320, 256)}
    for rendition in output.renditions:
        with Image.open(rendition.path) as image:
            assert near(mostly(image, (0, 0, image.width, image.height)), (255, 0, 0))


def test_animated_webp_renditions_show_the_first_frame(tmp_path: Path) -> None:
    source = tmp_path / "blink.webp"
    frames = [Image.new("RGB", (300, 200), c) for c in ((0, 0, 255), (255, 255, 0))]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    output = process(source, "image/webp", tmp_path / "work")
    with Image.open(by_name(output)["small"].path) as small:
        assert near(mostly(small, (0, 0, 300, 200)), (0, 0, 255))
    assert output.served_original is None


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    source = tmp_path / "print.jpg"
    image = Image.new("CMYK", (1200, 800), (255, 0, 0, 0))  # pure cyan ink
    ImageDraw.Draw(image).rectangle((600, 0, 1199, 799), fill=(0, 0, 0, 255))  # black ink
    image.save(source, "JPEG", quality=95)
    with Image.open(source) as check:
        assert check.mode == "CMYK"
    output = process(source, "image/jpeg", tmp_path / "work")
    with Image.open(by_name(output)["medium"].path) as medium:
        assert medium.mode == "RGB" and medium.size == (1024, 683)
        assert near(mostly(medium, (20, 20, 480, 660)), (0, 255, 255), 15)
        assert near(mostly(medium, (540, 20, 1000, 660)), (0, 0, 0), 15)


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    source = png_16bit(tmp_path / "scan.png", 512, 64, 0, lambda x, y: struct.pack(">H", x * 128))
    with Image.open(source) as check:
        assert check.mode == "I;16"
    output = process(source, "image/png", tmp_path / "work")
    with Image.open(by_name(output)["large"].path) as large:
        assert large.mode == "L" and large.size == (512, 64)
        assert large.getpixel((8, 32)) < 12
        assert abs(large.getpixel((256, 32)) - 128) < 8
        assert large.getpixel((504, 32)) > 240


def test_16bit_colour_png_with_alpha(tmp_path: Path) -> None:
    def pixel(x: int, y: int) -> bytes:
        return struct.pack(">HHHH", 65535, 32768, 0, 0 if x < 32 else 65535)

    source = png_16bit(tmp_path / "deep.png", 64, 64, 6, pixel)
    output = process(source, "image/png", tmp_path / "work")
    with Image.open(by_name(output)["small"].path) as small:
        assert small.format == "PNG" and small.mode == "RGBA"
        assert small.getpixel((10, 10))[3] == 0
        assert near(small.getpixel((50, 10)), (255, 128, 0, 255), 2)


def test_bmp(tmp_path: Path) -> None:
    source = tmp_path / "old.bmp"
    Image.new("RGB", (640, 400), (1, 2, 3)).save(source)
    output = process(source, "image/bmp", tmp_path / "work")
    assert sizes(output)["small"] == (320, 200)
    assert output.served_original is None


def test_small_images_are_never_upscaled(tmp_path: Path) -> None:
    source = tmp_path / "tiny.png"
    Image.new("RGB", (100, 50), (9, 9, 9)).save(source)
    output = process(source, "image/png", tmp_path / "work")
    assert sizes(output) == {"large": (100, 50), "medium": (100, 50), "small": (100, 50)}


@pytest.mark.parametrize(
    ("size", "mode", "large"),
    [
        ((6000, 4000), "RGB", (2048, 1365)),  # shrunk on load to 1/2: 3000x2000
        ((4032, 3024), "RGB", (2048, 1536)),  # decoded whole: 1/2 would be under 2048
        ((3024, 4032), "L", (1536, 2048)),
    ],
)
def test_reduced_jpeg_decoding_keeps_quality(
    size: tuple[int, int], mode: str, large: tuple[int, int], tmp_path: Path
) -> None:
    # Decoded at a reduced DCT scale still above 2048 (shrink-on-load), the large rendition must
    # match a full decode resized with Lanczos, at the size a full decode gives.
    source = tmp_path / "big.jpg"
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
        ),
    ).convert(mode)
    ImageDraw.Draw(image).text((100, 100), "fine print " * 20, fill="white")
    image.save(source, "JPEG", quality=92)
    output = process(source, "image/jpeg", tmp_path / "work")
    assert sizes(output)["large"] == large
    with Image.open(source) as full:
        reference = full.resize(large, Image.Resampling.LANCZOS)
    with Image.open(by_name(output)["large"].path) as rendition:
        assert rendition.mode == mode
        assert mean_difference(rendition.convert("L"), reference.convert("L")) < 2


def test_jpeg_libjpeg_warns_about_still_gets_its_renditions(
    phone_jpeg: Path, tmp_path: Path
) -> None:
    # Stray bytes after the scan: libjpeg warns ("extraneous bytes before marker") when it reads
    # on to the end; the handler is as lenient as cameras need.
    data = phone_jpeg.read_bytes()
    assert data.endswith(b"\xff\xd9")
    source = tmp_path / "stray.jpg"
    source.write_bytes(data[:-2] + b"\x00" * 7 + b"\xff\xd9")
    output = process(source, "image/jpeg", tmp_path / "work")
    assert {"large", "medium", "small"} <= set(sizes(output))


# --- other formats and their served original ---------------------------------------------------


def test_heic_with_position_is_served_as_a_clean_jpeg(tmp_path: Path) -> None:
    pillow_heif.register_heif_opener()
    source = tmp_path / "IMG_0001.heic"
    image = Image.new("RGB", (640, 480), (30, 160, 90))
    ImageDraw.Draw(image).rectangle((0, 0, 100, 100), fill=(255, 0, 0))
    image.save(source, format="HEIF", quality=90, exif=gps_exif().tobytes(), xmp=XMP_PACKET)
    with Image.open(source) as check:
        assert check.getexif().get_ifd(GPS_IFD)
    output = process(source, "image/heic", tmp_path / "work")
    assert sizes(output)["small"] == (320, 240)
    assert output.served_original_mime == "image/jpeg"
    served = output.served_original
    assert served is not None
    assert leaks(served.read_bytes()) == []
    with Image.open(served) as result:
        assert result.format == "JPEG" and result.size == (640, 480)
        assert not result.getexif()
        assert near(mostly(result, (10, 10, 90, 90)), (255, 0, 0), 20)
        assert near(mostly(result, (300, 200, 600, 450)), (30, 160, 90), 10)


def test_heic_without_metadata_is_served_as_it_came(tmp_path: Path) -> None:
    pillow_heif.register_heif_opener()
    source = tmp_path / "plain.heic"
    Image.new("RGB", (320, 240), (1, 100, 200)).save(source, format="HEIF")
    output = process(source, "image/heic", tmp_path / "work")
    assert output.served_original is None
    assert len(output.renditions) == 3


def test_tiff_with_position_is_served_as_a_clean_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "scan.tiff"
    Image.new("RGB", (900, 600), (120, 60, 30)).save(source, exif=gps_exif(6).tobytes())
    output = process(source, "image/tiff", tmp_path / "work")
    assert sizes(output)["large"] == (600, 900)  # Orientation 6 applied
    assert output.served_original_mime == "image/jpeg"
    assert output.served_original is not None
    with Image.open(output.served_original) as served:
        assert served.size == (600, 900)
        assert not served.getexif()


@pytest.mark.skipif("image/avif" not in MIMES, reason="this Pillow cannot decode AVIF")
def test_avif_with_position_is_served_clean(tmp_path: Path) -> None:
    source = tmp_path / "photo.avif"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(source, exif=gps_exif(6).tobytes())
    output = process(source, "image/avif", tmp_path / "work")
    assert sizes(output)["large"] == (300, 400)
    assert output.served_original is not None
    with Image.open(output.served_original) as served:
        assert served.format == "JPEG" and served.size == (300, 400)
        assert not served.getexif()


def test_webp_is_cleaned_without_re_encoding(tmp_path: Path) -> None:
    source = tmp_path / "photo.webp"
    image = Image.effect_noise((300, 200), 30).convert("RGB")
    image.save(source, lossless=True, exif=gps_exif(6).tobytes(), xmp=XMP_PACKET)
    output = process(source, "image/webp", tmp_path / "work")
    assert sizes(output)["large"] == (200, 300)
    served = output.served_original
    assert served is not None and output.served_original_mime == "image/webp"
    data = served.read_bytes()
    assert leaks(data) == []
    assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") == len(data) - 8
    assert data[12:16] == b"VP8X" and data[20] & 0x04 == 0  # no XMP flag left behind
    with Image.open(served) as result, Image.open(source) as original:
        assert result.getexif()[ORIENTATION] == 6
        assert not result.getexif().get_ifd(GPS_IFD)
        assert result.tobytes() == original.tobytes()


def test_animated_webp_stays_animated_when_cleaned(tmp_path: Path) -> None:
    source = tmp_path / "anim.webp"
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(source, save_all=True, append_images=frames[1:], exif=gps_exif().tobytes())
    output = process(source, "image/webp", tmp_path / "work")
    assert output.served_original is not None
    with Image.open(output.served_original) as served:
        assert served.n_frames == 3
        assert not served.getexif().get_ifd(GPS_IFD)


def test_png_metadata_chunks_are_dropped_and_pixels_kept(tmp_path: Path) -> None:
    source = tmp_path / "screenshot.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
    info.add_text("Comment", "at home, Storgatan 1")
    info.add_text("Software", "Screenshot tool")
    image = Image.effect_noise((120, 80), 50).convert("RGB")
    image.save(source, pnginfo=info, exif=gps_exif(6).tobytes())
    output = process(source, "image/png", tmp_path / "work")
    assert sizes(output)["large"] == (80, 120)  # eXIf orientation is honoured too
    served = output.served_original
    assert served is not None and output.served_original_mime == "image/png"
    data = served.read_bytes()
    assert leaks(data) == [] and b"Storgatan" not in data
    with Image.open(served) as result, Image.open(source) as original:
        result.load()
        assert result.info.get("Software") == "Screenshot tool"
        assert "Comment" not in result.info
        assert result.getexif()[ORIENTATION] == 6
        assert not result.getexif().get_ifd(GPS_IFD)
        assert result.tobytes() == original.tobytes()


def test_gif_comments_and_xmp_are_dropped_and_animation_kept(tmp_path: Path) -> None:
    source = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"Storgatan 1"
    )
    data = buffer.getvalue()
    # XMP goes in an application extension, its packet followed by the 258-byte "magic trailer"
    # that makes it parse as GIF sub-blocks.
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    xmp_block = b"\x21\xff\x0bXMP DataXMP" + XMP_PACKET + trailer
    source.write_bytes(data[:-1] + xmp_block + data[-1:])
    with Image.open(source) as check:
        assert check.n_frames == 2
    output = process(source, "image/gif", tmp_path / "work")
    served = output.served_original
    assert served is not None and output.served_original_mime == "image/gif"
    cleaned = served.read_bytes()
    assert leaks(cleaned) == [] and b"Storgatan" not in cleaned
    assert b"NETSCAPE2.0" in cleaned
    with Image.open(served) as result, Image.open(source) as original:
        assert result.n_frames == 2 and "comment" not in result.info
        for frame in range(2):
            result.seek(frame)
            original.seek(frame)
            assert result.convert("RGB").tobytes() == original.convert("RGB").tobytes()


def test_jpeg_iptc_and_trailing_data_are_dropped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (5, 6, 7)).save(buffer, "JPEG")
    plain = buffer.getvalue()
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x10\x1c\x02\x5a\x00\x09Stockholm"
    app13 = b"\xff\xed" + (len(iptc) + 2).to_bytes(2, "big") + iptc
    source = tmp_path / "agency.jpg"
    source.write_bytes(plain[:2] + app13 + plain[2:] + b"hidden second image with Stockholm")
    output = process(source, "image/jpeg", tmp_path / "work")
    assert output.served_original is not None
    assert output.served_original.read_bytes() == plain


def test_jpeg_scans_are_copied_whole_past_stuffed_bytes_restarts_and_fill(
    tmp_path: Path,
) -> None:
    # Inside entropy-coded data 0xFF is followed by 0x00 (stuffed), a restart marker or another
    # 0xFF (fill before a marker): none of these ends a scan. Several scans (progressive) with
    # tables between them, restart markers and fill bytes before EOI, all kept byte for byte.
    buffer = io.BytesIO()
    Image.effect_noise((256, 192), 60).convert("RGB").save(
        buffer, "JPEG", exif=gps_exif().tobytes(), progressive=True, restart_marker_rows=1
    )
    data = buffer.getvalue()
    assert b"\xff\x00" in data and b"\xff\xd0" in data and data.count(b"\xff\xda") > 1
    eoi = data.rindex(b"\xff\xd9")
    data = data[:eoi] + b"\xff\xff" + data[eoi:]
    source = tmp_path / "scans.jpg"
    source.write_bytes(data)
    output = process(source, "image/jpeg", tmp_path / "work")
    assert output.served_original is not None
    served = output.served_original.read_bytes()
    assert leaks(served) == [] and leaks(data) != []
    assert served[served.index(b"\xff\xdb") :] == data[data.index(b"\xff\xdb") :]


def test_multi_picture_jpeg_loses_its_secondary_images(tmp_path: Path) -> None:
    # Phones and cameras append more JPEGs after the first (MPF: gain maps, previews), each with
    # its own EXIF. The primary image stays byte for byte; what follows it goes.
    source = tmp_path / "mpo.jpg"
    first = Image.new("RGB", (2400, 1600), (90, 10, 10))
    second = Image.new("RGB", (2400, 1600), (10, 90, 10))
    first.save(source, "MPO", save_all=True, append_images=[second], exif=gps_exif().tobytes())
    with Image.open(source, formats=["JPEG"]) as check:
        assert check.format == "MPO" and check.n_frames == 2
    output = process(source, "image/jpeg", tmp_path / "work")
    assert sizes(output)["large"] == (2048, 1365)
    served = output.served_original
    assert served is not None
    data = served.read_bytes()
    assert leaks(data) == [] and b"MPF\x00" not in data
    assert data.count(b"\xff\xd8") == 1
    with Image.open(served) as result, Image.open(source) as original:
        assert result.format == "JPEG" and result.tobytes() == original.tobytes()


def test_unparseable_exif_falls_back_to_a_clean_re_encode(tmp_path: Path) -> None:
    source = tmp_path / "odd.jpg"
    Image.new("RGB", (64, 48), (5, 6, 7)).save(source, exif=b"Exif\x00\x00not a tiff header")
    output = process(source, "image/jpeg", tmp_path / "work")
    assert output.served_original is not None
    with Image.open(output.served_original) as served:
        assert served.size == (64, 48) and not served.getexif()


# --- limits and damage -------------------------------------------------------------------------


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid PNG header declaring 10 gigapixels, with a tiny IDAT: decoding it would allocate
    tens of gigabytes, reading its header costs nothing."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    source = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(LimitExceeded) as caught:
        process(source, "image/png", tmp_path / "work")
    assert caught.value.code == "media.too_many_pixels"
    assert list((tmp_path / "work").iterdir()) == []


def test_pixel_limit_comes_from_the_job(tmp_path: Path) -> None:
    source = tmp_path / "ok.png"
    Image.new("RGB", (200, 100)).save(source)
    with pytest.raises(LimitExceeded) as caught:
        process(source, "image/png", tmp_path / "work", limits=Limits(max_pixels=19_999))
    assert caught.value.code == "media.too_many_pixels"
    assert process(source, "image/png", tmp_path / "w2", limits=Limits(max_pixels=20_000))


def test_truncated_jpeg_is_corrupt(phone_jpeg: Path, tmp_path: Path) -> None:
    data = phone_jpeg.read_bytes()
    source = tmp_path / "half.jpg"
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as caught:
        process(source, "image/jpeg", tmp_path / "work")
    assert caught.value.code == "media.corrupt"


def test_random_bytes_are_corrupt(tmp_path: Path) -> None:
    source = tmp_path / "noise.jpg"
    source.write_bytes(os.urandom(50_000))
    with pytest.raises(MediaError) as caught:
        process(source, "image/jpeg", tmp_path / "work")
    assert caught.value.code == "media.corrupt"


def test_bytes_are_parsed_only_as_the_sniffed_type(tmp_path: Path) -> None:
    source = tmp_path / "really.png"
    Image.new("RGB", (10, 10)).save(source, "PNG")
    with pytest.raises(MediaError) as caught:
        process(source, "image/jpeg", tmp_path / "work")
    assert caught.value.code == "media.corrupt"


def test_empty_file(tmp_path: Path) -> None:
    source = tmp_path / "empty.jpg"
    source.write_bytes(b"")
    with pytest.raises(MediaError) as caught:
        process(source, "image/jpeg", tmp_path / "work")
    assert caught.value.code == "media.empty"


def test_unknown_type_is_unsupported(tmp_path: Path) -> None:
    source = tmp_path / "icon.svg"
    source.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(MediaError) as caught:
        process(source, "image/svg+xml", tmp_path / "work")
    assert caught.value.code == "media.unsupported"


def test_slow_work_times_out(tmp_path: Path) -> None:
    source = tmp_path / "ok.png"
    Image.new("RGB", (10, 10)).save(source)

    async def never(fn: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(30)

    with pytest.raises(MediaError) as caught:
        process(
            source, "image/png", tmp_path / "w", limits=Limits(timeout=0.05), run_blocking=never
        )
    assert caught.value.code == "media.timeout"


# --- the seam ----------------------------------------------------------------------------------


def test_registry_hands_out_the_image_handler() -> None:
    assert isinstance(handler_for(Kind.IMAGE), ImageHandler)
    assert ImageHandler.kind is Kind.IMAGE


@pytest.mark.parametrize(
    "size", ["300k", "1200k"], ids=["a rendition's write (libvips)", "the original's write"]
)
def test_a_full_disk_is_storage_full_never_a_damaged_photo(
    phone_jpeg: Path, tmp_path: Path, small_fs: Callable[[Path, str], Path], size: str
) -> None:
    """The work folder runs out of space at two places: libvips says so in words, our own
    write raises ENOSPC. Both are an outage the job waits out (the worker's ``is_outage``),
    not ``media.corrupt``, which would fail a good photo for good."""
    work = small_fs(tmp_path / "work", size)
    with pytest.raises(StorageError) as raised:
        process(phone_jpeg, "image/jpeg", work / "job")
    assert raised.value.code == "storage.full"
    assert is_outage(raised.value)
    # With space, the same photo is processed.
    assert set(sizes(process(phone_jpeg, "image/jpeg", tmp_path / "roomy"))) >= {"large", "small"}


def test_work_runs_in_a_spawned_process_pool(tmp_path: Path) -> None:
    """In serve the blocking part runs in other processes: the function, its arguments, its
    result and its errors must all survive pickling."""
    photo = make_phone_jpeg(tmp_path / "phone.jpg", 1200, 900)
    bomb = bomb_png(tmp_path / "bomb.png")

    async def scenario() -> tuple[HandlerOutput, BaseException | None]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            loop = asyncio.get_running_loop()

            async def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
                return await loop.run_in_executor(pool, fn, *args)

            handler = ImageHandler()
            photo_job = HandlerInput(photo, "image/jpeg", photo.name, tmp_path / "a")
            photo_job.run_blocking = in_pool
            bomb_job = HandlerInput(bomb, "image/png", bomb.name, tmp_path / "b")
            bomb_job.run_blocking = in_pool
            output = await handler.process(photo_job)
            try:
                await handler.process(bomb_job)
            except LimitExceeded as exc:
                return output, exc
            return output, None

    output, error = asyncio.run(scenario())
    assert sizes(output) == {"large": (900, 1200), "medium": (768, 1024), "small": (240, 320)}
    assert output.served_original is not None and leaks(output.served_original.read_bytes()) == []
    assert isinstance(error, LimitExceeded) and error.code == "media.too_many_pixels"
