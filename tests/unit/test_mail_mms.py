"""Carrier MMS gateways: templates, tiny images, boilerplate and text moved into attachments."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from relay.mail import mms
from relay.mail import parse as parse_module
from relay.mail.parse import parse_message


def _image(size: tuple[int, int], fmt: str = "JPEG", noisy: bool = True) -> bytes:
    image = Image.effect_noise(size, 80).convert("RGB") if noisy else Image.new("RGB", size)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _gateway_mail(sender: str, text: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    out = [
        f"From: {sender}\r\nSubject: \r\nMIME-Version: 1.0\r\n".encode(),
        b'Content-Type: multipart/mixed; boundary="gw"\r\n\r\n',
        b"--gw\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        text.replace("\n", "\r\n").encode(),
        b"\r\n",
    ]
    for name, ctype, data in parts:
        out.append(
            f'--gw\r\nContent-Type: {ctype}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n")
        )
    out.append(b"--gw--\r\n")
    return b"".join(out)


PHOTO = _image((320, 240))


# --- who is a gateway ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "gateway"),
    [
        ("2025550143@vzwpix.com", True),
        ("14255550123@tmomail.net", True),
        ("2065550199@mms.att.net", True),
        ("46701234567@mms.telia.se", True),
        ("4917012345@mms.example-carrier.de", True),
        ("x@sub.vzwpix.com", True),
        ("anna@example.se", False),
        ("someone@notvzwpix.com", False),
        (None, False),
    ],
)
def test_gateway_senders(sender: str | None, gateway: bool) -> None:
    assert mms.is_gateway_sender(sender) is gateway


# --- images -----------------------------------------------------------------------------------


def test_tiny_images_by_bytes_and_by_header_dimensions() -> None:
    assert mms.is_tiny_image(b"GIF89a\x01\x00\x01\x00")
    assert mms.is_tiny_image(_image((16, 16), "PNG"))  # over a kilobyte, but a bullet
    assert mms.is_tiny_image(_image((600, 1), "PNG"))  # a divider line
    assert not mms.is_tiny_image(_image((64, 48), "PNG"))
    assert not mms.is_tiny_image(PHOTO)
    assert not mms.is_tiny_image(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 2000)  # not judged


def test_tiny_check_reads_only_the_header() -> None:
    # A header that claims a huge image over a truncated body: judged by its size alone,
    # nothing decoded (decoding would fail on the missing data).
    png = _image((20000, 1), "PNG", noisy=False)
    assert mms.is_tiny_image(png[:2000])


@pytest.mark.parametrize(
    ("name", "asset"),
    [
        ("tmobilelogo.gif", True),
        ("dottedLine_350.gif", True),
        ("spacer.gif", True),
        ("vzw_logo.gif", True),
        ("vzwpix_promo_0614.jpg", True),
        ("masthead.jpg", True),
        ("video.gif", True),
        ("IMG_0231.jpg", False),
        ("image0.jpg", False),
        ("adam.jpg", False),
        ("logo.pdf", False),
    ],
)
def test_carrier_assets_by_name(name: str, asset: bool) -> None:
    assert mms.is_carrier_asset(name) is asset


def test_gateway_mail_keeps_only_the_photo() -> None:
    raw = _gateway_mail(
        "2025550143@vzwpix.com",
        "Look!",
        [
            ("IMG_0231.jpg", "image/jpeg", PHOTO),
            ("spacer.gif", "image/gif", _image((1, 1), "GIF", noisy=False)),
            ("bullet.png", "image/png", _image((12, 12), "PNG")),
            ("vzw_logo.gif", "image/gif", _image((140, 48), "GIF")),
            ("clip.3gp", "video/3gpp", b"\x00\x00\x00\x18ftyp3gp4" + b"\x00" * 100),
        ],
    )
    mail = parse_message(raw)
    assert [p.filename for p in mail.parts] == ["IMG_0231.jpg", "clip.3gp"]
    assert mail.text == "Look!"


def test_ordinary_mail_keeps_small_images_and_logos() -> None:
    raw = _gateway_mail(
        "anna@example.se",
        "Our new logo",
        [("logo.gif", "image/gif", _image((12, 12), "GIF")), ("photo.jpg", "image/jpeg", PHOTO)],
    )
    assert [p.filename for p in parse_message(raw).parts] == ["logo.gif", "photo.jpg"]


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "This message was sent using the Picture and Video Messaging service from Verizon "
        "Wireless!",
        "This message was sent using PIX-FLIX Messaging service from Verizon Wireless!",
        "To learn how you can snap pictures with your wireless phone visit "
        "www.verizonwireless.com/picture.",
        "This mobile text message is brought to you by AT&T",
        "This message was sent to you by a T-Mobile wireless phone.",
        "You have received a picture message from 2065550199.",
        "You have new Picture Mail!",
        "Du har fått ett MMS från 0701234567.",
        "Du har fått ett bildmeddelande.",
        "Detta meddelande har skickats från en mobiltelefon och kan inte besvaras.",
        "Skickat via Tele2 MMS",
        "Sie haben eine MMS erhalten von 01701234567.",
        "Diese Nachricht wurde Ihnen von einem Handy mit der Nummer 0170123456 übermittelt.",
    ],
)
def test_boilerplate_lines_are_removed(line: str) -> None:
    text, found = mms.strip_boilerplate(f"Hej från stranden!\n\n{line}\n")
    assert (text, found) == ("Hej från stranden!", True)


def test_boilerplate_wrapped_over_lines_is_removed() -> None:
    text = (
        "Sunset\n\nThis message was sent using the Picture and Video\n"
        "Messaging service from Verizon Wireless!\n"
    )
    assert mms.strip_boilerplate(text) == ("Sunset", True)


def test_ordinary_sentences_stay() -> None:
    text = "I sent you a picture message yesterday.\nThis message was sent from my cabin."
    assert mms.strip_boilerplate(text) == (text, False)


def test_rules_that_framed_boilerplate_go_too() -> None:
    text = "Hello\n\n=================\nThis mobile text message is brought to you by AT&T\n"
    assert mms.strip_boilerplate(text) == ("Hello", True)


def test_text_moved_into_an_attachment_becomes_the_text() -> None:
    raw = _gateway_mail(
        "2065550199@mms.att.net",
        "",
        [
            ("text_0.txt", "text/plain", "Grattis på födelsedagen!".encode()),
            ("image0.jpg", "image/jpeg", PHOTO),
        ],
    )
    mail = parse_message(raw)
    assert mail.text == "Grattis på födelsedagen!"
    assert [p.filename for p in mail.parts] == ["image0.jpg"]


def test_text_attachment_and_body_with_the_same_words_give_them_once() -> None:
    raw = _gateway_mail(
        "2065550199@mms.att.net", "Same words", [("text.txt", "text/plain", b"Same words")]
    )
    assert parse_message(raw).text == "Same words"


def test_ordinary_mail_keeps_its_text_attachment_as_an_item() -> None:
    raw = _gateway_mail("anna@example.se", "See notes", [("message.txt", "text/plain", b"notes")])
    mail = parse_message(raw)
    assert (mail.text, [p.filename for p in mail.parts]) == ("See notes", ["message.txt"])


def test_a_smil_part_makes_it_gateway_mail_and_is_dropped() -> None:
    raw = _gateway_mail(
        "unknown@example.net",
        "",
        [
            ("mms.smil", "application/smil", b"<smil><body/></smil>"),
            ("text_0.txt", "text/plain", b"From the MMS"),
            ("spacer.gif", "image/gif", _image((1, 1), "GIF", noisy=False)),
            ("photo.jpg", "image/jpeg", PHOTO),
        ],
    )
    mail = parse_message(raw)
    assert mail.text == "From the MMS"
    assert [p.filename for p in mail.parts] == ["photo.jpg"]


def test_gateway_boilerplate_alone_marks_gateway_mail() -> None:
    raw = _gateway_mail(
        "forwarder@example.org",
        "Nice\n\nThis message was sent to you by a T-Mobile wireless phone.",
        [
            ("tmobilelogo.gif", "image/gif", _image((160, 54), "GIF")),
            ("p.jpg", "image/jpeg", PHOTO),
        ],
    )
    mail = parse_message(raw)
    assert (mail.text, [p.filename for p in mail.parts]) == ("Nice", ["p.jpg"])


def test_commands_work_in_text_moved_into_an_attachment() -> None:
    raw = _gateway_mail(
        "46701234567@mms.telia.se",
        "Du har fått ett MMS från 0701234567.",
        [
            ("text_0.txt", "text/plain", "Fjällen #semester [private]".encode()),
            ("IMG_1.jpg", "image/jpeg", PHOTO),
        ],
    )
    mail = parse_message(raw)
    assert (mail.text, mail.tags, mail.private) == ("Fjällen #semester", ["semester"], True)


# --- structure: the SMIL presentation and the gateway's HTML ------------------------------------


def test_smil_refs_read_every_media_element_in_one_form() -> None:
    smil = (
        b'<?xml version="1.0"?><smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body>'
        b'<par><img src="cid:%3CImage0%40Phone%3E"/><text src="Text_0.TXT"/></par>'
        b'<par><video src="clip.3gp"></video><audio src="&lt;a1&gt;"/><ref src="x.amr"/></par>'
        b'<par><region src="not-media.jpg"/></par></body></smil>'
    )
    assert mms.smil_refs(smil) == {"image0@phone", "text_0.txt", "clip.3gp", "a1", "x.amr"}
    assert mms.read_smil(smil)[1] == {"image0@phone", "clip.3gp", "a1", "x.amr"}


def test_smil_refs_expand_no_entities_and_stay_bounded() -> None:
    # A SMIL part is hostile input: declared entities are not expanded ("billion laughs"),
    # and a huge part is read only up to its cap.
    laughs = b'<!DOCTYPE smil [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    assert mms.smil_refs(laughs + b'<smil><img src="&b;"/></smil>') == {"&b;"}
    flood = b"<smil>" + b'<img src="p.jpg"/>' * 20_000 + b'<img src="last.jpg"/></smil>'
    assert mms.smil_refs(flood) == {"p.jpg"}
    assert mms.smil_refs(b"<smil><img src=") == set()
    assert mms.smil_refs(b"\xff\xfe<\x00s\x00") == set()


def test_part_keys_match_content_id_location_and_name() -> None:
    keys = mms.part_keys("IMG_1.jpg", "<Part1@MMSC>", "http://mmsc.example/x/IMG_1.JPG")
    assert {"img_1.jpg", "part1@mmsc"} <= keys


def test_in_a_folder() -> None:
    assert mms.in_a_folder("<images/tpm.jpg>", None)
    assert mms.in_a_folder(None, "images/vf9.gif")
    assert not mms.in_a_folder("<IMG_0231.jpg>", "http://mmsc.example/IMG_0231.jpg")
    assert not mms.in_a_folder(None, None)


def _smil_mail(smil: bytes, html: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """A gateway message: HTML first, then each part with a Content-ID of its name."""
    out = [
        b"From: 14255550123@example-carrier.net\r\nSubject: \r\nMIME-Version: 1.0\r\n",
        b'Content-Type: multipart/related; boundary="gw"\r\n\r\n',
        b"--gw\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
        html.encode(),
        b"\r\n",
    ]
    for name, ctype, data in [*parts, ("pres.smil", "application/smil", smil)]:
        out.append(
            f'--gw\r\nContent-Type: {ctype}; name="{name}"\r\nContent-ID: <{name}>\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(data).replace(b"\n", b"\r\n")
        )
    out.append(b"--gw--\r\n")
    return b"".join(out)


def test_the_smil_decides_before_names_and_sizes() -> None:
    # The SMIL names "logo.jpg" (the sender's photo of a logo) and a 900 × 100 panorama
    # strip: both the sender's. The HTML alone shows an ordinary-looking picture: the
    # gateway's advert.
    raw = _smil_mail(
        b'<smil><body><par><img src="logo.jpg"/></par><par><img src="cid:strip.jpg"/></par>'
        b"</body></smil>",
        '<img src="cid:image002.jpg"><img src="cid:logo.jpg"><img src="cid:strip.jpg">',
        [
            ("logo.jpg", "image/jpeg", PHOTO),
            ("strip.jpg", "image/jpeg", _image((900, 100))),
            ("image002.jpg", "image/jpeg", _image((300, 250))),
        ],
    )
    assert [p.filename for p in parse_message(raw).parts] == ["logo.jpg", "strip.jpg"]


def test_without_a_useful_smil_names_and_sizes_decide() -> None:
    # The SMIL names nothing that is in the message: the HTML's references prove nothing,
    # so the advert of ordinary shape stays and the banner goes.
    raw = _smil_mail(
        b'<smil><body><par><img src="gone.jpg"/></par></body></smil>',
        '<img src="cid:banner.jpg"><img src="cid:photo.jpg"><img src="cid:image002.jpg">',
        [
            ("banner.jpg", "image/jpeg", _image((640, 80))),
            ("photo.jpg", "image/jpeg", PHOTO),
            ("image002.jpg", "image/jpeg", _image((300, 250))),
        ],
    )
    assert [p.filename for p in parse_message(raw).parts] == ["photo.jpg", "image002.jpg"]


def test_a_smil_that_misses_one_of_its_pictures_condemns_nothing() -> None:
    # The SMIL's second picture is referred to in a form no part matches: the SMIL cannot
    # tell which picture that was, so the one only the HTML shows is not dropped for it.
    raw = _smil_mail(
        b'<smil><body><par><img src="photo.jpg"/></par><par><img src="cid:0x1f@phone"/>'
        b'</par><par><text src="text_0.txt"/></par></body></smil>',
        '<img src="cid:photo.jpg"><img src="cid:IMG_2.jpg">',
        [("photo.jpg", "image/jpeg", PHOTO), ("IMG_2.jpg", "image/jpeg", _image((300, 250)))],
    )
    assert [p.filename for p in parse_message(raw).parts] == ["photo.jpg", "IMG_2.jpg"]


def test_a_text_the_smil_shows_is_the_senders_words_whatever_its_name() -> None:
    # Nokia phones name a text part after its first words; the SMIL's <text> says what it is.
    smil = b'<smil><body><par><img src="photo.jpg"/><text src="Hello there.txt"/></par></smil>'
    raw = _gateway_mail(
        "unknown@example.net",
        "",
        [
            ("pres.smil", "application/smil", smil),
            ("photo.jpg", "image/jpeg", PHOTO),
            ("Hello there.txt", "text/plain", b"Hello there!"),
        ],
    )
    mail = parse_message(raw)
    assert (mail.text, [p.filename for p in mail.parts]) == ("Hello there!", ["photo.jpg"])


# --- banners, by the header's dimensions --------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "template"),
    [
        ((670, 104), True),  # Three's header
        ((468, 60), True),  # the classic banner of Nokia's gateways
        ((60, 468), True),  # a side strip
        ((1, 1), True),
        ((600, 2), True),
        ((160, 31), False),  # a sender's animation, five to one
        ((320, 240), False),
        ((4000, 600), False),  # a phone's panorama: as long, but large
    ],
)
def test_template_images_by_size(size: tuple[int, int], template: bool) -> None:
    # Noise keeps small pictures over a kilobyte; a large one is over it plain (and quick).
    noisy = size[0] * size[1] < 500_000
    assert mms.is_template_image(_image(size, "PNG", noisy=noisy)) is template


def _png_header(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR chunk, and no pixels at all: what a header read needs."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    # Then the start of an image data chunk that is never there (over the kilobyte floor).
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 10**8) + b"IDAT" + b"\x00" * 1024


def test_banner_check_reads_only_the_header() -> None:
    # 90 megapixels claimed, no pixel data: judged by the header alone, nothing decoded.
    assert mms.image_size(_png_header(30000, 3000)) == (30000, 3000)
    assert not mms.is_template_image(_png_header(30000, 3000))  # a large panorama
    assert mms.is_template_image(_png_header(2000, 100))


@pytest.mark.parametrize(
    ("name", "ctype", "asset"),
    [
        ("Vodafone Logo", "image/gif", True),
        ("Vodafone Logo", "", False),
        ("reply.gif", "image/gif", True),
        ("footer.gif", "image/gif", True),
        ("html_DEFAULT_SLIDE_header.JPG", "image/jpeg", True),
        ("top.gif", "image/gif", True),
        ("bottom_bar.png", "image/png", True),
        ("bottle.jpg", "image/jpeg", False),
        ("topaz.jpg", "image/jpeg", False),
    ],
)
def test_carrier_assets_by_name_and_type(name: str, ctype: str, asset: bool) -> None:
    assert mms.is_carrier_asset(name, ctype) is asset


# --- titles and text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "generic"),
    [
        ("You have received a new message", True),
        ("A Picture/Video Message!", True),
        ("Multimedia message", True),
        ("You have received a picture message from 2065550199", True),
        ("Orange UK MMS", True),
        ("Kvällsdopp", False),
        ("A picture message from the trip", False),
    ],
)
def test_generic_subjects(subject: str, generic: bool) -> None:
    assert mms.is_generic_subject(subject) is generic


@pytest.mark.parametrize(
    "line",
    [
        "Vodafone MMS-to-Email Service",
        "You have received a picture message from mobile phone number +352621123456",
        "[picture inserted -- see Bad.jpg in the attachments]",
        "You have received an MMS message.  To see the message correctly, you will need to "
        "view this message\nin a graphical email application.",
        "To get more information on MMS and Easy Mail, visit www.example-operator.ma",
        "Note: To play video messages sent to email, QuickTime® 6.5 or higher is required.",
        "This Orange Multi Media Message was sent wirefree from an Orange\nMMS phone. If you "
        "would like to reply, please text or phone the\nsender directly by using the phone "
        "number listed in the sender's\naddress. To learn more about Orange's Multi Media "
        "Messaging\nService, find us on the Web at www.orange.co.uk/mms",
        "Vous avez reçu un MMS du 062 20 20 33",
    ],
)
def test_more_gateway_boilerplate_is_removed(line: str) -> None:
    assert mms.strip_boilerplate(f"Hej!\n\n{line}\n") == ("Hej!", True)


def test_template_headings_go_only_from_gateway_mail() -> None:
    text = "Subject: Kvällsdopp\nCC:\nVattnet var varmt"
    assert mms.strip_boilerplate(text) == (text, False)
    assert mms.strip_boilerplate(text, gateway=True) == ("Vattnet var varmt", True)


def test_real_orange_uk_message(corpora) -> None:
    """Orange's gateway (mail-gem's raw_email4.eml): the sender's subject and words stay,
    the five-line Orange footer and the broken "--boundary-" close leave nothing behind."""
    mail = parse_message((corpora / "mail-gem/mime_emails/raw_email4.eml").read_bytes())
    assert (mail.title, mail.text, mail.parts) == ("Filth", "Some text", [])


def test_many_smil_parts_are_read_up_to_one_budget() -> None:
    # Twenty big SMIL parts: the first names the photo; the last, past the message's SMIL
    # budget, would name the logo. It is not read, so the logo goes by its name.
    pad = b'<img src="pad.jpg"/>' * 3_000
    first = b'<smil><body><img src="photo.jpg"/>' + pad + b"</body></smil>"
    middle = b"<smil><body>" + pad + b"</body></smil>"
    last = b'<smil><body><img src="vzw_logo.gif"/></body></smil>'
    smils = [first, *[middle] * 18, last]
    assert sum(len(s) for s in smils[:-1]) > parse_module.MAX_SMIL_BYTES
    parts = [(f"s{n}.smil", "application/smil", data) for n, data in enumerate(smils)]
    logo = ("vzw_logo.gif", "image/gif", _image((140, 48), "GIF"))
    raw = _gateway_mail(
        "unknown@example.net", "Hej", [*parts, ("photo.jpg", "image/jpeg", PHOTO), logo]
    )
    mail = parse_message(raw)
    assert (mail.text, [p.filename for p in mail.parts]) == ("Hej", ["photo.jpg"])
    # Within the budget, the same last SMIL part decides: the logo is the sender's.
    raw = _gateway_mail(
        "unknown@example.net",
        "Hej",
        [*parts[:1], parts[-1], ("photo.jpg", "image/jpeg", PHOTO), logo],
    )
    assert [p.filename for p in parse_message(raw).parts] == ["photo.jpg", "vzw_logo.gif"]
