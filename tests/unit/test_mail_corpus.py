"""The mail corpus of tests/corpus/mail: each client and carrier must come out exactly right.

The messages are written by tests/corpus/mail/make.py to stand for what each client really
sends; this table says what each must become: title, text, tags, flags and the items in order.
"""

from __future__ import annotations

import base64
import io
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from relay.mail.parse import ParsedMail, parse_message
from relay.mail.tnef import read_tnef

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "mail"


@dataclass(frozen=True)
class Expected:
    title: str
    text: str
    items: list[tuple[str, str, str | None]]
    """(filename, content type, alt) of each item, in order."""
    tags: list[str] = field(default_factory=list)
    private: bool = False
    draft: bool = False


EXPECTED = {
    "iphone-heic-livephoto.eml": Expected(
        title="Kväll på torget",
        text="Kvällen på torget blev precis så fin som vi hoppats, med musik hela kvällen. "
        "#sommar #Torget",
        tags=["sommar", "torget"],
        # A Live Photo is two files, the still and the motion: two items, neither dropped.
        items=[
            ("IMG_4501.HEIC", "image/heic", "Scenen på torget i kvällssol"),
            ("IMG_4501.MOV", "video/quicktime", None),
        ],
    ),
    "android-gmail.eml": Expected(
        title="Konsert i parken",
        text="Konsert i parken i kväll",
        tags=["konsert", "parken"],
        private=True,
        items=[("IMG_20250614_183012.jpg", "image/jpeg", "Publiken framför scenen")],
    ),
    "gmail-web-inline.eml": Expected(
        title="Repetition inför lördag",
        text="Här är bilden från repetitionen:\n\nOch programmet bifogat.",
        items=[
            ("IMG_1234.jpg", "image/jpeg", None),
            ("Sånger på torget.pdf", "application/pdf", None),
        ],
    ),
    "outlook-html-cid.eml": Expected(
        title="Bilder från mötet",
        text="Hej!\n\nHär är bilden från mötet – kostnaden blev 150 €.\n\n"
        "Vänliga hälsningar\nKarin",
        items=[("image001.jpg", "image/jpeg", None)],
    ),
    "outlook-winmail.eml": Expected(
        title="Protokoll från årsmötet",
        text="Hej,\n\nprotokollet och en bild från årsmötet.\n\n/Per",
        items=[
            ("Protokoll årsmöte.pdf", "application/pdf", None),
            ("Bild från årsmötet.jpg", "image/jpeg", None),
        ],
    ),
    "outlook-winmail-only.eml": Expected(
        title="Affisch till sommarfesten",
        text="Affischen till sommarfesten, tryck gärna upp den.\n\nMed vänlig hälsning\nLena",
        items=[("Affisch sommarfest.png", "image/png", None)],
    ),
    "applemail-appledouble.eml": Expected(
        title="Poster for Saturday",
        text="Here is the poster for Saturday.\n\nBest,\nJonas",
        items=[("Affisch.jpg", "image/jpeg", None)],
    ),
    "thunderbird.eml": Expected(
        title="Karta festivalen",
        text="Skärmbild från kartan över festivalområdet. #Musik #festival #musik\n\n"
        "Intern anteckning som inte ska med:",
        tags=["musik", "festival"],
        draft=True,
        items=[("Skärmbild karta.png", "image/png", "Karta över festivalområdet")],
    ),
    "forwarded-rfc822.eml": Expected(
        title="Bilder från invigningen",
        text="Titta på de här från Anna!",
        items=[("IMG_0042.jpeg", "image/jpeg", None)],
    ),
    "mms-verizon.eml": Expected(
        title="",
        text="Look at the stage!",
        items=[("IMG_0231.jpg", "image/jpeg", None)],
    ),
    "mms-tmobile.eml": Expected(
        title="",
        text="Sunset at the pier",
        items=[("IMAGE_00001.jpg", "image/jpeg", None)],
    ),
    "mms-att.eml": Expected(
        title="",
        text="Happy birthday grandma! #family",
        tags=["family"],
        items=[("image0.jpg", "image/jpeg", None)],
    ),
    "mms-telia.eml": Expected(
        title="",
        text="Hälsningar från fjällen!",
        tags=["fjäll", "semester"],
        items=[("IMG_20250701_120045.jpg", "image/jpeg", None)],
    ),
    # Three: the generic subject, the plain part only "view this in a graphical mail program"
    # (the words are in the HTML), a 670 × 104 banner, a spacer, a reply button and a hidden
    # picture from the gateway's images/ folder.
    "mms-three.eml": Expected(
        title="",
        text="Picnic by the river, everyone made it",
        items=[("26062025.jpg", "image/jpeg", None)],
    ),
    # Vodafone: the subject is the sender's; the plain part is the template's (the sender's
    # words only in the HTML); the logo is called "Vodafone Logo", no extension.
    "mms-vodafone.eml": Expected(
        title="Kvällsdopp",
        text="Vattnet var varmare än väntat!",
        items=[("Bad.jpg", "image/jpeg", None)],
    ),
    # Nokia's gateway: nothing typed, a 468 × 60 header banner, footer and reply buttons;
    # the sender's 160 × 31 animation stays.
    "mms-nokia.eml": Expected(
        title="",
        text="",
        items=[("jalwapam.gif", "image/gif", None)],
    ),
    # The SMIL names the sender's photo (called "top.jpg"); the HTML's advert of an ordinary
    # name and shape is named by the HTML alone.
    "mms-smil-html.eml": Expected(
        title="",
        text="Ferry to the islands",
        items=[("top.jpg", "image/jpeg", None)],
    ),
    "iso-8859-1-uuencode.eml": Expected(
        title="Sommarfest på gården",
        text="Hej!\n\nHär är bilden från sommarfesten på gården.\n\n\nHälsningar\nGöran",
        items=[("sommarfest.jpg", "image/jpeg", None)],
    ),
    "windows-1252.eml": Expected(
        title="Fakturan – juni",
        text="Hej,\n\npriset är 150 € – inklusive moms. ”Fakturan” bifogas.\n\nMvh\nSara",
        items=[("Faktura juni – 2025.pdf", "application/pdf", None)],
    ),
    "undeclared-8bit.eml": Expected(
        title="Grüße aus München",
        text="Schöne Grüße vom Marienplatz, bei 30 °C.",
        items=[],
    ),
    "undeclared-8bit-utf8.eml": Expected(
        title="",
        text="Rörelse vid entrén kl 06:30 – se bilden. #kamera",
        tags=["kamera"],
        items=[],
    ),
}


