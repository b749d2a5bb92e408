"""MIME → post: one raw mail message becomes a title, a text and its attachments.

The subject is the title; the plain text (or the text of the HTML when there is no plain text),
without its signature and phone footer, is the text; every attachment and inline image is one
``MailPart``. :func:`parse_message` raises nothing but ``MediaError("mail.unreadable")``, and only
when nothing at all in the input is usable.

Anyone who knows or guesses a secret address can send anything, so this is built for hostile
input. The stdlib feed parser recurses once per nesting level (a few hundred levels end in
``RecursionError``, losing the whole message) and tests every line against every open boundary
(time grows as size × depth). So the MIME tree is walked here: each entity's header block
goes to ``BytesParser(policy=email.policy.default)`` for its header objects, and
``get_payload(decode=True)`` undoes the transfer encoding, but multipart bodies are split with
one linear regex scan per level, under caps on depth, entities, parts, text and time. Beyond a
cap the walk stops descending and returns what it has.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import html
import logging
import mimetypes
import re
import time
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

from relay.errors import MediaError

log = logging.getLogger(__name__)

MAX_DEPTH = 20
"""Levels of multipart and message/rfc822 nesting followed."""
MAX_PARTS = 500
MAX_ENTITIES = 1000
"""MIME entities visited in one message, containers and texts included."""
MAX_SECONDS = 10.0
"""Wall time for one message; only hostile input comes near it."""
MAX_TEXT_CHARS = 100_000
MAX_TEXT_BYTES = 8_000_000
"""Decoded text/plain and text/html bytes read in one message, in total."""
MAX_HTML_CHARS = 1_000_000
MAX_FILENAME = 200

_PARSER = BytesParser(policy=policy.default)


@dataclass(slots=True)
class MailPart:
    filename: str
    """Never empty; derived from the type when the message names none."""
    content_type: str
    """The declared type, lowercased: a hint only, the pipeline sniffs the bytes."""
    payload: bytes
    inline: bool
    """Content-Disposition inline, or an image the HTML shows through a cid: URL."""


@dataclass(slots=True)
class ParsedMail:
    title: str
    text: str
    parts: list[MailPart]
    message_id: str | None
    sender: str | None


def parse_message(raw: bytes) -> ParsedMail:
    """Read one message; raise ``MediaError("mail.unreadable")`` only when nothing is usable."""
    try:
        return _parse(bytes(raw))
    except MediaError:
        raise
    except Exception as exc:
        # Everything below is guarded; this is the net for what nobody foresaw, so that the
        # caller sees one documented failure instead of whatever broke.
        log.warning("mail parse failed", exc_info=True)
        raise MediaError("mail.unreadable", f"{type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes) -> ParsedMail:
    if not raw.strip():
        raise MediaError("mail.unreadable", "empty message")
    top = _entity(raw, 0, len(raw))
    if not top.has_headers and b"\x00" in raw[:8192]:
        raise MediaError("mail.unreadable", "binary data without mail headers")
    walker = _Walker()
    sink: _Sink = []
    walker.walk_child(top, 0, sink)
    text = _pick_text(sink)
    if not text:
        # A forwarded message's own words stand in only when the sender wrote none.
        text = "\n\n".join(t for t in (_pick_text(s) for s in walker.forwarded) if t)
    parts = walker.finish_parts()
    mail = ParsedMail(
        title=_title(top),
        text=_cut(text, MAX_TEXT_CHARS),
        parts=parts,
        message_id=_message_id(top),
        sender=_sender(top),
    )
    if not (mail.title or mail.text or mail.parts or mail.sender or mail.message_id):
        raise MediaError("mail.unreadable", "no headers, text or attachments")
    return mail


# --- headers ----------------------------------------------------------------------------------

# A header line as the stdlib feed parser sees one, plus the obsolete "Name :" form. Searching
# for the first line that is *not* one keeps the scan linear and flat in memory (a repeated group
# over the block costs the regex engine memory per line).
_HEADER_LINE_START = rb"(?:From |[\x21-\x39\x3b-\x7e]*[ \t]*:|[ \t])"
_NOT_HEADER_HERE = re.compile(rb"(?!" + _HEADER_LINE_START + rb")")
_NOT_HEADER_LINE = re.compile(
    rb"(?:(?<=\n)|(?<=\r)(?!\n))(?!" + _HEADER_LINE_START + rb")",
)
_EOL = re.compile(rb"\r\n|\r|\n")

_FIELD_CAPS = {
    b"subject": 16_384,
    b"from": 1024,
    b"message-id": 1024,
    b"content-type": 2048,
    b"content-disposition": 2048,
    b"content-transfer-encoding": 256,
    b"content-id": 1024,
    b"content-location": 1024,
}
_FIELD_NAMES = {
    b"subject": "Subject",
    b"from": "From",
    b"message-id": "Message-ID",
    b"content-type": "Content-Type",
    b"content-disposition": "Content-Disposition",
    b"content-transfer-encoding": "Content-Transfer-Encoding",
    b"content-id": "Content-ID",
    b"content-location": "Content-Location",
}
_FIELD = re.compile(
    rb"(?:(?<=\n)|(?<=\r)|(?<![\s\S]))("
    + b"|".join(re.escape(name) for name in _FIELD_CAPS)
    + rb")[ \t]*:",
    re.IGNORECASE,
)
_FIELD_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?![ \t])")
_FOLD = re.compile(rb"\r\n|\r|\n")
_MAX_FIELD_MATCHES = 200
# Nested comments make the stdlib header parser recurse once per "(": a structured field with
# more of them than any real one is dropped rather than parsed.
_MAX_PARENS = 32
_MAX_PARAMS = 32
_IN_BLOCK = frozenset({"subject", "from", "message-id", "content-transfer-encoding"})


@dataclass(slots=True)
class _Entity:
    raw: bytes
    body_start: int
    end: int
    has_headers: bool
    msg: EmailMessage
    fields: dict[str, str]
    """The wanted header fields as text, first occurrence, unfolded and capped."""
    ctype: str
    params: dict[str, str]
    disposition: str | None
    disp_params: dict[str, str]
    cte: str
    content_id: str | None


def _entity(raw: bytes, start: int, end: int, default_type: str = "text/plain") -> _Entity:
    header_end, body_start = _split_head(raw, start, end)
    fields = _fields(raw, start, header_end)
    msg = _header_message(fields)

    ctype, params = default_type, {}
    if "content-type" in fields:
        ctype = "text/plain"
        header = _structured(fields, "content-type")
        if header is not None:
            ctype = str(getattr(header, "content_type", "") or "text/plain").lower()
            params = _params(header)
    disposition, disp_params = None, {}
    header = _structured(fields, "content-disposition")
    if header is not None:
        value = str(getattr(header, "content_disposition", "") or "").lower()
        disposition = value if value in ("inline", "attachment") else None
        disp_params = _params(header)
    content_id = fields.get("content-id", "").strip().strip("<>").strip() or None
    return _Entity(
        raw=raw,
        body_start=body_start,
        end=end,
        has_headers=header_end > start,
        msg=msg,
        fields=fields,
        ctype=ctype,
        params=params,
        disposition=disposition,
        disp_params=disp_params,
        cte=_norm_cte(fields.get("content-transfer-encoding", "")),
        content_id=content_id,
    )


def _split_head(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the header block ends, and where the body starts (after the blank line)."""
    if _NOT_HEADER_HERE.match(raw, start, end):
        header_end = start
    else:
        found = _NOT_HEADER_LINE.search(raw, start + 1, end)
        header_end = found.start() if found else end
    eol = _EOL.match(raw, header_end, end)
    return header_end, eol.end() if eol else header_end


