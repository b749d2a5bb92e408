"""Header fields of one MIME entity, their parameters and charsets, and the names of files.

Only the fields the relay reads are taken from a header block, each capped in length, and the
structured ones go to ``policy.default`` header objects one at a time, with the inputs that make
the stdlib parser recurse or go quadratic (nested comments, hundreds of parameters) refused
before it sees them. Labels of charsets are mapped to the supersets mail software really sends.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import logging
import mimetypes
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

log = logging.getLogger(__name__)

MAX_FILENAME = 200

_PARSER = BytesParser(policy=policy.default)

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
class Entity:
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


@functools.lru_cache(maxsize=64)
def header_class(name: str) -> type:
    """``policy.default``'s class for a field, made once: ``header_factory(name, value)`` builds
    a new class at every call, a fifth of the time it takes to read one From field."""
    return policy.default.header_factory[name]


def read_entity(raw: bytes, start: int, end: int, default_type: str = "text/plain") -> Entity:
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
    return Entity(
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
        return header_class(name)(name, _alias_encoded_words(value))
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


def decode_text(data: bytes, charset: str | None) -> str:
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


# --- title, sender, message id ----------------------------------------------------------------


def title_of(top: Entity) -> str:
    raw = top.fields.get("subject", "")
    if not raw:
        return ""
    header = _header(top.msg, "subject")
    text = str(header) if header is not None else raw
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    return " ".join(unicodedata.normalize("NFC", text).split())


def sender_of(top: Entity) -> str | None:
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


MAX_MESSAGE_ID = 500
"""Characters kept of a Message-ID, by the door and by the unpacking job alike: copies of a
message are found by it (and PostgreSQL indexes it)."""


def message_id_of(top: Entity) -> str | None:
    if "message-id" not in top.fields:
        return None
    header = _header(top.msg, "message-id")
    value = str(header) if header is not None else top.fields["message-id"]
    bracketed = re.search(r"<([^<>]*)>", value)
    if bracketed:
        value = bracketed.group(1)
    value = "".join(ch for ch in value if not ch.isspace() and ch.isprintable())
    return value[:MAX_MESSAGE_ID] or None


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


def filename_of(ent: Entity) -> str:
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
            value = str(header_class("subject")("subject", _alias_encoded_words(value)))
    return value


def clean_filename(name: str) -> str:
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


def derived_filename(ctype: str, number: int) -> str:
    main = ctype.partition("/")[0]
    stem = main if main in ("image", "video", "audio") else "attachment"
    extension = _EXTENSIONS.get(ctype)
    if extension is None:
        try:
            extension = _mime_types().guess_extension(ctype) or ".bin"
        except Exception:
            extension = ".bin"
    return f"{stem}-{number}{extension}"


def type_from_name(name: str) -> str | None:
    """The MIME type a file name's extension stands for, when it is a known one."""
    stem, dot, suffix = name.rpartition(".")
    if not (dot and stem and 0 < len(suffix) <= 16):
        return None
    extension = "." + suffix.lower()
    for ctype, known in _EXTENSIONS.items():
        if known == extension and ctype != "application/octet-stream":
            return ctype
    try:
        guessed = _mime_types().guess_type("file" + extension, strict=False)[0]
    except Exception:
        return None
    return guessed.lower() if guessed else None
