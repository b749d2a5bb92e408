"""Inputs made on the spot: a phone-sized photo whose JPEG weighs what a real one does, and
1080p clips in the containers and codecs phones and screen recorders produce."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from tests.media import GPS_IFD, ORIENTATION


def photo_jpeg(width: int = 4032, height: int = 3024, grain: float = 0.2) -> bytes:
    """A 12 MP portrait shot as an iPhone stores it (Orientation 6, GPS, make and model), with
    sensor-like grain so its JPEG is about 3 MB like a real photo's, not a flat test card's:
    decoding cost follows the entropy-coded size."""
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 40) for _ in range(3)])
    image = Image.blend(base, noise, grain)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 13"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (59.0, 19.0, 45.48), 3: "E", 4: (18.0, 4.0, 6.96)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


CLIPS = {
    # A screen recorder's H.264 in Matroska: not a web container, so it is transcoded.
    "h264.mkv": "-c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 128k",
    # An iPhone's HEVC in QuickTime.
    "hevc.mov": "-c:v libx265 -preset ultrafast -crf 22 -pix_fmt yuv420p -tag:v hvc1 "
    "-x265-params log-level=error -c:a aac -b:a 128k",
    # Already web-ready: H.264 High, yuv420p, AAC, index in front. The relay remuxes it.
    "web.mp4": "-c:v libx264 -preset veryfast -crf 20 -profile:v high -pix_fmt yuv420p "
    "-c:a aac -b:a 128k -movflags +faststart",
    # An HDR phone clip: 10-bit HEVC, BT.2020 with the HLG transfer, tagged as an iPhone tags it.
    "hlg.mov": "-c:v libx265 -preset ultrafast -crf 22 -pix_fmt yuv420p10le -tag:v hvc1 "
    "-x265-params log-level=error -color_primaries bt2020 -color_trc arib-std-b67 "
    "-colorspace bt2020nc -c:a aac -b:a 128k",
}
# The picture of a clip, before its encoder: grain, and for HDR clips the pattern taken to HLG.
PICTURE = {
    "hlg.mov": "noise=alls=8:allf=t,format=gbrpf32le,zscale=pin=bt709:tin=bt709:min=gbr:"
    "p=bt2020:t=arib-std-b67:m=bt2020nc:r=tv:npl=100,format=yuv420p10le",
}


def clip(folder: Path, name: str, seconds: int) -> Path:
    """A 1080p30 clip with moving detail, grain and a tone; made once per folder and length."""
    target = folder / f"{seconds}s-{name}"
    if target.exists():
        return target
    if shutil.which("ffmpeg") is None:
        raise FileNotFoundError("ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name)
    command = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-vf", PICTURE.get(name, "noise=alls=8:allf=t"), "-shortest", *CLIPS[name].split(),
        "-f", "matroska" if name.endswith(".mkv") else "mp4" if name.endswith(".mp4") else "mov",
        str(tmp),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=900)
    tmp.rename(target)
    return target