def _parse(name: str) -> ParsedMail:
    return parse_message((CORPUS / name).read_bytes())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_comes_out_right(name: str) -> None:
    mail = _parse(name)
    expected = EXPECTED[name]
    assert mail.title == expected.title
    assert mail.text == expected.text
    assert mail.tags == expected.tags
    assert (mail.private, mail.draft) == (expected.private, expected.draft)
    assert [(p.filename, p.content_type, p.alt) for p in mail.parts] == expected.items
    assert all(p.payload for p in mail.parts)


def test_every_corpus_message_has_an_expectation_and_the_corpus_is_small() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED)
    assert sum((CORPUS / name).stat().st_size for name in files) < 2_000_000


def test_corpus_media_are_real_files() -> None:
    magic = {
        "image/jpeg": b"\xff\xd8\xff",
        "image/png": b"\x89PNG",
        "application/pdf": b"%PDF",
    }
    for name in EXPECTED:
        for part in _parse(name).parts:
            if part.content_type in magic:
                assert part.payload.startswith(magic[part.content_type]), (name, part.filename)
            if part.content_type in ("image/heic", "video/quicktime"):
                assert part.payload[4:8] == b"ftyp", (name, part.filename)
            if part.content_type.startswith("image/") and part.content_type != "image/heic":
                assert Image.open(io.BytesIO(part.payload)).size[0] > 16


