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
import urllib.parse
import warnings
from html.parser import HTMLParser

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

# Lines (or one sentence wrapped over up to six lines) that gateways add. Each is matched
# against the whole line with its whitespace collapsed, ignoring case.
BOILERPLATE = (
    # Verizon Wireless
    r"this message was sent using (?:the )?(?:picture and video messaging|pix-flix messaging)"
    r" service from verizon wireless[.!]?",
    r"to learn how you can snap pictures(?: and videos?)? with your wireless phone,?"
    r" visit .{1,120}",
    r"(?:note: )?to play video messages sent to email,? quicktime.{0,40}"
    r" (?:or higher )?is required\.?",
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
    # Vodafone (LuxGSM and others on the same platform)
    r"vodafone mms-to-email service",
    r"you have received an? (?:picture|video|multimedia|mms) message from (?:mobile )?phone"
    r" number \+?[\d ]{3,20}",
    r"\[(?:picture|video|audio|image) inserted -- see .{1,120} in the attachments\]",
    r"to send a reply,? (?:<a [^>]{1,200}>)?click here to visit our on-?line composer\.?"
    r"(?:</a>)?[-=_ ]*",
    r"to save this picture, right-click it and choose \"save image\"\.?"
    r" ?macintosh users can click and drag the image to their desktop\.?",
    # Three (UK, Ireland; the Yospace MMS-to-Email platform)
    r"you have received an mms message\.? to see the message correctly,? you will need to"
    r" view this message in a graphical e-?mail application\.?",
    r"you've received an mms from mobile number \+?[\d ]{3,20}",
    r"it's free to reply! .{1,300} so make it count!",
    r"mms from 3 (?:uk|ireland) network",
    r"you can use the once-only free reply within \d{1,2} days from the date of this message\.?",
    r"if you're a 3 customer you can find more information about .{1,300}",
    # Orange (United Kingdom, France)
    r"this orange multi media message was sent wirefree from an orange mms phone\."
    r"(?: if you would like to reply, please text or phone the sender directly by using the"
    r" phone number listed in the sender's address\.)?(?: to learn more about orange's multi"
    r" media messaging service, find us on the web at \S{1,120})?",
    r"orange uk mms",
    # Maroc Telecom and other gateways on the Nokia platform ("Easy Mail")
    r"to get more information on .{1,160} easy ?mail.{0,160}",
    r"vous avez reçu un mms (?:du|de) \+?[\d ]{3,20}",
    r"vous pouvez y répondre dans un délai de \d{1,3} jours\.?",
    r"vous pouvez également joindre une photo à votre réponse\.?",
    r"votre message arrivera sur le mobile de votre correspondant\.?",
    # Vodacom, MTN (South Africa), PXT (Vodafone New Zealand)
    r"this is an mms message brought to you by vodacom\..{0,200}",
    r"you have an mms message!?",
    r"you have a pxt from \+?\d{3,20}",
)

# Lines of a gateway's template that would be the sender's own anywhere else: taken off only
# once the message is known to be gateway mail.
GATEWAY_LINES = (r"(?:subject|cc|to|from|date|ämne|betreff|objet|sujet) ?:.{0,200}",)

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
        # Gateways' own titles (Three, Verizon, Orange, Sprint, Vodafone)
        "you have received a new message",
        "a picture/video message!",
        "a picture message!",
        "a video message!",
        "picture/video message",
        "new picture mail",
        "new video mail",
        "orange uk mms",
        "vodafone mms",
        "multimedia messaging",
    }
)

# Text attachments into which gateways move the sender's words.
TEXT_ATTACHMENT = re.compile(r"(?:text|txt|message|msg|mms|body|sms)(?:[_-]?\d{1,3})?\.txt")

# Carrier template images, by name: parts of a stem, and whole words of it.
ASSET_SUBSTRINGS = ("logo", "spacer", "dottedline", "dotted_line", "masthead", "banner", "advert")
ASSET_WORDS = frozenset(
    {"ad", "ads", "space", "blank", "pixel", "divider", "footer", "header", "promo", "audio",
     "video", "icon", "top", "bottom", "reply", "button"}
)  # fmt: skip

