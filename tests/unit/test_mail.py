"""relay.mail.parse: one raw message → title, text, parts; never more than MediaError."""

from __future__ import annotations

import base64
import binascii
import io
import os
import random
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from relay.errors import MediaError
from relay.mail.parse import MAX_DEPTH, MAX_PARTS, MailPart, ParsedMail, parse_message

CORPORA = Path(os.environ.get("RELAY_TEST_CORPORA", "/work/shared/corpora"))
MAIL_GEM = CORPORA / "mail-gem"
MAIL_PARSER = CORPORA / "mail-parser"


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 40, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _plain(body: str, *, charset: str = "utf-8", params: str = "") -> bytes:
    head = (
        "From: Åsa Berg <asa@example.se>\r\n"
        "Subject: test\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}{params}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    )
    return head.encode() + body.replace("\n", "\r\n").encode(charset)


def _multipart(subtype: str, *parts: bytes, boundary: str = "b0und4ry") -> bytes:
    out = [
        b"From: sender@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n",
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode(),
        b"This is a multi-part message in MIME format.\r\n",
    ]
    for part in parts:
        out.append(f"\r\n--{boundary}\r\n".encode() + part)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(out)


def _corpus(path: Path) -> bytes:
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    return path.read_bytes()


# --- the iPhone --------------------------------------------------------------------------------


def test_iphone_mail_with_inline_photo() -> None:
    jpeg = _jpeg()
    raw = (
        b"From: =?utf-8?Q?=C3=85sa_Berg?= <asa.berg@example.se>\r\n"
        b"Content-Type: multipart/mixed;\r\n\tboundary=Apple-Mail-7C1A0F52-1D2B\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n"
        b"Mime-Version: 1.0 (1.0)\r\n"
        b"Date: Sat, 14 Jun 2025 11:02:13 +0200\r\n"
        b"Subject: =?UTF-8?Q?Bild_fr=C3=A5n_invigningen_=E2=80=93_=C3=A5=C3=A4=C3=B6?=\r\n"
        b"Message-Id: <9F1D2C3B-6A7E-4B8C-9D0E-1F2A3B4C5D6E@example.se>\r\n"
        b"To: k7x2m9@relay.localhost\r\n"
        b"X-Mailer: iPhone Mail (22F76)\r\n"
        b"\r\n"
        b"--Apple-Mail-7C1A0F52-1D2B\r\n"
        b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"Invigningen av torget.\r\n"
        b"\r\n"
        b"Skickat fr=C3=A5n min iPhone\r\n"
        b"--Apple-Mail-7C1A0F52-1D2B\r\n"
        b"Content-Type: image/jpeg;\r\n\tname=IMG_0042.jpeg;\r\n\tx-apple-part-url=ABC-123\r\n"
        b"Content-Disposition: inline;\r\n\tfilename=IMG_0042.jpeg\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + _b64(jpeg) + b"--Apple-Mail-7C1A0F52-1D2B--\r\n"
    )
    mail = parse_message(raw)
    assert isinstance(mail, ParsedMail)
    assert mail.title == "Bild från invigningen – åäö"
    assert mail.text == "Invigningen av torget."
    assert mail.sender == "asa.berg@example.se"
    assert mail.message_id == "9F1D2C3B-6A7E-4B8C-9D0E-1F2A3B4C5D6E@example.se"
    assert mail.parts == [MailPart("IMG_0042.jpeg", "image/jpeg", jpeg, True)]


def test_iphone_alternative_with_related_photo() -> None:
    jpeg = _jpeg()
    msg = EmailMessage()
    msg["Subject"] = "Bild från invigningen – åäö"
    msg["From"] = "Åsa Berg <asa.berg@example.se>"
    msg.set_content("Invigningen av torget.\n\nSkickat från min iPhone\n")
    msg.add_alternative(
        '<html><body><div>Invigningen av torget.</div><img src="cid:photo-1@example">'
        "</body></html>",
        subtype="html",
    )
    msg.get_payload()[1].add_related(jpeg, "image", "jpeg", cid="<photo-1@example>")
    mail = parse_message(msg.as_bytes())
    assert mail.title == "Bild från invigningen – åäö"
    assert mail.text == "Invigningen av torget."
    # The photo lives only in the HTML branch; the plain branch wins the text, not the photo.
    assert len(mail.parts) == 1
    part = mail.parts[0]
    assert (part.content_type, part.payload, part.inline) == ("image/jpeg", jpeg, True)
    assert part.filename == "image-1.jpg"


def test_format_flowed_is_unwrapped() -> None:
    raw = _plain(
        "A long line that the phone \nwrapped for the wire.\n> quoted and \n> flowed\n",
        params="; format=flowed; delsp=no",
    )
    assert parse_message(raw).text == (
        "A long line that the phone wrapped for the wire.\n> quoted and flowed"
    )


# --- text cleaning ----------------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["-- ", "--"])
def test_signature_is_removed(separator: str) -> None:
    raw = _plain(f"Hello there.\n\n{separator}\nÅsa Berg\nExample AB, +46 8 123 45 67\n")
    assert parse_message(raw).text == "Hello there."


def test_dashes_inside_a_line_are_not_a_signature() -> None:
    raw = _plain("Score -- 3 to 1.\n--- not a separator\nEnd.\n")
    assert parse_message(raw).text == "Score -- 3 to 1.\n--- not a separator\nEnd."


@pytest.mark.parametrize(
    "footer",
    [
        "Sent from my iPhone",
        "Sent from my iPad",
        "Skickat från min iPhone",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPhone",
        "Enviado desde mi iPhone",
        "Verzonden met mijn iPhone",
        "Sent from my Android",
        "Sent from my Galaxy",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from Outlook for iOS",
        "Sent from Outlook for Android",
        "Get Outlook for iOS",
        "Get Outlook for Android<https://aka.ms/AAb9ysg>",
        "Sent from Yahoo Mail for iPhone",
        "Sent from Yahoo Mail on Android",
        "Sent from Mail for Windows",
        "sent from my iphone!",
    ],
)
def test_phone_footer_is_removed(footer: str) -> None:
    raw = _plain(f"Photos from today.\nMore tomorrow.\n\n{footer}\n\n")
    assert parse_message(raw).text == "Photos from today.\nMore tomorrow."


def test_footer_that_is_not_at_the_end_stays() -> None:
    body = "Sent from my iPhone\n\nOn Monday, Bo wrote:\n> hello\n"
    assert parse_message(_plain(body)).text == body.rstrip("\n")


def test_whitespace_and_line_endings_are_normalised() -> None:
    raw = b"Subject: s\r\n\r\n\r\n\n  First line   \r\nsecond\rthird\t\n\n\r\n\x00"
    assert parse_message(raw).text == "  First line\nsecond\nthird"


def test_html_only_body_becomes_text() -> None:
    html = (
        "<html><head><title>Newsletter</title><style>p { color: red }</style>"
        "<script>alert('x')</script></head><body>"
        "<p>Hello&nbsp;&amp; welcome,</p><div>line one<br>line two</div>"
        "<ul><li>first</li><li>second</li></ul>"
        "<p></p><p></p><p>caf&eacute; &#8211; &lt;ok&gt;</p><!-- hidden --></body></html>"
    )
    raw = _multipart(
        "mixed",
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode(),
    )
    assert parse_message(raw).text == (
        "Hello & welcome,\n\nline one\nline two\n\nfirst\nsecond\n\ncafé – <ok>"
    )


def test_alternative_prefers_the_plain_text() -> None:
    raw = _multipart(
        "alternative",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe plain words.",
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>The <b>rich</b> words.</p>",
    )
    assert parse_message(raw).text == "The plain words."


def test_alternative_falls_back_to_html_when_plain_is_empty() -> None:
    raw = _multipart(
        "alternative",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n  \r\n",
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Only here.</p>",
    )
    assert parse_message(raw).text == "Only here."


def test_several_inline_text_parts_are_joined_with_a_blank_line() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nBefore the photo.",
        b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n" + _b64(_jpeg()),
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nAfter the photo.\r\n\r\n"
        b"Sent from my iPhone",
    )
    mail = parse_message(raw)
    assert mail.text == "Before the photo.\n\nAfter the photo."
    assert [part.filename for part in mail.parts] == ["image-1.jpg"]