def test_live_photo_halves_share_a_name() -> None:
    still, motion = _parse("iphone-heic-livephoto.eml").parts
    assert still.filename.rsplit(".", 1)[0] == motion.filename.rsplit(".", 1)[0]
    assert (still.inline, motion.inline) == (True, False)


def test_outlook_cid_image_is_inline() -> None:
    [image] = _parse("outlook-html-cid.eml").parts
    assert image.inline


def test_gateway_mails_lose_every_template_image() -> None:
    for name in ("mms-verizon.eml", "mms-tmobile.eml", "mms-telia.eml"):
        raw = (CORPUS / name).read_bytes()
        assert re.search(rb"(?i)logo\.gif", raw)  # the template was there to begin with
        assert not any("logo" in p.filename for p in parse_message(raw).parts)


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("mms-three.eml", 4),
        ("mms-vodafone.eml", 2),
        ("mms-nokia.eml", 3),
        ("mms-smil-html.eml", 1),
    ],
)
def test_gateway_template_images_were_there_and_are_gone(name: str, template: int) -> None:
    """Each message holds the gateway's images as real pictures (so that the expectations
    above are about dropping them, not about their absence) and only the sender's remain."""
    raw = (CORPUS / name).read_bytes()
    images = len(re.findall(rb"(?im)^Content-Type: image/", raw))
    assert images == template + len(EXPECTED[name].items)
    assert len(parse_message(raw).parts) == len(EXPECTED[name].items)


def _winmail(name: str) -> bytes:
    """The decoded winmail.dat of a corpus message (the last part, or the whole body)."""
    raw = (CORPUS / name).read_bytes()
    start = raw.index(b'filename="winmail.dat"')
    body = raw[raw.index(b"\r\n\r\n", start) + 4 :].split(b"\r\n--", 1)[0]
    return base64.b64decode(body)


@pytest.mark.parametrize("name", ["outlook-winmail.eml", "outlook-winmail-only.eml"])
def test_corpus_tnef_agrees_with_tnefparse(name: str) -> None:
    """The hand-built winmail.dat files are real TNEF: an independent reader sees the same."""
    tnefparse = pytest.importorskip("tnefparse")
    data = _winmail(name)
    theirs = tnefparse.TNEF(data)
    ours = read_tnef(data)
    assert ours is not None
    assert [(a.long_filename(), a.data) for a in theirs.attachments] == [
        (a.name, a.data) for a in ours.attachments
    ]
    assert all(obj.good_checksum for obj in theirs.objects)
    if theirs.body:
        body = theirs.body if isinstance(theirs.body, str) else theirs.body.decode("cp1252")
        assert body.rstrip("\x00") == ours.text


def test_mutated_corpus_messages_lose_nothing_to_a_crash() -> None:
    """Damaged real-world shapes (TNEF, appledouble, uuencode, gateways) never break the parse:
    a message with headers always comes back, never as ``mail.unreadable``."""
    splices = [b"--", b"\r\n", b"[end]", b"((tag:", b"[alt 1:", b"#", b"begin 644 x\r\n",
               b"\x78\x9f\x3e\x22", b"\x00", b"\xff"]  # fmt: skip
    rng = random.Random(20250701)
    names = sorted(EXPECTED)
    for _ in range(300):
        raw = bytearray((CORPUS / rng.choice(names)).read_bytes())
        header_end = raw.index(b"\r\n\r\n")
        for _ in range(rng.randint(1, 10)):
            at = rng.randrange(header_end, len(raw) + 1)
            roll = rng.random()
            if roll < 0.4:
                raw[at:at] = bytes([rng.randrange(256)])
            elif roll < 0.7:
                del raw[at : at + rng.randint(1, 64)]
            else:
                raw[at:at] = rng.choice(splices)
        mail = parse_message(bytes(raw))
        assert mail.sender or mail.message_id