def _fields(raw: bytes, start: int, header_end: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for count, match in enumerate(_FIELD.finditer(raw, start, header_end)):
        if count >= _MAX_FIELD_MATCHES or len(fields) == len(_FIELD_CAPS):
            break
        key = match.group(1).lower()
        name = key.decode()
        if name in fields:
            continue  # like Message.get: the first occurrence counts
        cap = _FIELD_CAPS[key]
        folded_end = _FIELD_END.search(raw, match.end(), header_end)
        value_end = folded_end.start() if folded_end else header_end
        # Folding adds at most a few bytes per line; twice the cap leaves room for it.
        value = _FOLD.sub(b"", raw[match.end() : min(value_end, match.end() + 2 * cap)])
        fields[name] = _header_text(value[:cap]).strip()
    return fields


def _header_text(value: bytes) -> str:
    """Raw 8-bit header bytes as text: UTF-8 when they are, else Windows-1252/Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return value.decode("cp1252")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _header_message(fields: dict[str, str]) -> EmailMessage:
    lines = []
    for key, value in fields.items():
        if key not in _IN_BLOCK:
            continue  # the rest are read from the text (and Content-Type by _structured, once)
        if key == "content-transfer-encoding":
            # get_payload(decode=True) reads this header: give it the normalised value, so
            # that "Quoted-printable;" or "quoted printable" still decode.
            value = _norm_cte(value)
        elif key != "subject" and value.count("(") > _MAX_PARENS:
            continue
        lines.append(f"{_FIELD_NAMES[key.encode()]}: {_alias_encoded_words(value)}\n")
    block = "".join(lines).encode("utf-8") + b"\n"
    try:
        msg = _PARSER.parsebytes(block, headersonly=True)
    except Exception:
        log.debug("unparseable header block", exc_info=True)
        msg = EmailMessage(policy=policy.default)
    if not isinstance(msg, EmailMessage):  # policy.default always makes one; typing wants proof
        msg = EmailMessage(policy=policy.default)
    return msg


def _structured(fields: dict[str, str], name: str) -> object | None:
    """Content-Type or Content-Disposition as a policy.default header object."""
    value = fields.get(name)
    if value is None or value.count("(") > _MAX_PARENS:
        return None
    # The stdlib parameter parser is quadratic in the number of parameters; real headers have a
    # handful, RFC 2231 continuations of a 200-character name a few dozen at most.
    value = ";".join(value.split(";", _MAX_PARAMS + 1)[: _MAX_PARAMS + 1])
    try:
        return policy.default.header_factory(name, _alias_encoded_words(value))
    except Exception:
        log.debug("unreadable %s header", name, exc_info=True)
        return None


def _header(msg: EmailMessage, name: str) -> object | None:
    try:
        return msg[name]
    except Exception:
        # Malformed values can break the stdlib header parser in many ways (RecursionError,
        # AttributeError, IndexError): an unreadable header is an absent one.
        log.debug("unreadable %s header", name, exc_info=True)
        return None


def _params(header: object) -> dict[str, str]:
    try:
        return {str(k).lower(): str(v) for k, v in getattr(header, "params", {}).items()}
    except Exception:
        return {}


def _norm_cte(value: str) -> str:
    squeezed = re.sub(r"[^a-z0-9]", "", value.lower())
    if squeezed.startswith("quotedprintable"):
        return "quoted-printable"
    if squeezed.startswith("base64"):
        return "base64"
    if squeezed in ("xuuencode", "uuencode", "uue", "xuue"):
        return "x-uuencode"
    return "8bit"  # 7bit, 8bit, binary and every invented value: the bytes as they are


# Labels that mail software writes for a charset whose superset is what it really sends
# (as the WHATWG encoding standard maps them for the web).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
}
# Codecs that reinterpret text rather than decode it.
_REFUSED_CODECS = {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"}
_ENCODED_WORD_CHARSET = re.compile(r"=\?([^?*\s]{1,40})((?:\*[^?\s]{0,20})?\?[bBqQ]\?)")


def _alias_encoded_words(value: str) -> str:
    if "=?" not in value:
        return value

    def alias(match: re.Match[str]) -> str:
        label = match.group(1).lower()
        return f"=?{_CHARSET_ALIASES.get(label, label)}{match.group(2)}"

    return _ENCODED_WORD_CHARSET.sub(alias, value)


def _decode_text(data: bytes, charset: str | None) -> str:
    label = (charset or "").strip().strip("\"'").lower()
    names = []
    if label in _WESTERN_LABELS and not data.isascii():
        # Valid UTF-8 beyond ASCII under a Western single-byte label is mislabelled UTF-8
        # (the reverse almost never decodes); a real Latin-1 text fails here and keeps its label.
        names.append("utf-8")
    for name in (_CHARSET_ALIASES.get(label, label), "utf-8"):
        codec = _text_codec(name)
        if codec and codec not in names:
            names.append(codec)
    for name in names:
        try:
            return data.decode(name).lstrip("\ufeff")
        except (UnicodeError, ValueError):
            continue
    # Nothing fits exactly. A few broken sequences in a long text should cost those characters
    # only, not turn the whole text into Windows-1252 mojibake.
    for name in names:
        try:
            text = data.decode(name, "replace")
        except (UnicodeError, ValueError, LookupError):
            continue
        beyond_ascii = len(text) - len(text.encode("ascii", "ignore"))
        if text.count("\ufffd") * 10 <= beyond_ascii:
            return text.lstrip("\ufeff")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_WESTERN_LABELS = frozenset(
    {"us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "windows-1252", "cp1252"}
)


def _text_codec(name: str) -> str | None:
    """The codec's canonical name when it decodes bytes to text, else None."""
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


# --- the walk ---------------------------------------------------------------------------------

_Sink = list[tuple[str, str]]
"""Text found under one node, in order: ("plain" | "html", decoded text)."""

_NOT_CONTENT = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-encrypted",  # the "Version: 1" control part of multipart/encrypted
        "text/rfc822-headers",
    }
)
_MEDIA_MAIN = frozenset({"image", "video", "audio", "application"})
_UU_BEGIN = re.compile(rb"(?m)^begin(?:-base64)? [0-7]{1,6} ")
_CID_REF = re.compile(rb"cid:([^\s\"'<>()]{1,500})", re.IGNORECASE)
_MAX_CID_REFS = 1000
_SNIFF_BOUNDARY = re.compile(rb"(?m)^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$")
_LENIENT_BOUNDARY = re.compile(r"(?i)(?:^|;)\s*boundary\s*=\s*(?:\"([^\"]*)\"|([^\s;]+))")