def test_text_attachment_is_a_part_not_text() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee the notes.",
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b'Content-Disposition: attachment; filename="notes.txt"\r\n\r\nnote one\r\nnote two',
    )
    mail = parse_message(raw)
    assert mail.text == "See the notes."
    assert mail.parts == [MailPart("notes.txt", "text/plain", b"note one\r\nnote two", False)]


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        ("iso-8859-1", "Hälsningar från Åre".encode("latin-1"), "Hälsningar från Åre"),
        ("windows-1252", "Smörgåsbord – 5 €".encode("cp1252"), "Smörgåsbord – 5 €"),
        ("x-unknown", "Grüße".encode(), "Grüße"),  # unknown label: UTF-8
        ("utf-8", "Grüße".encode("latin-1"), "Grüße"),  # wrong label: Windows-1252
        ("us-ascii", "Grüße".encode(), "Grüße"),  # 8-bit under an ASCII label
        ("iso-2022-jp", "すみません".encode("iso-2022-jp"), "すみません"),
        ("unicode-escape", b"caf\\u00e9", "caf\\u00e9"),  # codecs that rewrite text are refused
    ],
)
def test_body_charsets(charset: str, body: bytes, expected: str) -> None:
    head = (
        "Subject: charset\r\nContent-Type: text/plain; charset=" + charset + "\r\n\r\n"
    ).encode()
    assert parse_message(head + body).text == expected


