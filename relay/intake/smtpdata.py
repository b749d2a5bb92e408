"""A DATA phase that reads large chunks instead of lines.

aiosmtpd reads DATA line by line (about 29 ms of CPU per MB here); this reads up to 256 KiB at a
time, finds the terminating ``CRLF.CRLF``, undoes dot-stuffing in bulk and streams the message
into a sink (the spool), so a 50 MB message is never held in memory. Semantics follow aiosmtpd:
only ``CRLF.CRLF`` ends the data (a bare LF or bare CR around the dot does not: no smuggling of a
second message), a message over the size limit is read to its end and then refused, and bytes
after the terminator (a pipelining client's next commands) go back to the reader.

The reader keeps the start of the message, so the door can read the header block without
opening the spool file again: :func:`scan_headers` reads that block within fixed bounds. The
hash that tells a message the relay already took (``accept.mail_digest``) is made only when a
post with its Message-ID exists, on the database's thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Protocol

from relay.intake.mimeheaders import MAX_MESSAGE_ID, header_class

END = b"\r\n.\r\n"
_DOT_LINE = re.compile(rb"\r\n\.")
"""A line that starts with a dot. ``re`` finds this literal faster than ``bytes.find`` does."""
_MISSES = 64
"""Dots that start no line before a buffer is searched with the regex: base64, the bulk of big
mail, has no dots, and there ``bytes.find`` (a memchr) looks at each dot instead of each byte,
~20 times faster; prose has a dot a sentence, and there the regex's single pass wins."""
CHUNK = 256 * 1024
HEAD = 256 * 1024
"""Bytes of the message kept for its header block; fields past it are not seen."""


class Sink(Protocol):
    def write(self, chunk: bytes | memoryview) -> None: ...


