"""The part of RTMP a publishing phone speaks, as a server: handshake, chunk stream, AMF0.

Written from Adobe's RTMP specification (1.0, 2012: "Real-Time Messaging Protocol", sections
5.2 handshake, 5.3 chunking, 5.4 protocol control messages, 7.2 commands) and checked against
what ffmpeg's ``libavformat/rtmpproto.c`` and nginx-rtmp send. Only the simple handshake: a
publisher never needs the digest one (ffmpeg checks a server's digest only when it plays).

Everything here is bounded: a message longer than ``max_message`` or a chunk size outside
1..16 MiB is a ``ProtocolError``, and the reader counts bytes so the door can cap what it reads
before the key is known.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

HANDSHAKE_SIZE = 1536

# Message types (spec 5.4, 7.1).
SET_CHUNK_SIZE = 1
ABORT = 2
ACK = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20

# User control events.
PING_REQUEST = 6
PING_RESPONSE = 7

OUT_CHUNK_SIZE = 4096
WINDOW = 2_500_000


class ProtocolError(Exception):
    """The peer broke RTMP (or a bound): the connection is closed."""


@dataclass(slots=True)
class Message:
    type: int
    stream_id: int
    timestamp: int
    body: bytes


async def server_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """C0 C1 → S0 S1 S2 → C2 (spec 5.2). S2 echoes C1; C2 is read and not checked (ffmpeg and
    nginx-rtmp do not check it either)."""
    c0 = await reader.readexactly(1)
    if c0[0] != 3:
        raise ProtocolError(f"RTMP version {c0[0]} (3 expected)")
    c1 = await reader.readexactly(HANDSHAKE_SIZE)
    s1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0) + os.urandom(
        HANDSHAKE_SIZE - 8
    )
    writer.write(b"\x03" + s1 + c1)
    await writer.drain()
    await reader.readexactly(HANDSHAKE_SIZE)


@dataclass(slots=True)
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class ChunkReader:
    """Reassembles messages from the chunk stream (spec 5.3).

    It reads the socket in blocks into a buffer of its own and parses headers from it, awaiting
    only when the buffer runs short: at 6 Mbit/s in 128-byte chunks a sender sends ~6,000
    chunks a second, each of three or four fields. (Measured, bench/RESULTS.md: the whole
    passthrough tree went from 4.67 to 4.50 % of a core with it, within the machine's noise.)"""

    READ_SIZE = 1 << 16

    def __init__(self, reader: asyncio.StreamReader, max_message: int) -> None:
        self.reader = reader
        self.max_message = max_message
        self.chunk_size = 128
        self.bytes_read = 0
        """Bytes of the chunk stream parsed so far (what an Acknowledgement counts)."""
        self._streams: dict[int, _ChunkStream] = {}
        self._buffer = bytearray()
        self._pos = 0

    async def _fill(self, n: int) -> None:
        """Have at least ``n`` unread bytes in the buffer."""
        if self._pos > self.READ_SIZE:
            del self._buffer[: self._pos]
            self._pos = 0
        while len(self._buffer) - self._pos < n:
            data = await self.reader.read(self.READ_SIZE)
            if not data:
                raise asyncio.IncompleteReadError(bytes(self._buffer[self._pos :]), n)
            self._buffer += data

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[self._pos : self._pos + n])
        self._pos += n
        self.bytes_read += n
        return data

    async def _read(self, n: int) -> bytes:
        if len(self._buffer) - self._pos < n:
            await self._fill(n)
        return self._take(n)

    async def message(self) -> Message:
        while True:
            if len(self._buffer) - self._pos < 1:
                await self._fill(1)
            first = self._take(1)[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid == 0:
                csid = 64 + (await self._read(1))[0]
            elif csid == 1:
                two = await self._read(2)
                csid = 64 + two[0] + two[1] * 256
            stream = self._streams.get(csid)
            if stream is None:
                if fmt != 0:
                    raise ProtocolError(f"chunk stream {csid} begins without a full header")
                if len(self._streams) >= 64:
                    raise ProtocolError("too many chunk streams")
                stream = self._streams[csid] = _ChunkStream()
            starting = not stream.buffer
            if fmt < 3:
                if not starting:
                    raise ProtocolError("a new message header inside an unfinished message")
                header = await self._read((11, 7, 3)[fmt])
                stamp = int.from_bytes(header[0:3], "big")
                if fmt <= 1:
                    stream.length = int.from_bytes(header[3:6], "big")
                    stream.type = header[6]
                if fmt == 0:
                    stream.stream_id = int.from_bytes(header[7:11], "little")
                stream.extended = stamp == 0xFFFFFF
                if stream.extended:
                    stamp = int.from_bytes(await self._read(4), "big")
                if fmt == 0:
                    stream.timestamp, stream.delta = stamp, 0
                else:
                    stream.delta = stamp
                    stream.timestamp = (stream.timestamp + stamp) & 0xFFFFFFFF
            else:
                if stream.extended:
                    await self._read(4)  # repeats the header's; the spec has it on every chunk
                if starting:
                    stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
            if stream.length > self.max_message:
                raise ProtocolError(f"a message of {stream.length} bytes")
            want = min(self.chunk_size, stream.length - len(stream.buffer))
            stream.buffer += await self._read(want)
            if len(stream.buffer) < stream.length:
                continue
            message = Message(stream.type, stream.stream_id, stream.timestamp, bytes(stream.buffer))
            stream.buffer = bytearray()
            if message.type == SET_CHUNK_SIZE:
                if len(message.body) < 4:
                    raise ProtocolError("short Set Chunk Size")
                size = int.from_bytes(message.body[:4], "big") & 0x7FFFFFFF
                if not 1 <= size <= 1 << 24:
                    raise ProtocolError(f"chunk size {size}")
                self.chunk_size = size
                continue
            if message.type == ABORT and len(message.body) >= 4:
                aborted = self._streams.get(int.from_bytes(message.body[:4], "big"))
                if aborted is not None:
                    aborted.buffer = bytearray()
                continue
            return message


def encode(
    csid: int, kind: int, body: bytes, *, stream_id: int = 0, chunk_size: int = OUT_CHUNK_SIZE
) -> bytes:
    """One message as chunks: a type 0 header, then type 3 continuations."""
    out = bytearray([csid])  # csid < 64: one byte, fmt 0
    out += (0).to_bytes(3, "big") + len(body).to_bytes(3, "big") + bytes([kind])
    out += stream_id.to_bytes(4, "little")
    for start in range(0, len(body), chunk_size):
        if start:
            out.append(0xC0 | csid)
        out += body[start : start + chunk_size]
    return bytes(out)


def control(kind: int, body: bytes) -> bytes:
    """A protocol control message (chunk stream 2, message stream 0, spec 5.4). Sent before
    Set Chunk Size takes effect on the peer, so in 128-byte chunks (they are shorter)."""
    return encode(2, kind, body, chunk_size=128)


def command(values: list[Any], *, stream_id: int = 0) -> bytes:
    return encode(3, COMMAND_AMF0, amf0_encode(*values), stream_id=stream_id)


# --- AMF0 (Adobe "Action Message Format -- AMF 0", 2007) -----------------------------------


class Undefined:
    pass


UNDEFINED = Undefined()


def amf0_encode(*values: Any) -> bytes:
    out = bytearray()
    for value in values:
        _encode_value(out, value)
    return bytes(out)


def _encode_value(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(0x05)
    elif value is UNDEFINED:
        out.append(0x06)
    elif isinstance(value, bool):
        out += bytes([0x01, 1 if value else 0])
    elif isinstance(value, int | float):
        out.append(0x00)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        data = value.encode()
        out.append(0x02)
        out += struct.pack(">H", len(data)) + data
    elif isinstance(value, dict):
        out.append(0x03)
        for key, item in value.items():
            name = key.encode()
            out += struct.pack(">H", len(name)) + name
            _encode_value(out, item)
        out += b"\x00\x00\x09"
    else:
        raise TypeError(f"no AMF0 for {type(value).__name__}")


def amf0_decode(data: bytes, limit: int = 64) -> list[Any]:
    """The values in ``data``; at most ``limit`` at the top level, nesting at most 8 deep."""
    values: list[Any] = []
    pos = 0
    while pos < len(data) and len(values) < limit:
        value, pos = _decode_value(data, pos, 0)
        values.append(value)
    return values


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise ProtocolError("truncated AMF0")


def _decode_value(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > 8:
        raise ProtocolError("AMF0 nested too deep")
    _need(data, pos, 1)
    marker = data[pos]
    pos += 1
    if marker == 0x00:
        _need(data, pos, 8)
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == 0x01:
        _need(data, pos, 1)
        return data[pos] != 0, pos + 1
    if marker in (0x02, 0x0C):
        size = 2 if marker == 0x02 else 4
        _need(data, pos, size)
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        _need(data, pos, length)
        return data[pos : pos + length].decode("utf-8", "replace"), pos + length
    if marker in (0x03, 0x08):
        if marker == 0x08:
            _need(data, pos, 4)
            pos += 4  # the ECMA array's count is a hint; its end marker ends it
        found: dict[str, Any] = {}
        while True:
            _need(data, pos, 3)
            if data[pos : pos + 3] == b"\x00\x00\x09":
                return found, pos + 3
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
            _need(data, pos, length)
            key = data[pos : pos + length].decode("utf-8", "replace")
            pos += length
            if len(found) >= 256:
                raise ProtocolError("AMF0 object with too many fields")
            found[key], pos = _decode_value(data, pos, depth + 1)
    if marker in (0x05, 0x06):
        return None, pos
    if marker == 0x0A:
        _need(data, pos, 4)
        count = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if count > 256:
            raise ProtocolError("AMF0 array too long")
        items = []
        for _ in range(count):
            item, pos = _decode_value(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if marker == 0x0B:
        _need(data, pos, 10)
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise ProtocolError(f"AMF0 marker {marker:#x} not taken")


# --- FLV (Adobe "Video File Format Specification" 10.1, annex E) ----------------------------


def flv_header(audio: bool, video: bool) -> bytes:
    flags = (4 if audio else 0) | (1 if video else 0)
    return b"FLV\x01" + bytes([flags]) + struct.pack(">I", 9) + b"\x00\x00\x00\x00"


def flv_tag(kind: int, timestamp: int, body: bytes) -> bytes:
    """An FLV tag and the PreviousTagSize after it: an RTMP audio or video message's body is
    the tag's body as it is."""
    header = (
        bytes([kind])
        + len(body).to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes([(timestamp >> 24) & 0xFF])
        + b"\x00\x00\x00"
    )
    return header + body + struct.pack(">I", 11 + len(body))


def video_codec(body: bytes) -> int | None:
    """FLV VideoTagHeader CodecID (7: AVC/H.264); None for an empty tag."""
    return body[0] & 0x0F if body else None


def audio_codec(body: bytes) -> int | None:
    """FLV AudioTagHeader SoundFormat (10: AAC)."""
    return body[0] >> 4 if body else None


AVC = 7
AAC = 10