def test_one_broken_byte_does_not_garble_the_whole_text() -> None:
    body = ("Привет, мир! " * 50).encode() + b"\xd1f" + " Пока.".encode()
    raw = b"Subject: ru\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    text = parse_message(raw).text
    assert text.startswith("Привет, мир!")
    assert text.endswith("Пока.")
    assert text.count("\ufffd") == 1


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "title"),
    [
        (
            b"=?UTF-8?Q?Bild_fr=C3=A5n_invigningen_=E2=80=93_=C3=A5=C3=A4=C3=B6?=",
            "Bild från invigningen – åäö",
        ),
        ("Bild från invigningen – åäö".encode(), "Bild från invigningen – åäö"),  # raw UTF-8
        ("Bild från Åre".encode("latin-1"), "Bild från Åre"),  # raw Latin-1
        ("Café – möte".encode("cp1252"), "Café – möte"),  # raw Windows-1252
        (b"=?iso-8859-1?Q?Caf=E9_=96_m=F6te?=", "Café – möte"),  # the label Outlook uses
        (  # GBK characters under the gb2312 label
            b"=?gb2312?B?ztKw0b61zbfArb380KmjrMTjw8e/tL+01eK49srHyrLDtIzCo6zV4g==?=",
            base64.b64decode("ztKw0b61zbfArb380KmjrMTjw8e/tL+01eK49srHyrLDtIzCo6zV4g==").decode(
                "gb18030"
            ),
        ),
        (b"  Many    spaces\r\n\tand a fold  ", "Many spaces and a fold"),
        (b"", ""),
    ],
)
def test_title_from_subject(subject: bytes, title: str) -> None:
    raw = b"From: a@example.org\r\nSubject: " + subject + b"\r\n\r\nbody\r\n"
    assert parse_message(raw).title == title


def test_no_subject_is_an_empty_title() -> None:
    assert parse_message(b"From: a@example.org\r\n\r\nbody\r\n").title == ""


@pytest.mark.parametrize(
    ("from_", "sender"),
    [
        (b'"Berg, Asa" <asa@example.se>', "asa@example.se"),
        (b"asa@example.se", "asa@example.se"),
        (b"=?utf-8?q?=C3=85sa?= <asa@example.se>, bo@example.se", "asa@example.se"),
        ("Jöns <jöns@exämple.se>".encode(), "jöns@exämple.se"),  # RFC 6532
        (b"undisclosed-recipients:;", None),
        (b"<<<>>>@@@", None),
        (b"(" * 5000, None),
        (b"a:;" * 300, None),
    ],
)
def test_sender_from_the_from_header(from_: bytes, sender: str | None) -> None:
    raw = b"From: " + from_ + b"\r\nSubject: s\r\n\r\nbody\r\n"
    assert parse_message(raw).sender == sender


