"""Wrappers around files in mail: winmail.dat (TNEF), AppleSingle/AppleDouble, uuencoded bodies,
and the placeholders clients write where an inline image was."""

from __future__ import annotations

import base64
import binascii
import struct

import pytest

from relay.mail.applefile import data_fork
from relay.mail.parse import parse_message
from relay.mail.tnef import read_tnef
from tests.corpus.mail.make import appledouble_header, tnef


def _with_attachment(ctype: str, name: str, data: bytes, text: str = "Body") -> bytes:
    return (
        b"From: a@example.org\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n'
        b"--x\r\nContent-Type: text/plain\r\n\r\n" + text.encode() + b"\r\n"
        b"--x\r\nContent-Type: " + ctype.encode() + b'; name="' + name.encode() + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--x--\r\n"
    )


# --- TNEF -------------------------------------------------------------------------------------


def test_tnef_attachments_become_parts_with_their_long_names() -> None:
    winmail = tnef(
        [
            ("REPORT~1.PDF", "Report 2025.pdf", "application/pdf", b"%PDF-1.4 report"),
            ("NOTES.TXT", "notes.txt", "", b"plain notes"),
        ]
    )
    mail = parse_message(_with_attachment("application/ms-tnef", "winmail.dat", winmail))
    assert [(p.filename, p.content_type, p.payload) for p in mail.parts] == [
        ("Report 2025.pdf", "application/pdf", b"%PDF-1.4 report"),
        ("notes.txt", "text/plain", b"plain notes"),
    ]
    assert mail.text == "Body"


def test_tnef_by_file_name_under_a_generic_type() -> None:
    winmail = tnef([("A.JPG", "a.jpg", "image/jpeg", b"\xff\xd8\xff jpeg")])
    mail = parse_message(_with_attachment("application/octet-stream", "WINMAIL.DAT", winmail))
    assert [p.filename for p in mail.parts] == ["a.jpg"]


def test_tnef_body_is_the_text_only_when_there_is_no_other() -> None:
    winmail = tnef([("A.JPG", "a.jpg", "image/jpeg", b"\xff\xd8\xff")], body="Från Outlook")
    assert parse_message(_with_attachment("application/ms-tnef", "winmail.dat", winmail)).text == (
        "Body"
    )
    raw = _with_attachment("application/ms-tnef", "winmail.dat", winmail, text="")
    assert parse_message(raw).text == "Från Outlook"


def test_tnef_without_attachments_leaves_no_item() -> None:
    winmail = tnef([], body="Only a body")
    mail = parse_message(_with_attachment("application/ms-tnef", "winmail.dat", winmail))
    assert mail.parts == []


def test_a_winmail_dat_that_is_not_tnef_is_kept_as_a_file() -> None:
    mail = parse_message(_with_attachment("application/ms-tnef", "winmail.dat", b"not tnef"))
    assert [(p.filename, p.payload) for p in mail.parts] == [("winmail.dat", b"not tnef")]


def test_truncated_tnef_gives_what_came_before_the_damage() -> None:
    winmail = tnef(
        [
            ("A.JPG", "a.jpg", "image/jpeg", b"first file"),
            ("B.JPG", "b.jpg", "image/jpeg", b"second file" * 100),
        ]
    )
    content = read_tnef(winmail[: len(winmail) - 600])
    assert content is not None
    assert [a.name for a in content.attachments] == ["a.jpg"]


def test_embedded_outlook_item_is_skipped() -> None:
    iid_imessage = bytes.fromhex("0703020000000000c000000000000046")
    props = struct.pack("<I", 1) + struct.pack("<HH", 0x000D, 0x3701)
    obj = iid_imessage + b"inner message bytes"
    props += struct.pack("<II", 1, len(obj)) + obj + b"\x00" * (-len(obj) % 4)
    stream = tnef([])
    rend = struct.pack("<BII", 2, 0x00069002, 14) + b"\x00" * 14 + b"\x00\x00"
    attachment = struct.pack("<BII", 2, 0x00069005, len(props)) + props
    attachment += struct.pack("<H", sum(props) & 0xFFFF)
    content = read_tnef(stream + rend + attachment)
    assert content is not None and content.attachments == []


def _hostile_props(count: int) -> bytes:
    head = struct.pack("<IH", 0x223E9F78, 1)
    data = struct.pack("<I", count) + struct.pack("<HHI", 0x0102, 0x3701, 0xFFFFFFFF)
    return head + struct.pack("<BII", 1, 0x00069003, len(data)) + data + b"\x00\x00"


