"""The ``fit_instagram`` rendition: made only for photos Instagram refuses for their shape,
padded (never cropped) to 4:5 or 1.91:1, 320 to 1440 px wide, an sRGB JPEG with no position."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageStat

from handlers.image import FIT_INSTAGRAM, ImageHandler
from relay.model import HandlerOutput
from tests.handlers_support import run_handler
from tests.unit.test_image_handler import assert_no_metadata, gps_exif


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


def renditions(output: HandlerOutput) -> dict[str, tuple[Path, str, int, int]]:
    return {r.name: (r.path, r.mime, r.width, r.height) for r in output.renditions}


def mean(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    return tuple(round(v) for v in ImageStat.Stat(image.crop(box)).mean)


def test_panorama_is_padded_to_1_91_by_its_edge_colour(tmp_path: Path) -> None:
    made = renditions(
        run_handler(ImageHandler, photo(tmp_path / "pano.jpg", 4000, 1000, (20, 90, 200)))
    )
    path, mime, width, height = made[FIT_INSTAGRAM]
    assert mime == "image/jpeg" and path.suffix == ".jpg"
    assert (width, height) == (1440, 754)  # 1440 / 754 = 1.91
    with Image.open(path) as image:
        assert image.size == (1440, 754) and image.mode == "RGB"
        # the whole panorama, 1440 × 360, in the middle; bands of its own blue above and below
        assert mean(image, (0, 0, 1440, 180)) == mean(image, (0, 574, 1440, 754))
        assert all(
            abs(a - b) <= 6
            for a, b in zip(mean(image, (0, 0, 1440, 180)), (20, 90, 200), strict=True)
        )
        assert mean(image.convert("L"), (715, 372, 725, 382))[0] < 20  # the square is there
        assert mean(image, (0, 200, 20, 554)) == mean(image, (1420, 200, 1440, 554))  # not cut
    assert_no_metadata(path)
    assert {"large", "medium", "small"} <= set(made)


def test_tall_photo_is_padded_to_4_5(tmp_path: Path) -> None:
    made = renditions(
        run_handler(ImageHandler, photo(tmp_path / "tall.jpg", 600, 1800, (250, 250, 250)))
    )
    _, _, width, height = made[FIT_INSTAGRAM]
    assert (width, height) == (1440, 1800)  # 4:5, the photo 600 px wide in the middle
    with Image.open(made[FIT_INSTAGRAM][0]) as image:
        assert mean(image, (0, 0, 300, 1800)) == mean(image, (1140, 0, 1440, 1800))


def test_small_photo_is_widened_to_320(tmp_path: Path) -> None:
    made = renditions(
        run_handler(ImageHandler, photo(tmp_path / "strip.jpg", 200, 40, (0, 128, 0)))
    )
    assert made[FIT_INSTAGRAM][2:] == (320, 168)


def test_photo_of_a_shape_instagram_takes_gets_no_extra_rendition(tmp_path: Path) -> None:
    for size in ((1600, 1200), (800, 1000), (1910, 1000)):
        output = run_handler(ImageHandler, photo(tmp_path / f"{size[0]}.jpg", *size, (1, 2, 3)))
        assert FIT_INSTAGRAM not in renditions(output), size


def test_transparent_panorama_is_laid_on_white_as_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "logo.png"
    image = Image.new("RGBA", (1200, 200), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (500, 50, 700, 150))
    image.save(source)
    made = renditions(run_handler(ImageHandler, source))
    assert made["large"][1] == "image/png"
    path, mime, width, height = made[FIT_INSTAGRAM]
    assert mime == "image/jpeg" and (width, height) == (1200, 628)
    with Image.open(path) as fitted:
        assert all(v >= 250 for v in mean(fitted, (0, 0, 1200, 100)))
