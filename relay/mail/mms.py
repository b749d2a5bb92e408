"""Carrier MMS-to-mail gateways: what they add to a phone's message, so that it can be taken off.

A picture message sent from a phone to a mail address reaches us through the carrier's
gateway, which wraps it in its own template: logos, spacer and divider images, advertising,
"You have received a picture message" lines, a SMIL presentation, and often the sender's words
moved into an attachment named ``text_0.txt``. Everything carrier-specific is a table below
(from gateway mail as it was and is seen in the wild; extend the tables, not the code).

A message counts as gateway mail (:func:`is_gateway_sender`, or the walker's other signals: a
SMIL part, or a boilerplate line found in the text) before images are judged as carrier assets
or text attachments turned into text; the boilerplate lines and generic subjects are specific
enough to be taken off any message.
"""

from __future__ import annotations

import io
import re
import warnings

# Sender domains of MMS gateways (a subdomain matches too). Any domain whose first label is
# "mms" (mms.att.net, mms.telia.se, …) counts as well.
GATEWAY_DOMAINS = (
    # United States
    "vzwpix.com",
    "vtext.com",
    "mypixmessages.com",
    "mms.att.net",
    "txt.att.net",
    "mms.mycingular.com",
    "cingularme.com",
    "tmomail.net",
    "pm.sprint.com",
    "messaging.sprintpcs.com",
    "mms.uscc.net",
    "mms.cricketwireless.net",
    "mymetropcs.com",
    "msg.fi.google.com",
    "vmpix.com",
    "mmst5.tracfone.com",
    "myboostmobile.com",
    "message.alltel.com",
    # Canada, United Kingdom, France
    "txt.bell.ca",
    "msg.telus.com",
    "rci.rogers.com",
    "mediamessaging.o2.co.uk",
    "mmsreply.t-mobile.co.uk",
    "orangemms.net",
    # Nordics and Germany
    "mms.telia.se",
    "mms.tele2.se",
    "mms.telenor.se",
    "mms.tre.se",
    "mms.netcom.no",
    "mms.telenor.no",
    "mms.o2online.de",
    "mms.t-mobile.de",
    "mms.vodafone.de",
)

# Lines (or one sentence wrapped over up to three lines) that gateways add. Each is matched
# against the whole line with its whitespace collapsed, ignoring case.
BOILERPLATE = (
    # Verizon Wireless
    r"this message was sent using (?:the )?(?:picture and video messaging|pix-flix messaging)"
    r" service from verizon wireless[.!]?",
    r"to learn how you can snap pictures(?: and videos?)? with your wireless phone,?"
    r" visit .{1,120}",
    r"to play video messages sent to email,? quicktime.{0,40} (?:or higher )?is required\.?",
    # AT&T and Cingular
    r"this mobile text message is brought to you by at&t\.?",
    r"brought to you by,? cingular wireless messaging\.?",
    r"(?:this is an? )?at&t (?:mms|multimedia message)(?: message)?[.!]?",
    r"multimedia message",
    # T-Mobile
    r"this message was sent (?:to you )?(?:from|by) a t-mobile (?:wireless )?"
    r"(?:phone|customer|subscriber)[.!]?",
    r"t-mobile (?:mms|picture message|multimedia message)",
    # Sprint
    r"you have new (?:picture|video) mail!?",
    r"click go/view to see now\.?",
    r"picturemail",
    # Any carrier, English
    r"you have (?:received|got) an? (?:new )?(?:picture|video|photo|multimedia|mms)"
    r" message(?: from .{1,80}?)?[.!]?",
    r"this is an? (?:mms|multimedia) message(?: from .{1,80}?)?[.!]?",
    # Telenor Norway
    r"meldingen er sendt fra mobiltelefon og kan kun besvares med mobiltelefon\.?"
    r"(?: nummeret finner du i e-postadressen\.?)?",
    # Telia, Tele2, Telenor, Tre (Sweden)
    r"du har (?:fått|mottagit) ett (?:mms|bildmeddelande|multimediameddelande|videomeddelande)"
    r"(?: från .{1,80}?)?[.!]?",
    r"detta (?:är ett (?:mms|bildmeddelande|multimediameddelande)(?: från .{1,80}?)?"
    r"|(?:meddelande|mms) (?:har )?skickats (?:från|via) .{1,80}?)[.!]?",
    r"meddelandet (?:har skickats|skickades|är skickat) från en mobiltelefon.{0,120}",
    r"(?:skickat|sänt) (?:via|med|från) (?:telias?|tele2|telenor|tres?|comviq|halebop)"
    r" ?mms(?:-tjänst(?:en)?)?\.?",
    r"svara inte på (?:detta|det här) (?:e-postmeddelande|mejl|mail|meddelande).{0,80}",
    # O2, Telekom, Vodafone (Germany)
    r"sie haben eine (?:mms|mms-nachricht|bildnachricht|multimedia-nachricht) erhalten"
    r"(?: von .{1,80}?)?[.!]?",
    r"diese nachricht wurde ihnen von einem handy mit der nummer .{1,40} übermittelt\.?",
    r"wenn sie mehr über .{1,120} erfahren (?:möchten|wollen).{0,120}",
    r"diese (?:mms|nachricht) wurde (?:ihnen )?(?:über|mit|von) .{1,80}"
    r" (?:gesendet|versendet|verschickt)\.?",
)