@dataclass(slots=True)
class _Found:
    part: MailPart
    content_id: str | None
    disposition: str | None


class _Walker:
    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_SECONDS
        self.entities = 0
        self.text_bytes = 0
        self.found: list[_Found] = []
        self.cid_refs: set[str] = set()
        self.forwarded: list[_Sink] = []

    def exhausted(self) -> bool:
        return (
            self.entities >= MAX_ENTITIES
            or len(self.found) >= MAX_PARTS
            or time.monotonic() > self.deadline
        )

    def finish_parts(self) -> list[MailPart]:
        for found in self.found:
            cid = found.content_id
            found.part.inline = found.disposition == "inline" or (
                cid is not None and (cid in self.cid_refs or cid.lower() in self.cid_refs)
            )
        return [found.part for found in self.found]

    def walk_child(self, ent: _Entity, depth: int, sink: _Sink | None) -> None:
        """Walk one entity; a failure in it loses that entity, never the message."""
        if self.exhausted():
            return
        self.entities += 1
        try:
            self._walk(ent, depth, sink)
        except Exception:
            log.debug("skipping an unreadable MIME entity", exc_info=True)

    def _walk(self, ent: _Entity, depth: int, sink: _Sink | None) -> None:
        main, _, sub = ent.ctype.partition("/")
        if main == "multipart":
            self._multipart(ent, sub, depth, sink)
        elif main == "message":
            # Delivery status, disposition notifications, partial and external bodies are
            # reports about mail, not content.
            if sub in ("rfc822", "global"):
                self._forwarded(ent, depth)
        else:
            self._leaf(ent, sink)

    def _multipart(self, ent: _Entity, sub: str, depth: int, sink: _Sink | None) -> None:
        if depth >= MAX_DEPTH:
            return
        delimiters = _first_delimiter(ent)
        if delimiters is None:
            # No boundary anywhere in the body: what is there is all there is; read it as text.
            ent.ctype = "text/plain"
            self._leaf(ent, sink)
            return
        default = "message/rfc822" if sub == "digest" else "text/plain"
        children = self._children(ent, *delimiters, default)
        if sub == "alternative":
            choices: list[_Sink] = []
            for child in children:
                choice: _Sink = []
                self.walk_child(child, depth + 1, choice)
                choices.append(choice)
            if sink is not None:
                sink.extend(_best_alternative(choices))
        elif sub == "report":
            # A delivery report: only its first, human-readable part is anybody's text; the
            # status and the returned message are neither text nor parts.
            first = next(children, None)
            if first is not None:
                self.walk_child(first, depth + 1, sink)
        else:
            # mixed, related, signed (its signature part is not content), digest, parallel...
            for child in children:
                self.walk_child(child, depth + 1, sink)

    def _children(
        self, ent: _Entity, pattern: re.Pattern[bytes], match: re.Match[bytes], default: str
    ) -> Iterator[_Entity]:
        raw, end = ent.raw, ent.end
        while not self.exhausted():
            start = match.end()
            following = pattern.search(raw, start, end)
            closing = bool(match.group(1))  # "--boundary--"
            if not closing:
                stop = _before_eol(raw, start, following.start()) if following else end
                if stop > start:  # consecutive delimiters make no empty parts, as in the stdlib
                    yield _entity(raw, start, stop, default)
            # A close delimiter with more delimiters after it means the sender reused the
            # boundary for a nested multipart: read on rather than lose what follows.
            if following is None:
                return
            match = following

    def _forwarded(self, ent: _Entity, depth: int) -> None:
        if depth >= MAX_DEPTH:
            return
        if ent.cte == "8bit":
            inner = _entity(ent.raw, ent.body_start, ent.end)
        else:
            # Some clients base64-encode attached messages; the message is what they encode.
            data = self._payload(ent)
            if not data:
                return
            inner = _entity(data, 0, len(data))
        sink: _Sink = []
        self.forwarded.append(sink)
        self.walk_child(inner, depth + 1, sink)

    def _leaf(self, ent: _Entity, sink: _Sink | None) -> None:
        main, _, sub = ent.ctype.partition("/")
        if ent.ctype in _NOT_CONTENT:
            return
        attachment = ent.disposition == "attachment"
        if main == "text" and not attachment and sub in ("plain", "html"):
            self._text(ent, sub, sink)
            return
        filename = _filename_of(ent)
        if not (attachment or main in _MEDIA_MAIN or filename):
            return  # an unnamed calendar, vCard or other text/* meant for software, not people
        payload = self._payload(ent)
        if not payload:
            return
        part = MailPart(
            filename=_clean_filename(filename) or _derived_filename(ent.ctype, len(self.found) + 1),
            content_type=ent.ctype,
            payload=payload,
            inline=False,  # settled in finish_parts, once every cid: reference is known
        )
        self.found.append(_Found(part, ent.content_id, ent.disposition))

    def _text(self, ent: _Entity, sub: str, sink: _Sink | None) -> None:
        if sink is None and sub != "html":
            return
        if self.text_bytes >= MAX_TEXT_BYTES:
            return
        data = self._payload(ent)
        if not data:
            return
        data = data[: MAX_TEXT_BYTES - self.text_bytes]
        self.text_bytes += len(data)
        if sub == "html":
            # Images the HTML shows through cid: URLs are inline, whichever alternative holds
            # the HTML; so read the references even where the plain text wins.
            self._collect_cids(data)
            if sink is not None:
                sink.append(("html", _html_to_text(_decode_text(data, ent.params.get("charset")))))
            return
        text = _decode_text(data, ent.params.get("charset"))
        if ent.params.get("format", "").lower() == "flowed":
            text = _unflow(text, delsp=ent.params.get("delsp", "").lower() == "yes")
        if sink is not None:
            sink.append(("plain", text))

    def _collect_cids(self, html: bytes) -> None:
        for count, match in enumerate(_CID_REF.finditer(html)):
            if count >= _MAX_CID_REFS or len(self.cid_refs) >= _MAX_CID_REFS:
                break
            ref = urllib.parse.unquote(match.group(1).decode("ascii", "replace"))
            self.cid_refs.add(ref)
            self.cid_refs.add(ref.lower())

    def _payload(self, ent: _Entity) -> bytes | None:
        body = ent.raw[ent.body_start : ent.end]
        if ent.cte == "x-uuencode" and not _UU_BEGIN.search(body):
            return None  # the stdlib would hand back the encoded text as if it were the file
        try:
            ent.msg.set_payload(body.decode("ascii", "surrogateescape"))
            data = ent.msg.get_payload(decode=True)
        except Exception:
            log.debug("undecodable part skipped", exc_info=True)
            return None
        finally:
            ent.msg.set_payload(None)  # do not keep a second copy of the body alive
        return data if isinstance(data, bytes) else None


