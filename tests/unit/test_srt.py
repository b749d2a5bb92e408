"""The SRT door's two small parsers: the stream id a caller sends (relay/intake/srt.py) and the
MPEG-TS reading that judges a broadcast on its own clock (relay/intake/mpegts.py), on packets
built by hand from ISO/IEC 13818-1 and on a TS that ffmpeg makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relay.intake import mpegts
from relay.intake.srt import (
    SRT_REJX_BAD_MODE,
    SRT_REJX_BAD_REQUEST,
    StreamIdError,
    parse_stream_id,
)

KEY = "live_abcdefghijklmnopqrstuvwxyz234567abcd"


@pytest.mark.parametrize(
    "stream_id",
    [
        KEY,  # the bare key, as a sender with one field for it sends
        f"  {KEY}\n",
        f"#!::r={KEY},m=publish",  # SRT's access control form
        f"#!::m=publish,r={KEY}",
        f"#!::u=anna,r={KEY},m=publish,t=stream",  # other standard keys are let be
        f"#!::r={KEY}",  # no mode: this listener only takes senders
    ],
)
def test_a_publishing_caller_gives_its_key(stream_id: str) -> None:
    parsed = parse_stream_id(stream_id)
    assert (parsed.key, parsed.mode) == (KEY, "publish")


@pytest.mark.parametrize("mode", ["request", "bidirectional", "play"])
def test_a_caller_that_wants_anything_but_to_publish_is_refused(mode: str) -> None:
    with pytest.raises(StreamIdError) as refused:
        parse_stream_id(f"#!::r={KEY},m={mode}")
    assert refused.value.reason == SRT_REJX_BAD_MODE


@pytest.mark.parametrize(
    "stream_id",
    [
        "",
        "   ",
        "#!::m=publish",  # no resource
        f"#!::r={KEY},r=other,m=publish",  # twice
        f"#!::r={KEY},m",  # a key without a value
        f"#!{{r={KEY},m=publish}}",  # the nested form
        f"#!:r={KEY}",
        f"{KEY},m=publish",  # not a key, not the #!:: form
        "x" * 513,  # over SRT's 512
    ],
)
def test_a_stream_id_that_says_no_key_is_a_bad_request(stream_id: str) -> None:
    with pytest.raises(StreamIdError) as refused:
        parse_stream_id(stream_id)
    assert refused.value.reason == SRT_REJX_BAD_REQUEST


# --- MPEG-TS --------------------------------------------------------------------------------


def _packet(pid: int, payload: bytes, *, start: bool = False, pcr: int | None = None) -> bytes:
    """One 188-byte TS packet; an adaptation field pads it (and carries ``pcr``)."""
    adaptation = b""
    room = 184 - len(payload)
    if pcr is not None or room > 0:
        fields = b""
        flags = 0
        if pcr is not None:
            flags |= 0x10
            fields = (pcr << 15 | 0x3F << 9).to_bytes(6, "big")  # base, reserved, ext 0
        length = room - 1
        assert length >= 1 + len(fields) or (length == 0 and not fields)
        body = bytes([flags]) + fields if length else b""
        adaptation = bytes([length]) + body + b"\xff" * (length - len(body))
    control = (0x30 if adaptation else 0x10) | 0
    header = bytes([0x47, (0x40 if start else 0) | (pid >> 8), pid & 0xFF, control])
    packet = header + adaptation + payload
    assert len(packet) == 188, len(packet)
    return packet


def _section(table_id: int, body: bytes) -> bytes:
    """A PSI section (CRC left zero: the reader does not check it), behind a pointer field."""
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | (length >> 8), length & 0xFF, 0, 1, 0xC1, 0, 0])
    return b"\x00" + head + body + bytes(4)


def _pat(pmt_pid: int) -> bytes:
    return _packet(
        0, _section(0x00, bytes([0, 1, 0xE0 | pmt_pid >> 8, pmt_pid & 0xFF])), start=True
    )


def _pmt(pmt_pid: int, streams: dict[int, int]) -> bytes:
    body = bytes([0xE1, 0x00, 0xF0, 0x00])  # PCR PID 0x100, no program info
    for pid, kind in streams.items():
        body += bytes([kind, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, 0x00])
    return _packet(pmt_pid, _section(0x02, body), start=True)


def _stamp(prefix: int, value: int) -> bytes:
    out = bytearray(5)
    out[0] = prefix << 4 | 1
    mpegts.write_timestamp(out, 0, value)
    return bytes(out)


def _pes(pid: int, pts: int, dts: int | None = None, *, pcr: int | None = None) -> bytes:
    if dts is None:
        header = bytes([0x80, 0x80, 5]) + _stamp(0b0010, pts)
    else:
        header = bytes([0x80, 0xC0, 10]) + _stamp(0b0011, pts) + _stamp(0b0001, dts)
    payload = b"\x00\x00\x01\xe0\x00\x00" + header + b"\x00" * 16
    return _packet(pid, payload, start=True, pcr=pcr)


def _timestamps(data: bytes) -> list[int]:
    """The PES timestamps (PTS, then DTS) and PCR bases in ``data``, in order."""
    found = []
    for at in range(0, len(data), 188):
        packet = data[at : at + 188]
        if packet[3] & 0x20 and packet[4] >= 7 and packet[5] & 0x10:
            found.append(mpegts.read_pcr_base(packet, 6))
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40 and packet[payload : payload + 3] == b"\x00\x00\x01":
            flags = packet[payload + 7] >> 6
            found.append(mpegts.read_timestamp(packet, payload + 9))
            if flags == 3:
                found.append(mpegts.read_timestamp(packet, payload + 14))
    return found


def test_timestamps_round_trip_through_their_33_bits() -> None:
    for value in (0, 1, 90_000, 1 << 32, (1 << 33) - 1):
        for prefix in (0b0010, 0b0011, 0b0001):
            stamp = bytearray(_stamp(prefix, value))
            assert mpegts.read_timestamp(stamp, 0) == value
            assert stamp[0] >> 4 == prefix and stamp[0] & 1 and stamp[2] & 1 and stamp[4] & 1
    pcr = bytearray((123_456_789 << 15 | 0x3F << 9 | 0x155).to_bytes(6, "big"))
    assert mpegts.read_pcr_base(pcr, 0) == 123_456_789
    mpegts.write_pcr_base(pcr, 0, 42)
    assert mpegts.read_pcr_base(pcr, 0) == 42
    assert int.from_bytes(pcr, "big") & 0x1FF == 0x155  # the extension is left as it was


def test_the_codecs_come_from_the_pmt() -> None:
    ts = mpegts.TsStream()
    ts.feed(_pat(0x1000) + _pmt(0x1000, {0x100: mpegts.H264, 0x101: mpegts.AAC}))
    assert ts.codecs_known and (ts.video, ts.audio) == (mpegts.H264, mpegts.AAC)
    assert ts.passthrough
    other = mpegts.TsStream()
    other.feed(_pat(0x1000) + _pmt(0x1000, {0x100: 0x02, 0x101: 0x03}))  # MPEG-2, MP2
    assert (other.video, other.audio) == (0x02, 0x03) and not other.passthrough
    unknown = mpegts.TsStream()
    unknown.feed(_pat(0x1000))
    assert not unknown.codecs_known and not unknown.passthrough


def test_the_stream_s_own_time_is_read_from_its_pes_timestamps() -> None:
    ts = mpegts.TsStream()
    start = 126_000  # 1.4 s, where ffmpeg's muxer begins
    packets = [_pes(0x100, start + n * 3000, start + n * 3000 - 3000) for n in range(91)]
    out = ts.feed(b"".join(packets))
    assert out == b"".join(packets)  # the first connection's TS goes on as it came
    assert ts.elapsed_ms == 3000  # 90 frames at 30 fps
    # In pieces of any size (SRT carries 1316 bytes, 7 packets), with garbage between.
    again = mpegts.TsStream()
    data = b"".join(packets)
    head = data[: 20 * 188]
    pieces = [again.feed(head[at : at + 1000]) for at in range(0, len(head), 1000)]
    pieces.append(again.feed(b"\x00junk" + data[20 * 188 :]))
    assert b"".join(pieces) == data and again.elapsed_ms == 3000


def test_a_reconnect_continues_the_clock_a_frame_after_the_last_timestamp() -> None:
    ts = mpegts.TsStream()
    ts.feed(b"".join(_pes(0x100, 126_000 + n * 3000, pcr=63_000 + n * 3000) for n in range(31)))
    assert ts.elapsed_ms == 1000
    ts.reconnect()
    # The new sender's clock starts again at 1.4 s, its PCR at 0.7 s.
    second = ts.feed(_pes(0x100, 126_000, pcr=63_000) + _pes(0x100, 129_000, 126_000))
    pcr, first_pts, pts, dts = _timestamps(second)
    assert pcr == 126_000 + 90_000 + mpegts.RECONNECT_GAP  # where the last one left off
    assert (first_pts - pcr, pts - first_pts, pts - dts) == (63_000, 3000, 3000)
    assert ts.elapsed_ms == (90_000 + mpegts.RECONNECT_GAP + 63_000 + 3000) * 1000 // 90_000


def test_a_clock_that_wraps_its_33_bits_goes_on() -> None:
    ts = mpegts.TsStream()
    near = mpegts.WRAP - 45_000  # half a second before the wrap
    ts.feed(b"".join(_pes(0x100, (near + n * 9000) % mpegts.WRAP) for n in range(11)))
    assert ts.elapsed_ms == 1000


def test_an_ffmpeg_ts_is_read_as_ffprobe_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "a.ts"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    ts = mpegts.TsStream()
    data = path.read_bytes()
    assert ts.feed(data) == data
    assert (ts.video, ts.audio, ts.passthrough) == (mpegts.H264, mpegts.AAC, True)
    assert abs(ts.elapsed_ms - 2000) <= 100


# --- without libsrt ---------------------------------------------------------------------------


def test_without_libsrt_the_door_is_off_with_one_warning_and_no_srt_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ctypes.util

    from relay.config import Settings
    from relay.intake import srt
    from relay.live_cli import key_urls

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(srt, "LIBRARIES", ("libsrt-nowhere.so.0",))
    monkeypatch.setattr(srt.Library, "_loaded", None)
    settings = Settings(public_url="https://relay.example.org", srt_listen="0.0.0.0:8890")
    assert key_urls(settings, KEY)["srt_url"] is None
    with caplog.at_level("WARNING", logger="relay.live.srt"):
        assert srt.start_door(object()) is None  # type: ignore[arg-type]
    [warning] = caplog.records
    assert warning.getMessage().startswith("SRT is off: libsrt not found")


def test_the_srt_url_takes_the_public_host_when_listening_everywhere() -> None:
    from relay.config import Settings

    everywhere = Settings(public_url="https://relay.example.org", srt_listen="0.0.0.0:8890")
    assert everywhere.srt_url(KEY) == (
        f"srt://relay.example.org:8890?streamid=#!::r={KEY},m=publish"
    )
    assert Settings(srt_listen="[::1]:9000").srt_url(KEY) == (
        f"srt://[::1]:9000?streamid=#!::r={KEY},m=publish"
    )
    assert Settings(srt_listen="off").srt_url(KEY) is None