def test_message_id_without_angle_brackets() -> None:
    raw = b"Message-ID:\r\n <abc.123@mail.example.org>\r\nSubject: s\r\n\r\nbody\r\n"
    assert parse_message(raw).message_id == "abc.123@mail.example.org"
    assert parse_message(b"Subject: s\r\n\r\nbody\r\n").message_id is None


# --- parts ------------------------------------------------------------------------------------


def test_rfc2231_file_name() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A4kning.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(b"%PDF-1.4 fake"),
    )
    assert parse_message(raw).parts == [
        MailPart("räkning.pdf", "application/pdf", b"%PDF-1.4 fake", False)
    ]


@pytest.mark.parametrize(
    ("headers", "filename"),
    [
        (b'Content-Disposition: attachment; filename="=?UTF-8?B?csOka25pbmcucGRm?="',
         "räkning.pdf"),
        (b"Content-Disposition: attachment; filename==?utf-8?B?csOka25pbmcucGRm?=", "räkning.pdf"),
        (b"Content-Disposition: attachment;\r\n filename*0*=UTF-8''r%C3%A4k;\r\n"
         b" filename*1*=ning.pdf", "räkning.pdf"),
        ('Content-Disposition: attachment; filename="räkning.pdf"'.encode(), "räkning.pdf"),
        ('Content-Disposition: attachment; filename="räkning.pdf"'.encode("latin-1"),
         "räkning.pdf"),
        (b"Content-Disposition: attachment; filename=My holiday.pdf", "My holiday.pdf"),
        (b"Content-Type: application/pdf; name=\"from-type.pdf\"", "from-type.pdf"),
        (b"Content-Location: https://example.org/files/loc%20ation.pdf?x=1", "loc ation.pdf"),
        (b'Content-Disposition: attachment; filename="C:\\\\Users\\\\me\\\\scan.pdf"', "scan.pdf"),
        (b'Content-Disposition: attachment; filename="../../etc/passwd"', "passwd"),
        (b'Content-Disposition: attachment; filename="a\tb\x01c\xe2\x80\xaefdp.exe"', "abcfdp.exe"),
        (b'Content-Disposition: attachment; filename="a\\"b.pdf"', 'a"b.pdf'),  # quoted-pair
        (b'Content-Disposition: attachment; filename=".."', "attachment-1.pdf"),
    ],
)  # fmt: skip
def test_attachment_file_names(headers: bytes, filename: str) -> None:
    content_type = b"" if b"Content-Type" in headers else b"Content-Type: application/pdf\r\n"
    raw = _multipart("mixed", content_type + headers + b"\r\n\r\n%PDF-1.4")
    assert [part.filename for part in parse_message(raw).parts] == [filename]


def test_long_file_name_keeps_its_extension() -> None:
    name = "x" * 300 + ".jpeg"
    raw = _multipart(
        "mixed",
        f'Content-Type: image/jpeg\r\nContent-Disposition: attachment; filename="{name}"'.encode()
        + b"\r\n\r\ndata",
    )
    filename = parse_message(raw).parts[0].filename
    assert len(filename) == 200
    assert filename.endswith("x.jpeg")


def test_missing_file_names_are_derived_from_the_type() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n" + _b64(_jpeg()),
        b"Content-Type: application/x-never-heard-of-it\r\n\r\nbytes",
        b"Content-Type: video/quicktime\r\nContent-Disposition: inline\r\n\r\nmoov",
        b"Content-Type: application/msword\r\nContent-Disposition: attachment\r\n\r\ndoc",
    )
    parts = parse_message(raw).parts
    assert [part.filename for part in parts] == [
        "image-1.jpg",
        "attachment-2.bin",
        "video-3.mov",
        "attachment-4.doc",
    ]
    assert [part.inline for part in parts] == [False, False, True, False]