def _first_delimiter(ent: _Entity) -> tuple[re.Pattern[bytes], re.Match[bytes]] | None:
    """The delimiter line pattern of a multipart body and its first match, if any."""
    seen: set[bytes] = set()
    for boundary in _boundary_candidates(ent):
        if not boundary or len(boundary) > 256 or boundary in seen:
            continue
        seen.add(boundary)
        # The literal comes first so that the regex engine can skip ahead to it; the lookbehind
        # after it then asks for a line start.
        delimiter = re.escape(b"--" + boundary)
        pattern = re.compile(
            delimiter + rb"(?<![^\r\n]" + delimiter + rb")(--)?[ \t]*(?:\r\n|\r|\n|\Z)"
        )
        match = pattern.search(ent.raw, ent.body_start, ent.end)
        if match:
            return pattern, match
    return None


def _boundary_candidates(ent: _Entity) -> Iterator[bytes]:
    declared = ent.params.get("boundary")
    if declared:
        yield declared.encode("utf-8", "replace")
    # Unquoted boundaries with "=" or "/" in them (Outlook Express) are cut short by a strict
    # parser; the raw text has them whole.
    lenient = _LENIENT_BOUNDARY.search(ent.fields.get("content-type", ""))
    if lenient:
        yield (lenient.group(1) or lenient.group(2) or "").encode("utf-8", "replace")
    # Last resort for a declared boundary that the body does not use: the first line that looks
    # like a delimiter near the top of the body.
    sniffed = _SNIFF_BOUNDARY.search(ent.raw, ent.body_start, min(ent.end, ent.body_start + 8192))
    if sniffed:
        yield sniffed.group(1)