class DataReader:
    """Turns the raw DATA stream into message bytes: feed chunks, the sink gets unstuffed data.

    The stream is read as if a CRLF preceded it, so a first line ``.`` ends an empty message and
    a first line ``..x`` is unstuffed like any other; that virtual CRLF is never written.
    """

    def __init__(self, sink: Sink | None, limit: int | None, head_limit: int = HEAD) -> None:
        self.sink = sink
        self.limit = limit
        self.size = 0
        self.too_large = False
        self.done = False
        self.head = bytearray()
        self._head_limit = head_limit
        self._pending = b"\r\n"
        self._skip = 2  # bytes of the virtual CRLF still to drop

    @property
    def pending(self) -> bytes:
        """Bytes held back from the stream so far (they may begin ``CRLF.``); a buffer given to
        ``take`` starts with them."""
        return self._pending

    def feed(self, chunk: bytes) -> bytes:
        """Take more of the stream; once the terminator is found, returns what follows it."""
        buffer = bytearray(self._pending)
        buffer += chunk
        at = self.take(buffer, len(buffer))
        return bytes(buffer[at:]) if self.done else b""

    def take(self, buffer: bytearray, end: int) -> int:
        """``feed`` in place, for a reader that reuses one buffer: ``buffer[:end]`` is
        ``pending`` and then the stream's next bytes. The sink gets views of ``buffer``, valid
        only during its ``write``. Returns, while the message goes on, how many bytes were
        moved to the start of ``buffer`` (the new ``pending``, which the next bytes follow);
        once ``done``, where in ``buffer`` the bytes after the terminator begin."""
        # One pass finds all that is special in DATA, "CRLF.": the start of the terminator
        # CRLF.CRLF, or a stuffed dot to drop. Searching for the terminator and then replacing
        # stuffed dots took two passes over every byte, ~1 ms of the event loop per MB.
        view = memoryview(buffer)
        try:
            start = 0
            find = _DotLines(buffer, end).find
            at = find(0)
            while at >= 0:
                if at + len(END) > end:
                    break  # the next bytes say what it is: held back below
                if buffer[at + 3 : at + 5] == b"\r\n":
                    self._emit(view[start : at + 2])  # the last line's CRLF is the message's
                    self.done = True
                    self._pending = b""
                    return at + len(END)
                self._emit(view[start : at + 2])  # keep the CRLF, drop the dot
                start = at + 3
                at = find(start)
            # Hold back what could start a terminator (4 bytes), and never end the written
            # part inside a "CRLF." so every stuffed dot is seen whole.
            cut = max(start, end - 4)
            if cut > start and buffer[cut - 1] == 13:  # CR
                cut -= 1
            elif cut - 2 >= start and buffer[cut - 2 : cut] == b"\r\n":
                cut -= 2
            self._emit(view[start:cut])
        finally:
            view.release()  # the caller may resize its buffer again
        kept = end - cut
        buffer[:kept] = buffer[cut:end]
        self._pending = bytes(buffer[:kept])
        return kept

    def _emit(self, data: memoryview | bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            data = data[dropped:]
            self._skip -= dropped
        if not data:
            return
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.too_large = True
        if self.too_large:
            return
        if len(self.head) < self._head_limit:
            self.head += data[: self._head_limit - len(self.head)]
        if self.sink is not None:
            self.sink.write(data)


class _DotLines:
    """Finds each ``CRLF.`` of ``buffer[:end]``: dot by dot while dots are rare, then by
    regex."""

    def __init__(self, buffer: bytes | bytearray, end: int) -> None:
        self.buffer = buffer
        self.end = end
        self.misses = 0

    def find(self, start: int) -> int:
        """Where the next ``CRLF.`` at or after ``start`` begins, or -1."""
        buffer = self.buffer
        end = self.end
        if self.misses <= _MISSES:
            dot = buffer.find(b".", start + 2, end)
            while dot >= 0:
                if buffer[dot - 2 : dot] == b"\r\n":
                    return dot - 2
                self.misses += 1
                if self.misses > _MISSES:
                    start = dot - 1  # no CRLF. begins before this dot's line position
                    break
                dot = buffer.find(b".", dot + 1, end)
            else:
                return -1
        found = _DOT_LINE.search(buffer, start, end)
        return found.start() if found is not None else -1


# --- the header block ---------------------------------------------------------------------------


def after_first_field(head: bytes) -> int:
    """Where the second header field of ``head`` starts (0 if none is seen): past the
    ``Received`` field the door puts before a message in the spool."""
    at = 0
    while (end := head.find(b"\r\n", at)) >= 0:
        if head[end + 2 : end + 3] not in (b" ", b"\t"):
            return end + 2
        at = end + 2
    return 0


MAX_FIELD_LINES = 2000
"""Header lines looked at; a real header block has a few dozen to a few hundred."""
MAX_VALUE = 2000
"""Characters kept of one field's value."""
_MAX_PARENS = 50
"""More comments than this and a structured value is not handed to the stdlib parser, whose
comment handling is slow on deep nesting."""
_FIELD = re.compile(rb"([!-9;-~]{1,100})[ \t]*:(.*)", re.DOTALL)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BRACKETED = re.compile(r"<([^<>]*)>")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
ADDR_SPEC: Final = rf"{_DOT_ATOM}@{_DOT_ATOM}"
"""An address the stdlib's parser reads as it stands: dot-atoms around one ``@``. The common
shapes built on it take a fast path to the very answer the parser gives (a test holds them to
it); everything else goes to the parser. The parser is pure Python and its reading of From
and of MAIL/RCPT arguments was two fifths of the event loop's work per small message."""
_PHRASE = rf"(?:(?:{_ATEXT}+(?:(?:\.? +|\.){_ATEXT}+)*(?:\. +)?)?|\"[^\"\\\r\n]*\")"
"""A display name: words (and dots after the first, as clients write initials), or one quoted
string."""
_NO_ENCODED_WORD = r"(?!.*=\?)"  # the parser decodes those, even inside an address
_PLAIN_FROM = re.compile(
    rf"{_NO_ENCODED_WORD}\s*(?:{_PHRASE}\s*<({ADDR_SPEC})>|({ADDR_SPEC}))\s*", re.DOTALL
)
_PLAIN_ID = re.compile(rf"{_NO_ENCODED_WORD}\s*<({ADDR_SPEC})>\s*", re.DOTALL)
_WANTED = (b"from", b"message-id", b"auto-submitted", b"precedence")


@dataclass(slots=True)
class HeaderFacts:
    """What the door needs from a message's header block before it becomes a post."""

    received: int = 0
    from_count: int = 0
    sender: str | None = None
    """The first From field's address (``local@domain``), or None when there is none usable;
    with ``from_count`` over 1 it identifies no one (the sender policy treats it so)."""
    message_id: str | None = None
    """The Message-ID without its angle brackets, as the mail parser stores it."""
    automatic: bool = False
    """Auto-Submitted (other than ``no``) or Precedence bulk/junk/list: never answered."""
    values: dict[str, str] = field(default_factory=dict)


def scan_headers(head: bytes) -> HeaderFacts:
    """Read the header block at the start of ``head`` in one bounded pass over its lines."""
    facts = HeaderFacts()
    name: bytes | None = None
    value = bytearray()

    def close() -> None:
        if name is None:
            return
        key = name.lower()
        if key == b"received":
            facts.received += 1
        elif key == b"from":
            facts.from_count += 1
        if key in _WANTED and key.decode() not in facts.values:
            text = bytes(value[: MAX_VALUE * 2]).decode("utf-8", "surrogateescape")
            facts.values[key.decode()] = text[:MAX_VALUE].strip()

    # The loop stops at the first empty line: split only up to it, not the whole 256 KiB
    # kept of the message (that split was ~6% of the event loop's time at 1 MB a message).
    blank = _BLANK_LINE.search(head)
    if blank is not None:
        head = head[: blank.end()]
    for count, raw_line in enumerate(head.split(b"\n", MAX_FIELD_LINES)):
        line = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
        if count >= MAX_FIELD_LINES or not line:
            break
        if line[:1] in (b" ", b"\t"):
            if name is None:
                break  # a message that starts with a continuation has no header block
            if len(value) < MAX_VALUE * 2:
                value += line
            continue
        found = _FIELD.fullmatch(line)
        close()
        if found is None:
            name = None
            break  # not a field: the body starts here (a sender that forgot the blank line)
        name, value = found.group(1), bytearray(found.group(2))
    close()
    facts.sender = _sender(facts.values.get("from"))
    facts.message_id = _message_id(facts.values.get("message-id"))
    auto = facts.values.get("auto-submitted", "").split(";")[0].strip().lower()
    precedence = facts.values.get("precedence", "").strip().lower()
    facts.automatic = bool(auto and auto != "no") or precedence in ("bulk", "junk", "list")
    return facts


def _header(name: str, value: str) -> object | None:
    if value.count("(") > _MAX_PARENS:
        return None
    try:
        return header_class(name)(name, value)
    except Exception:
        return None  # the stdlib parser fails on malformed values in many ways


def _sender(value: str | None) -> str | None:
    """The address of a From value, through the stdlib's header objects (never parseaddr)."""
    if not value:
        return None
    plain = _PLAIN_FROM.fullmatch(value)
    if plain is not None:
        return plain.group(1) or plain.group(2)
    header = _header("from", value)
    try:
        addr_spec = str(header.addresses[0].addr_spec)  # type: ignore[union-attr]
    except Exception:
        return None  # no header object, a group without members, or no address at all
    addr_spec = addr_spec.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    addr_spec = "".join(ch for ch in addr_spec if not ch.isspace() and ch.isprintable())
    local, at, domain = addr_spec.rpartition("@")
    if not (at and local and domain) or "<" in addr_spec or ">" in addr_spec:
        return None
    return addr_spec


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    plain = _PLAIN_ID.fullmatch(value)
    if plain is not None:
        return plain.group(1)[:MAX_MESSAGE_ID]
    header = _header("message-id", value)
    text = str(header) if header is not None else value
    bracketed = _BRACKETED.search(text)
    if bracketed:
        text = bracketed.group(1)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(ch for ch in text if not ch.isspace() and ch.isprintable())
    return text[:MAX_MESSAGE_ID] or None
