"""MIME → post: one raw mail message becomes a title, a text and its attachments.

The subject is the title; the plain text (or the text of the HTML when there is no plain text),
without its signature and phone footer, is the text; every attachment and inline image is one
``MailPart``. :func:`parse_message` raises nothing but ``MediaError("mail.unreadable")``, and only
when nothing at all in the input is usable.

What clients and gateways wrap around a message is taken off on the way: Outlook's winmail.dat
is opened (:mod:`relay.mail.tnef`), Apple's resource forks are dropped
(:mod:`relay.mail.applefile`), uuencoded files in a text body are taken out, carrier MMS
templates removed (:mod:`relay.mail.mms`) and the sender's commands read
(:mod:`relay.mail.commands`). Header fields, charsets and file names are read in
:mod:`relay.mail.headers`, text is cleaned and HTML read in :mod:`relay.mail.text`.

Anyone who knows or guesses a secret address can send anything, so this is built for hostile
input. The stdlib feed parser recurses once per nesting level (a few hundred levels end in
``RecursionError``, losing the whole message) and tests every line against every open boundary
(time grows as size × depth). So the MIME tree is walked here: each entity's header block
goes to ``BytesParser(policy=email.policy.default)`` for its header objects, and
``get_payload(decode=True)`` undoes the transfer encoding, but multipart bodies are split with
one linear regex scan per level, under caps on depth, entities, parts, text and time. Beyond a
cap the walk stops descending and returns what it has.
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pybase64

from relay.errors import MediaError
from relay.mail import applefile, commands, mms
from relay.mail.headers import (
    Entity,
    clean_filename,
    decode_text,
    derived_filename,
    filename_of,
    message_id_of,
    read_entity,
    sender_of,
    title_of,
    type_from_name,
)
from relay.mail.text import (
    clean_text,
    cut,
    html_to_text,
    split_uuencoded,
    strip_title_prefixes,
    unflow,
)
from relay.mail.tnef import read_tnef

log = logging.getLogger(__name__)

MAX_DEPTH = 20
"""Levels of multipart and message/rfc822 nesting followed."""
MAX_PARTS = 500
MAX_ENTITIES = 1000
"""MIME entities visited in one message, containers and texts included."""
MAX_SECONDS = 10.0
"""Wall time for one message; only hostile input comes near it."""
MAX_TEXT_CHARS = 100_000
MAX_TEXT_BYTES = 8_000_000
MAX_SMIL_BYTES = 256 * 1024
"""SMIL read in one message, in total (one part is read up to ``mms.MAX_SMIL_BYTES``)."""
"""Decoded text/plain and text/html bytes read in one message, in total."""


@dataclass(slots=True)
class MailPart:
    filename: str
    """Never empty; derived from the type when the message names none."""
    content_type: str
    """The declared type, lowercased: a hint only, the pipeline sniffs the bytes."""
    payload: bytes
    inline: bool
    """Content-Disposition inline, or an image the HTML shows through a cid: URL."""
    alt: str | None = None
    """From the sender's ``[alt N: …]`` command."""


@dataclass(slots=True)
class ParsedMail:
    title: str
    text: str
    parts: list[MailPart]
    message_id: str | None
    sender: str | None
    tags: list[str] = field(default_factory=list)
    private: bool = False
    draft: bool = False
    delay: float | None = None
    publish_at: str | None = None


