"""Write the mail corpus: one .eml per client or carrier, as that client shapes its messages.

Run ``python tests/corpus/mail/make.py`` to rewrite the .eml files beside this script; they are
committed, so the tests never need Pillow's HEIF encoder or ffmpeg. The headers, boundaries,
transfer encodings and part layouts follow what each client really sends (iPhone Mail's
``Apple-Mail-…`` boundaries and format=flowed, Gmail's ``0000…`` boundaries and ``ii_`` content
ids, Outlook's ``_004_…`` related parts and winmail.dat, Apple Mail's appledouble, Thunderbird's
RFC 2231 names, carrier gateway templates); the media are tiny but real (JPEG, PNG and GIF from
Pillow, HEIC from pillow_heif, a QuickTime MOV from ffmpeg, a PDF from Pillow).

The winmail.dat files are built here by hand after [MS-OXTNEF] (see :func:`tnef`): the
signature 0x223E9F78 and a key, then attributes ``level (u8), id (u32: attribute | type << 16),
length (u32), data, checksum (u16, sum of the data bytes)``; per attachment attAttachRendData,
attAttachTitle, attAttachData and attAttachment (MAPI properties: count, then per property
``type (u16), id (u16)``, and for strings and binaries a value count, a length and the bytes
padded to four). ``tests/unit/test_mail_corpus.py`` checks them with the independent
``tnefparse`` reader.
"""

from __future__ import annotations

import base64
import binascii
import io
import quopri
import random
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"

# --- media ------------------------------------------------------------------------------------