def test_forwarded_message_with_pdf_inside() -> None:
    inner = _multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nThe forwarded words.",
        b"Content-Type: application/pdf; name=report.pdf\r\n"
        b"Content-Disposition: attachment; filename=report.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(b"%PDF-1.7 inner"),
        boundary="inner-boundary",
    )
    outer = _multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nHave a look.",
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + inner,
    )
    mail = parse_message(outer)
    assert mail.text == "Have a look."
    assert mail.parts == [MailPart("report.pdf", "application/pdf", b"%PDF-1.7 inner", False)]


def test_forwarded_text_is_used_when_the_sender_wrote_none() -> None:
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\nThe forwarded words.\r\n"
    encoded = _b64(inner)  # some clients base64-encode attached messages
    outer = _multipart(
        "mixed",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded,
    )
    mail = parse_message(outer)
    assert (mail.title, mail.text, mail.parts) == ("parts", "The forwarded words.", [])


def test_uuencoded_attachment_decodes() -> None:
    data = bytes(range(256)) * 3
    lines = [b"begin 644 table.bin"]
    lines += [binascii.b2a_uu(data[i : i + 45]).rstrip(b"\n") for i in range(0, len(data), 45)]
    lines += [b"`", b"end"]
    raw = _multipart(
        "mixed",
        b"Content-Type: application/octet-stream; name=table.bin\r\n"
        b"Content-Disposition: attachment; filename=table.bin\r\n"
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\n" + b"\r\n".join(lines),
    )
    assert parse_message(raw).parts == [
        MailPart("table.bin", "application/octet-stream", data, False)
    ]


def test_undecodable_uuencode_is_skipped() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nhi",
        b"Content-Type: application/msword\r\nContent-Disposition: attachment; filename=a.doc\r\n"
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nno begin line here\r\n",
    )
    assert parse_message(raw).parts == []


def test_messy_transfer_encoding_names_still_decode() -> None:
    raw = _multipart(
        "mixed",
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: Quoted printable;\r\n\r\nH=E4lsningar",
    )
    assert parse_message(raw).text == "Hälsningar"


def test_signatures_reports_and_status_are_not_parts() -> None:
    signed = _multipart(
        "signed",
        b"Content-Type: text/plain\r\n\r\nSigned words.",
        b"Content-Type: application/pgp-signature; name=signature.asc\r\n"
        b"Content-Disposition: attachment; filename=signature.asc\r\n\r\n"
        b"-----BEGIN PGP SIGNATURE-----\r\nabc\r\n-----END PGP SIGNATURE-----",
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQE=",
    )
    mail = parse_message(signed)
    assert (mail.text, mail.parts) == ("Signed words.", [])

    report = _multipart(
        "report",
        b"Content-Type: text/plain\r\n\r\nYour message could not be delivered.",
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n",
        b"Content-Type: message/rfc822\r\n\r\nSubject: lost\r\nContent-Type: image/png\r\n"
        b"Content-Disposition: attachment; filename=lost.png\r\n\r\npng",
    )
    mail = parse_message(report)
    assert (mail.text, mail.parts) == ("Your message could not be delivered.", [])


def test_related_images_are_inline_only_when_referenced() -> None:
    html = b'<p>Look:</p><img src="cid:logo%40example"><img src="cid:photo@example">'
    raw = _multipart(
        "related",
        b"Content-Type: text/html\r\n\r\n" + html,
        b"Content-Type: image/png\r\nContent-ID: <logo@example>\r\n\r\npng1",
        b"Content-Type: image/jpeg\r\nContent-ID: <PHOTO@example>\r\n\r\njpeg",
        b"Content-Type: image/gif\r\nContent-ID: <unused@example>\r\n\r\ngif",
    )
    mail = parse_message(raw)
    assert mail.text == "Look:"
    assert [(part.content_type, part.inline) for part in mail.parts] == [
        ("image/png", True),
        ("image/jpeg", True),
        ("image/gif", False),
    ]


