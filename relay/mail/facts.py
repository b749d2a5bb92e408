"""What the SMTP door reads of a message's header block while the message streams in: the
sender, the Message-ID and whether it was sent by a machine, read within fixed bounds from the
first 256 KiB the DATA reader keeps (no second read of the spool file)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from relay.mail.headers import MAX_MESSAGE_ID, header_class


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
