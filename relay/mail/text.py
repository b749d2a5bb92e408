"""Text of a message as people read it: line endings and control characters normalised, the
signature and phone footers cut, RFC 3676 format=flowed undone, and HTML turned into lines.

The HTML is first made linear-time for html.parser (see :func:`_close_markup`): this is
hostile input too.
"""

from __future__ import annotations

import binascii
import html
import re
from html.parser import HTMLParser

MAX_HTML_CHARS = 1_000_000
MAX_UU_BLOCKS = 100

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
# What Gmail ("[image: IMG_1234.jpg]") and Outlook ("[cid:image001.png@01DB…]") write into the
# plain alternative where the HTML shows an inline image: the image is an item already.
_IMAGE_PLACEHOLDER = re.compile(r"\[(?:image: [^\]\n]{0,300}|cid:[^\]\s]{1,300})\]")
# Forward and reply markers of mail clients in English, Swedish (VB, SV), German (WG, AW),
# French (TR), Spanish (RV) and Dutch (Doorst, Antw); repeated and counted ones ("Re[2]:") too.
_TITLE_PREFIX = re.compile(
    r"(?:[ \t]*(?:fwd?|fw|vb|wg|tr|rv|doorst|re|aw|sv|antw)"
    r"[ \t]*(?:\[\d{1,3}\]|\(\d{1,3}\))?[ \t]*[:：][ \t]*)+",
    re.IGNORECASE,
)


def clean_text(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = _without_placeholders([line.rstrip() for line in text.split("\n")])
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


def _without_placeholders(lines: list[str]) -> list[str]:
    kept: list[str] = []
    after_removal = False
    for line in lines:
        if line.lstrip().startswith("[") and _IMAGE_PLACEHOLDER.fullmatch(line.strip()):
            after_removal = True
            continue
        if after_removal and not line and (not kept or not kept[-1]):
            continue  # the blank lines around a removed placeholder become one
        after_removal = after_removal and not line
        kept.append(line)
    return kept


def strip_title_prefixes(title: str) -> str:
    """ "Fwd: SV: Re: Bilder" → "Bilder"."""
    found = _TITLE_PREFIX.match(title)
    return title[found.end() :].strip() if found else title


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def unflow(text: str, delsp: bool) -> str:
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


# --- uuencoded files inside a text body ---------------------------------------------------------

# Outlook Express, Eudora and Pine could send a file as a uuencoded block in the body itself.
_UU_START = re.compile(rb"(?m)^begin[ \t]+[0-7]{3,4}[ \t]+([^\r\n]{1,1000}?)[ \t]*\r?$")
_UU_END = re.compile(rb"(?m)^end[ \t]*(?:\r\n|\r|\n|\Z)")
_NOT_UU = re.compile(rb"[^\x20-\x60]")


def split_uuencoded(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The body without its uuencoded blocks, and each block's file name and bytes.

    A block that does not decode stays in the text, as the sender's client showed it.
    """
    text: list[bytes] = []
    files: list[tuple[str, bytes]] = []
    position = 0
    while len(files) < MAX_UU_BLOCKS:
        start = _UU_START.search(data, position)
        if start is None:
            break
        end = _UU_END.search(data, start.end())
        if end is None:
            break  # no block can end after this point, so none starts after it either
        decoded = _uudecode(data[start.end() : end.start()])
        if decoded is None:
            text.append(data[position : end.end()])
        else:
            text.append(data[position : start.start()])
            name = start.group(1).decode("utf-8", "replace").strip()
            files.append((name, decoded))
        position = end.end()
    text.append(data[position:])
    return b"".join(text), files


def _uudecode(block: bytes) -> bytes | None:
    """The block's bytes, or None unless every line is a well-formed uuencoded line."""
    out: list[bytes] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        count = (line[0] - 32) & 63
        if count == 0:
            break  # the zero-length line before "end"
        # Four characters per three bytes after the length character. Some encoders add a
        # padding character or two, some transports strip trailing spaces (encoded zeros);
        # anything else, or a character outside the alphabet, is prose and not a block.
        expected = (count + 2) // 3 * 4
        if len(line) - 1 > expected + 2 or _NOT_UU.search(line):
            return None
        try:
            out.append(binascii.a2b_uu(line[: expected + 1].ljust(expected + 1)))
        except binascii.Error:
            return None
    data = b"".join(out)
    return data or None


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


def html_to_text(markup: str) -> str:
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