def test_boundary_reused_by_a_nested_multipart_loses_nothing() -> None:
    same = "----=Part_0118"
    raw = (
        f'Subject: reuse\r\nContent-Type: multipart/mixed; boundary="{same}"\r\n\r\n'
        f'--{same}\r\nContent-Type: multipart/alternative; boundary="{same}"\r\n\r\n'
        f"--{same}\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
        f"--{same}--\r\n\r\n"
        f"--{same}\r\nContent-Type: application/zip; name=a.zip\r\n\r\nPK\x03\x04\r\n"
        f"--{same}--\r\n"
    ).encode("latin-1")
    mail = parse_message(raw)
    assert mail.text == "Hello"
    assert [(part.filename, part.payload) for part in mail.parts] == [("a.zip", b"PK\x03\x04")]


def test_unquoted_boundary_with_equals_sign() -> None:
    raw = (
        b"Subject: outlook\r\n"
        b"Content-Type: multipart/alternative; boundary=----=_NextPart_000_0093_01C8\r\n\r\n"
        b"------=_NextPart_000_0093_01C8\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
        b"------=_NextPart_000_0093_01C8--\r\n"
    )
    assert parse_message(raw).text == "Hello"


# --- the corpora ------------------------------------------------------------------------------


def _corpus_files() -> list[Path]:
    files: list[Path] = []
    for folder in (MAIL_GEM, MAIL_PARSER):
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "LICENSE")
    return files


@pytest.mark.parametrize(
    "path", _corpus_files(), ids=lambda p: str(p.relative_to(CORPORA)) if p else ""
)
@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_corpus_message_parses(path: Path) -> None:
    try:
        mail = parse_message(path.read_bytes())
    except MediaError as exc:
        assert exc.code == "mail.unreadable"
    else:
        assert all(part.filename and part.payload for part in mail.parts)
        assert "\x00" not in mail.text


def test_corpus_pdf_attachment() -> None:
    mail = parse_message(_corpus(MAIL_GEM / "attachment_emails/attachment_pdf.eml"))
    assert mail.title == "Another PDF with 🎉 Unicode chars in it 🍿"  # raw 8-bit UTF-8
    assert mail.sender == "xxxx@xxxx.com"
    assert mail.text.startswith("Just attaching another PDF, here,")
    assert [(p.filename, p.content_type, p.inline) for p in mail.parts] == [
        ("broken.pdf", "application/pdf", False)
    ]
    assert mail.parts[0].payload.startswith(b"%PDF")


def test_corpus_forwarded_message_attachment() -> None:
    mail = parse_message(_corpus(MAIL_GEM / "attachment_emails/attachment_message_rfc822.eml"))
    assert mail.text == "This is the first part."
    assert [(p.filename, p.content_type) for p in mail.parts] == [("broken.pdf", "application/pdf")]
    assert mail.parts[0].payload.startswith(b"%PDF")


def test_corpus_forwarded_message_beside_an_inline_image() -> None:
    raw = _corpus(MAIL_GEM / "attachment_emails/attachment_message_rfc822_inline_image.eml")
    mail = parse_message(raw)
    assert [(p.filename, p.content_type, p.inline) for p in mail.parts] == [
        ("img.png", "image/png", True)
    ]
    assert mail.parts[0].payload.startswith(b"\x89PNG")


def test_corpus_japanese_subjects_and_names() -> None:
    mail = parse_message(_corpus(MAIL_GEM / "multi_charset/japanese.eml"))
    assert mail.title == "まみむめも"
    assert mail.text == "かきくえこ"
    mail = parse_message(_corpus(MAIL_GEM / "multi_charset/japanese_iso_2022.eml"))
    assert (mail.title, mail.text) == ("まみむめも", "すみません。")
    mail = parse_message(_corpus(MAIL_GEM / "multi_charset/japanese_attachment_long_name.eml"))
    assert "\ufffd" not in mail.title and mail.title.startswith("まみむめも")
    assert [p.filename for p in mail.parts] == ["かきくけこ" * 5 + ".txt"]