def _before_eol(raw: bytes, start: int, stop: int) -> int:
    """The line break before a delimiter belongs to the delimiter (RFC 2046)."""
    if stop - start >= 2 and raw[stop - 2 : stop] == b"\r\n":
        return stop - 2
    if stop > start and raw[stop - 1] in b"\r\n":
        return stop - 1
    return stop


def _best_alternative(choices: list[_Sink]) -> _Sink:
    for choice in choices:
        if any(kind == "plain" and text.strip() for kind, text in choice):
            return choice
    for choice in choices:
        if any(text.strip() for _, text in choice):
            return choice
    return []


# --- title, sender, message id ----------------------------------------------------------------


def _title(top: _Entity) -> str:
    raw = top.fields.get("subject", "")
    if not raw:
        return ""
    header = _header(top.msg, "subject")
    text = str(header) if header is not None else raw
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    return " ".join(unicodedata.normalize("NFC", text).split())


def _sender(top: _Entity) -> str | None:
    header = _header(top.msg, "from")
    if header is None:
        return None
    try:
        addr_spec = str(header.addresses[0].addr_spec)  # type: ignore[attr-defined]
    except Exception:
        return None  # a group without members, or no address at all
    # 8-bit (RFC 6532) addresses come back with their bytes as surrogate escapes.
    addr_spec = addr_spec.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    addr_spec = "".join(ch for ch in addr_spec if not ch.isspace() and ch.isprintable())
    local, at, domain = addr_spec.rpartition("@")
    if not (at and local and domain) or "<" in addr_spec or ">" in addr_spec:
        return None  # what the parser salvaged from garbage is not an address
    return addr_spec


