"""How stored media are named and served: file extensions, ``Content-Disposition``, and the
signed, expiring links the local store hands out for private and draft posts' media (what a
presigned URL is on S3).

Only what a browser can show without running it (images, video, audio, PDF) is served
``inline``; active content (SVG, HTML, XML, anything unknown) is always an ``attachment``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from urllib.parse import quote

from relay import detect

IMMUTABLE = "public, max-age=31536000, immutable"
"""The ``Cache-Control`` of a stored original or rendition: its key names one version, never
written again."""


def safe_extension(filename: str, mime: str) -> str:
    guessed = mimetypes.guess_extension(mime, strict=False) or ""
    if mime == "image/jpeg":
        guessed = ".jpg"
    suffix = Path(filename).suffix.lower()
    if not guessed and suffix[1:].isalnum() and 1 < len(suffix) <= 6:
        guessed = suffix
    return guessed or ".bin"


def disposition_type(mime: str) -> str:
    return "inline" if detect.served_inline(mime) else "attachment"


def content_disposition(mime: str, filename: str | None = None) -> str:
    """``inline`` or ``attachment`` by the sniffed type, with the file's name when it has one
    (ASCII fallback plus RFC 6266 ``filename*``)."""
    disposition = disposition_type(mime)
    if filename is None:
        return disposition
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    ascii_name = "".join(c if 32 <= ord(c) < 127 else "_" for c in ascii_name) or "file"
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def served_disposition(mime: str, stored: str | None) -> str:
    """The ``Content-Disposition`` to answer with: the stored one's parameters (the file name),
    but its type decided again from the MIME type, so a rendition stored without one is shown,
    and nothing active is ever inline whatever was stored."""
    _, sep, params = (stored or "").partition(";")
    return disposition_type(mime) + sep + params


class MediaSigner:
    """HMAC-SHA256 over the storage key and an expiry time, under a subkey of the relay's
    secret. Expiries are rounded up to a step, so the links of one page view stay the same for a
    while and browsers can cache them."""

    PURPOSE = "media-url"

    def __init__(
        self, key: Callable[[], bytes], lifetime: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._key_source = key  # read on first use (or at start, via ``load``)
        self.lifetime = lifetime
        self.step = max(1, min(300, lifetime // 4))
        self.clock = clock

    @cached_property
    def _key(self) -> bytes:
        from relay.config import derive_key

        return derive_key(self._key_source(), self.PURPOSE)

    def load(self) -> None:
        """Read (or make) the key now, so a bad key file stops the relay at start."""
        _ = self._key

    def _mac(self, key: str, expires: int) -> str:
        message = f"{expires}\n{key}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, key: str) -> dict[str, str]:
        now = int(self.clock())
        expires = -(-(now + self.lifetime) // self.step) * self.step
        return {"expires": str(expires), "signature": self._mac(key, expires)}

    def check(self, key: str, expires: str | None, signature: str | None) -> int | None:
        """Seconds the link is still good for, or None when unsigned, forged or expired."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return None
        left = int(expires) - int(self.clock())
        if left <= 0:
            return None
        if not hmac.compare_digest(self._mac(key, int(expires)), signature):
            return None
        return left