def parse_message(raw: bytes) -> ParsedMail:
    """Read one message; raise ``MediaError("mail.unreadable")`` only when nothing is usable."""
    try:
        return _parse(bytes(raw))
    except MediaError:
        raise
    except Exception as exc:
        # Everything below is guarded; this is the net for what nobody foresaw, so that the
        # caller sees one documented failure instead of whatever broke.
        log.warning("mail parse failed", exc_info=True)
        raise MediaError("mail.unreadable", f"{type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes) -> ParsedMail:
    if not raw.strip():
        raise MediaError("mail.unreadable", "empty message")
    top = read_entity(raw, 0, len(raw))
    if not top.has_headers and b"\x00" in raw[:8192]:
        raise MediaError("mail.unreadable", "binary data without mail headers")
    walker = _Walker()
    sink: _Sink = []
    walker.walk_child(top, 0, sink)
    # Outlook's own body inside winmail.dat, then a forwarded message's words, stand in only
    # when the sender's message has no text of its own.
    text = _pick_text(sink) or _pick_text(walker.tnef_texts)
    if not text:
        text = "\n\n".join(t for t in (_pick_text(s) for s in walker.forwarded) if t)
    text, boilerplate = mms.strip_boilerplate(cut(text, MAX_TEXT_CHARS))
    sender = sender_of(top)
    gateway = boilerplate or walker.smil or mms.is_gateway_sender(sender)
    if gateway:
        text, _ = mms.strip_boilerplate(text, gateway=True)
        if not text:
            # The plain text was nothing but the gateway's ("view this in a graphical mail
            # program", Three; the subject and a "[picture inserted]" line, Vodafone): the
            # sender's words are in the gateway's HTML, beside it or after it.
            text = _gateway_html_text(sink, walker.html_alternatives)
    parts, gateway_texts = _keep_parts(walker.finish_parts(), gateway, walker)
    text = _join_texts([text, *gateway_texts])

    body = commands.extract(text)
    subject = commands.extract(title_of(top))
    title = strip_title_prefixes(" ".join(subject.text.split()))
    if mms.is_generic_subject(title):
        title = ""
    for number, alt in sorted({**subject.alts, **body.alts}.items()):
        if number <= len(parts):
            parts[number - 1].alt = alt
    mail = ParsedMail(
        title=title,
        text=cut(body.text, MAX_TEXT_CHARS),
        parts=parts,
        message_id=message_id_of(top),
        sender=sender,
        tags=commands.merge_tags(subject.tags, body.tags),
        private=subject.private or body.private,
        draft=subject.draft or body.draft,
        delay=body.delay if body.delay is not None else subject.delay,
        publish_at=body.publish_at or subject.publish_at,
    )
    if not (mail.title or mail.text or mail.parts or mail.sender or mail.message_id):
        raise MediaError("mail.unreadable", "no headers, text or attachments")
    return mail


_MAX_GATEWAY_HTMLS = 3
"""HTML texts looked at for the sender's words; a gateway sends one."""


def _gateway_html_text(sink: _Sink, alternatives: list[str]) -> str:
    """The first HTML text of a gateway's message that is more than the gateway's lines."""
    htmls = [t for kind, t in sink if kind == "html"] + alternatives
    for html_text in htmls[:_MAX_GATEWAY_HTMLS]:
        text, _ = mms.strip_boilerplate(clean_text(cut(html_text, MAX_TEXT_CHARS)), gateway=True)
        if text:
            return text
    return ""


def _keep_parts(
    found: list[_Found], gateway: bool, walker: _Walker
) -> tuple[list[MailPart], list[str]]:
    """The parts that are the sender's, and the texts a gateway moved into attachments.

    Structure first: what the SMIL presentation shows is the sender's, whatever its name or
    size (a text it shows is the sender's words, "Hello.txt" as Nokia phones name them); an
    image that only the gateway's HTML shows, when the SMIL accounts for all it shows, is the
    gateway's. Names and sizes judge only what the structure leaves open.
    """
    if not gateway:
        return [f.part for f in found], []
    keys = [mms.part_keys(f.part.filename, f.content_id, f.location) for f in found]
    smil = walker.smil_refs
    named: set[str] = set().union(*(k & smil for k in keys))
    smil_names_parts = bool(named)
    # Only a SMIL that accounts for every picture, video and sound it shows (each one a part
    # here) is sure enough to condemn what it leaves out: a reference in a form not matched
    # (an unusual Content-ID) must not cost the sender a photo.
    smil_is_whole = bool(walker.smil_media) and walker.smil_media <= named
    parts: list[MailPart] = []
    texts: list[str] = []
    smil_texts = smil - walker.smil_media
    for f, part_keys in zip(found, keys, strict=True):
        in_smil = smil_names_parts and bool(part_keys & smil)
        part = f.part
        if part.content_type in ("text/plain", "application/octet-stream") and (
            mms.is_text_attachment(part.filename)
            or (part.content_type == "text/plain" and part_keys & smil_texts)
        ):
            text, _ = commands.cut_at_end(decode_text(part.payload, f.charset))
            texts.append(mms.strip_boilerplate(clean_text(text))[0])
            continue
        if in_smil:
            parts.append(part)
            continue
        image = part.content_type.startswith("image/") or type_from_name(part.filename) in (
            "image/gif",
            "image/png",
            "image/jpeg",
        )
        if not image:
            parts.append(part)
        elif part_keys & walker.cid_refs and (
            smil_is_whole or mms.in_a_folder(f.content_id, f.location)
        ):
            # The gateway's HTML shows it, and the sender's presentation does not, or it comes
            # from the gateway's own folder ("images/tpm.jpg", Three): a phone's parts have
            # flat names.
            continue
        elif mms.is_carrier_asset(part.filename, part.content_type):
            continue
        elif not mms.is_template_image(part.payload):
            parts.append(part)
    return parts, texts


def _join_texts(texts: list[str]) -> str:
    """Texts joined by a blank line, each once (gateways often send the words twice)."""
    kept: list[str] = []
    for text in texts:
        text = text.strip("\n")
        if text and text not in kept:
            kept.append(text)
    return "\n\n".join(kept)


# --- the walk ---------------------------------------------------------------------------------

_Sink = list[tuple[str, str]]
"""Text found under one node, in order: ("plain" | "html", decoded text)."""

_NOT_CONTENT = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-encrypted",  # the "Version: 1" control part of multipart/encrypted
        "text/rfc822-headers",
    }
)
_MEDIA_MAIN = frozenset({"image", "video", "audio", "application"})
# The presentation layer of an MMS: what a phone shows in which order, not content.
_SMIL = frozenset({"application/smil", "application/smil+xml", "text/x-smil"})
_TNEF = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_UU_BEGIN = re.compile(rb"(?m)^begin(?:-base64)? [0-7]{1,6} ")
_CID_REF = re.compile(rb"cid:([^\s\"'<>()]{1,500})", re.IGNORECASE)
_MAX_CID_REFS = 1000
_SNIFF_BOUNDARY = re.compile(rb"(?m)^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$")
_LENIENT_BOUNDARY = re.compile(r"(?i)(?:^|;)\s*boundary\s*=\s*(?:\"([^\"]*)\"|([^\s;]+))")