def test_corpus_eight_bit_latin1_subject() -> None:
    mail = parse_message(_corpus(MAIL_GEM / "error_emails/invalid_subject_characters.eml"))
    assert mail.title == "Formação FrenetikPolis: Mega Campanha Final Verão | Cursos de Setembro"


def test_corpus_odd_boundaries() -> None:
    for name in (
        "raw_email_with_illegal_boundary.eml",
        "raw_email_with_quoted_illegal_boundary.eml",
    ):
        mail = parse_message(_corpus(MAIL_GEM / "mime_emails" / name))
        assert mail.text.startswith("Hello\nThis is an outlook test")
    mail = parse_message(_corpus(MAIL_GEM / "mime_emails/email_with_similar_boundaries.eml"))
    assert (mail.text, [p.filename for p in mail.parts]) == ("Test", ["LOGO.png"])


def test_corpus_signed_mail_keeps_its_image_but_not_its_signature() -> None:
    raw = _corpus(MAIL_GEM / "mime_emails/raw_email_with_nested_attachment.eml")
    mail = parse_message(raw)
    assert [(p.filename, p.content_type) for p in mail.parts] == [("truncated.png", "image/png")]


def test_corpus_signature_line_cuts_the_text() -> None:
    raw = _corpus(MAIL_GEM / "error_emails/content_transfer_encoding_x_uuencode.eml")
    assert parse_message(raw).text == "Attached are the comments of the Public Generating Pool."


def test_corpus_uuencoded_zip() -> None:
    mail = parse_message(_corpus(MAIL_PARSER / "mail_test_15"))
    assert [(p.filename, p.content_type) for p in mail.parts] == [
        ("REQUEST FOR QUOTE.zip", "application/zip")
    ]
    assert mail.parts[0].payload.startswith(b"PK\x03\x04")


@pytest.mark.parametrize(
    ("name", "filenames"),
    [
        ("mail_test_1", ["ФНС_РФ558.zip"]),
        ("mail_test_2", ["intestazione.jpg", "logometeo.jpg", "Bollettino.pdf"]),
        ("mail_test_4", ["img1.jpg", "Payment Invoice.zip"]),
        ("mail_test_10", ["image-1.gif", "image-2.gif", "image-3.gif",
                          "Move To Eight ZWEP6227F.pdf"]),
        ("mail_malformed_1", ["20160523_916527.jpg_.zip"]),
    ],
)  # fmt: skip
def test_corpus_mail_parser_attachments(name: str, filenames: list[str]) -> None:
    mail = parse_message(_corpus(MAIL_PARSER / name))
    assert [part.filename for part in mail.parts] == filenames
    assert all(part.payload for part in mail.parts)


def test_corpus_inline_images_of_a_newsletter() -> None:
    mail = parse_message(_corpus(MAIL_PARSER / "mail_test_10"))
    assert [part.inline for part in mail.parts] == [True, True, True, False]
    assert all(part.payload.startswith(b"GIF89a") for part in mail.parts[:3])
    assert mail.text.startswith("Gentili Business Partner")


def test_corpus_outlook_msg_file_is_unreadable() -> None:
    # An Outlook .msg (OLE compound file), not MIME at all.
    with pytest.raises(MediaError) as caught:
        parse_message(_corpus(MAIL_PARSER / "mail_outlook_1"))
    assert caught.value.code == "mail.unreadable"


# --- hostile input ----------------------------------------------------------------------------


def _nested(levels: int, *, text_per_level: bool = True) -> bytes:
    out = [b"From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"]
    for level in range(levels):
        out.append(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level))
        if text_per_level:
            out.append(b"Content-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n" % (level, level))
    out.append(b"Content-Type: image/png\r\nContent-Disposition: attachment\r\n\r\nbottom\r\n")
    out += [b"--b%d--\r\n" % level for level in reversed(range(levels))]
    return b"".join(out)


def test_deep_nesting_stops_descending() -> None:
    mail = parse_message(_nested(100))
    assert mail.title == "deep"
    levels = mail.text.split("\n\n")
    assert levels == [f"level {n}" for n in range(MAX_DEPTH)]
    assert mail.parts == []  # the image sits 100 levels down


