"""The ``fit_instagram`` rendition: not made by the image handler any more, but from the stored
"large" when an Instagram delivery needs it (``fit_instagram_file``): padded, never cropped, to
4:5 or 1.91:1, 320 to 1440 px wide, an sRGB JPEG with no position; and the size the preview
announces (``instagram_size``) is the size the file gets."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from handlers import fit_instagram_file, instagram_size
from handlers.image import FIT_INSTAGRAM, ImageHandler
from relay.errors import LimitExceeded, MediaError
from relay.model import HandlerOutput, RenditionFile
from tests.handlers_support import run_handler
from tests.unit.test_image_handler import assert_no_metadata, bomb_png, gps_exif


def photo(path: Path, width: int, height: int, colour: tuple[int, int, int]) -> Path:
    """A phone JPEG with a position in its EXIF: one colour, a black square in the middle."""
    image = Image.new("RGB", (width, height), colour)
    block = min(width, height) // 4
    image.paste(
        (0, 0, 0),
        (width // 2 - block, height // 2 - block, width // 2 + block, height // 2 + block),
    )
    image.save(path, "JPEG", quality=95, exif=gps_exif())
    return path


def renditions(output: HandlerOutput) -> dict[str, RenditionFile]:
    return {r.name: r for r in output.renditions}


def padded(source: Path, tmp_path: Path) -> RenditionFile | None:
    """What an Instagram delivery sends of ``source``: the handler's "large", as stored, then
    padded from that file."""
    large = renditions(run_handler(ImageHandler, source))["large"]
    return fit_instagram_file(large.path, large.mime, tmp_path / f"fit-{source.stem}")


def mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    return tuple(round(v) for v in ImageStat.Stat(image.crop(box)).mean)


def test_the_image_handler_pads_no_photo(tmp_path: Path) -> None:
    # An upright phone photo (3:4) and a panorama: both shapes Instagram refuses, and neither
    # is padded until an Instagram delivery asks for it.
    for name, size in (("upright.jpg", (900, 1200)), ("pano.jpg", (4000, 1000))):
        output = run_handler(ImageHandler, photo(tmp_path / name, *size, (20, 90, 200)))
        assert [r.name for r in output.renditions] == ["large", "medium", "small"], name
        assert not list(output.renditions[0].path.parent.glob(f"{FIT_INSTAGRAM}*")), name


def test_panorama_is_padded_to_1_91_by_its_edge_colour(tmp_path: Path) -> None:
    made = padded(photo(tmp_path / "pano.jpg", 4000, 1000, (20, 90, 200)), tmp_path)
    assert made is not None and made.name == FIT_INSTAGRAM
    assert made.mime == "image/jpeg" and made.path.name == "fit_instagram.jpg"
    assert made.path.parent == tmp_path / "fit-pano"
    assert (made.width, made.height) == (1440, 754)  # 1440 / 754 = 1.91
    with Image.open(made.path) as image:
        assert image.size == (1440, 754) and image.mode == "RGB"
        # the whole panorama, 1440 × 360, in the middle; bands of its own blue above and below
        assert mean(image, (0, 0, 1440, 180)) == mean(image, (0, 574, 1440, 754))
        assert all(
            abs(a - b) <= 6
            for a, b in zip(mean(image, (0, 0, 1440, 180)), (20, 90, 200), strict=True)
        )
        assert mean(image.convert("L"), (715, 372, 725, 382))[0] < 20  # the square is there
        assert mean(image, (0, 200, 20, 554)) == mean(image, (1420, 200, 1440, 554))  # not cut
    assert_no_metadata(made.path)


def test_padded_photo_is_saved_as_every_rendition_is(tmp_path: Path) -> None:
    # Progressive, optimised, libjpeg's quality 85 tables, as the handler's renditions.
    made = padded(photo(tmp_path / "tall.jpg", 600, 1800, (250, 250, 250)), tmp_path)
    assert made is not None
    reference = io.BytesIO()
    Image.new("RGB", (64, 64)).save(reference, "JPEG", quality=85)
    with Image.open(reference) as ours, Image.open(made.path) as image:
        assert image.info.get("progressive") == 1
        assert image.quantization == ours.quantization


def test_tall_photo_is_padded_to_4_5(tmp_path: Path) -> None:
    made = padded(photo(tmp_path / "tall.jpg", 600, 1800, (250, 250, 250)), tmp_path)
    assert made is not None
    assert (made.width, made.height) == (1440, 1800)  # 4:5, the photo 600 px wide in the middle
    with Image.open(made.path) as image:
        assert mean(image, (0, 0, 300, 1800)) == mean(image, (1140, 0, 1440, 1800))


def test_small_photo_is_widened_to_320(tmp_path: Path) -> None:
    made = padded(photo(tmp_path / "strip.jpg", 200, 40, (0, 128, 0)), tmp_path)
    assert made is not None and (made.width, made.height) == (320, 168)


def test_photo_of_a_shape_instagram_takes_is_not_padded(tmp_path: Path) -> None:
    for size in ((1600, 1200), (800, 1000), (1910, 1000)):
        source = photo(tmp_path / f"{size[0]}.jpg", *size, (1, 2, 3))
        assert padded(source, tmp_path) is None, size
        assert instagram_size(*size) is None, size
        assert not (tmp_path / f"fit-{size[0]}" / "fit_instagram.jpg").exists()


def test_transparent_panorama_is_laid_on_white_as_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "logo.png"
    image = Image.new("RGBA", (1200, 200), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (500, 50, 700, 150))
    image.save(source)
    large = renditions(run_handler(ImageHandler, source))["large"]
    assert large.mime == "image/png"
    made = fit_instagram_file(large.path, large.mime, tmp_path / "fit")
    assert made is not None
    assert made.mime == "image/jpeg" and (made.width, made.height) == (1200, 628)
    with Image.open(made.path) as fitted:
        assert all(v >= 250 for v in mean(fitted, (0, 0, 1200, 100)))


@pytest.mark.parametrize(
    "size", [(2048, 512), (1536, 2048), (100, 50), (2048, 300), (300, 2048), (1190, 1500)]
)
def test_the_size_the_preview_announces_is_the_size_made(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    large = tmp_path / "large.jpg"
    Image.new("RGB", size, (90, 90, 90)).save(large, "JPEG", quality=85)
    made = fit_instagram_file(large, "image/jpeg", tmp_path / "fit")
    assert made is not None
    assert instagram_size(*size) == (made.width, made.height)
    with Image.open(made.path) as image:
        assert image.size == (made.width, made.height)


def test_a_file_larger_than_any_large_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = bomb_png(tmp_path / "large.png")  # 10 gigapixels declared, 100 bytes stored
    with pytest.raises(LimitExceeded) as caught:
        fit_instagram_file(bomb, "image/png", tmp_path / "fit")
    assert caught.value.code == "media.too_many_pixels"
    assert list((tmp_path / "fit").iterdir()) == []


def test_a_damaged_large_is_a_media_error(tmp_path: Path) -> None:
    broken = tmp_path / "large.jpg"
    whole = io.BytesIO()
    Image.new("RGB", (2048, 400), (9, 9, 9)).save(whole, "JPEG")
    broken.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(MediaError) as caught:
        fit_instagram_file(broken, "image/jpeg", tmp_path / "fit")
    assert caught.value.code == "media.corrupt"
