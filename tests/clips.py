"""Clips made on the spot with ffmpeg's own sources (testsrc2, sine), and ways to look inside
what the relay made of them. Everything here is test-side: ffmpeg and ffprobe run directly."""

from __future__ import annotations

import functools
import json
import random
import struct
import subprocess
from pathlib import Path
from typing import Any, Final

LOCATION = "+59.3293+018.0686+012.000/"
PASSWD_MARK = b"root:"


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=60,
    )


@functools.cache
def has_encoder(name: str) -> bool:
    listed = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    return any(line.split()[1:2] == [name] for line in listed.splitlines() if line.strip())


@functools.cache
def has_decoder(name: str) -> bool:
    listed = subprocess.run(
        ["ffmpeg", "-hide_banner", "-decoders"], capture_output=True, text=True, check=True
    ).stdout
    return any(line.split()[1:2] == [name] for line in listed.splitlines() if line.strip())


def picture(size: str = "320x240", seconds: float = 1, rate: int = 15) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=s={size}:d={seconds}:r={rate}"]


def tone(seconds: float = 1, rate: int = 44100) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=d={seconds}:sample_rate={rate}"]


def web_ready_mp4(path: Path, size: str = "320x240", seconds: float = 1, *extra: str) -> Path:
    """H.264 High yuv420p + AAC in MP4, the index at the end (as cameras write it)."""
    ffmpeg(
        *picture(size, seconds),
        *tone(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        *extra,
        str(path),
    )
    return path


def rotated(source: Path, path: Path, degrees: int = 90) -> Path:
    """``source`` remuxed with a display matrix, as a phone held upright stores it."""
    ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(path))
    return path


def amr_nb(path: Path, seconds: float = 1) -> Path:
    """AMR-NB as old phones store voice: 12.2 kb/s frames (20 ms each). Any payload bits are a
    valid frame, so this needs no AMR encoder (Debian's ffmpeg has only the decoder)."""
    rng = random.Random(7)
    frames = b"".join(
        b"\x3c" + bytes(rng.randrange(256) for _ in range(31)) for _ in range(int(seconds * 50))
    )
    path.write_bytes(b"#!AMR\n" + frames)
    return path


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def stream(info: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def packet_hashes(path: Path, selector: str = "v:0") -> list[str]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            selector,
            "-show_packets",
            "-show_data_hash",
            "md5",
            "-show_entries",
            "packet=data_hash",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return out.split()


def all_tags(info: dict[str, Any]) -> dict[str, str]:
    tags = dict(info["format"].get("tags") or {})
    for s in info["streams"]:
        tags.update(s.get("tags") or {})
    return tags


def has_location(info: dict[str, Any]) -> bool:
    return any(
        "location" in key.lower() or "xyz" in key.lower() or LOCATION[:8] in str(value)
        for key, value in all_tags(info).items()
    )


def rotation(info: dict[str, Any]) -> int:
    video = stream(info, "video") or {}
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            return int(side["rotation"]) % 360
    return int((video.get("tags") or {}).get("rotate", 0)) % 360


def top_level_boxes(data: bytes) -> list[str]:
    """The names of an MP4's top-level boxes, in order (``moov`` before ``mdat`` = faststart)."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, name = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        boxes.append(name.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def faststart(path: Path) -> bool:
    boxes = top_level_boxes(path.read_bytes())
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")


def hls_playlist() -> bytes:
    return (
        b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        b"#EXTINF:10.0,\nfile:///etc/passwd\n#EXTINF:10.0,\nconcat:/etc/passwd|/etc/passwd\n"
        b"#EXT-X-ENDLIST\n"
    )


def ffconcat_list() -> bytes:
    return (
        b"ffconcat version 1.0\nfile 'file:///etc/passwd'\nfile 'concat:/etc/passwd|/etc/passwd'\n"
    )


HLG: Final = "arib-std-b67"
PQ: Final = "smpte2084"


def hdr_clip(path: Path, transfer: str, size: str = "320x240", seconds: float = 1) -> Path:
    """A 10-bit HEVC BT.2020 clip with the HLG or PQ transfer, tagged as a phone tags it: the
    SDR test pattern taken to linear light and encoded with the HDR transfer (100 nits white)."""
    ffmpeg(
        *picture(size, seconds),
        "-vf",
        f"format=gbrpf32le,zscale=pin=bt709:tin=bt709:min=gbr:p=bt2020:t={transfer}"
        ":m=bt2020nc:r=tv:npl=100,format=yuv420p10le",
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error",
        "-pix_fmt",
        "yuv420p10le",
        "-tag:v",
        "hvc1",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        transfer,
        "-colorspace",
        "bt2020nc",
        str(path),
    )
    return path