# Subjects that phones and gateways fill in when the sender wrote none: not a title.
GENERIC_SUBJECTS = frozenset(
    {
        "multimedia message",
        "multimedia mail",
        "mms",
        "mms message",
        "picture message",
        "picture mail",
        "video message",
        "photo message",
        "no subject",
        "bildmeddelande",
        "mms-meddelande",
        "multimediameddelande",
        "videomeddelande",
        "ingen ämnesrad",
        "inget ämne",
        "ingen rubrik",
        "kein betreff",
        "ohne betreff",
        "mms-nachricht",
        "multimedia-nachricht",
        "bildnachricht",
        "ingen emne",
        "sans objet",
        "sin asunto",
        "geen onderwerp",
    }
)

# Text attachments into which gateways move the sender's words.
TEXT_ATTACHMENT = re.compile(r"(?:text|txt|message|msg|mms|body|sms)(?:[_-]?\d{1,3})?\.txt")

# Carrier template images, by name: parts of a stem, and whole words of it.
ASSET_SUBSTRINGS = ("logo", "spacer", "dottedline", "dotted_line", "masthead", "banner", "advert")
ASSET_WORDS = frozenset(
    {"ad", "ads", "space", "blank", "pixel", "divider", "footer", "header", "promo", "audio",
     "video", "icon"}
)  # fmt: skip

MIN_IMAGE_BYTES = 1024
TINY_SIDE = 16
"""An image this wide and high or smaller is a spacer or a bullet, not a photo."""
LINE_SIDE = 2
"""An image this thin in either direction is a divider line."""
_HEADER_FORMATS = ("GIF", "PNG", "JPEG", "BMP", "WEBP")

_BOILERPLATE = re.compile("|".join(f"(?:{p})" for p in BOILERPLATE), re.IGNORECASE)
_MAX_BOILERPLATE_CHARS = 600
_RULE = re.compile(r"[-=_*~·.]{3,}")
_IMAGE_NAME = re.compile(r"\.(?:gif|jpe?g|png|bmp|webp)$", re.IGNORECASE)


def is_gateway_sender(sender: str | None) -> bool:
    if not sender:
        return False
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    if domain.split(".", 1)[0] == "mms":
        return True
    return any(domain == d or domain.endswith("." + d) for d in GATEWAY_DOMAINS)


def strip_boilerplate(text: str) -> tuple[str, bool]:
    """The text without gateway lines, and whether there were any."""
    lines = text.split("\n")
    out: list[str] = []
    found = False
    index = 0
    while index < len(lines):
        width = _boilerplate_width(lines, index)
        if width:
            found = True
            index += width
            continue
        out.append(lines[index])
        index += 1
    if not found:
        return text, False
    # The rules and blank lines that framed the gateway's lines go with them.
    while out and (not out[-1].strip() or _RULE.fullmatch(out[-1].strip())):
        out.pop()
    while out and (not out[0].strip() or _RULE.fullmatch(out[0].strip())):
        out.pop(0)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)), True


def _boilerplate_width(lines: list[str], index: int) -> int:
    """How many lines from ``index`` on are one gateway sentence (0: none)."""
    joined = ""
    for width in (1, 2, 3):
        if index + width > len(lines):
            return 0
        line = lines[index + width - 1].strip()
        if not line:
            return 0
        joined = f"{joined} {line}" if joined else line
        if len(joined) > _MAX_BOILERPLATE_CHARS:
            return 0
        if _BOILERPLATE.fullmatch(" ".join(joined.split())):
            return width
    return 0


def is_generic_subject(title: str) -> bool:
    return " ".join(title.split()).strip(" ()[]<>.").casefold() in GENERIC_SUBJECTS


def is_text_attachment(filename: str) -> bool:
    return bool(TEXT_ATTACHMENT.fullmatch(filename.lower()))


def is_carrier_asset(filename: str) -> bool:
    """A template image of a gateway, going by its name."""
    if not _IMAGE_NAME.search(filename):
        return False
    stem = filename.rsplit(".", 1)[0].lower()
    if any(part in stem for part in ASSET_SUBSTRINGS):
        return True
    return any(word in ASSET_WORDS for word in re.split(r"[^a-z]+", stem))


def is_tiny_image(payload: bytes) -> bool:
    """Under a kilobyte, or a spacer, bullet or divider by its header's width and height.

    Pillow reads only the header here (no pixels are decoded); what it cannot read is not
    judged tiny, so a HEIC photo or a video is never dropped by this.
    """
    if len(payload) < MIN_IMAGE_BYTES:
        return True
    from PIL import Image  # only the worker that parses mail pays for the import

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(payload), formats=_HEADER_FORMATS) as image:
                width, height = image.size
    except Exception:
        return False
    return (width <= TINY_SIDE and height <= TINY_SIDE) or min(width, height) <= LINE_SIDE
