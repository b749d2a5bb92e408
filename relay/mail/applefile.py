"""``application/applefile``: Apple Mail's wrapping of a Mac file's forks (RFC 1740).

In ``multipart/appledouble`` the applefile part is an AppleDouble header (Finder info and the
resource fork) beside an ordinary part with the data fork: the header is dropped and the data
fork is taken like any attachment. A lone applefile part is AppleSingle: the data fork and the
real name are inside it. Big-endian: magic, version, 16 bytes of filler, an entry count, then
per entry an id, an offset and a length.
"""

from __future__ import annotations

import struct

APPLE_SINGLE = 0x00051600
APPLE_DOUBLE = 0x00051607
ENTRY_DATA_FORK = 1
ENTRY_REAL_NAME = 3
MAX_ENTRIES = 64

_HEAD = struct.Struct(">II16sH")
_ENTRY = struct.Struct(">III")


def magic(data: bytes) -> int | None:
    return struct.unpack_from(">I", data)[0] if len(data) >= 4 else None


def data_fork(data: bytes) -> tuple[str, bytes] | None:
    """An AppleSingle file's real name (may be empty) and data fork, if it has one."""
    if len(data) < _HEAD.size or magic(data) != APPLE_SINGLE:
        return None
    count = min(_HEAD.unpack_from(data)[3], MAX_ENTRIES)
    name, fork = "", None
    for number in range(count):
        at = _HEAD.size + number * _ENTRY.size
        if at + _ENTRY.size > len(data):
            break
        entry, offset, length = _ENTRY.unpack_from(data, at)
        if offset > len(data) or length > len(data) - offset:
            continue
        if entry == ENTRY_DATA_FORK:
            fork = data[offset : offset + length]
        elif entry == ENTRY_REAL_NAME:
            # Mac Roman on classic systems, UTF-8 on OS X; UTF-8 that fails is Mac Roman.
            raw = data[offset : offset + min(length, 1024)]
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                name = raw.decode("mac_roman")
    return (name, fork) if fork else None