@dataclass(slots=True)
class _Found:
    part: MailPart
    content_id: str | None
    disposition: str | None
    charset: str | None = None
    location: str | None = None
    """Content-Location: MMS parts keep the name the phone gave them there."""


class _Walker:
    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_SECONDS
        self.entities = 0
        self.text_bytes = 0
        self.found: list[_Found] = []
        self.cid_refs: set[str] = set()
        self.forwarded: list[_Sink] = []
        self.tnef_texts: _Sink = []
        self.smil = False
        self.smil_refs: set[str] = set()
        self.smil_media: set[str] = set()
        """The SMIL's pictures, videos and sounds (its texts left out)."""
        self.smil_bytes = 0
        """What the SMIL presentations show, as :func:`mms.ref_key` keys."""
        self.html_alternatives: list[str] = []
        """The text of HTML alternatives that lost to a plain one."""

    def exhausted(self) -> bool:
        return (
            self.entities >= MAX_ENTITIES
            or len(self.found) >= MAX_PARTS
            or time.monotonic() > self.deadline
        )

    def finish_parts(self) -> list[_Found]:
        for found in self.found:
            cid = found.content_id
            found.part.inline = found.disposition == "inline" or (
                cid is not None and (cid in self.cid_refs or cid.lower() in self.cid_refs)
            )
        return self.found

    def walk_child(self, ent: Entity, depth: int, sink: _Sink | None) -> None:
        """Walk one entity; a failure in it loses that entity, never the message."""
        if self.exhausted():
            return
        self.entities += 1
        try:
            self._walk(ent, depth, sink)
        except Exception:
            log.debug("skipping an unreadable MIME entity", exc_info=True)

    def _walk(self, ent: Entity, depth: int, sink: _Sink | None) -> None:
        main, _, sub = ent.ctype.partition("/")
        if main == "multipart":
            self._multipart(ent, sub, depth, sink)
        elif main == "message":
            # Delivery status, disposition notifications, partial and external bodies are
            # reports about mail, not content.
            if sub in ("rfc822", "global"):
                self._forwarded(ent, depth)
        else:
            self._leaf(ent, sink)

    def _multipart(self, ent: Entity, sub: str, depth: int, sink: _Sink | None) -> None:
        if depth >= MAX_DEPTH:
            return
        delimiters = _first_delimiter(ent)
        if delimiters is None:
            # No boundary anywhere in the body: what is there is all there is; read it as text.
            ent.ctype = "text/plain"
            self._leaf(ent, sink)
            return
        default = "message/rfc822" if sub == "digest" else "text/plain"
        children = self._children(ent, *delimiters, default)
        if sub == "alternative":
            choices: list[_Sink] = []
            for child in children:
                choice: _Sink = []
                self.walk_child(child, depth + 1, choice)
                choices.append(choice)
            if sink is not None:
                best = _best_alternative(choices)
                sink.extend(best)
                for choice in choices:
                    if choice is not best:
                        self.html_alternatives.extend(t for k, t in choice if k == "html")
        elif sub == "report":
            # A delivery report: only its first, human-readable part is anybody's text; the
            # status and the returned message are neither text nor parts.
            first = next(children, None)
            if first is not None:
                self.walk_child(first, depth + 1, sink)
        else:
            # mixed, related, signed (its signature part is not content), digest, parallel...
            for child in children:
                self.walk_child(child, depth + 1, sink)

    def _children(
        self, ent: Entity, pattern: re.Pattern[bytes], match: re.Match[bytes], default: str
    ) -> Iterator[Entity]:
        raw, end = ent.raw, ent.end
        while not self.exhausted():
            start = match.end()
            following = pattern.search(raw, start, end)
            closing = bool(match.group(1))  # "--boundary--"
            if not closing:
                stop = _before_eol(raw, start, following.start()) if following else end
                if stop > start:  # consecutive delimiters make no empty parts, as in the stdlib
                    yield read_entity(raw, start, stop, default)
            # A close delimiter with more delimiters after it means the sender reused the
            # boundary for a nested multipart: read on rather than lose what follows.
            if following is None:
                return
            match = following

    def _forwarded(self, ent: Entity, depth: int) -> None:
        if depth >= MAX_DEPTH:
            return
        if ent.cte == "8bit":
            inner = read_entity(ent.raw, ent.body_start, ent.end)
        else:
            # Some clients base64-encode attached messages; the message is what they encode.
            data = self._payload(ent)
            if not data:
                return
            inner = read_entity(data, 0, len(data))
        sink: _Sink = []
        self.forwarded.append(sink)
        self.walk_child(inner, depth + 1, sink)

    def _leaf(self, ent: Entity, sink: _Sink | None) -> None:
        main, _, sub = ent.ctype.partition("/")
        if ent.ctype in _NOT_CONTENT:
            return
        if ent.ctype in _SMIL or (
            main in ("application", "text") and filename_of(ent).lower().endswith(".smil")
        ):
            self.smil = True
            # A message may hold many SMIL parts; together they are read up to one budget
            # (html.parser takes a few milliseconds per kilobyte of tags).
            budget = MAX_SMIL_BYTES - self.smil_bytes
            data = self._payload(ent) if budget > 0 else None
            if data and len(self.smil_refs) < mms.MAX_SMIL_REFS:
                data = data[: min(budget, mms.MAX_SMIL_BYTES)]
                self.smil_bytes += len(data)
                refs, media = mms.read_smil(data)
                self.smil_refs |= refs
                self.smil_media |= media
            return
        attachment = ent.disposition == "attachment"
        if main == "text" and not attachment and sub in ("plain", "html"):
            self._text(ent, sub, sink)
            return
        filename = filename_of(ent)
        if not (attachment or main in _MEDIA_MAIN or filename):
            return  # an unnamed calendar, vCard or other text/* meant for software, not people
        payload = self._payload(ent)
        if not payload:
            return
        ctype = ent.ctype
        if ctype == "application/applefile":
            if applefile.magic(payload) == applefile.APPLE_DOUBLE:
                return  # Finder info and resource fork; the data fork is the part beside it
            fork = applefile.data_fork(payload)
            if fork is not None:
                filename = fork[0] or filename
                payload = fork[1]
                ctype = type_from_name(filename) or "application/octet-stream"
        if (ctype in _TNEF or filename.lower() == "winmail.dat") and self._tnef(payload):
            return
        self._add(filename, ctype, payload, ent.content_id, ent.disposition)
        self.found[-1].charset = ent.params.get("charset")
        self.found[-1].location = ent.fields.get("content-location")

    def _add(
        self, filename: str, ctype: str, payload: bytes, cid: str | None, disposition: str | None
    ) -> None:
        part = MailPart(
            filename=clean_filename(filename) or derived_filename(ctype, len(self.found) + 1),
            content_type=ctype,
            payload=payload,
            inline=False,  # settled in finish_parts, once every cid: reference is known
        )
        self.found.append(_Found(part, cid, disposition))

    def _tnef(self, payload: bytes) -> bool:
        """Take the files and body out of a winmail.dat; False when it is not TNEF."""
        content = read_tnef(payload, max_attachments=MAX_PARTS - len(self.found))
        if content is None:
            return False
        for attachment in content.attachments:
            name = clean_filename(attachment.name)
            declared = attachment.mime if _MIME_TYPE.fullmatch(attachment.mime) else ""
            ctype = declared or type_from_name(name) or "application/octet-stream"
            self._add(name, ctype, attachment.data, None, "attachment")
        if content.text.strip():
            self.tnef_texts.append(("plain", content.text))
        if content.html.strip():
            self.tnef_texts.append(("html", html_to_text(content.html[:MAX_TEXT_BYTES])))
        return True

    def _text(self, ent: Entity, sub: str, sink: _Sink | None) -> None:
        if sink is None and sub != "html":
            return
        if self.text_bytes >= MAX_TEXT_BYTES:
            return
        data = self._payload(ent)
        if not data:
            return
        data = data[: MAX_TEXT_BYTES - self.text_bytes]
        self.text_bytes += len(data)
        if sub == "html":
            # Images the HTML shows through cid: URLs are inline, whichever alternative holds
            # the HTML; so read the references even where the plain text wins.
            self._collect_cids(data)
            if sink is not None:
                sink.append(("html", html_to_text(decode_text(data, ent.params.get("charset")))))
            return
        if b"begin" in data:
            data, files = split_uuencoded(data)
            for name, payload in files:
                ctype = type_from_name(name) or "application/octet-stream"
                self._add(name, ctype, payload, None, "attachment")
        text = decode_text(data, ent.params.get("charset"))
        if ent.params.get("format", "").lower() == "flowed":
            text = unflow(text, delsp=ent.params.get("delsp", "").lower() == "yes")
        if sink is not None:
            sink.append(("plain", text))

    def _collect_cids(self, html: bytes) -> None:
        for count, match in enumerate(_CID_REF.finditer(html)):
            if count >= _MAX_CID_REFS or len(self.cid_refs) >= _MAX_CID_REFS:
                break
            ref = urllib.parse.unquote(match.group(1).decode("ascii", "replace"))
            self.cid_refs.add(ref)
            self.cid_refs.add(ref.lower())

    def _payload(self, ent: Entity) -> bytes | None:
        body = ent.raw[ent.body_start : ent.end]
        if ent.cte == "x-uuencode" and not _UU_BEGIN.search(body):
            return None  # the stdlib would hand back the encoded text as if it were the file
        if ent.cte == "base64":
            # What the stdlib gives for base64 (characters outside the alphabet, line breaks
            # included, skipped), without its copies to text and back, its split into lines
            # and its validating regex: for a phone photo those cost more than its renditions.
            # Bad padding is left to the stdlib's repairs below.
            with contextlib.suppress(binascii.Error):
                return _base64(body)
        try:
            ent.msg.set_payload(body.decode("ascii", "surrogateescape"))
            data = ent.msg.get_payload(decode=True)
        except Exception:
            log.debug("undecodable part skipped", exc_info=True)
            return None
        finally:
            ent.msg.set_payload(None)  # do not keep a second copy of the body alive
        return data if isinstance(data, bytes) else None


