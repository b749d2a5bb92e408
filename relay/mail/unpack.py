"""Unpack a spooled message into parts. Runs in a worker process: it parses hostile MIME, so it
must not run on the event loop, and only names and short strings travel back. The parts are
written (and fsynced) into the spool's scratch folder; the job then hands each to the spool
(``adopt``: a rename into the local spool, an upload to the object store)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from relay.auth import new_id
from relay.errors import MediaError
from relay.mail.facts import after_first_field
from relay.mail.parse import parse_message


@dataclass(slots=True)
class UnpackedPart:
    spool_name: str
    filename: str
    content_type: str
    alt: str | None = None


@dataclass(slots=True)
class Unpacked:
    title: str = ""
    text: str = ""
    message_id: str | None = None
    content_sha256: str | None = None
    """Of the message as its sender sent it (``accept.mail_digest``): what a copy is compared
    with when it arrives later."""
    sender: str | None = None
    parts: list[UnpackedPart] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    private: bool = False
    """The sender asked for it in the mail; the address may make a post private too."""
    draft: bool = False
    delay: float | None = None
    """``[delay 2h]``: seconds after the mail's arrival."""
    publish_at: str | None = None
    """``[publish 2026-12-24 09:00]``: a local time, resolved in the user's zone."""


def unpack_to_folder(source: str, folder: str) -> Unpacked:
    """Parse the message at ``source``; each part becomes a file in ``folder`` named by its
    ``spool_name``."""
    raw = Path(source).read_bytes()
    digest = hashlib.sha256(memoryview(raw)[after_first_field(raw[:4096]) :]).hexdigest()
    try:
        parsed = parse_message(raw)
    except MediaError:
        return Unpacked(content_sha256=digest)
    unpacked = Unpacked(
        title=parsed.title,
        text=parsed.text,
        message_id=parsed.message_id,
        content_sha256=digest,
        sender=parsed.sender,
        tags=parsed.tags,
        private=parsed.private,
        draft=parsed.draft,
        delay=parsed.delay,
        publish_at=parsed.publish_at,
    )
    for part in parsed.parts:
        unpacked.parts.append(
            UnpackedPart(
                _write(Path(folder), part.payload), part.filename, part.content_type, part.alt
            )
        )
    return unpacked


def _write(folder: Path, data: bytes) -> str:
    name = new_id()
    # Not fsynced here, in a media process that would wait for the disk: the spool's adopt()
    # makes it durable before the post's record names it.
    (folder / name).write_bytes(data)
    return name
