"""Replies to the relay's confirmation mail: ``[delete]`` takes the post down, new text (and
``[edit]``) replaces its text.

Secret addresses are kept only as hashes, so the confirmation cannot point back at one. Its
``Reply-To`` is a per-post signed address instead, ``reply+POST_ID.SIG@RELAY_MAIL_DOMAIN``: SIG
is an HMAC of the post id under a subkey of the relay's secret key, 16 base32 characters (80
bits), compared in constant time. The SMTP door takes RCPT for such an address only when the
signature holds (anything else is an unknown recipient, counted by the failure throttle), spools
the message like any other and queues a ``mail_command`` job; the ``250`` comes after both.

The job acts only for a PROVEN sender (SMTP AUTH as the owner, or DKIM/SPF aligned with From,
as ``relay.reply.reply_address`` decides for the confirmation itself) who is also the proven
sender of the original post. Anything else is logged and dropped, never answered (a forged
From must not make the relay write to whoever it names).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from relay import jobs
from relay.errors import MediaError
from relay.mail.text import clean_text, strip_title_prefixes

log = logging.getLogger("relay.mail.replies")

MAIL_COMMAND = "mail_command"
"""Job kind; ref: ``MESSAGE_SPOOL_NAME.META_SPOOL_NAME`` (``relay.db.queries`` keeps both)."""
PURPOSE = "mail-reply-address"
PREFIX = "reply+"
SIGNATURE_CHARS = 16
_POST_ID = re.compile(r"[a-z0-9]{1,40}")


# --- the signed address -----------------------------------------------------------------------


def signature(key: bytes, post_id: str) -> str:
    mac = hmac.new(key, b"reply-to\0" + post_id.encode(), hashlib.sha256).digest()
    # Lowercase: mail systems may fold the local part's case, and base32 survives that.
    return base64.b32encode(mac).decode().lower()[:SIGNATURE_CHARS]


def address(key: bytes, post_id: str, domain: str) -> str:
    return f"{PREFIX}{post_id}.{signature(key, post_id)}@{domain}"


def post_of(recipient: str, key: bytes, domain: str) -> str | None:
    """The post id a signed reply address names; None if it is not one or its signature is
    wrong."""
    local, at, dom = recipient.strip().strip("<>").rpartition("@")
    if not at or dom.lower().rstrip(".") != domain.lower() or not local.lower().startswith(PREFIX):
        return None
    post_id, dot, sig = local.lower()[len(PREFIX) :].rpartition(".")
    if not dot or not _POST_ID.fullmatch(post_id) or len(sig) != SIGNATURE_CHARS:
        return None
    if not hmac.compare_digest(signature(key, post_id).encode(), sig.encode()):
        return None
    return post_id


def is_reply_address(recipient: str) -> bool:
    """Looks like one of ours (signed or not): never a secret address."""
    return recipient.strip().strip("<>").lower().startswith(PREFIX)


# --- reading a reply --------------------------------------------------------------------------

_DELETE = re.compile(r"\[[ \t]*(?:delete|retract)[ \t]*\]", re.IGNORECASE)
_EDIT = re.compile(r"\[[ \t]*edit[ \t]*\]", re.IGNORECASE)
# Where the quoted original starts, in the clients people use (English, Swedish, German,
# French, Spanish, Dutch): "On Mon, 2 Jun 2025, Relay <…> wrote:" (Gmail may wrap it onto a
# second line), Outlook's separator lines, and a forwarded-header block.
_ATTRIBUTION = re.compile(
    r"^(?:on|den|am|le|el|op)\b.{0,300}\b(?:wrote|skrev|schrieb|a écrit|escribió|schreef)"
    r"(?:\b.{0,300})?:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|ursprungligt meddelande|ursprüngliche nachricht"
    r"|message d'origine|mensaje original|oorspronkelijk bericht)\s*-{2,}|_{10,})\s*$",
    re.IGNORECASE,
)
_HEADER_BLOCK = re.compile(r"^\s*(?:from|från|von|de|van)\s*:\s", re.IGNORECASE)


@dataclass(slots=True)
class Reply:
    sender: str | None
    title: str
    text: str
    delete: bool
    edit: bool


def new_text(text: str) -> str:
    """The reply's own words: quoted lines, the quoted original under its attribution line or
    separator, and signatures and phone footers cut."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _SEPARATOR.match(line):
            break
        # Outlook without a separator line: "From: …" followed by "Sent:"/"To:" lines.
        if _HEADER_BLOCK.match(line) and any(
            re.match(
                r"\s*(?:sent|skickat|gesendet|envoyé|enviado|verzonden|to|till|an)\s*:", nxt, re.I
            )
            for nxt in lines[index + 1 : index + 3]
        ):
            break
        two = " ".join(s.strip() for s in lines[index : index + 2])
        if stripped and (
            _ATTRIBUTION.match(stripped)
            or (re.match(r"^(?:on|den|am|le|el|op)\b", stripped, re.I) and _ATTRIBUTION.match(two))
        ):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line)
    return clean_text("\n".join(kept))


def read_reply(path: str) -> Reply | None:
    """Parse a spooled reply (hostile MIME: runs in the worker pool). None if unreadable."""
    from relay.mail.parse import parse_message

    try:
        parsed = parse_message(Path(path).read_bytes())
    except MediaError:
        return None
    title = strip_title_prefixes(" ".join(parsed.title.split()))
    # Commands count only in the sender's own words: the quoted confirmation names them too.
    own = new_text(parsed.text)
    delete = bool(_DELETE.search(title) or _DELETE.search(own))
    edit = bool(_EDIT.search(title) or _EDIT.search(own))
    title = " ".join(_EDIT.sub(" ", _DELETE.sub(" ", title)).split())
    text = clean_text(_EDIT.sub("", _DELETE.sub("", own)))
    return Reply(parsed.sender, strip_title_prefixes(title), text, delete, edit)


# --- the door's part --------------------------------------------------------------------------


def queue(conn: Connection, message: str, meta: str, owner: str, max_attempts: int) -> None:
    """Queue the command for a spooled reply (``meta``: its verdict, spooled beside it)."""
    jobs.enqueue(conn, MAIL_COMMAND, f"{message}.{meta}", max_attempts, owner=owner)


def meta_bytes(post_id: str, auth_results: str) -> bytes:
    return json.dumps({"post": post_id, "auth_results": auth_results}).encode()
