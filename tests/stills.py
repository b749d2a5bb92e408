"""HDR stills made on the spot: a PQ or HLG AVIF from ffmpeg's AV1 encoder in a HEIF container
written here (this ffmpeg, 5.1, has no AVIF muxer), a 10-bit PQ HEIC from pillow-heif, and an
Ultra HDR JPEG (an SDR JPEG with an Adobe gain-map XMP and the gain map after it).

The AVIF layout is the minimum AV1 Image File Format (https://aomediacodec.github.io/av1-avif/)
asks of a still: ``ftyp``, a ``meta`` with ``hdlr``/``pitm``/``iloc``/``iinf`` and the item's
properties (``ispe``, ``av1C``, ``colr`` nclx, ``pixi``), and the AV1 frame in ``mdat``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Final

from tests.clips import ffmpeg

PQ_CICP: Final = 16
HLG_CICP: Final = 18
TRANSFERS: Final = {PQ_CICP: "smpte2084", HLG_CICP: "arib-std-b67"}


def hdr_png(path: Path, transfer: int, size: str = "320x240") -> Path:
    """The SDR test pattern in linear light, encoded with the HDR transfer in BT.2020 RGB, 16 bits
    (SDR white at 100 nits, as tests/clips.py ``hdr_clip`` does for video)."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s={size}:d=1", "-frames:v", "1", "-vf",
        f"format=gbrpf32le,zscale=pin=bt709:tin=bt709:min=gbr:p=bt2020:t={TRANSFERS[transfer]}"
        ":m=gbr:npl=100,format=rgb48be",
        str(path),
    )  # fmt: skip
    return path


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _obus(data: bytes) -> list[tuple[int, bytes]]:
    """(type, whole OBU) of a Low Overhead Bitstream (every OBU has its size field)."""
    found, at = [], 0
    while at < len(data):
        header = data[at]
        kind = (header >> 3) & 0xF
        start = at + 1 + ((header >> 2) & 1)
        size, shift, at2 = 0, 0, start
        while True:
            byte = data[at2]
            size |= (byte & 0x7F) << shift
            shift += 7
            at2 += 1
            if not byte & 0x80:
                break
        found.append((kind, data[at : at2 + size]))
        at = at2 + size
    return found


def _level(sequence_header: bytes) -> tuple[int, int]:
    """seq_profile and seq_level_idx[0] of a sequence header OBU (no timing info)."""
    header = sequence_header[0]
    at = 1 + ((header >> 2) & 1)
    while sequence_header[at] & 0x80:
        at += 1
    bits = int.from_bytes(sequence_header[at + 1 : at + 6], "big")
    width = 40
    read = lambda n, pos: (bits >> (width - pos - n)) & ((1 << n) - 1)  # noqa: E731
    profile, reduced = read(3, 0), read(1, 4)
    if reduced:
        return profile, read(5, 5)
    assert read(1, 5) == 0, "timing info is not expected from libaom"
    return profile, read(5, 5 + 1 + 1 + 5 + 12)


def avif(path: Path, transfer: int, size: str = "320x240") -> Path:
    """A 10-bit 4:2:0 AV1 still tagged BT.2020 with ``transfer`` (PQ or HLG), from libaom."""
    png = hdr_png(path.with_suffix(".png"), transfer, size)
    obu = path.with_suffix(".obu")
    ffmpeg(
        "-i", str(png), "-frames:v", "1", "-vf", "zscale=m=bt2020nc:r=full,format=yuv420p10le",
        "-c:v", "libaom-av1", "-crf", "8", "-cpu-used", "8", "-color_primaries", "bt2020",
        "-color_trc", TRANSFERS[transfer], "-colorspace", "bt2020nc", "-color_range", "pc",
        "-f", "obu", str(obu),
    )  # fmt: skip
    obus = [(kind, data) for kind, data in _obus(obu.read_bytes()) if kind != 2]  # no TD
    sequence = next(data for kind, data in obus if kind == 1)
    profile, level = _level(sequence)
    frame = b"".join(data for _, data in obus)
    width, height = (int(n) for n in size.split("x"))
    av1c = _box(b"av1C", bytes([0x81, (profile << 5) | level, 0x4C, 0]), sequence)
    colr = _box(b"colr", b"nclx", struct.pack(">HHHB", 9, transfer, 9, 0x80))
    ipco = _box(
        b"ipco",
        _full(b"ispe", 0, 0, struct.pack(">II", width, height)),
        av1c,
        colr,
        _full(b"pixi", 0, 0, bytes([3, 10, 10, 10])),
    )
    ipma = _full(b"ipma", 0, 0, struct.pack(">IHB", 1, 1, 4), bytes([0x01, 0x82, 0x83, 0x04]))
    ftyp = _box(b"ftyp", b"avif", struct.pack(">I", 0), b"avifmif1miafMA1B")

    infe = _full(b"infe", 2, 0, struct.pack(">HH", 1, 0), b"av01", b"\0")

    def meta(offset: int) -> bytes:
        extent = struct.pack(">HHHHII", 1, 1, 0, 1, offset, len(frame))
        return _full(
            b"meta",
            0,
            0,
            _full(b"hdlr", 0, 0, b"\0" * 4, b"pict", b"\0" * 12, b"\0"),
            _full(b"pitm", 0, 0, struct.pack(">H", 1)),
            _full(b"iloc", 0, 0, bytes([0x44, 0x00]), extent),
            _full(b"iinf", 0, 0, struct.pack(">H", 1), infe),
            _box(b"iprp", ipco, ipma),
        )

    offset = len(ftyp) + len(meta(0)) + 8
    path.write_bytes(ftyp + meta(offset) + _box(b"mdat", frame))
    return path


