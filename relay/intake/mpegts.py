"""The little of MPEG-TS a live door needs: which codecs a stream carries (PAT, PMT), its own
clock (PES timestamps), and that clock moved on across a sender's reconnects.

Written from ISO/IEC 13818-1 (2.4.3 transport packet and adaptation field with its PCR, 2.4.3.7
PES header with PTS/DTS, 2.4.4 PAT and PMT, table 2-34 stream types). Everything is bounded:
188-byte packets, one packet looked at a time, a section read only from the packet it starts in
(a PAT or PMT that does not fit one packet leaves the codecs unknown, and the stream is then
transcoded, which is always safe).

Why timestamps are rewritten: a sender that reconnects starts a new TS whose clock begins
again (ffmpeg's muxer starts at 1.4 s). ffmpeg making the HLS, and the recording that becomes the
replay, need one timeline, so each connection's PTS, DTS and PCR are shifted to continue a frame
after the last one the broadcast had, as the RTMP door shifts FLV tag times.
"""

from __future__ import annotations

PACKET = 188
SYNC = 0x47
CLOCK = 90_000
"""PTS and DTS count 90 kHz ticks, in 33 bits."""
WRAP = 1 << 33
MASK = WRAP - 1
RECONNECT_GAP = CLOCK // 25
"""A reconnect continues 40 ms (a frame at 25 fps) after the last timestamp."""

H264 = 0x1B
AAC = 0x0F
"""ADTS AAC: what HLS carries as it is. (LATM AAC, 0x11, is transcoded.)"""
VIDEO_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24, 0x42, 0xD1, 0xEA})
AUDIO_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x81, 0x87})
PASSES = frozenset({H264, AAC, 0x15, 0x86})
"""Streams ffmpeg copies into HLS as they are: H.264, ADTS AAC, and ID3 and SCTE-35 data
(which the HLS output drops)."""
# Stream ids whose PES packets have no optional header, hence no timestamps (2.4.3.7).
_NO_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})


def read_timestamp(data: bytes | bytearray, at: int) -> int:
    """A PTS or DTS: 33 bits in five bytes, with marker bits between (2.4.3.7)."""
    return (
        ((data[at] >> 1) & 0x07) << 30
        | data[at + 1] << 22
        | (data[at + 2] >> 1) << 15
        | data[at + 3] << 7
        | data[at + 4] >> 1
    )


def write_timestamp(data: bytearray, at: int, value: int) -> None:
    """Rewrite a PTS or DTS in place, keeping its 4-bit prefix and its marker bits."""
    value &= MASK
    data[at] = (data[at] & 0xF1) | ((value >> 29) & 0x0E)
    data[at + 1] = (value >> 22) & 0xFF
    data[at + 2] = ((value >> 14) & 0xFE) | 1
    data[at + 3] = (value >> 7) & 0xFF
    data[at + 4] = ((value << 1) & 0xFE) | 1


def read_pcr_base(data: bytes | bytearray, at: int) -> int:
    """A PCR's 33-bit base, in 90 kHz ticks (its 9-bit extension is left as it is)."""
    return (
        data[at] << 25
        | data[at + 1] << 17
        | data[at + 2] << 9
        | data[at + 3] << 1
        | data[at + 4] >> 7
    )


def write_pcr_base(data: bytearray, at: int, value: int) -> None:
    value &= MASK
    data[at] = (value >> 25) & 0xFF
    data[at + 1] = (value >> 17) & 0xFF
    data[at + 2] = (value >> 9) & 0xFF
    data[at + 3] = (value >> 1) & 0xFF
    data[at + 4] = ((value << 7) & 0x80) | (data[at + 4] & 0x7F)


