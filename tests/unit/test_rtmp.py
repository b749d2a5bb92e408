"""The RTMP reader of the live door (relay/intake/rtmp.py) on chunk streams built by hand from
the specification's rules: header types 0-3, extended timestamps, chunk size changes, bounds."""

from __future__ import annotations

import asyncio
import struct

import pytest

from relay.intake import rtmp


def _read(data: bytes, count: int, max_message: int = 1 << 20) -> list[rtmp.Message]:
    async def run() -> list[rtmp.Message]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        chunks = rtmp.ChunkReader(reader, max_message)
        return [await chunks.message() for _ in range(count)]

    return asyncio.run(run())


def _header0(csid: int, stamp: int, length: int, kind: int, stream: int = 1) -> bytes:
    return (
        bytes([csid])
        + min(stamp, 0xFFFFFF).to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes([kind])
        + stream.to_bytes(4, "little")
        + (stamp.to_bytes(4, "big") if stamp >= 0xFFFFFF else b"")
    )


def test_messages_split_into_chunks_come_back_whole() -> None:
    body = bytes(range(256)) * 5  # 1280 bytes: ten 128-byte chunks
    data = rtmp.encode(6, rtmp.VIDEO, body, stream_id=1, chunk_size=128)
    [message] = _read(data, 1)
    assert (message.type, message.stream_id, message.body) == (rtmp.VIDEO, 1, body)


def test_timestamps_from_every_header_type_and_the_extended_field() -> None:
    late = 0x1234567  # past 0xFFFFFF ms (4.6 hours): the extended field carries it
    body = b"v" * 200
    data = _header0(4, late, len(body), rtmp.VIDEO) + body[:128]
    data += bytes([0xC0 | 4]) + late.to_bytes(4, "big") + body[128:]  # type 3 repeats it
    # Type 1: a delta, a new length and type; type 2: a delta only; type 3: the delta again.
    data += bytes([0x40 | 4]) + (33).to_bytes(3, "big") + (3).to_bytes(3, "big") + b"\x09abc"
    data += bytes([0x80 | 4]) + (34).to_bytes(3, "big") + b"def"
    data += bytes([0xC0 | 4]) + b"ghi"
    first, second, third, fourth = _read(data, 4)
    assert (first.timestamp, first.body) == (late, body)
    assert (second.timestamp, second.body) == (late + 33, b"abc")
    assert (third.timestamp, third.body) == (late + 33 + 34, b"def")
    assert (fourth.timestamp, fourth.body) == (late + 33 + 34 + 34, b"ghi")


def test_a_set_chunk_size_applies_to_the_chunks_after_it() -> None:
    body = b"a" * 3000
    data = rtmp.control(rtmp.SET_CHUNK_SIZE, (4096).to_bytes(4, "big"))
    data += rtmp.encode(6, rtmp.AUDIO, body, chunk_size=4096)  # one chunk: no type 3 inside
    [message] = _read(data, 1)
    assert message.body == body


@pytest.mark.parametrize(
    "data",
    [
        _header0(4, 0, 2 << 20, rtmp.VIDEO),  # longer than the bound
        bytes([0x40 | 4]) + bytes(7),  # a stream that begins without a full header
        rtmp.control(rtmp.SET_CHUNK_SIZE, (0).to_bytes(4, "big")) + b"\x00",
    ],
)
def test_what_breaks_the_bounds_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(rtmp.ProtocolError):
        _read(data, 1)


def test_amf0_commands_round_trip_and_hostile_ones_are_refused() -> None:
    values = ["publish", 5.0, None, "live_key?x=1", {"a": True, "b": {"c": "d"}}]
    assert rtmp.amf0_decode(rtmp.amf0_encode(*values)) == values
    nested = b"\x03" * 20  # objects in objects, with no end
    truncated = b"\x02" + struct.pack(">H", 100) + b"short"
    for data in (nested, truncated, b"\x11"):
        with pytest.raises(rtmp.ProtocolError):
            rtmp.amf0_decode(data)


def test_rtmp_messages_become_flv_tags() -> None:
    tag = rtmp.flv_tag(rtmp.VIDEO, 0x1234567, b"\x17\x01body")
    assert tag[0] == rtmp.VIDEO and int.from_bytes(tag[1:4], "big") == 6
    assert int.from_bytes(tag[4:7], "big") | tag[7] << 24 == 0x1234567
    assert struct.unpack(">I", tag[-4:])[0] == 11 + 6 == len(tag) - 4
    assert rtmp.video_codec(b"\x17") == rtmp.AVC and rtmp.audio_codec(b"\xaf") == rtmp.AAC
