"""Outlook's ``winmail.dat`` (TNEF, [MS-OXTNEF]): the files and the plain or HTML body inside.

Only what a post needs is read: each attachment's name, MIME type and bytes, and the message
body when it is plain text or HTML (compressed RTF is not decoded). The stream is hostile input,
so every count in it is checked against the bytes that remain, the walk is one linear pass with
caps on attributes, properties and attachments, and nothing recurses: an embedded message
(an attached Outlook item) is skipped rather than opened. The ``tnefparse`` package reads the
same format but trusts the counts (a 30-byte stream can keep it busy for minutes), so it is
used by the tests as an independent check of the fixtures only.

Layout, all integers little-endian: a signature (0x223E9F78) and a 16-bit key, then attributes:
level (1 message, 2 attachment), a 32-bit id (low 16 bits the attribute, high 16 its type), a
32-bit length, the data, a 16-bit checksum. An attachment starts at its attAttachRendData.
attAttachment and attMsgProps hold MAPI properties: a count, then per property a 16-bit type
and id (named ones, id ≥ 0x8000, add a GUID and a number or name), and the value(s), each padded
to four bytes; variable-length values carry a value count and, per value, a length.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

SIGNATURE = 0x223E9F78

LEVEL_MESSAGE = 1
LEVEL_ATTACHMENT = 2

ATT_BODY = 0x800C
ATT_ATTACH_DATA = 0x800F
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_REND_DATA = 0x9002
ATT_MSG_PROPS = 0x9003
ATT_ATTACHMENT = 0x9005
ATT_OEM_CODEPAGE = 0x9007

PR_BODY = 0x1000
PR_BODY_HTML = 0x1013
PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA_OBJ = 0x3701
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E
PR_INTERNET_CPID = 0x3FDE

PT_SHORT, PT_LONG, PT_FLOAT, PT_DOUBLE, PT_CURRENCY, PT_APPTIME = 0x2, 0x3, 0x4, 0x5, 0x6, 0x7
PT_ERROR, PT_BOOLEAN, PT_OBJECT, PT_I8 = 0xA, 0xB, 0xD, 0x14
PT_STRING8, PT_UNICODE, PT_SYSTIME, PT_CLSID, PT_BINARY = 0x1E, 0x1F, 0x40, 0x48, 0x102
MV_FLAG = 0x1000

_FIXED_SIZES = {
    PT_SHORT: 4,  # two bytes and two of padding
    PT_BOOLEAN: 4,
    PT_LONG: 4,
    PT_FLOAT: 4,
    PT_ERROR: 4,
    PT_DOUBLE: 8,
    PT_CURRENCY: 8,
    PT_APPTIME: 8,
    PT_I8: 8,
    PT_SYSTIME: 8,
    PT_CLSID: 16,
}
_VARIABLE = frozenset({PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT})
_WANTED = frozenset(
    {
        PR_BODY,
        PR_BODY_HTML,
        PR_DISPLAY_NAME,
        PR_ATTACH_DATA_OBJ,
        PR_ATTACH_FILENAME,
        PR_ATTACH_LONG_FILENAME,
        PR_ATTACH_MIME_TAG,
        PR_INTERNET_CPID,
    }
)
# IID_IMessage: an attachment whose data object is an Outlook item, not a file.
_IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")

MAX_ATTRIBUTES = 10_000
MAX_PROPERTIES = 10_000
MAX_VALUES = 1_000
MAX_NAME_BYTES = 2048

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


@dataclass(slots=True)
class TnefAttachment:
    name: str = ""
    mime: str = ""
    data: bytes = b""
    embedded_message: bool = False


@dataclass(slots=True)
class TnefContent:
    attachments: list[TnefAttachment] = field(default_factory=list)
    text: str = ""
    html: str = ""


def is_tnef(data: bytes) -> bool:
    return len(data) >= 6 and _U32.unpack_from(data, 0)[0] == SIGNATURE


def read_tnef(data: bytes, max_attachments: int = 500) -> TnefContent | None:
    """The stream's files and body; None when it is not TNEF at all.

    A truncated or damaged stream gives what was read before the damage.
    """
    if not is_tnef(data):
        return None
    content = TnefContent()
    codepage = "cp1252"
    current: TnefAttachment | None = None
    offset = 6
    for _ in range(MAX_ATTRIBUTES):
        if offset + 11 > len(data):
            break
        level = data[offset]
        attr_id = _U32.unpack_from(data, offset + 1)[0]
        length = _U32.unpack_from(data, offset + 5)[0]
        start = offset + 9
        if length > len(data) - start - 2:
            break  # truncated: what follows cannot be trusted
        value = data[start : start + length]
        offset = start + length + 2  # the checksum is not checked: a bad one loses nothing
        name = attr_id & 0xFFFF
        if level == LEVEL_ATTACHMENT:
            if name == ATT_ATTACH_REND_DATA or current is None:
                if len(content.attachments) >= max_attachments:
                    break
                current = TnefAttachment()
                content.attachments.append(current)
            _attachment_attribute(current, name, value, codepage)
        elif name == ATT_OEM_CODEPAGE and len(value) >= 4:
            codepage = _codec(_U32.unpack_from(value, 0)[0]) or codepage
        elif name == ATT_BODY:
            content.text = _string8(value, codepage)
        elif name == ATT_MSG_PROPS:
            _message_props(content, value, codepage)
    content.attachments = [a for a in content.attachments if a.data and not a.embedded_message]
    return content


def _attachment_attribute(
    attachment: TnefAttachment, name: int, value: bytes, codepage: str
) -> None:
    if name == ATT_ATTACH_TITLE and not attachment.name:
        attachment.name = _string8(value[:MAX_NAME_BYTES], codepage)
    elif name == ATT_ATTACH_DATA:
        attachment.data = value
    elif name == ATT_ATTACHMENT:
        props = _props(value, codepage)
        long_name = props.get(PR_ATTACH_LONG_FILENAME) or props.get(PR_ATTACH_FILENAME)
        if isinstance(long_name, str) and long_name:
            attachment.name = long_name[:MAX_NAME_BYTES]
        elif not attachment.name and isinstance(props.get(PR_DISPLAY_NAME), str):
            attachment.name = str(props[PR_DISPLAY_NAME])[:MAX_NAME_BYTES]
        mime = props.get(PR_ATTACH_MIME_TAG)
        if isinstance(mime, str):
            attachment.mime = mime.strip().lower()[:200]
        obj = props.get(PR_ATTACH_DATA_OBJ)
        if isinstance(obj, bytes) and not attachment.data:
            attachment.data = obj
        elif isinstance(obj, _Object):
            if obj.iid == _IID_IMESSAGE:
                attachment.embedded_message = True
            elif not attachment.data:
                attachment.data = obj.data


def _message_props(content: TnefContent, value: bytes, codepage: str) -> None:
    props = _props(value, codepage)
    cpid = props.get(PR_INTERNET_CPID)
    html_codec = _codec(cpid) if isinstance(cpid, int) else None
    body = props.get(PR_BODY)
    if isinstance(body, str) and body.strip():
        content.text = body
    elif isinstance(body, bytes) and body.strip():
        content.text = _string8(body, html_codec or codepage)
    html = props.get(PR_BODY_HTML)
    if isinstance(html, bytes):
        content.html = _string8(html, html_codec or codepage)
    elif isinstance(html, str):
        content.html = html


@dataclass(slots=True, frozen=True)
class _Object:
    iid: bytes
    data: bytes


def _props(block: bytes, codepage: str) -> dict[int, str | bytes | int | _Object]:
    """The wanted single values of a MAPI property block, read until it stops making sense."""
    found: dict[int, str | bytes | int | _Object] = {}
    if len(block) < 4:
        return found
    count = min(_U32.unpack_from(block, 0)[0], MAX_PROPERTIES)
    offset = 4
    end = len(block)
    for _ in range(count):
        if offset + 4 > end:
            break
        ptype, pid = _U16.unpack_from(block, offset)[0], _U16.unpack_from(block, offset + 2)[0]
        offset += 4
        if pid >= 0x8000:  # a named property: GUID, kind, then a number or a name
            if offset + 20 > end:
                break
            kind = _U32.unpack_from(block, offset + 16)[0]
            offset += 20
            if kind == 0:
                offset += 4
            else:
                if offset + 4 > end:
                    break
                name_length = _U32.unpack_from(block, offset)[0]
                offset += 4 + _padded(name_length)
            if offset > end:
                break
        multi = bool(ptype & MV_FLAG)
        ptype &= ~MV_FLAG
        values = 1
        if multi or ptype in _VARIABLE:
            if offset + 4 > end:
                break
            values = _U32.unpack_from(block, offset)[0]
            offset += 4
            if values > MAX_VALUES:
                break
        size = _FIXED_SIZES.get(ptype)
        if size is not None:
            if offset + size * values > end:
                break
            if pid in _WANTED and not multi and ptype == PT_LONG:
                found[pid] = _U32.unpack_from(block, offset)[0]
            offset += size * values
            continue
        if ptype not in _VARIABLE:
            break  # a type whose size is unknown: nothing after it can be located
        for number in range(values):
            if offset + 4 > end:
                return found
            length = _U32.unpack_from(block, offset)[0]
            offset += 4
            if length > end - offset:
                return found
            raw = block[offset : offset + length]
            offset += _padded(length)
            if number == 0 and not multi and pid in _WANTED:
                found[pid] = _value(ptype, raw, codepage)
    return found


def _value(ptype: int, raw: bytes, codepage: str) -> str | bytes | _Object:
    if ptype == PT_UNICODE:
        return raw.decode("utf-16-le", "replace").split("\x00", 1)[0]
    if ptype == PT_STRING8:
        return _string8(raw, codepage)
    if ptype == PT_OBJECT:
        return _Object(raw[:16], raw[16:])
    return raw


def _padded(length: int) -> int:
    return (length + 3) & ~3


def _string8(raw: bytes, codepage: str) -> str:
    if codepage.startswith("utf-16"):
        return raw.decode(codepage, "replace").split("\x00", 1)[0]
    return raw.split(b"\x00", 1)[0].decode(codepage, "replace")


def _codec(codepage: object) -> str | None:
    """A Windows code page number as a Python text codec, when there is one."""
    if not isinstance(codepage, int):
        return None
    name = {65001: "utf-8", 20127: "ascii", 28591: "latin-1", 1200: "utf-16-le"}.get(
        codepage, f"cp{codepage}"
    )
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None