class TsStream:
    """One broadcast's TS across its connections: the codecs, the clock, the shifting.

    ``feed`` takes bytes as they come (any size), gives back whole packets, shifted, and keeps
    ``elapsed`` (ticks of the broadcast's own time since its first timestamp)."""

    def __init__(self) -> None:
        self.stream_types: dict[int, int] = {}
        """Elementary PID → stream type, from the PMT."""
        self.pmt_pids: set[int] = set()
        self.elapsed = 0
        self.origin: int | None = None
        """The broadcast's first PES timestamp, shifted."""
        self.delta: int | None = 0
        """Ticks added to this connection's timestamps (None: not known until its first)."""
        self._rest = b""

    # --- what it carries --------------------------------------------------------------------

    @property
    def codecs_known(self) -> bool:
        return bool(self.stream_types)

    @property
    def video(self) -> int | None:
        return next((t for t in self.stream_types.values() if t in VIDEO_TYPES), None)

    @property
    def audio(self) -> int | None:
        return next((t for t in self.stream_types.values() if t in AUDIO_TYPES), None)

    @property
    def passthrough(self) -> bool:
        """H.264 and/or ADTS AAC, and nothing ffmpeg would not copy: ``-c copy``."""
        types = set(self.stream_types.values())
        has_media = self.video is not None or self.audio is not None
        return has_media and types <= PASSES

    @property
    def elapsed_ms(self) -> int:
        return self.elapsed * 1000 // CLOCK

    # --- connections -------------------------------------------------------------------------

    def reconnect(self) -> None:
        """A new connection: its TS begins anew (packets, clock)."""
        self._rest = b""
        self.delta = 0 if self.origin is None else None

    # --- packets -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Whole packets of ``self._rest + data``, their timestamps shifted; a partial packet
        waits for the next call, and bytes that are not packets (lost sync) are dropped."""
        buffer = bytearray(self._rest)
        buffer += data
        out = bytearray()
        at = 0
        end = len(buffer)
        while end - at >= PACKET:
            if buffer[at] != SYNC:
                at = _resync(buffer, at + 1)
                continue
            start = len(out)
            out += buffer[at : at + PACKET]
            self._packet(out, start)
            at += PACKET
        self._rest = bytes(buffer[at:])
        return bytes(out)

    def _packet(self, data: bytearray, at: int) -> None:
        pid = ((data[at + 1] & 0x1F) << 8) | data[at + 2]
        start = bool(data[at + 1] & 0x40)
        control = (data[at + 3] >> 4) & 0x03
        payload = at + 4
        if control & 0x02:  # an adaptation field
            length = data[at + 4]
            payload = at + 5 + length
            if length >= 7 and data[at + 5] & 0x10:  # with a PCR
                self._shift_pcr(data, at + 6)
        if not control & 0x01 or payload >= at + PACKET or not start:
            return
        if pid == 0:
            self._pat(data, payload, at + PACKET)
        elif pid in self.pmt_pids:
            self._pmt(data, payload, at + PACKET)
        elif pid != 0x1FFF:
            self._pes(data, payload, at + PACKET)

    def _first(self, raw: int) -> int:
        """This connection's shift, known from its first timestamp (PCR or PES)."""
        if self.delta is None:
            assert self.origin is not None
            self.delta = (self.origin + self.elapsed + RECONNECT_GAP - raw) & MASK
        return self.delta

    def _shift_pcr(self, data: bytearray, at: int) -> None:
        raw = read_pcr_base(data, at)
        delta = self._first(raw)
        if delta:
            write_pcr_base(data, at, raw + delta)

    def _pes(self, data: bytearray, at: int, end: int) -> None:
        if end - at < 14 or data[at : at + 3] != b"\x00\x00\x01" or data[at + 3] in _NO_HEADER:
            return
        flags = data[at + 7] >> 6
        if flags not in (2, 3):
            return
        if flags == 3 and end - at < 19:
            return
        latest = None
        for place in (at + 9, at + 14) if flags == 3 else (at + 9,):
            raw = read_timestamp(data, place)
            delta = self._first(raw)
            value = (raw + delta) & MASK
            if delta:
                write_timestamp(data, place, value)
            if latest is None or _ahead(value, latest):
                latest = value
        assert latest is not None
        if self.origin is None:
            self.origin = latest
        since = (latest - self.origin) & MASK
        if since < WRAP // 2:  # else a moment before the origin (B-frames, audio first)
            self.elapsed = max(self.elapsed, since)

    def _pat(self, data: bytearray, at: int, end: int) -> None:
        section = _section(data, at, end, table_id=0x00)
        if section is None:
            return
        body, body_end = section
        pids = set()
        for entry in range(body, body_end - 3, 4):
            program = (data[entry] << 8) | data[entry + 1]
            if program != 0:  # program 0 is the network PID
                pids.add(((data[entry + 2] & 0x1F) << 8) | data[entry + 3])
        if pids:
            self.pmt_pids = pids

    def _pmt(self, data: bytearray, at: int, end: int) -> None:
        section = _section(data, at, end, table_id=0x02)
        if section is None:
            return
        body, body_end = section
        if body_end - body < 4:
            return
        info = ((data[body + 2] & 0x0F) << 8) | data[body + 3]
        entry = body + 4 + info
        found: dict[int, int] = {}
        while entry + 5 <= body_end:
            pid = ((data[entry + 1] & 0x1F) << 8) | data[entry + 2]
            found[pid] = data[entry]
            entry += 5 + (((data[entry + 3] & 0x0F) << 8) | data[entry + 4])
        if found:
            self.stream_types = found


def _ahead(a: int, b: int) -> bool:
    """Whether timestamp ``a`` is after ``b`` on the 33-bit circle."""
    return 0 < ((a - b) & MASK) < WRAP // 2


def _section(data: bytearray, at: int, end: int, table_id: int) -> tuple[int, int] | None:
    """Where a PSI section's body starts and ends (before its CRC) when it starts in this
    packet and fits in it (2.4.4)."""
    at += 1 + data[at]  # the pointer field
    if at + 8 > end or data[at] != table_id:
        return None
    length = ((data[at + 1] & 0x0F) << 8) | data[at + 2]
    body_end = at + 3 + length - 4
    if length < 9 or body_end > end:
        return None
    return at + 8, body_end


def _resync(buffer: bytearray, at: int) -> int:
    """The next place where two packets in a row begin with the sync byte (or the end)."""
    while True:
        at = buffer.find(SYNC, at)
        if at < 0:
            return len(buffer)
        if at + PACKET >= len(buffer) or buffer[at + PACKET] == SYNC:
            return at
        at += 1
