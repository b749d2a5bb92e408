"""HDR phone clips (HLG, PQ) come out as BT.709 SDR: tone-mapped, tagged BT.709, 8-bit 4:2:0,
and looking like ffmpeg's own tone-mapping of the same frame."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from handlers.video import VideoHandler
from tests.clips import HLG, PQ, ffmpeg, has_encoder, hdr_clip, probe, stream
from tests.handlers_support import run_handler

pytestmark = pytest.mark.skipif(not has_encoder("libx265"), reason="no libx265 to make HDR clips")

run = partial(run_handler, VideoHandler)

FRAME = 7
TONE_MAP = (
    "zscale=tin={transfer}:pin=bt2020:min=bt2020nc:t=linear:npl=100,format=gbrpf32le,"
    "zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)


def luma(source: Path, target: Path, graph: str = "") -> tuple[float, float]:
    """Mean and spread (standard deviation) of the luma plane of frame ``FRAME``."""
    chain = f"{graph}," if graph else ""
    ffmpeg(
        "-i",
        str(source),
        "-vf",
        f"{chain}select=eq(n\\,{FRAME}),extractplanes=y",
        "-frames:v",
        "1",
        str(target),
    )
    with Image.open(target) as image:
        stat = ImageStat.Stat(image.convert("L"))
    return stat.mean[0], stat.stddev[0]


@pytest.mark.parametrize("transfer", [HLG, PQ], ids=["hlg", "pq"])
def test_hdr_clip_is_tone_mapped_to_bt709_sdr(tmp_path: Path, transfer: str) -> None:
    clip = hdr_clip(tmp_path / "phone.mp4", transfer)
    before = stream(probe(clip), "video")
    assert before is not None and before["color_transfer"] == transfer  # the clip is HDR

    output = run(clip)
    mp4 = next(r for r in output.renditions if r.name == "mp4")
    video = stream(probe(mp4.path), "video")
    assert video is not None
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == (
        "bt709",
        "bt709",
        "bt709",
    )
    assert int(video.get("bits_per_raw_sample", 8)) == 8
    assert (mp4.width, mp4.height) == (320, 240)

    made = luma(mp4.path, tmp_path / "made.png")
    reference = luma(clip, tmp_path / "reference.png", TONE_MAP.format(transfer=transfer))
    assert made[0] == pytest.approx(reference[0], abs=3), (made, reference)
    assert made[1] == pytest.approx(reference[1], abs=3), (made, reference)


def test_web_ready_looking_hdr_mp4_is_transcoded_not_remuxed(tmp_path: Path) -> None:
    """An H.264 HLG MP4 would pass as web-ready; remuxed, it would stay HDR."""
    hevc = hdr_clip(tmp_path / "hevc.mp4", HLG)
    clip = tmp_path / "h264-hlg.mp4"
    ffmpeg(
        "-i",
        str(hevc),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-profile:v",
        "high",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        HLG,
        "-colorspace",
        "bt2020nc",
        str(clip),
    )
    assert stream(probe(clip), "video")["color_transfer"] == HLG
    output = run(clip)
    mp4 = next(r for r in output.renditions if r.name == "mp4")
    video = stream(probe(mp4.path), "video")
    assert video is not None and video["color_transfer"] == "bt709"


def test_sdr_clip_keeps_its_colours_untagged_as_before(tmp_path: Path) -> None:
    clip = tmp_path / "sdr.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=1", str(clip))
    output = run(clip)
    mp4 = next(r for r in output.renditions if r.name == "mp4")
    video = stream(probe(mp4.path), "video")
    assert video is not None and video.get("color_transfer") in (None, "unknown")
