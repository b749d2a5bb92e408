"""The chunked DATA reader gives exactly what aiosmtpd's line reader gives."""

from __future__ import annotations

import random

import pytest

from relay.intake.smtpdata import DataReader


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> None:
        self.data += chunk


def aiosmtpd_data(wire: bytes) -> tuple[bytes, bytes]:
    """aiosmtpd's DATA semantics: CRLF-terminated lines until a line that is exactly ".",
    a leading dot removed from every other line. Returns (message, what follows)."""
    lines, pos = [], 0
    while True:
        end = wire.index(b"\r\n", pos) + 2
        line = wire[pos:end]
        pos = end
        if line == b".\r\n":
            break
        lines.append(line[1:] if line.startswith(b".") else line)
    return b"".join(lines), wire[pos:]


def read_in_chunks(wire: bytes, sizes: random.Random, limit: int | None = None) -> tuple:
    sink = Sink()
    reader = DataReader(sink, limit)
    pos, rest = 0, b""
    while not reader.done:
        n = sizes.randint(1, 9)
        rest = reader.feed(wire[pos : pos + n])
        pos += n
    return bytes(sink.data), rest + wire[pos:], reader


PIECES = [
    b"",
    b".",
    b"..",
    b"...x",
    b".a",
    b"abc",
    b"\r",
    b"\n",
    b"x\n.\ny",
    b".\r",
    b"\r.",
    b"\n.\r\n",
    b"hello world " * 3,
    "åäö".encode(),
]


@pytest.mark.parametrize("seed", range(40))
def test_matches_aiosmtpd_on_random_messages(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        body = b"\r\n".join(
            (b"." if rng.random() < 0.3 else b"") + rng.choice(PIECES) + rng.choice(PIECES)
            for _ in range(rng.randint(0, 10))
        )
        wire = body + (b"\r\n" if body else b"") + b".\r\nMAIL FROM:<x@y>\r\n"
        if b"\r\n.\r\n" in b"\r\n" + wire[: -len(b".\r\nMAIL FROM:<x@y>\r\n")]:
            continue  # a body line "." would end the message: not a valid dot-stuffed body
        expected, expected_rest = aiosmtpd_data(wire)
        got, rest, _ = read_in_chunks(wire, rng)
        assert (got, rest) == (expected, expected_rest), wire


@pytest.mark.parametrize(
    "wire",
    [
        b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil>\r\n.\r\n",  # bare LF around the dot
        b"Subject: a\r\n\r\nbody\r.\rMAIL FROM:<evil>\r\n.\r\n",  # bare CR around the dot
        b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<evil>\r\n.\r\n",  # CRLF . LF
        b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil>\r\n.\r\n",  # LF . CRLF
    ],
)
def test_only_crlf_dot_crlf_ends_the_data(wire: bytes) -> None:
    got, rest, _ = read_in_chunks(wire, random.Random(0))
    assert b"MAIL FROM:<evil>" in got and rest == b""
    assert (got, rest) == aiosmtpd_data(wire)


def test_empty_message_and_first_line_stuffing() -> None:
    assert read_in_chunks(b".\r\n", random.Random(1))[:2] == (b"", b"")
    assert read_in_chunks(b"..x\r\n.\r\n", random.Random(1))[0] == b".x\r\n"


def test_over_the_limit_is_read_to_the_end_then_refused() -> None:
    wire = b"x" * 1000 + b"\r\n.\r\nQUIT\r\n"
    got, rest, reader = read_in_chunks(wire, random.Random(2), limit=100)
    assert reader.too_large and rest == b"QUIT\r\n"
    assert len(got) <= 100


class FullDisk(Sink):
    """A sink that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.calls_after_failure = 0

    def write(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.room:
            if len(self.data) >= self.room:
                self.calls_after_failure += 1
            self.data += bytes(chunk[: self.room - len(self.data)])
            raise OSError(28, "No space left on device")
        self.data += chunk


def test_a_failing_sink_still_reads_to_the_end_of_data() -> None:
    # What follows the failure (a whole transaction, here) is message, not commands.
    body = b"x" * 5000 + b"\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<s@d>\r\nDATA\r\nevil\r\n"
    wire = body + b".\r\nQUIT\r\n"
    sink = FullDisk(room=1000)
    reader = DataReader(sink, None)
    pos, rest = 0, b""
    while not reader.done:
        rest = reader.feed(wire[pos : pos + 700])
        pos += 700
    assert isinstance(reader.error, OSError) and reader.error.errno == 28
    assert rest + wire[pos:] == b"QUIT\r\n"
    assert sink.calls_after_failure == 0  # dropped, not written again and again
    assert reader.size == len(body) and not reader.too_large
