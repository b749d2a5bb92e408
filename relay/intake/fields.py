"""The fields an upload may set at creation, the same on every HTTP door: multipart form fields,
query parameters or ``Relay-*`` headers of a raw upload, and tus ``Upload-Metadata`` keys.

``alt`` (one per file, in order), ``tags`` (comma-separated, or repeated), ``draft`` and
``private`` (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``), ``publish_at``
(RFC 3339 with an offset; a time past publishes now) and ``destinations`` (comma-separated
destination ids or types: deliver there alone). A value that is not one of these is a 422
``request.invalid``, before any byte is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from relay.errors import IntakeError

NAMES = ("alt", "tags", "draft", "private", "publish_at", "destinations")
HEADERS = {
    "alt": "Relay-Alt",
    "tags": "Relay-Tags",
    "draft": "Relay-Draft",
    "private": "Relay-Private",
    "publish_at": "Relay-Publish-At",
    "destinations": "Relay-Destinations",
}
"""Header names of a raw upload; values are percent-encoded UTF-8 (headers are ASCII)."""

MAX_TAGS = 50
MAX_DESTINATIONS = 20
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(slots=True)
class UploadFields:
    alts: list[str | None] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    draft: bool = False
    private: bool = False
    publish_at: float | None = None
    destinations: str | None = None
    """Comma-joined ids or types (``posts.only_destination``); None: every destination."""


def flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise IntakeError("request.invalid", f"{name}: not a boolean: {value[:40]!r}")


def rfc3339(name: str, value: str) -> float:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise IntakeError("request.invalid", f"{name}: not RFC 3339: {value[:60]!r}") from exc
    if when.tzinfo is None:
        raise IntakeError("request.invalid", f"{name}: needs a time zone offset (or Z)")
    return when.timestamp()


def parse(values: dict[str, list[str]]) -> UploadFields:
    """``values``: each field's values in the order given (a form may repeat ``alt``/``tags``)."""
    found = UploadFields()
    found.alts = [v.strip() or None for v in values.get("alt", [])]
    tags: list[str] = []
    for value in values.get("tags", []):
        tags += [t.strip() for t in value.split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise IntakeError("request.invalid", f"tags: over {MAX_TAGS}")
    found.tags = list(dict.fromkeys(tags))
    for name in ("draft", "private"):
        if values.get(name):
            setattr(found, name, flag(name, values[name][-1]))
    if values.get("publish_at") and values["publish_at"][-1].strip():
        found.publish_at = rfc3339("publish_at", values["publish_at"][-1])
    wanted: list[str] = []
    for value in values.get("destinations", []):
        wanted += [d.strip() for d in value.split(",") if d.strip()]
    if len(wanted) > MAX_DESTINATIONS or any(len(d) > 64 or "," in d for d in wanted):
        raise IntakeError("request.invalid", "destinations: too many, or too long")
    found.destinations = ",".join(dict.fromkeys(wanted)) or None
    return found


def from_headers(headers: dict[str, str] | object) -> dict[str, list[str]]:
    """The ``Relay-*`` headers of a raw upload, percent-decoded."""
    found: dict[str, list[str]] = {}
    get = headers.get  # type: ignore[attr-defined]
    for name, header in HEADERS.items():
        value = get(header)
        if value is not None:
            found[name] = [unquote(value, errors="replace")]
    return found