@pytest.mark.parametrize(
    "stream",
    [
        _hostile_props(0xFFFFFFFF),
        struct.pack("<IH", 0x223E9F78, 1) + struct.pack("<BII", 2, 0x00069002, 0xFFFFFFF0),
        struct.pack("<IH", 0x223E9F78, 1)
        + (struct.pack("<BII", 2, 0x00069002, 0) + b"\x00\x00") * 50_000,
        struct.pack("<IH", 0x223E9F78, 1)
        + struct.pack("<BII", 2, 0x00069005, 12)
        + struct.pack("<IHHI", 5, 0x1102, 0x3701, 0xFFFFFFFF)
        + b"\x00\x00",
    ],
)
@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_hostile_tnef_is_fast_and_bounded(stream: bytes) -> None:
    content = read_tnef(stream)
    assert content is not None
    assert len(content.attachments) <= 500


@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_tnef_that_tnefparse_would_spin_on_is_fine_in_a_mail() -> None:
    raw = _with_attachment("application/ms-tnef", "winmail.dat", _hostile_props(0xFFFFFFFF))
    assert parse_message(raw).text == "Body"


# --- Apple ------------------------------------------------------------------------------------


def _apple_single(name: str, data: bytes) -> bytes:
    raw_name = name.encode()
    head = struct.pack(">II16sH", 0x00051600, 0x00020000, b"\x00" * 16, 2)
    offset = len(head) + 24
    table = struct.pack(">III", 3, offset, len(raw_name))
    table += struct.pack(">III", 1, offset + len(raw_name), len(data))
    return head + table + raw_name + data


def test_apple_single_gives_its_data_fork_and_real_name() -> None:
    single = _apple_single("Bild från stugan.jpg", b"\xff\xd8\xff jpeg data")
    assert data_fork(single) == ("Bild från stugan.jpg", b"\xff\xd8\xff jpeg data")
    mail = parse_message(_with_attachment("application/applefile", "x", single))
    assert [(p.filename, p.content_type, p.payload) for p in mail.parts] == [
        ("Bild från stugan.jpg", "image/jpeg", b"\xff\xd8\xff jpeg data")
    ]


def test_apple_double_header_is_dropped() -> None:
    mail = parse_message(
        _with_attachment("application/applefile", "a.jpg", appledouble_header("a.jpg"))
    )
    assert mail.parts == []


def test_apple_single_with_lying_offsets_is_kept_as_it_is() -> None:
    head = struct.pack(">II16sH", 0x00051600, 0x00020000, b"\x00" * 16, 1)
    broken = head + struct.pack(">III", 1, 10_000, 10)
    assert data_fork(broken) is None
    mail = parse_message(_with_attachment("application/applefile", "f.bin", broken))
    assert [p.payload for p in mail.parts] == [broken]


# --- uuencoded bodies -------------------------------------------------------------------------


def _uu(data: bytes) -> bytes:
    return b"".join(binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45))


def test_uuencoded_blocks_in_a_body_become_parts() -> None:
    first, second = bytes(range(256)) * 2, b"%PDF-1.4 tiny"
    body = (
        b"Two files.\n\nbegin 644 bytes.bin\n" + _uu(first) + b"`\nend\n\n"
        b"begin 600 doc.pdf\n" + _uu(second) + b"`\nend\nBye\n"
    ).replace(b"\n", b"\r\n")
    raw = b"From: a@example.org\r\nSubject: uu\r\n\r\n" + body
    mail = parse_message(raw)
    assert [(p.filename, p.content_type, p.payload) for p in mail.parts] == [
        ("bytes.bin", "application/octet-stream", first),
        ("doc.pdf", "application/pdf", second),
    ]
    assert mail.text == "Two files.\n\n\nBye"


def test_text_that_only_looks_like_uuencode_stays_text() -> None:
    raw = b"From: a@example.org\r\nSubject: uu\r\n\r\nbegin 644 notes\r\n!!! not uu !!!\r\nend\r\n"
    mail = parse_message(raw)
    assert mail.parts == []
    assert "not uu" in mail.text


@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_many_begin_lines_without_end_are_fast() -> None:
    raw = b"From: a@example.org\r\nSubject: uu\r\n\r\n" + b"begin 644 x\r\n" * 200_000
    parse_message(raw)


# --- placeholders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("Look:\n\n[image: IMG_1234.jpg]\n\nNice?", "Look:\n\nNice?"),
        ("[cid:image001.png@01DBDD2E.5A1C8F40]\nHej", "Hej"),
        ("Text\n  [image: a.jpg]  \n[image: b.jpg]\nmore", "Text\nmore"),
        ("See [image: inline] here", "See [image: inline] here"),
        ("[images: not one]", "[images: not one]"),
    ],
)
def test_inline_image_placeholders_are_removed(body: str, text: str) -> None:
    raw = b"From: a@example.org\r\nSubject: p\r\n\r\n" + body.replace("\n", "\r\n").encode()
    assert parse_message(raw).text == text