def _message_id(top: _Entity) -> str | None:
    if "message-id" not in top.fields:
        return None
    header = _header(top.msg, "message-id")
    value = str(header) if header is not None else top.fields["message-id"]
    bracketed = re.search(r"<([^<>]*)>", value)
    if bracketed:
        value = bracketed.group(1)
    value = "".join(ch for ch in value if not ch.isspace() and ch.isprintable())
    return value or None


# --- file names -------------------------------------------------------------------------------

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/tiff": ".tif",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/3gpp": ".3gp",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/amr": ".amr",
    "application/pdf": ".pdf",
    "application/octet-stream": ".bin",
    "text/plain": ".txt",
    "text/html": ".html",
}
_UNSAFE_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@functools.cache
def _mime_types() -> mimetypes.MimeTypes:
    # An instance of its own knows only the built-in table, so names do not depend on the
    # machine's /etc/mime.types.
    return mimetypes.MimeTypes()


def _filename_of(ent: _Entity) -> str:
    name = _param(ent.disp_params, ent.fields.get("content-disposition", ""), "filename")
    if not name:
        name = _param(ent.params, ent.fields.get("content-type", ""), "name")
    if not name and ent.fields.get("content-location"):
        try:
            path = urllib.parse.urlsplit(ent.fields["content-location"].strip()).path
            name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        except ValueError:
            pass
    return name


