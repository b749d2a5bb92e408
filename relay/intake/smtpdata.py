"""A DATA phase that reads large chunks instead of lines.

aiosmtpd reads DATA line by line (about 29 ms of CPU per MB here); this reads up to 256 KiB at a
time, finds the terminating ``CRLF.CRLF``, undoes dot-stuffing in bulk and streams the message
into a sink (the spool), so a 50 MB message is never held in memory. Semantics follow aiosmtpd:
only ``CRLF.CRLF`` ends the data (a bare LF or bare CR around the dot does not: no smuggling of a
second message), a message over the size limit is read to its end and then refused, and bytes
after the terminator (a pipelining client's next commands) go back to the reader.
"""

from __future__ import annotations

from typing import Protocol

END = b"\r\n.\r\n"
CHUNK = 256 * 1024


class Sink(Protocol):
    def write(self, chunk: bytes) -> None: ...


class DataReader:
    """Turns the raw DATA stream into message bytes: feed chunks, the sink gets unstuffed data.

    The stream is read as if a CRLF preceded it, so a first line ``.`` ends an empty message and
    a first line ``..x`` is unstuffed like any other; that virtual CRLF is never written.
    """

    def __init__(self, sink: Sink | None, limit: int | None) -> None:
        self.sink = sink
        self.limit = limit
        self.size = 0
        self.too_large = False
        self.done = False
        self._pending = b"\r\n"
        self._skip = 2  # bytes of the virtual CRLF still to drop

    def feed(self, chunk: bytes) -> bytes:
        """Take more of the stream; once the terminator is found, returns what follows it."""
        buffer = self._pending + chunk
        end = buffer.find(END)
        if end >= 0:
            self._emit(buffer[: end + 2])  # the last line's CRLF belongs to the message
            self.done = True
            self._pending = b""
            return buffer[end + len(END) :]
        # Hold back what could start a terminator (4 bytes), and never end the written part
        # inside a "CRLF." so every stuffed dot is seen whole.
        cut = max(0, len(buffer) - 4)
        if buffer[cut - 1 : cut] == b"\r":
            cut -= 1
        elif buffer[max(0, cut - 2) : cut] == b"\r\n":
            cut -= 2
        self._emit(buffer[:cut])
        self._pending = buffer[cut:]
        return b""

    def _emit(self, data: bytes) -> None:
        data = data.replace(b"\r\n.", b"\r\n")
        if self._skip:
            dropped = min(self._skip, len(data))
            data = data[dropped:]
            self._skip -= dropped
        if not data:
            return
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.too_large = True
        if not self.too_large and self.sink is not None:
            self.sink.write(data)