def photo(seed: int, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A small picture with enough detail to weigh a few kilobytes, like a real photo would."""
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(4, 30)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
        image.save(out, "HEIF", quality=60)
    elif fmt == "JPEG":
        image.save(out, "JPEG", quality=70)
    else:
        image.save(out, fmt)
    return out.getvalue()


def gif(size: tuple[int, int], seed: int = 0) -> bytes:
    rng = random.Random(seed)
    image = Image.new("P", size, 0)
    image.putpalette([rng.randrange(256) for _ in range(768)])
    draw = ImageDraw.Draw(image)
    for _ in range(size[0] * size[1] // 40 + 1):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle((x, y, x + 3, y + 2), fill=rng.randrange(1, 256))
    out = io.BytesIO()
    image.save(out, "GIF")
    return out.getvalue()


def movie() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "live.mov"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
             "testsrc=size=96x72:rate=10", "-t", "0.6", "-c:v", "libx264", "-pix_fmt",
             "yuv420p", "-f", "mov", "-y", str(path)],
            check=True,
        )  # fmt: skip
        return path.read_bytes()


def pdf() -> bytes:
    out = io.BytesIO()
    page = Image.new("RGB", (200, 280), "white")
    ImageDraw.Draw(page).text((20, 20), "Program", fill="black")
    page.save(out, "PDF", resolution=72)
    return out.getvalue()


# --- MIME building ----------------------------------------------------------------------------


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def qp(text: str, charset: str = "utf-8") -> bytes:
    # Encoded with bare LF, then CRLF on the wire: a CR given to quopri would become "=0D".
    return quopri.encodestring(text.encode(charset)).replace(b"\n", CRLF)


def crlf(text: str, charset: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(charset)


def part(headers: str, body: bytes) -> bytes:
    return crlf(headers.strip("\n")) + CRLF + CRLF + body


def multipart(boundary: str, parts: list[bytes], preamble: bytes = b"") -> bytes:
    out = [preamble]
    for p in parts:
        out.append(b"--" + boundary.encode() + CRLF + p.rstrip(CRLF) + CRLF)
    out.append(b"--" + boundary.encode() + b"--" + CRLF)
    return b"".join(out)


def message(headers: str, body: bytes) -> bytes:
    return crlf(headers.strip("\n")) + CRLF + CRLF + body


# --- TNEF -------------------------------------------------------------------------------------

LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
ATT_TNEF_VERSION = 0x00089006
ATT_OEM_CODEPAGE = 0x00069007
ATT_MESSAGE_CLASS = 0x00078008
ATT_BODY = 0x0002800C
ATT_MSG_PROPS = 0x00069003
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACHMENT = 0x00069005
PT_LONG, PT_STRING8, PT_UNICODE, PT_BINARY = 0x0003, 0x001E, 0x001F, 0x0102


def _attribute(level: int, attr_id: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", checksum)


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _props(props: list[tuple[int, int, object]]) -> bytes:
    out = [struct.pack("<I", len(props))]
    for ptype, pid, value in props:
        out.append(struct.pack("<HH", ptype, pid))
        if ptype == PT_LONG:
            out.append(struct.pack("<I", value))
            continue
        if ptype == PT_UNICODE:
            raw = str(value).encode("utf-16-le") + b"\x00\x00"
        elif ptype == PT_STRING8:
            raw = str(value).encode("cp1252") + b"\x00"
        else:
            raw = bytes(value)  # type: ignore[call-overload]
        out.append(struct.pack("<II", 1, len(raw)) + _pad(raw))
    return b"".join(out)


def tnef(attachments: list[tuple[str, str, str, bytes]], body: str | None = None) -> bytes:
    """A winmail.dat with (8.3 name, long name, MIME type, bytes) attachments and a body."""
    out = [struct.pack("<IH", 0x223E9F78, 0x1A2B)]
    out.append(_attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000)))
    out.append(_attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1252, 0)))
    out.append(_attribute(LVL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00"))
    if body is not None:
        out.append(_attribute(LVL_MESSAGE, ATT_BODY, body.replace("\n", "\r\n").encode("cp1252")))
    # PR_INTERNET_CPID, then a named property (GUID, kind 0, a number, then its value) as
    # Outlook writes many of them: the reader has to step over it.
    props = struct.pack("<I", 2)
    props += struct.pack("<HHI", PT_LONG, 0x3FDE, 1252)
    props += struct.pack("<HH", PT_LONG, 0x8005) + bytes(range(16)) + struct.pack("<III", 0, 7, 1)
    out.append(_attribute(LVL_MESSAGE, ATT_MSG_PROPS, props))
    for short, long_name, mime, data in attachments:
        rend = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)
        out.append(_attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend))
        out.append(_attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, short.encode("cp1252") + b"\0"))
        out.append(_attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, data))
        props = _props(
            [
                (PT_LONG, 0x3705, 1),  # PR_ATTACH_METHOD: by value
                (PT_UNICODE, 0x3707, long_name),  # PR_ATTACH_LONG_FILENAME
                (PT_STRING8, 0x370E, mime),  # PR_ATTACH_MIME_TAG
            ]
        )
        out.append(_attribute(LVL_ATTACHMENT, ATT_ATTACHMENT, props))
    return b"".join(out)


# --- AppleDouble header -----------------------------------------------------------------------


def appledouble_header(name: str) -> bytes:
    """An AppleDouble header with a real name, Finder info and an empty resource fork."""
    raw_name = name.encode("utf-8")
    entries = [(3, raw_name), (9, b"JPEGprvw" + b"\x00" * 24), (2, b"")]
    head = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", len(entries))
    offset = len(head) + 12 * len(entries)
    table, blobs = [], []
    for entry_id, blob in entries:
        table.append(struct.pack(">III", entry_id, offset, len(blob)))
        blobs.append(blob)
        offset += len(blob)
    return head + b"".join(table) + b"".join(blobs)


# --- the messages -----------------------------------------------------------------------------

MESSAGES: dict[str, Callable[[], bytes]] = {}


def corpus(name: str) -> Callable[[Callable[[], bytes]], Callable[[], bytes]]:
    def register(fn: Callable[[], bytes]) -> Callable[[], bytes]:
        MESSAGES[name] = fn
        return fn

    return register


@corpus("iphone-heic-livephoto.eml")
def iphone_heic_livephoto() -> bytes:
    boundary = "Apple-Mail-3B2F9A41-7C1D-4E6B-9A0F-2D5C8E1B7A64"
    # iOS sends format=flowed with delsp=yes: a soft break is a trailing space that is not part
    # of the text, so the word gap before it is a second space.
    text = (
        "Kvällen på torget blev precis så fin som vi hoppats, med musik  \n"
        "hela kvällen. #sommar #Torget\n"
        "[alt 1: Scenen på torget i kvällssol]\n"
        "\n"
        "Skickat från min iPhone"
    )
    parts = [
        part(
            "Content-Type: text/plain;\n\tcharset=utf-8;\n\tformat=flowed;\n\tdelsp=yes\n"
            "Content-Transfer-Encoding: quoted-printable",
            qp(text),
        ),
        part(
            "Content-Type: image/heic;\n\tname=IMG_4501.HEIC;\n\tx-apple-part-url=B1C0F6A2-2E1D-"
            "4C4B-8F7A-0E9D3C2B1A00\nContent-Disposition: inline;\n\tfilename=IMG_4501.HEIC\n"
            "Content-Transfer-Encoding: base64",
            b64(photo(1, fmt="HEIF")),
        ),
        part(
            "Content-Type: video/quicktime;\n\tname=IMG_4501.MOV;\n\tx-apple-part-url=8D7E3A10-"
            "55C2-4E0B-9B61-7F2A4C9D0E11\nContent-Disposition: attachment;\n\t"
            "filename=IMG_4501.MOV\nContent-Transfer-Encoding: base64",
            b64(movie()),
        ),
        part(
            "Content-Type: text/plain;\n\tcharset=us-ascii\nContent-Transfer-Encoding: 7bit",
            b"\r\n",
        ),
    ]
    return message(
        "From: Anna Andersson <anna@example.se>\n"
        f"Content-Type: multipart/mixed;\n\tboundary={boundary}\n"
        "Content-Transfer-Encoding: 7bit\n"
        "Mime-Version: 1.0 (1.0)\n"
        "Date: Sat, 14 Jun 2025 21:42:07 +0200\n"
        "Subject: =?utf-8?Q?Kv=C3=A4ll_p=C3=A5_torget?=\n"
        "Message-Id: <5E0C8B1F-1D44-4C1B-8E07-6A9E2C44B3D1@example.se>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "X-Mailer: iPhone Mail (22F76)",
        multipart(boundary, parts, b"\r\n"),
    )


@corpus("android-gmail.eml")
def android_gmail() -> bytes:
    outer, inner = "000000000000f4b1e30637a2c1d4", "000000000000f4b1e10637a2c1d2"
    plain = "Konsert i parken i kväll ((tag: konsert, Parken))\n[alt: Publiken framför scenen]\n"
    html = (
        '<div dir="auto">Konsert i parken i kväll ((tag: konsert, Parken))<div dir="auto">'
        "[alt: Publiken framför scenen]</div></div>\n"
    )
    alternative = multipart(
        inner,
        [
            part('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: base64',
                 b64(plain.encode())),
            part('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: base64',
                 b64(html.encode())),
        ],
    )  # fmt: skip
    parts = [
        part(f'Content-Type: multipart/alternative; boundary="{inner}"', alternative),
        part(
            'Content-Type: image/jpeg; name="IMG_20250614_183012.jpg"\n'
            'Content-Disposition: attachment; filename="IMG_20250614_183012.jpg"\n'
            "Content-Transfer-Encoding: base64\n"
            "Content-ID: <f_mbw1k2x40>\n"
            "X-Attachment-Id: f_mbw1k2x40",
            b64(photo(2)),
        ),
    ]
    return message(
        "MIME-Version: 1.0\n"
        "From: Erik Lind <erik.lind@gmail.com>\n"
        "Date: Sat, 14 Jun 2025 18:31:44 +0200\n"
        "Message-ID: <CAO7gNy8Qm1T5bK2xZk3vYc0pLr9sW4eHfU6jA1dGi2nXo5tR7Q@mail.gmail.com>\n"
        "Subject: Konsert i parken [private]\n"
        "To: k7x2m9q4@relay.localhost\n"
        f'Content-Type: multipart/mixed; boundary="{outer}"',
        multipart(outer, parts),
    )


@corpus("gmail-web-inline.eml")
def gmail_web_inline() -> bytes:
    mixed, related, alt = (
        "000000000000c8a9f20637a3b5e8",
        "000000000000c8a9f10637a3b5e7",
        "000000000000c8a9f00637a3b5e6",
    )
    plain = "Här är bilden från repetitionen:\n\n[image: IMG_1234.jpg]\n\nOch programmet bifogat.\n"
    html = (
        '<div dir="ltr"><div>Här är bilden från repetitionen:</div><div><br></div>'
        '<div><img src="cid:ii_mbw3q8h60" alt="IMG_1234.jpg" width="320" height="240"><br>'
        "</div><div><br></div><div>Och programmet bifogat.</div></div>\n"
    )
    alternative = multipart(
        alt,
        [
            part('Content-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: '
                 "quoted-printable", qp(plain)),
            part('Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: '
                 "quoted-printable", qp(html)),
        ],
    )  # fmt: skip
    related_body = multipart(
        related,
        [
            part(f'Content-Type: multipart/alternative; boundary="{alt}"', alternative),
            part(
                'Content-Type: image/jpeg; name="IMG_1234.jpg"\n'
                'Content-Disposition: inline; filename="IMG_1234.jpg"\n'
                "Content-Transfer-Encoding: base64\n"
                "Content-ID: <ii_mbw3q8h60>\n"
                "X-Attachment-Id: ii_mbw3q8h60",
                b64(photo(3)),
            ),
        ],
    )
    name = "=?UTF-8?B?U8OlbmdlciBww6UgdG9yZ2V0LnBkZg==?="  # "Sånger på torget.pdf"
    parts = [
        part(f'Content-Type: multipart/related; boundary="{related}"', related_body),
        part(
            f'Content-Type: application/pdf; name="{name}"\n'
            f'Content-Disposition: attachment; filename="{name}"\n'
            "Content-Transfer-Encoding: base64\n"
            "Content-ID: <f_mbw3qd8p1>\n"
            "X-Attachment-Id: f_mbw3qd8p1",
            b64(pdf()),
        ),
    ]
    return message(
        "MIME-Version: 1.0\n"
        "From: Maria Holm <maria.holm@gmail.com>\n"
        "Date: Thu, 12 Jun 2025 20:05:13 +0200\n"
        "Message-ID: <CAJ3kRt1mP0qLw8sXe2VbN4uYc7HgA5fD9iK3oZ6TjQyWm1Ls0A@mail.gmail.com>\n"
        "Subject: Repetition inför lördag\n"
        "To: k7x2m9q4@relay.localhost\n"
        f'Content-Type: multipart/mixed; boundary="{mixed}"',
        multipart(mixed, parts),
    )


@corpus("outlook-html-cid.eml")
def outlook_html_cid() -> bytes:
    boundary = "_004_DB9PR07MB71234A5B6C7D8E9F0A1B2C3D4E5F6DB9PR07MB7123eurp_"
    html = (
        '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:'
        'office:office">\n<head>\n<meta http-equiv="Content-Type" content="text/html; '
        'charset=windows-1252">\n<style><!--\np.MsoNormal {margin:0cm; font-size:11.0pt;}\n'
        '--></style>\n</head>\n<body lang="SV" link="#0563C1">\n'
        '<div class="WordSection1">\n<p class="MsoNormal">Hej!<o:p></o:p></p>\n'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
        '<p class="MsoNormal">Här är bilden från mötet – kostnaden blev 150 €.<o:p></o:p></p>\n'
        '<p class="MsoNormal"><img width="320" height="240" style="width:3.3333in" '
        'id="Bild_x0020_1" src="cid:image001.jpg@01DBDD2E.5A1C8F40"><o:p></o:p></p>\n'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n'
        '<p class="MsoNormal">Vänliga hälsningar<br>Karin<o:p></o:p></p>\n</div>\n</body>\n'
        "</html>\n"
    )
    parts = [
        part(
            'Content-Type: text/html; charset="windows-1252"\n'
            "Content-Transfer-Encoding: quoted-printable",
            qp(html, "cp1252"),
        ),
        part(
            'Content-Type: image/jpeg; name="image001.jpg"\n'
            "Content-Description: image001.jpg\n"
            'Content-Disposition: inline; filename="image001.jpg"; size=5123;\n'
            '\tcreation-date="Mon, 16 Jun 2025 08:12:41 GMT";\n'
            '\tmodification-date="Mon, 16 Jun 2025 08:12:41 GMT"\n'
            "Content-ID: <image001.jpg@01DBDD2E.5A1C8F40>\n"
            "Content-Transfer-Encoding: base64",
            b64(photo(4)),
        ),
    ]
    return message(
        "From: Karin Ek <karin.ek@example.com>\n"
        'To: "k7x2m9q4@relay.localhost" <k7x2m9q4@relay.localhost>\n'
        "Subject: VB: Bilder =?iso-8859-1?Q?fr=E5n_m=F6tet?=\n"
        "Thread-Topic: Bilder från mötet\n"
        "Thread-Index: AdveNmK3xYqW1F0tQ8ynE0h5Nn3r2Q==\n"
        "Date: Mon, 16 Jun 2025 08:12:41 +0000\n"
        "Message-ID: <DB9PR07MB71234A5B6C7D8E9F0A1B2C3D4E5F6@DB9PR07MB7123.eurprd07.prod."
        "outlook.com>\n"
        "Accept-Language: sv-SE, en-US\n"
        "Content-Language: sv-SE\n"
        "X-MS-Has-Attach: yes\n"
        "X-MS-TNEF-Correlator:\n"
        f'Content-Type: multipart/related;\n\tboundary="{boundary}";\n\ttype="text/html"\n'
        "MIME-Version: 1.0",
        multipart(boundary, parts),
    )


@corpus("outlook-winmail.eml")
def outlook_winmail() -> bytes:
    boundary = "_002_AM6PR02MB4321F0E1D2C3B4A5968778695A4B3C2D1AM6PR02MB4321eurp_"
    winmail = tnef(
        [
            ("PROTOK~1.PDF", "Protokoll årsmöte.pdf", "application/pdf", pdf()),
            ("BILD~1.JPG", "Bild från årsmötet.jpg", "image/jpeg", photo(5)),
        ]
    )
    parts = [
        part(
            'Content-Type: text/plain; charset="iso-8859-1"\n'
            "Content-Transfer-Encoding: quoted-printable",
            qp("Hej,\n\nprotokollet och en bild från årsmötet.\n\n/Per\n", "latin-1"),
        ),
        part(
            'Content-Type: application/ms-tnef; name="winmail.dat"\n'
            'Content-Disposition: attachment; filename="winmail.dat"\n'
            "Content-Transfer-Encoding: base64",
            b64(winmail),
        ),
    ]
    return message(
        "From: Per Nilsson <per.nilsson@example.org>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: =?iso-8859-1?Q?WG:_Protokoll_fr=E5n_=E5rsm=F6tet?=\n"
        "Date: Tue, 17 Jun 2025 14:03:22 +0000\n"
        "Message-ID: <AM6PR02MB4321F0E1D2C3B4A5968778695A4B3C2D1@AM6PR02MB4321.eurprd02.prod."
        "outlook.com>\n"
        "X-MS-Has-Attach: yes\n"
        "X-MS-TNEF-Correlator: <AM6PR02MB4321F0E1D2C3B4A5968778695A4B3C2D1@AM6PR02MB4321>\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{boundary}"\n'
        "MIME-Version: 1.0",
        multipart(boundary, parts),
    )


@corpus("outlook-winmail-only.eml")
def outlook_winmail_only() -> bytes:
    # An Exchange server that thinks the recipient is Outlook sends the whole message as TNEF.
    winmail = tnef(
        [("AFFISCH.PNG", "Affisch sommarfest.png", "image/png", photo(6, (200, 280), "PNG"))],
        body="Affischen till sommarfesten, tryck gärna upp den.\n\nMed vänlig hälsning\nLena\n",
    )
    return message(
        "From: Lena Berg <lena.berg@example.org>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: Affisch till sommarfesten\n"
        "Date: Wed, 18 Jun 2025 09:30:00 +0000\n"
        "Message-ID: <0A1B2C3D4E5F@EXCH01.example.org>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: application/ms-tnef; name="winmail.dat"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="winmail.dat"',
        b64(winmail),
    )


@corpus("applemail-appledouble.eml")
def applemail_appledouble() -> bytes:
    outer = "Apple-Mail=_6C1F4E2A-9B3D-4A7E-8F10-2B5D7C9E1A3F"
    inner = "Apple-Mail=_0D9E8F7A-6B5C-4D3E-2F1A-0B9C8D7E6F5A"
    jpeg = photo(7)
    double = multipart(
        inner,
        [
            part(
                "Content-Type: application/applefile;\n\tname=Affisch.jpg\n"
                "Content-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment;\n\tfilename=Affisch.jpg",
                b64(appledouble_header("Affisch.jpg")),
            ),
            part(
                "Content-Type: image/jpeg;\n\tx-unix-mode=0644;\n\tname=Affisch.jpg\n"
                "Content-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment;\n\tfilename=Affisch.jpg",
                b64(jpeg),
            ),
        ],
    )
    parts = [
        part(
            "Content-Transfer-Encoding: 7bit\nContent-Type: text/plain;\n\tcharset=us-ascii",
            crlf("Here is the poster for Saturday.\n\nBest,\nJonas\n"),
        ),
        part(f'Content-Type: multipart/appledouble;\n\tboundary="{inner}"', double),
    ]
    return message(
        "From: Jonas Wik <jonas.wik@example.net>\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{outer}"\n'
        "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3826.600.51.1.1\\))\n"
        "Subject: Poster for Saturday\n"
        "Date: Thu, 19 Jun 2025 10:15:32 +0200\n"
        "Message-Id: <A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@example.net>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "X-Mailer: Apple Mail (2.3826.600.51.1.1)",
        multipart(outer, parts),
    )


@corpus("thunderbird.eml")
def thunderbird() -> bytes:
    boundary = "------------0F3gHq7Zk2Lr9TcXw1YbN4sD"
    text = (
        "Skärmbild från kartan över festivalområdet. #Musik #festival #musik\n"
        "[draft]\n"
        "[alt 1: Karta över festivalområdet]\n"
        "\n"
        "Intern anteckning som inte ska med:\n"
        "[end]\n"
        "telefonlista och annat\n"
        "\n"
        "-- \n"
        "Lars Olsson\n"
        "Föreningen Torget\n"
    )
    parts = [
        part(
            "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
            "Content-Transfer-Encoding: 8bit",
            crlf(text),
        ),
        part(
            "Content-Type: image/png; name*=UTF-8''Sk%C3%A4rmbild%20karta.png\n"
            "Content-Disposition: attachment; filename*=UTF-8''Sk%C3%A4rmbild%20karta.png\n"
            "Content-Transfer-Encoding: base64",
            b64(photo(8, (240, 180), "PNG")),
        ),
    ]
    return message(
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        "Message-ID: <3f9e2a61-7b4c-4d8e-9a1f-0c2b3d4e5f60@example.org>\n"
        "Date: Fri, 20 Jun 2025 16:44:03 +0200\n"
        "MIME-Version: 1.0\n"
        "User-Agent: Mozilla Thunderbird\n"
        "Content-Language: sv-SE\n"
        "To: k7x2m9q4@relay.localhost\n"
        "From: Lars Olsson <lars@example.org>\n"
        "Subject: Karta festivalen",
        multipart(boundary, parts, b"This is a multi-part message in MIME format.\r\n"),
    )


@corpus("forwarded-rfc822.eml")
def forwarded_rfc822() -> bytes:
    inner_boundary = "Apple-Mail-1F2E3D4C-5B6A-4978-8A9B-0C1D2E3F4A5B"
    inner = message(
        "From: Anna Andersson <anna@example.se>\n"
        f"Content-Type: multipart/mixed;\n\tboundary={inner_boundary}\n"
        "Mime-Version: 1.0 (1.0)\n"
        "Date: Sat, 07 Jun 2025 12:01:00 +0200\n"
        "Subject: Bilder =?utf-8?Q?fr=C3=A5n_invigningen?=\n"
        "Message-Id: <B7C8D9E0-F1A2-4B3C-8D4E-5F6A7B8C9D0E@example.se>\n"
        "To: Lars Olsson <lars@example.org>\n"
        "X-Mailer: iPhone Mail (22F76)",
        multipart(
            inner_boundary,
            [
                part(
                    "Content-Type: text/plain;\n\tcharset=utf-8\nContent-Transfer-Encoding: "
                    "quoted-printable",
                    qp("Från invigningen!\n\nSkickat från min iPhone\n"),
                ),
                part(
                    "Content-Type: image/jpeg;\n\tname=IMG_0042.jpeg\nContent-Disposition: "
                    "inline;\n\tfilename=IMG_0042.jpeg\nContent-Transfer-Encoding: base64",
                    b64(photo(9)),
                ),
            ],
        ),  # fmt: skip
    )
    boundary = "------------A1s2D3f4G5h6J7k8L9z0X1c2"
    parts = [
        part(
            "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
            "Content-Transfer-Encoding: 8bit",
            crlf("Titta på de här från Anna!\n"),
        ),
        part(
            'Content-Type: message/rfc822; charset=UTF-8; name="Bilder från invigningen.eml"\n'
            "Content-Disposition: attachment;\n"
            " filename*0*=UTF-8''%42%69%6C%64%65%72%20%66%72%C3%A5%6E%20%69%6E%76;\n"
            " filename*1*=%69%67%6E%69%6E%67%65%6E%2E%65%6D%6C\n"
            "Content-Transfer-Encoding: 8bit",
            inner,
        ),
    ]
    return message(
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n'
        "Message-ID: <c0ffee12-3456-4789-abcd-ef0123456789@example.org>\n"
        "Date: Sun, 08 Jun 2025 09:12:00 +0200\n"
        "MIME-Version: 1.0\n"
        "User-Agent: Mozilla Thunderbird\n"
        "To: k7x2m9q4@relay.localhost\n"
        "From: Lars Olsson <lars@example.org>\n"
        "Subject: Fwd: VB: Bilder =?UTF-8?Q?fr=c3=a5n_invigningen?=",
        multipart(boundary, parts, b"This is a multi-part message in MIME format.\r\n"),
    )


@corpus("mms-verizon.eml")
def mms_verizon() -> bytes:
    boundary = "----=_Part_2071883_1417234519.1750012345678"
    text = (
        "Look at the stage!\n"
        "\n"
        "This message was sent using the Picture and Video Messaging service from Verizon "
        "Wireless!\n"
        "To learn how you can snap pictures with your wireless phone visit "
        "www.verizonwireless.com/picture.\n"
    )
    parts = [
        part("Content-Type: text/plain;charset=utf-8\nContent-Transfer-Encoding: 7bit",
             crlf(text)),
        part('Content-Type: image/jpeg;name="IMG_0231.jpg"\nContent-Transfer-Encoding: base64\n'
             'Content-Disposition: attachment; filename="IMG_0231.jpg"', b64(photo(10))),
        part('Content-Type: image/gif;name="spacer.gif"\nContent-Transfer-Encoding: base64\n'
             "Content-ID: <spacer>\nContent-Disposition: inline", b64(gif((1, 1)))),
        part('Content-Type: image/gif;name="vzw_logo.gif"\nContent-Transfer-Encoding: base64\n'
             "Content-ID: <logo>\nContent-Disposition: inline", b64(gif((140, 48), 3))),
        part('Content-Type: image/jpeg;name="vzwpix_promo_0614.jpg"\nContent-Transfer-Encoding: '
             "base64\nContent-ID: <promo>\nContent-Disposition: inline",
             b64(photo(11, (300, 60)))),
    ]  # fmt: skip
    return message(
        "Return-Path: <2025550143@vzwpix.com>\n"
        "Date: Sun, 15 Jun 2025 20:03:11 -0400 (EDT)\n"
        "From: 2025550143@vzwpix.com\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Message-ID: <15978203.3341071750012345678.JavaMail.tomcat@njbbicssmp07>\n"
        "Subject: \n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        multipart(boundary, parts),
    )


@corpus("mms-tmobile.eml")
def mms_tmobile() -> bytes:
    boundary = "----=_Part_45921_1893345107.1750098765432"
    html = (
        "<html>\n<head>\n<title>T-Mobile</title>\n</head>\n<body>\n"
        '<table width="600" cellpadding="0" cellspacing="0">\n'
        '<tr><td><img src="cid:tmobilelogo.gif"></td></tr>\n'
        '<tr><td><img src="cid:dottedline600.gif"></td></tr>\n'
        "<tr><td>Sunset at the pier</td></tr>\n"
        '<tr><td><img src="cid:IMAGE_00001.jpg"></td></tr>\n'
        '<tr><td><img src="cid:tmobilespace.gif"></td></tr>\n'
        "<tr><td>This message was sent to you by a T-Mobile wireless phone.</td></tr>\n"
        "</table>\n</body>\n</html>\n"
    )
    images = [
        ("tmobilelogo.gif", "image/gif", gif((160, 54), 4)),
        ("dottedline600.gif", "image/gif", gif((600, 1), 5)),
        ("IMAGE_00001.jpg", "image/jpeg", photo(12)),
        ("tmobilespace.gif", "image/gif", gif((1, 1))),
    ]
    parts = [part('Content-Type: text/html;charset="UTF-8"\nContent-Transfer-Encoding: 7bit',
                  crlf(html))]  # fmt: skip
    for name, ctype, data in images:
        parts.append(
            part(
                f'Content-Type: {ctype};name="{name}"\nContent-Transfer-Encoding: base64\n'
                f'Content-ID: <{name}>\nContent-Disposition: inline; filename="{name}"',
                b64(data),
            )
        )
    return message(
        "From: 14255550123@tmomail.net\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Message-ID: <27301840.165891750098765432.JavaMail.mms@mms-mta-04>\n"
        "Date: Mon, 16 Jun 2025 19:46:05 -0700\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/related; boundary="{boundary}"',
        multipart(boundary, parts),
    )


@corpus("mms-att.eml")
def mms_att() -> bytes:
    boundary = "----=_Part_13_8675309.1750187654321"
    smil = (
        '<smil><head><layout><root-layout width="320" height="480"/>'
        '<region id="Image" top="0" left="0" height="50%" width="100%" fit="meet"/>'
        '<region id="Text" top="50%" left="0" height="50%" width="100%" fit="meet"/>'
        '</layout></head><body><par dur="5000ms"><img src="image0.jpg" region="Image"/>'
        '<text src="text_0.txt" region="Text"/></par></body></smil>'
    )
    footer = "\n--\n===============================================\nThis mobile text message "
    footer += "is brought to you by AT&T\n"
    parts = [
        part("Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit",
             crlf(footer)),
        part('Content-Type: text/plain; charset=utf-8; name="text_0.txt"\n'
             "Content-Transfer-Encoding: base64\n"
             'Content-Disposition: attachment; filename="text_0.txt"',
             b64(b"Happy birthday grandma! #family")),
        part('Content-Type: image/jpeg; name="image0.jpg"\nContent-Transfer-Encoding: base64\n'
             'Content-Disposition: attachment; filename="image0.jpg"', b64(photo(13))),
        part('Content-Type: application/smil; name="smil.xml"\n'
             "Content-Transfer-Encoding: 7bit\n"
             'Content-Disposition: attachment; filename="smil.xml"', crlf(smil)),
    ]  # fmt: skip
    return message(
        "From: 2065550199@mms.att.net\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: Multimedia message\n"
        "Date: Tue, 17 Jun 2025 12:14:15 -0700\n"
        "Message-ID: <3410bd5f.2bb4.197a1e2c3d4.Coremail.mms@mms.att.net>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        multipart(boundary, parts),
    )


@corpus("mms-telia.eml")
def mms_telia() -> bytes:
    boundary = "=_mms_telia_7F3A2B1C0D9E8F7A"
    body = (
        "Du har fått ett MMS från 0701234567.\n"
        "\n"
        "Detta meddelande har skickats från en mobiltelefon och kan inte besvaras.\n"
    )
    smil = (
        '<smil><body><par><img src="IMG_20250701_120045.jpg"/><text src="text_0.txt"/>'
        "</par></body></smil>"
    )
    parts = [
        part('Content-Type: text/plain; charset="iso-8859-1"\n'
             "Content-Transfer-Encoding: quoted-printable", qp(body, "latin-1")),
        part('Content-Type: text/plain; charset="iso-8859-1"; name="text_0.txt"\n'
             "Content-Transfer-Encoding: quoted-printable\n"
             'Content-Disposition: attachment; filename="text_0.txt"',
             qp("Hälsningar från fjällen! ((tag: fjäll, semester))", "latin-1")),
        part('Content-Type: image/jpeg; name="IMG_20250701_120045.jpg"\n'
             "Content-Transfer-Encoding: base64\n"
             'Content-Disposition: attachment; filename="IMG_20250701_120045.jpg"',
             b64(photo(14))),
        part('Content-Type: image/gif; name="telia_logo.gif"\nContent-Transfer-Encoding: base64\n'
             'Content-Disposition: inline; filename="telia_logo.gif"',
             b64(gif((180, 60), 6))),
        part('Content-Type: application/smil; name="mms.smil"\n'
             "Content-Transfer-Encoding: 7bit", crlf(smil)),
    ]  # fmt: skip
    return message(
        "From: 46701234567@mms.telia.se\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: Bildmeddelande\n"
        "Date: Tue, 01 Jul 2025 12:01:13 +0200\n"
        "Message-ID: <20250701100113.4F2A@mmsc01.telia.se>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        multipart(boundary, parts),
    )


# The gateways below are modelled on real messages each platform sent (their part layout,
# headers, template HTML and boilerplate lines; the media are ours): Three's Yospace
# "MMS-to-Email", Vodafone's MMS-to-Email Service as LuxGSM ran it, the Nokia gateway of
# Maroc Telecom (mobileiam.ma), and a gateway whose HTML and SMIL both name images.


@corpus("mms-three.eml")
def mms_three() -> bytes:
    outer, inner = "----=_Part_119165_19722588.1750961869102", "----=_Part_119164_1974.175096"
    plain = (
        "\nYou have received an MMS message.  To see the message correctly, you will need to "
        "view this message\nin a graphical email application.\n"
    )
    html = (
        '<html><head><META http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        "<title>MMS Message</title>\n<!--\n        Yospace Technologies Ltd - MMS-to-Email "
        "version 1-0-1-1-->\n<style>\n.black {\nfont-family: Trebuchet, Verdana;\n"
        "font-size: 11px;\n}\n</style>\n</head><body>\n"
        '<table width="670" border="0" bgcolor="#999999" cellspacing="1" cellpadding="0">\n'
        '<tr>\n<td>\n<img border="0" height="104" width="670" alt="Your picture message." '
        'src="cid:images/tpm.jpg">\n<table width="100%" bgcolor="white" border="0">\n'
        '<tr><td><img border="0" alt="" height="10" width="1" src="cid:images/vf9.gif"></td>'
        "</tr>\n"
        '<tr><td valign="bottom" class="black">You\'ve received an MMS from mobile number '
        "<strong>+447700900123</strong>\n<br>\n<br>\n</td></tr>\n</table>\n"
        '<table border="0"><tr>\n<td width="100"><a href="mailto:344137309539313.009b9500'
        '@mms.three.co.uk" border="0"><img alt="Reply for Free!" src="cid:images/reb.jpg" '
        'border="0"></a></td><td class="gray" width="100%"><b>It\'s free to reply! Hit '
        "reply, type your message (text only up to 500 characters) and it will be sent to "
        "the sender's mobile phone. You can only reply once per message, so make it count!"
        "</b></td>\n</tr>\n</table>\n"
        '<table><tr><td class="subject">MMS from 3 UK network</td></tr></table>\n'
        '<table><tr><td><img alt="26062025.jpg" src="cid:26062025.jpg"></td></tr></table>\n'
        '<table><tr><td bgcolor="#0A82C1"><img border="0" alt="line" height="2" width="2" '
        'src="cid:images/vf9.gif"></td></tr></table>\n'
        '<table><tr>\n<td class="black">Picnic by the river, everyone made it</td>\n'
        '</tr></table>\n<br>\n<br>\n<div class="gray">\nYou can use the once-only free '
        "reply within 5 days from the date of this message.\n<br>\n<br>\nIf you're a 3 "
        "customer you can find more information about sending and receiving picture, video "
        "and audio messages from your video mobile by visiting "
        '<a href="http://www.three.co.uk">www.three.co.uk</a> or '
        '<a href="http://www.three.ie">www.three.ie</a>.\n</div>\n'
        '</td> </tr> </table>\n<div style="display:none">\n<img src="cid:images/vf5.jpg">'
        "</div>\n    </body>\n</html>\n"
    )
    alternative = multipart(inner, [
        part("Content-Type: text/plain;charset=utf-8", crlf(plain)),
        part("Content-Type: text/html;charset=utf-8", crlf(html)),
    ])  # fmt: skip
    parts = [
        part(f'Content-Type: multipart/alternative; \n\tboundary="{inner}"', alternative),
        part("Content-Type: image/jpeg; name=26062025.jpg\nContent-Transfer-Encoding: base64\n"
             "Content-Disposition: attachment; filename=26062025.jpg\n"
             "Content-ID: <26062025.jpg>\nContent-Location: 26062025.jpg", b64(photo(20))),
    ]  # fmt: skip
    # The template's own images: a 670 × 104 banner, a spacer, the reply button and a
    # hidden tracking picture, each under the gateway's images/ folder.
    for name, data in (
        ("images/tpm.jpg", photo(21, (670, 104))),
        ("images/vf9.gif", gif((1, 1))),
        ("images/reb.jpg", photo(22, (96, 64))),
        ("images/vf5.jpg", photo(23, (40, 40))),
    ):
        ctype = "image/gif" if name.endswith(".gif") else "image/jpeg"
        headers = (f"Content-Type: {ctype}\nContent-Transfer-Encoding: base64\n"
                   f"Content-ID: <{name}>\nContent-Location: {name}")  # fmt: skip
        parts.append(part(headers, b64(data)))
    return message(
        "Message-ID: <3435024.1750961869129.JavaMail.tomcat7@55903-dell1.rs.yospace.com>\n"
        "Date: Thu, 26 Jun 2025 15:31:09 +0000 (GMT)\n"
        "From: 447700900123 <447700900123/TYPE=PLMN@mms.three.co.uk>\n"
        "Reply-To: 344137309539313.009b95006816a692cc20@mms.three.co.uk\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: You have received a new message\n"
        "Mime-Version: 1.0\n"
        f'Content-Type: multipart/related;  boundary="{outer}"\n'
        "X-Mms-Message-Type: M-Send.req\n"
        "X-Mailer: Yospace Technologies Ltd. EZReply 1-0-1-1",
        multipart(outer, parts),
    )


@corpus("mms-vodafone.eml")
def mms_vodafone() -> bytes:
    outer = "----=_Part_3189_7839582.1750059640065"
    alt = "----=_Part_3191_16589396.1750059640154"
    related = "----=_Part_3190_25162319.1750059640153"
    rule = "-" * 64
    plain = (
        "Vodafone MMS-to-Email Service\n\nYou have received a picture message from mobile "
        "phone number +352621123456\n\nSubject: Kvällsdopp\nCC:  \n\n\n"
        "[picture inserted -- see Bad.jpg in the attachments]\n"
        f'{rule}\nTo send a reply, <a href="http://composer.luxgsm.lu">click here to visit '
        f"our on-line composer.</a>{rule}\n\n{rule}\n"
    )
    html = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN"><html><head>'
        '<title>MMS Message</title><meta http-equiv="content-type" content="text/html; '
        'charset=utf-8"></head><body style="font-family: verdana" bgcolor="#FFFFFF">'
        '<table width="100%" border="0"><tr><td width="1"><img src="cid:uyprzkdqyo" '
        'alt="Vodafone Logo" height="48" border="0"></td><td bgcolor="red">&nbsp;</td></tr>'
        '</table><br/><table border="0" cellpadding="10"><tr><td><font size="2"><strong>You '
        "have received a picture message from phone number +352621123456</strong></font>"
        '</td></tr><tr><td bgcolor="#e8e8e8" align="center"><font size="1">To send a reply, '
        '<a href="http://composer.luxgsm.lu">click here to visit our on-line composer.</a>'
        '<br/></font></td></tr><tr><td><p><font size="1"><br/></font><font size="2">Subject: '
        '<strong>Kvällsdopp</strong><br/></font><font size="1">CC: <strong></strong></font>'
        '</p><hr width="100%" size="1" color="red" noshade/></td></tr><tr><td><table '
        'width="100%" border="0"><tr bgcolor="#e8e8e8"><td><font size="2">Vattnet var '
        'varmare än väntat!</font></td></tr><tr bgcolor="#e8e8e8"><td><img src="cid:uohnuvxdtj" '
        'alt="" border="0"><br/><font size="1" color="#404040">To save this picture, '
        "right-click it and choose &quot;Save Image&quot;.Macintosh users can click and drag "
        "the image to their desktop.</font></td></tr></table></td></tr><tr><td><hr "
        'width="100%" size="1" color="#FF0000" noshade/></td></tr><tr><td bgcolor="#e8e8e8" '
        'align="center"><font size="1">To send a reply, <a href="http://composer.luxgsm.lu">'
        "click here to visit our on-line composer.</a><br/></font></td></tr></table><table "
        'width="100%" border="0"><tr><td width="1"><img src="cid:ilxguywtzp" alt="Vodafone '
        'Logo" height="48" border="0"></td><td bgcolor="red">&nbsp;</td></tr></table>'
        "</table></body></html>"
    )
    parts = [
        part(f'Content-Type: multipart/alternative; \n\tboundary="{alt}"',
             multipart(alt, [part("Content-Type: text/plain\nContent-Transfer-Encoding: 8bit",
                                  crlf(plain))])),
        part(f'Content-Type: multipart/related; \n\tboundary="{related}"',
             multipart(related, [part("Content-Type: text/html; charset=utf-8\n"
                                      "Content-Transfer-Encoding: quoted-printable",
                                      qp(html))])),
    ]  # fmt: skip
    # The logo twice (top and bottom), under a name with no extension, then the picture.
    for cid in ("uyprzkdqyo", "ilxguywtzp"):
        parts.append(part('Content-Type: image/gif; name="Vodafone Logo"\n'
                          "Content-Transfer-Encoding: base64\n"
                          'Content-Disposition: attachment; filename="Vodafone Logo"\n'
                          f"Content-ID: <{cid}>", b64(gif((128, 48), 7))))  # fmt: skip
    parts.append(part("Content-Type: IMAGE/JPEG; name=Bad.jpg\nContent-Transfer-Encoding: "
                      "base64\nContent-Disposition: attachment; filename=Bad.jpg\n"
                      "Content-Description: Bad.jpg\nContent-ID: <uohnuvxdtj>",
                      b64(photo(24))))  # fmt: skip
    return message(
        "Message-ID: <14212142.1750059640162.JavaMail.root@192.168.20.108>\n"
        "Date: Mon, 16 Jun 2025 18:00:40 +0200 (CEST)\n"
        "From: +352621123456 <+352621123456/TYPE=PLMN@mms.luxgsm.lu>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: =?UTF-8?Q?Kv=C3=A4llsdopp?=\n"
        "Mime-Version: 1.0\n"
        f'Content-Type: multipart/mixed; \n\tboundary="{outer}"',
        multipart(outer, parts),
    )


@corpus("mms-nokia.eml")
def mms_nokia() -> bytes:
    boundary = "----=_Part_334330_22142165.1750940748519"
    html = (
        '<html>\n<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">\n'
        "<head>\n<title>MMS</title>\n</head>\n<BODY text=#000000 bgColor=#ffffff >\n"
        "\t<TABLE cellSpacing=0 cellPadding=0 width=666 border=0 bgColor=#f0f0f0>\n"
        "\t\t<TBODY>\n\t\t\t<TR>\n\t\t\t\t<TD>\n"
        "\t\t\t\t\t<TABLE cellSpacing=0 cellPadding=0 width=100% height=100 border=0 "
        "bgcolor=#003581>\n\t\t\t\t\t\t<TR height=20%>\n"
        '\t\t\t\t\t\t\t<TD bgcolor=#003581 align="top"><IMG src="cid:reply.gif"/></TD>\n'
        "\t\t\t\t\t\t</TR>\n\t\t\t\t\t\t<TR height=60%>\n"
        '\t\t\t\t\t\t\t<TD width=25% align="center"><IMG src="cid:footer.gif"/></TD>\n'
        '\t\t\t\t\t\t\t<TD width=75% align="center"><IMG src="cid:html_DEFAULT_SLIDE_'
        'header.JPG" /></TD>\n\t\t\t\t\t\t</TR>\n\t\t\t\t\t</TABLE>\n\t\t\t\t</TD>\n'
        "\t\t\t</TR>\n\t\t\t<TR>\n\t\t\t\t<TD width=666 align=center>\n"
        "\t\t\t\t<SPAN ><FONT face=Verdana size=2 color=#003581>\n"
        "\t\t\t\t<B> Vous avez reçu un MMS du </B> </FONT></SPAN>\n"
        "\t\t\t\t<SPAN ><FONT face=Verdana size=2 color=#e47e23>\n"
        "\t\t\t\t<B> 062 20 20 33 </B> <BR></FONT></SPAN>\n"
        "\t\t\t\t<SPAN ><FONT face=Verdana size=2 color=#003581>\n"
        "\t\t\t\t<B> Vous pouvez y r&eacute;pondre dans un d&eacute;lai de 30 jours. </B>"
        " </FONT></SPAN>\n\t\t\t</TR>\n\t\t</TBODY>\n\t</TABLE>\n"
        '\t<table border="0" cellspacing="10" cellpadding="0" align="center">\n'
        '\t\t<tr><td><img src="cid:jalwapam.gif" width="160" height="31"></td></tr>\n'
        "\t</table>\n\t<TABLE><TR><TD align=left>\n"
        "\t\t<FONT face=Verdana size=2 color=#003581 >Vous pouvez également joindre une photo "
        "à votre réponse.<BR></FONT>\n"
        "\t\t<FONT face=Verdana size=2 color=#003581 >Votre message arrivera sur le mobile "
        "de votre correspondant</FONT>\n\t</TD></TR></TABLE>\n </BODY>\n</HTML>\n"
    )
    parts = [
        part("Content-Type: text/html; charset=ISO-8859-1\n"
             "Content-Transfer-Encoding: quoted-printable", qp(html, "latin-1")),
        # The sender's picture: a small animation, five times wider than high.
        part("Content-Type: image/gif; name=jalwapam.gif\nContent-Transfer-Encoding: base64\n"
             "Content-Location: jalwapam.gif\nContent-ID: <jalwapam.gif>\n"
             "Content-Disposition: attachment; filename=jalwapam.gif", b64(gif((160, 31), 8))),
    ]  # fmt: skip
    for name, data in (
        ("html_DEFAULT_SLIDE_header.JPG", photo(25, (468, 60))),
        ("footer.gif", gif((120, 56), 9)),
        ("reply.gif", gif((88, 24), 10)),
    ):
        ctype = "image/gif" if name.endswith(".gif") else "image/jpeg"
        parts.append(part(f"Content-Type: {ctype}; name={name}\nContent-Transfer-Encoding: "
                          f"base64\nContent-Disposition: attachment; filename={name}\n"
                          f"Content-ID: <{name}>", b64(data)))  # fmt: skip
    return message(
        "Message-ID: <3180046.1750941944434.JavaMail.jboss@mmsemail1>\n"
        "Date: Thu, 26 Jun 2025 01:45:48 +0000\n"
        "From: 212662202033@mms.mobileiam.ma\n"
        "Reply-To: 212662202033 <212662202033_266617381204940748578@mms.mobileiam.ma>\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: Multimedia message\n"
        "Mime-Version: 1.0\n"
        f'Content-Type: multipart/related; \n\tboundary="{boundary}"\n'
        "X-Mms-Message-Type: 0\n"
        "X-Nokia-Ag-Version: 2.0\n"
        "X-Nokia-Ag-Internal: ; smiltype=true; internaldate=1750940748510",
        multipart(boundary, parts),
    )


@corpus("mms-smil-html.eml")
def mms_smil_html() -> bytes:
    """A gateway whose HTML shows its own pictures beside the sender's: an advert of an
    ordinary shape and name, which only the SMIL's silence about it gives away, and the
    sender's photo, which the SMIL names though it is called "top.jpg"."""
    boundary = "----=_Part_88213_1750443322.1750443322110"
    smil = (
        '<?xml version="1.0"?><!DOCTYPE smil PUBLIC "-//W3C//DTD SMIL 1.0//EN" '
        '"http://www.w3.org/TR/REC-smil/SMIL10.dtd"><smil><head><layout>'
        '<root-layout width="240" height="320"/><region id="Image" top="0" left="0" '
        'width="240" height="240"/><region id="Text" top="240" left="0" width="240" '
        'height="80"/></layout></head><body><par dur="8000ms"><img src="cid:0623_top@mms" '
        'region="Image"/><text src="text_0001.txt" region="Text"/></par></body></smil>'
    )
    html = (
        "<html><head><title>MMS E-Mail</title></head><body>"
        '<img src="cid:ad_0623@gw" width="300" height="250"><br>'
        "<p>Ferry to the islands</p>"
        '<img src="cid:0623_top@mms"><br>'
        "<p>This is a multimedia message from 14255550123.</p></body></html>"
    )
    parts = [
        part("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit",
             crlf(html)),
        part('Content-Type: text/plain; charset=utf-8; name="text_0001.txt"\n'
             "Content-Transfer-Encoding: 7bit\nContent-Location: text_0001.txt",
             crlf("Ferry to the islands")),
        part('Content-Type: image/jpeg; name="top.jpg"\nContent-Transfer-Encoding: base64\n'
             "Content-ID: <0623_top@mms>\nContent-Location: top.jpg", b64(photo(26))),
        part('Content-Type: image/jpeg; name="image002.jpg"\nContent-Transfer-Encoding: '
             "base64\nContent-ID: <ad_0623@gw>\nContent-Disposition: inline",
             b64(photo(27, (300, 250)))),
        part('Content-Type: application/smil; name="presentation.smil"\n'
             "Content-Transfer-Encoding: 7bit", crlf(smil)),
    ]  # fmt: skip
    return message(
        "From: 14255550123@mms.example-carrier.net\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: A Picture/Video Message!\n"
        "Date: Fri, 20 Jun 2025 18:22:02 -0700\n"
        "Message-ID: <0623.88213.1750443322@mms.example-carrier.net>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/related; type="application/smil"; boundary="{boundary}"',
        multipart(boundary, parts),
    )


@corpus("iso-8859-1-uuencode.eml")
def iso_8859_1_uuencode() -> bytes:
    # Outlook Express 6 with "uuencode" chosen for attachments: the file is a block in the body.
    data = photo(15)
    lines = [b"begin 644 sommarfest.jpg"]
    lines += [_uu(data[i : i + 45]) for i in range(0, len(data), 45)]
    lines += [b"`", b"end"]
    body = crlf("Hej!\n\nHär är bilden från sommarfesten på gården.\n\n", "latin-1")
    body += CRLF.join(lines) + CRLF + CRLF + crlf("Hälsningar\nGöran\n", "latin-1")
    return message(
        "From: =?iso-8859-1?Q?G=F6ran_Str=F6m?= <goran.strom@example.se>\n"
        "To: <k7x2m9q4@relay.localhost>\n"
        "Subject: =?iso-8859-1?Q?Sommarfest_p=E5_g=E5rden?=\n"
        "Date: Sat, 21 Jun 2025 22:10:00 +0200\n"
        "Message-ID: <000801c7a1b2$3c4d5e60$0a00a8c0@GORANPC>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain;\n\tcharset="iso-8859-1"\n'
        "Content-Transfer-Encoding: 8bit\n"
        "X-Priority: 3\n"
        "X-Mailer: Microsoft Outlook Express 6.00.2900.5931",
        body,
    )


def _uu(chunk: bytes) -> bytes:
    return binascii.b2a_uu(chunk).rstrip(b"\n")


@corpus("windows-1252.eml")
def windows_1252() -> bytes:
    boundary = "_000_VI1PR0701MB2345ABCDEF0123456789VI1PR0701MB2345eurp_"
    text = "Hej,\n\npriset är 150 € – inklusive moms. ”Fakturan” bifogas.\n\nMvh\nSara\n"
    parts = [
        part('Content-Type: text/plain; charset="Windows-1252"\n'
             "Content-Transfer-Encoding: quoted-printable", qp(text, "cp1252")),
        part('Content-Type: application/pdf; name="=?Windows-1252?Q?Faktura_juni_=96_2025.pdf?="\n'
             'Content-Description: =?Windows-1252?Q?Faktura_juni_=96_2025.pdf?=\n'
             'Content-Disposition: attachment;\n'
             '\tfilename="=?Windows-1252?Q?Faktura_juni_=96_2025.pdf?="; size=812;\n'
             "Content-Transfer-Encoding: base64", b64(pdf())),
    ]  # fmt: skip
    return message(
        "From: Sara Lund <sara.lund@example.com>\n"
        'To: "k7x2m9q4@relay.localhost" <k7x2m9q4@relay.localhost>\n'
        "Subject: SV: Fakturan =?Windows-1252?Q?=96_juni?=\n"
        "Date: Mon, 23 Jun 2025 07:55:10 +0000\n"
        "Message-ID: <VI1PR0701MB2345ABCDEF0123456789@VI1PR0701MB2345.eurprd07.prod.outlook.com>\n"
        "Accept-Language: sv-SE, en-US\n"
        "Content-Language: sv-SE\n"
        "X-MS-Has-Attach: yes\n"
        f'Content-Type: multipart/mixed;\n\tboundary="{boundary}"\n'
        "MIME-Version: 1.0",
        multipart(boundary, parts),
    )


@corpus("undeclared-8bit.eml")
def undeclared_8bit() -> bytes:
    # An old script or mailer: no MIME headers at all, Latin-1 bytes in subject and body.
    return (
        b"From: Jurgen Muller <jm@example.de>\r\n"
        b"To: k7x2m9q4@relay.localhost\r\n"
        b"Subject: Gr\xfc\xdfe aus M\xfcnchen\r\n"
        b"Date: Tue, 24 Jun 2025 18:00:00 +0200\r\n"
        b"Message-ID: <20250624160000.GA1234@host.example.de>\r\n"
        b"\r\n"
        b"Sch\xf6ne Gr\xfc\xdfe vom Marienplatz, bei 30 \xb0C.\r\n"
    )


@corpus("undeclared-8bit-utf8.eml")
def undeclared_8bit_utf8() -> bytes:
    return message(
        "From: noreply-kamera@example.se\n"
        "To: k7x2m9q4@relay.localhost\n"
        "Subject: Kein Betreff\n"
        "Date: Wed, 25 Jun 2025 06:30:00 +0200\n"
        "Message-ID: <kamera-20250625-0630@example.se>",
        crlf("Rörelse vid entrén kl 06:30 – se bilden. #kamera\n"),
    )


def main(names: list[str]) -> None:
    """Write every message, or only those named (the others stay byte for byte as they are:
    the HEIC and MOV encoders differ between versions)."""
    total = 0
    for name, build in MESSAGES.items():
        if names and name not in names:
            continue
        data = build()
        (HERE / name).write_bytes(data)
        total += len(data)
        print(f"{name}: {len(data)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