def _param(params: dict[str, str], raw_value: str, key: str) -> str:
    value = params.get(key, "")
    # An unquoted value with spaces ("filename=My photo.jpg") or an encoded word
    # ("name==?utf-8?B?...?=") defeats the strict parser; the raw text still has it.
    found = re.search(rf"(?i)(?:^|;)\s*{key}\s*=\s*([^\";][^;]*)", raw_value)
    lenient = found.group(1).strip() if found else ""
    if lenient and (not value or (len(lenient) > len(value) and lenient.startswith(value))):
        value = lenient
    if "=?" in value:
        with contextlib.suppress(Exception):
            value = str(policy.default.header_factory("subject", _alias_encoded_words(value)))
    return value


def _clean_filename(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # C:\Users\me\photo.jpg → photo.jpg
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _UNSAFE_IN_NAMES)
    name = name.strip()
    if not name.strip("."):
        return ""
    if len(name) > MAX_FILENAME:
        stem, dot, suffix = name.rpartition(".")
        if dot and stem and 0 < len(suffix) <= 16:
            name = stem[: MAX_FILENAME - len(suffix) - 1].rstrip() + "." + suffix
        else:
            name = name[:MAX_FILENAME]
    return name


def _derived_filename(ctype: str, number: int) -> str:
    main = ctype.partition("/")[0]
    stem = main if main in ("image", "video", "audio") else "attachment"
    extension = _EXTENSIONS.get(ctype)
    if extension is None:
        try:
            extension = _mime_types().guess_extension(ctype) or ".bin"
        except Exception:
            extension = ".bin"
    return f"{stem}-{number}{extension}"


# --- text -------------------------------------------------------------------------------------