MIN_IMAGE_BYTES = 1024
BANNER_RATIO = 6
"""Long side over short side from which a gateway's image is a banner (Nokia's 468 × 60 is
7.8, Three's 670 × 104 is 6.4; a user's 160 × 31 animation, 5.2, is not)."""
BANNER_MAX_SIDE = 240
"""A banner's short side is at most this; a panorama from a phone is taller."""
TINY_SIDE = 16
"""An image this wide and high or smaller is a spacer or a bullet, not a photo."""
LINE_SIDE = 2
"""An image this thin in either direction is a divider line."""
_HEADER_FORMATS = ("GIF", "PNG", "JPEG", "BMP", "WEBP")

_BOILERPLATE = re.compile("|".join(f"(?:{p})" for p in BOILERPLATE), re.IGNORECASE)
_MAX_BOILERPLATE_CHARS = 600
_GATEWAY_LINE = re.compile("|".join(f"(?:{p})" for p in GATEWAY_LINES), re.IGNORECASE)
_MAX_BOILERPLATE_LINES = 6
_WRAPPED_LINE = 30
"""A gateway sentence wraps over at most this many lines (Orange's takes five)."""
_RULE = re.compile(r"[-=_*~·.]{3,}")
_IMAGE_NAME = re.compile(r"\.(?:gif|jpe?g|png|bmp|webp)$", re.IGNORECASE)


def is_gateway_sender(sender: str | None) -> bool:
    if not sender:
        return False
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    if domain.split(".", 1)[0] == "mms":
        return True
    return any(domain == d or domain.endswith("." + d) for d in GATEWAY_DOMAINS)


def strip_boilerplate(text: str, gateway: bool = False) -> tuple[str, bool]:
    """The text without gateway lines, and whether there were any.

    ``gateway``: the message is known to come from a gateway, so that the lines only a
    gateway's template makes sense of (its "Subject:" and "CC:" headings) go too.
    """
    lines = text.split("\n")
    out: list[str] = []
    found = False
    index = 0
    while index < len(lines):
        width = _boilerplate_width(lines, index)
        if not width and gateway and _GATEWAY_LINE.fullmatch(" ".join(lines[index].split())):
            width = 1
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
    """How many lines from ``index`` on are one gateway sentence (0: none).

    A sentence goes on to the next line only from a line the sender's or the gateway's
    wrapping filled (``_WRAPPED_LINE`` characters or more): short lines are tried alone, so
    a text of many short lines costs one match per line.
    """
    joined = ""
    for width in range(1, _MAX_BOILERPLATE_LINES + 1):
        if index + width > len(lines):
            return 0
        line = " ".join(lines[index + width - 1].split())
        if not line:
            return 0
        joined = f"{joined} {line}" if joined else line
        if len(joined) > _MAX_BOILERPLATE_CHARS:
            return 0
        if _BOILERPLATE.fullmatch(joined):
            return width
        if len(line) < _WRAPPED_LINE:
            return 0
    return 0


def is_generic_subject(title: str) -> bool:
    """A subject the phone or the gateway wrote, not the sender ("You have received a new
    message", "A Picture/Video Message!", "You have received a picture message from …")."""
    words = " ".join(title.split())
    if words.strip(" ()[]<>.").casefold() in GENERIC_SUBJECTS:
        return True
    return len(words) <= _MAX_BOILERPLATE_CHARS and bool(_BOILERPLATE.fullmatch(words))


def is_text_attachment(filename: str) -> bool:
    return bool(TEXT_ATTACHMENT.fullmatch(filename.lower()))


def is_carrier_asset(filename: str, content_type: str = "") -> bool:
    """A template image of a gateway, going by its name ("Vodafone Logo" has no extension;
    its declared type says it is an image)."""
    if not (_IMAGE_NAME.search(filename) or content_type.startswith("image/")):
        return False
    stem = filename.rsplit(".", 1)[0].lower() if _IMAGE_NAME.search(filename) else filename
    stem = stem.lower()
    if any(part in stem for part in ASSET_SUBSTRINGS):
        return True
    return any(word in ASSET_WORDS for word in re.split(r"[^a-z]+", stem))


def image_size(payload: bytes) -> tuple[int, int] | None:
    """Width and height from the image's header, or None when Pillow cannot read one.

    ``Image.open`` is lazy: it parses the header and decodes no pixels, so a hostile
    "40000 × 1" header over a few bytes costs nothing. HEIC and video are not read here.
    """
    from PIL import Image  # only the worker that parses mail pays for the import

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(payload), formats=_HEADER_FORMATS) as image:
                width, height = image.size
    except Exception:
        return None
    return width, height