def _base64(body: bytes) -> bytes:
    """``binascii.a2b_base64(body)``, through pybase64's SIMD decoder when the answer is sure to
    be the same: both skip what is outside the alphabet, but the stdlib stops at the first
    padding that ends a quantum where pybase64 reads on, so a body with "=" anywhere but at its
    end goes to the stdlib (the same on 300,000 fuzzed bodies)."""
    padding = body.find(b"=")
    if padding < 0 or not body[padding:].strip(b"= \t\r\n"):
        return pybase64.b64decode(body, validate=False)
    return binascii.a2b_base64(body)


def _first_delimiter(ent: Entity) -> tuple[re.Pattern[bytes], re.Match[bytes]] | None:
    """The delimiter line pattern of a multipart body and its first match, if any."""
    seen: set[bytes] = set()
    for boundary in _boundary_candidates(ent):
        if not boundary or len(boundary) > 256 or boundary in seen:
            continue
        seen.add(boundary)
        # The literal comes first so that the regex engine can skip ahead to it; the lookbehind
        # after it then asks for a line start.
        delimiter = re.escape(b"--" + boundary)
        # "--boundary-" (one dash short, as Orange's MMS gateway closes) closes too.
        pattern = re.compile(
            delimiter + rb"(?<![^\r\n]" + delimiter + rb")(--?)?[ \t]*(?:\r\n|\r|\n|\Z)"
        )
        match = pattern.search(ent.raw, ent.body_start, ent.end)
        if match:
            return pattern, match
    return None