_SIGNATURE_LINE = "--"
_FOOTER_PATTERNS = (
    r"sent from my (?:iphone|ipad|ipod|apple watch|android|galaxy|samsung|mobile|smartphone"
    r"|phone|tablet|device|blackberry|windows phone|huawei|pixel|xiaomi|oneplus|sony|nokia)"
    r"\b.{0,60}",
    r"sent from (?:outlook|yahoo mail|mail|gmail|aol|proton ?mail)\b.{0,60}",
    r"get outlook for (?:ios|android)",
    r"skickat från min (?:iphone|ipad|android|mobil|samsung|galaxy|smartphone)\b.{0,40}",
    r"(?:gesendet )?von meinem (?:iphone|ipad|android|samsung|galaxy|smartphone|handy"
    r"|mobiltelefon)\b.{0,40}",
    r"envoyé (?:de|depuis) mon (?:iphone|ipad|android|samsung|galaxy|smartphone|mobile)\b.{0,40}",
    r"enviado (?:desde|de) mi (?:iphone|ipad|android|samsung|galaxy|smartphone|móvil|movil"
    r"|celular|dispositivo)\b.{0,40}",
    r"enviado do meu (?:iphone|ipad|android|samsung|galaxy|smartphone|celular)\b.{0,40}",
    r"verzonden (?:met|vanaf|van) mijn (?:iphone|ipad|android|samsung|galaxy|smartphone)\b.{0,40}",
    r"inviato da(?:l mio)? (?:iphone|ipad|android|samsung|galaxy|smartphone)\b.{0,40}",
    r"sendt fra min (?:iphone|ipad|android|samsung|galaxy|smartphone|mobil)\b.{0,40}",
)
# Footers may carry a link in angle brackets (Outlook: "Get Outlook for iOS<https://aka.ms/…>").
_FOOTER = re.compile(
    r"(?:--?\s*)?(?:" + "|".join(_FOOTER_PATTERNS) + r")(?:\s*<[^>\s]*>)?[\s.!…]*",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")


def _clean_text(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    for index, line in enumerate(lines):
        if line == _SIGNATURE_LINE:  # "-- " and "--" once trailing blanks are gone
            del lines[index:]
            break
    for _ in range(5):  # footers stack ("Sent from my iPhone" under "Get Outlook for iOS")
        while lines and not lines[-1]:
            lines.pop()
        if not lines or not _FOOTER.fullmatch(lines[-1].strip()):
            break
        lines.pop()
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def _pick_text(sink: _Sink) -> str:
    """The plain segments when there are any, else the HTML ones; joined by a blank line."""
    for kind in ("plain", "html"):
        texts = [_clean_text(text) for k, text in sink if k == kind]
        texts = [text for text in texts if text]
        if texts:
            return _clean_text("\n\n".join(texts))
    return ""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed (what iOS Mail sends): soft breaks end with a space."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        if buffer is not None and depth != buffer_depth:
            out.append(_quoted(buffer_depth, buffer))
            buffer = None
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        buffer = content if buffer is None else buffer + content
        buffer_depth = depth
        if not flowed:
            out.append(_quoted(depth, buffer))
            buffer = None
    if buffer is not None:
        out.append(_quoted(buffer_depth, buffer))
    return "\n".join(out)


def _quoted(depth: int, text: str) -> str:
    return ">" * depth + " " + text if depth else text


# --- HTML -------------------------------------------------------------------------------------

_TAG_OPEN = re.compile(r"</?[A-Za-z]")
_HTML_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_SPACES = re.compile(r"[ \t\xa0]+")


def _close_markup(markup: str) -> str:
    """Escape each "<" that does not open a finished tag; drop comments and declarations.

    html.parser on this Python rescans to the end of the input for every unfinished tag
    ("<a<a<a…" is quadratic). After this linear pass each "<" it meets is a start or end tag
    closed by a ">" before the next "<".
    """
    out: list[str] = []
    length = len(markup)
    position = 0
    next_gt = -1
    while position < length:
        lt = markup.find("<", position)
        if lt < 0:
            out.append(markup[position:])
            break
        out.append(markup[position:lt])
        if markup.startswith("<!--", lt):
            close = markup.find("-->", lt + 4)
            if close < 0:
                break  # an unclosed comment hides the rest, as it does in a browser
            position = close + 3
            continue
        if next_gt <= lt:
            next_gt = markup.find(">", lt + 1)
        if next_gt < 0:
            out.append(markup[lt:].replace("<", "&lt;"))
            break
        if markup.find("<", lt + 1, next_gt) >= 0:
            out.append("&lt;")
            position = lt + 1
            continue
        tag = markup[lt : next_gt + 1]
        if _TAG_OPEN.match(tag):
            out.append(tag)
        elif not tag.startswith(("<!", "<?", "</")):
            out.append("&lt;" + tag[1:])  # "<3 >" is text
        position = next_gt + 1
    return "".join(out)


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "template", "xml"})
    _PARAGRAPH = frozenset(
        {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "dl"}
    )
    _LINE = frozenset(
        {"div", "li", "tr", "dt", "dd", "hr", "pre", "section", "article", "header", "footer",
         "address", "center", "form", "fieldset"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.newlines = 2  # at the start a block needs no break before it

    def _break(self, count: int) -> None:
        """End the line (1) or the paragraph (2) unless the text already does."""
        if self.newlines < count:
            self.out.append("\n" * (count - self.newlines))
            self.newlines = count

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag == "body":
            self.skip = 0  # a <head> nobody closed
        elif tag == "br":
            self.out.append("\n")
            self.newlines += 1
        elif tag in self._PARAGRAPH:
            self._break(2)
        elif tag in self._LINE:
            self._break(1)
        elif tag in ("td", "th"):
            self.out.append(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._PARAGRAPH:
            self._break(2)
        elif tag in self._LINE:
            self._break(1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:
            data = _HTML_SPACE.sub(" ", data)
        self.out.append(data)
        if data.strip():
            self.newlines = len(data) - len(data.rstrip("\n"))
        else:
            self.newlines += data.count("\n")


def _html_to_text(markup: str) -> str:
    markup = _close_markup(markup[:MAX_HTML_CHARS])
    try:
        parser = _HtmlText()
        parser.feed(markup)
        parser.close()
        text = "".join(parser.out)
    except Exception:
        # html.parser still raises on some malformed markup; tags stripped is better than none.
        text = html.unescape(re.sub(r"<[^<>]*>", "\n", markup))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):  # runs of blank lines become one
            out.append(line)
    return "\n".join(out).strip("\n")