def is_tiny_image(payload: bytes) -> bool:
    """Under a kilobyte, or a spacer, bullet or divider by its header's width and height.

    What Pillow cannot read is not judged tiny, so a HEIC photo or a video is never dropped.
    """
    if len(payload) < MIN_IMAGE_BYTES:
        return True
    size = image_size(payload)
    return size is not None and _tiny(*size)


def is_template_image(payload: bytes) -> bool:
    """A spacer, bullet, divider or banner: what a gateway's layout is built of, by size.

    A banner is far wider than high (or the reverse) and not large: Three's 670 × 104 header,
    the 468 × 60 of Nokia's gateways. A phone's panorama is as long but many times larger.
    """
    if len(payload) < MIN_IMAGE_BYTES:
        return True
    size = image_size(payload)
    if size is None:
        return False
    width, height = size
    if _tiny(width, height):
        return True
    long, short = max(width, height), min(width, height)
    return long >= BANNER_RATIO * short and short <= BANNER_MAX_SIDE


def _tiny(width: int, height: int) -> bool:
    return (width <= TINY_SIDE and height <= TINY_SIDE) or min(width, height) <= LINE_SIDE


# --- the SMIL presentation ----------------------------------------------------------------------

MAX_SMIL_BYTES = 64 * 1024
"""Ten times what a phone writes; the rest of a longer SMIL part is not read."""
MAX_SMIL_REFS = 200
_SMIL_MEDIA = frozenset({"img", "video", "audio", "text", "ref", "animation", "textstream"})


_SMIL_TEXT = frozenset({"text", "textstream"})


class _SmilRefs(HTMLParser):
    """The ``src`` of every media element. html.parser knows no DTD, so a hostile SMIL
    cannot declare entities to expand; it only ever sees the bounded text it is given."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.rpartition(":")[2]
        if tag not in _SMIL_MEDIA or len(self.refs) >= MAX_SMIL_REFS:
            return
        for name, value in attrs:
            if name == "src" and value:
                self.refs.append((tag, value))

    handle_startendtag = handle_starttag


def read_smil(data: bytes) -> tuple[set[str], set[str]]:
    """What the SMIL presentation shows, as :func:`ref_key` keys: every ``src``, and those
    of its pictures, videos and sounds (not its texts)."""
    text = data[:MAX_SMIL_BYTES].decode("utf-8", "replace")
    parser = _SmilRefs()
    try:
        parser.feed(text)
        parser.close()
    except Exception:
        pass  # what was read before the parser gave up still counts
    refs: set[str] = set()
    media: set[str] = set()
    for tag, src in parser.refs:
        key = ref_key(src)
        if key:
            refs.add(key)
            if tag not in _SMIL_TEXT:
                media.add(key)
    return refs, media


def smil_refs(data: bytes) -> set[str]:
    return read_smil(data)[0]


def ref_key(ref: str) -> str:
    """One form for a reference and for what it refers to: ``cid:`` and angle brackets off,
    percent-escapes undone, lowercased ("cid:%3CImage0%3E", "<image0>" → "image0")."""
    ref = ref.strip()
    if ref[:4].lower() == "cid:":
        ref = ref[4:]
    ref = urllib.parse.unquote(ref).strip().strip("<>").strip()
    return ref.lower()[:500]


def part_keys(filename: str, content_id: str | None, location: str | None) -> set[str]:
    """The keys a SMIL or HTML reference may use for one part: its Content-ID, its
    Content-Location (whole, and its last path segment) and its file name."""
    keys = {ref_key(filename)}
    for value in (content_id, location):
        if value:
            key = ref_key(value)
            keys.add(key)
            keys.add(key.rsplit("/", 1)[-1])
    keys.discard("")
    return keys


def in_a_folder(*refs: str | None) -> bool:
    """A Content-ID or Content-Location with a folder in it ("images/tpm.jpg"): a gateway's
    own asset. A phone names the parts of a message flat ("IMG_0231.jpg", "text_0.txt")."""
    for ref in refs:
        if not ref:
            continue
        key = ref_key(ref)
        path = urllib.parse.urlsplit(key).path if "://" in key else key
        if "/" in path.strip("/"):
            return True
    return False
