"""What a file really is: libmagic's verdict on its bytes, never the name or the declared type,
mapped through an allowlist to a kind. Anything not on the list is a plain ``file``."""

from __future__ import annotations

import threading
from pathlib import Path

import magic

from relay.model import Kind

_IMAGE = {
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/heif",
    "image/heic-sequence",
    "image/heif-sequence",
    "image/avif",
    "image/tiff",
    "image/bmp",
    "image/x-ms-bmp",
}
_VIDEO = {
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
    "video/avi",
    "video/3gpp",
    "video/3gpp2",
    "video/mpeg",
    "video/mp2t",
    "video/MP2T",  # what libmagic says when it does recognise a transport stream
    "video/x-m4v",
    "video/x-flv",
    "video/ogg",
}
_AUDIO = {
    "audio/mpeg",
    "audio/mp4",
    "audio/x-m4a",
    "audio/aac",
    "audio/x-hx-aac-adts",
    "audio/wav",
    "audio/x-wav",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/ogg",
    "audio/opus",
    "audio/amr",
    "audio/x-aiff",
    "audio/webm",
}
_DOCUMENT = {
    "application/pdf",
    "application/msword",
    "application/rtf",
    "text/rtf",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
}
_DOCUMENT_PREFIXES = (
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
)

# Served inline from the relay's origin; everything else only as a download in a sandbox.
INLINE_SAFE = _IMAGE | _VIDEO | _AUDIO | {"application/pdf"}

_lock = threading.Lock()
_magic = magic.Magic(mime=True)


def sniff(path: Path) -> str:
    """libmagic's MIME type for the file's content (blocking: call it off the event loop)."""
    with _lock:
        found = _magic.from_file(str(path))
    if found in (None, "", "application/octet-stream") and _transport_stream(path):
        return "video/mp2t"
    return found or "application/octet-stream"


def _transport_stream(path: Path, packets: int = 8) -> bool:
    """MPEG-TS (188-byte packets) or M2TS (192, sync byte after a 4-byte time code), which
    libmagic 5.44 misses as ffmpeg and many cameras write them: a sync byte in each of the first
    ``packets`` packets."""
    with open(path, "rb") as f:
        head = f.read(192 * packets)
    return any(
        len(head) >= start + size * (packets - 1) + 1
        and all(head[start + size * n] == 0x47 for n in range(packets))
        for size, start in ((188, 0), (192, 4))
    )


def kind_of(mime: str) -> Kind:
    if mime in _IMAGE:
        return Kind.IMAGE
    if mime in _VIDEO:
        return Kind.VIDEO
    if mime in _AUDIO:
        return Kind.AUDIO
    if mime in _DOCUMENT or mime.startswith(_DOCUMENT_PREFIXES):
        return Kind.DOCUMENT
    return Kind.FILE


def served_inline(mime: str) -> bool:
    return mime in INLINE_SAFE


def libmagic_version() -> str:
    return str(magic.version()) if hasattr(magic, "version") else "unknown"