APPLE_GAIN_MAP: Final = b"urn:com:apple:photo:2020:aux:hdrgainmap"


def _children(data: bytes, start: int, end: int) -> list[bytes]:
    found, at = [], start
    while at < end:
        (size,) = struct.unpack(">I", data[at : at + 4])
        found.append(data[at : at + size])
        at += size
    return found


def with_gain_map(heic: bytes) -> bytes:
    """A two-image HEIC from pillow-heif made an iPhone's HDR photo: its second image becomes
    the first one's auxiliary image of Apple's gain-map type (an ``auxC`` property and an
    ``auxl`` reference, as ISO/IEC 23008-12 lays out auxiliary images), the mdat unchanged."""
    [ftyp, meta, *rest] = _children(heic, 0, len(heic))
    children = _children(meta, 12, len(meta))
    kinds = [child[4:8] for child in children]
    iprp = children[kinds.index(b"iprp")]
    ipco, ipma = _children(iprp, 8, len(iprp))
    properties = _children(ipco, 8, len(ipco))
    aux_c = _full(b"auxC", 0, 0, APPLE_GAIN_MAP + b"\0")
    ipco = _box(b"ipco", *properties, aux_c)
    # ipma v0, flags 0: entry_count, then item_ID (2 bytes), count (1), one byte per property.
    entries, at, rebuilt = struct.unpack(">I", ipma[12:16])[0], 16, []
    for _ in range(entries):
        item, count = struct.unpack(">HB", ipma[at : at + 3])
        links = ipma[at + 3 : at + 3 + count]
        if item == 2:
            links, count = links + bytes([len(properties) + 1]), count + 1
        rebuilt.append(struct.pack(">HB", item, count) + links)
        at += 3 + count - (1 if item == 2 else 0)
    ipma = _full(b"ipma", 0, 0, struct.pack(">I", entries), *rebuilt)
    iref = _full(b"iref", 0, 0, _box(b"auxl", struct.pack(">HHH", 2, 1, 1)))
    children[kinds.index(b"iprp")] = _box(b"iprp", ipco, ipma)
    children.append(iref)
    grown = sum(len(child) for child in children) + 12 - len(meta)
    # iloc v0 with 4-byte offsets, lengths and base offsets: move every base offset past the
    # grown meta box.
    at = kinds.index(b"iloc")
    iloc = bytearray(children[at])
    assert iloc[8] == 0 and iloc[12:14] == b"\x44\x40", "an iloc pillow-heif did not write"
    (items,) = struct.unpack(">H", iloc[14:16])
    pos = 16
    for _ in range(items):
        (base,) = struct.unpack(">I", iloc[pos + 4 : pos + 8])
        iloc[pos + 4 : pos + 8] = struct.pack(">I", base + grown)
        (extents,) = struct.unpack(">H", iloc[pos + 8 : pos + 10])
        pos += 10 + 8 * extents
    children[at] = bytes(iloc)
    return ftyp + _full(b"meta", 0, 0, *children) + b"".join(rest)