def _boundary_candidates(ent: Entity) -> Iterator[bytes]:
    declared = ent.params.get("boundary")
    if declared:
        yield declared.encode("utf-8", "replace")
    # Unquoted boundaries with "=" or "/" in them (Outlook Express) are cut short by a strict
    # parser; the raw text has them whole.
    lenient = _LENIENT_BOUNDARY.search(ent.fields.get("content-type", ""))
    if lenient:
        yield (lenient.group(1) or lenient.group(2) or "").encode("utf-8", "replace")
    # Last resort for a declared boundary that the body does not use: the first line that looks
    # like a delimiter near the top of the body.
    sniffed = _SNIFF_BOUNDARY.search(ent.raw, ent.body_start, min(ent.end, ent.body_start + 8192))
    if sniffed:
        yield sniffed.group(1)


def _before_eol(raw: bytes, start: int, stop: int) -> int:
    """The line break before a delimiter belongs to the delimiter (RFC 2046)."""
    if stop - start >= 2 and raw[stop - 2 : stop] == b"\r\n":
        return stop - 2
    if stop > start and raw[stop - 1] in b"\r\n":
        return stop - 1
    return stop


def _best_alternative(choices: list[_Sink]) -> _Sink:
    for choice in choices:
        if any(kind == "plain" and text.strip() for kind, text in choice):
            return choice
    for choice in choices:
        if any(text.strip() for _, text in choice):
            return choice
    return []


def _pick_text(sink: _Sink) -> str:
    """The plain segments when there are any, else the HTML ones; joined by a blank line.

    ``[end]`` cuts its segment and drops the segments after it, before signatures and footers
    are looked for, so a footer it exposes at the end goes too.
    """
    for kind in ("plain", "html"):
        texts: list[str] = []
        for segment_kind, segment in sink:
            if segment_kind != kind:
                continue
            segment, ended = commands.cut_at_end(segment)
            cleaned = clean_text(segment)
            if cleaned:
                texts.append(cleaned)
            if ended:
                break
        if texts:
            return clean_text("\n\n".join(texts))
    return ""