@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_very_deep_nesting_is_fast() -> None:
    mail = parse_message(_nested(200_000, text_per_level=False))  # where the stdlib recurses out
    assert mail.title == "deep"


def test_many_tiny_parts_are_capped() -> None:
    tiny = b"--b\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n"
    raw = b"Subject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    raw += tiny * 2000 + b"--b--\r\n"
    mail = parse_message(raw)
    assert len(mail.parts) == MAX_PARTS
    assert [part.filename for part in mail.parts[:2]] == ["image-1.gif", "image-2.gif"]


@pytest.mark.parametrize("raw", [b"", b" \r\n\t\r\n", b"\n" * 100_000, b"\xd0\xcf\x11\xe0\x00\x00"])
def test_nothing_usable_is_unreadable(raw: bytes) -> None:
    with pytest.raises(MediaError) as caught:
        parse_message(raw)
    assert caught.value.code == "mail.unreadable"


@pytest.mark.parametrize(
    "body",
    [b"<a" * 500_000, b"</" * 500_000, b"<?" * 500_000, b"<![" * 300_000, b"<!--<a" * 200_000],
)
@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_hostile_html_is_linear(body: bytes) -> None:
    raw = b"Subject: html\r\nContent-Type: text/html\r\n\r\n<p>hi</p>" + body
    assert parse_message(raw).text.startswith("hi")


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Type: multipart/mixed; boundary=x" + b"(" * 5000,
        b"Content-Disposition: attachment" + b";a=b" * 200_000,
        b"Content-Type: image/png" + b';name="' * 100_000,
        b"Subject: " + b"=?utf-8?q?a?= " * 100_000,
        b"X-Bomb: y\r\n" * 500_000 + b"Subject: after the bomb",
    ],
)
@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_hostile_headers_are_bounded(header: bytes) -> None:
    parse_message(header + b"\r\n\r\nbody\r\n")


def _hostile_parameters(parts: int) -> bytes:
    part = (
        b"--b\r\nContent-Type: image/png" + b";a=b" * 500 + b"\r\n"
        b"Content-Disposition: attachment" + b';"a"' * 500 + b"\r\n\r\nx\r\n"
    )
    return b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * parts + b"--b--\r\n"


def test_hostile_parameters_on_every_part_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # The part cap, not the clock, stops this one (a loaded machine must not change the count).
    monkeypatch.setattr("relay.mail.parse.MAX_SECONDS", 1e9)
    assert len(parse_message(_hostile_parameters(600)).parts) == MAX_PARTS


def test_a_message_that_takes_too_long_is_cut_at_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A clock that moves a second a look: the budget runs out part of the way through, and the
    # walk keeps what it found by then instead of going on to the cap.
    ticks = iter(range(10**6))
    clock = SimpleNamespace(monotonic=lambda: float(next(ticks)))
    monkeypatch.setattr("relay.mail.parse.time", clock)
    found = len(parse_message(_hostile_parameters(600)).parts)
    assert 0 < found < MAX_PARTS


def test_mutated_messages_never_raise_anything_else() -> None:
    seeds = [
        _nested(4),
        _multipart(
            "alternative",
            b"Content-Type: text/plain; format=flowed\r\n\r\nplain \r\ntext",
            b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<p>=C3=A5 <img src=3D'cid:x'></p>",
        ),
        b"Subject: =?utf-8?b?w6U=?=\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\ny\r\n",
    ]
    splices = [b"--", b"\r\n", b"=?utf-8?q?", b"(", b"<a", b"boundary=", b";", b"\x00", b"\xff"]
    rng = random.Random(20250614)
    for _ in range(400):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 12)):
            at = rng.randrange(len(raw) + 1)
            roll = rng.random()
            if roll < 0.4:
                raw[at:at] = bytes([rng.randrange(256)])
            elif roll < 0.7:
                del raw[at : at + rng.randint(1, 8)]
            else:
                raw[at:at] = rng.choice(splices)
        try:
            parse_message(bytes(raw))
        except MediaError as exc:
            assert exc.code == "mail.unreadable"
