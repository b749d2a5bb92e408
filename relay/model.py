"""The relay's nouns as plain dataclasses: no I/O here.

``Post`` is what one mail or one upload becomes; it holds ``Item``s (one per file), each with an
original and ``Rendition``s; ``Delivery`` is one post passed on to one destination. The handler
seam (``HandlerInput``/``HandlerOutput``/``Limits``) lives here too, since ``handlers/`` may import
only this module and ``relay.errors``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Kind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    FILE = "file"


class ItemStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class PostStatus(StrEnum):
    PROCESSING = "processing"
    READY = "ready"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The post was taken down before this delivery went out."""
    RETRACTED = "retracted"
    """Delivered, then taken down from the channel again (or the channel was told to)."""


class PostState(StrEnum):
    """The post's life (relay/lifecycle.py); ``status`` says only whether its media are done."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    DELETED = "deleted"


@dataclass(slots=True)
class StoredObject:
    key: str
    mime: str
    bytes: int
    sha256: str


@dataclass(slots=True)
class Rendition:
    name: str
    key: str
    mime: str
    bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    lang: str | None = None
    """The language of a ``captions`` rendition (a BCP 47 tag)."""
    loudness: dict[str, Any] | None = None
    """The input's measured loudness (handlers/loudness.py ``Measured.as_json``)."""
    pages: int | None = None
    """A PDF's page count, on its ``preview`` (handlers/document.py)."""


@dataclass(slots=True)
class Item:
    id: str
    post_id: str
    position: int
    filename: str
    declared_mime: str | None
    status: ItemStatus = ItemStatus.QUEUED
    kind: Kind | None = None
    error: dict[str, str] | None = None
    original: StoredObject | None = None
    renditions: list[Rendition] = field(default_factory=list)
    progress: float | None = None
    alt: str | None = None


@dataclass(slots=True)
class Delivery:
    id: str
    post_id: str
    destination_id: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    remote_url: str | None = None
    attempts: int = 0
    error: dict[str, str] | None = None


@dataclass(slots=True)
class Post:
    id: str
    user_id: str
    title: str
    text: str
    status: PostStatus = PostStatus.PROCESSING
    source: str = "http"
    private: bool = False
    draft: bool = False
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    items: list[Item] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    auth_results: str | None = None
    """The sender policy's verdict on a mailed post (an Authentication-Results value)."""
    state: PostState = PostState.PUBLISHED
    publish_at: datetime | None = None
    deleted_at: datetime | None = None


# --- the handler seam -----------------------------------------------------------------------

RunBlocking = Callable[..., Awaitable[Any]]


async def run_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a handler may spend on one input; checked before decoding."""

    max_pixels: int = 80_000_000
    max_duration: float = 4 * 3600.0
    timeout: float = 600.0


@dataclass(slots=True)
class HandlerInput:
    source: Path
    """The original as received (read-only for the handler)."""
    mime: str
    """The sniffed type (libmagic), never the client's word."""
    filename: str
    workdir: Path
    """An empty folder the handler writes its outputs into; removed afterwards."""
    limits: Limits = field(default_factory=Limits)
    run_blocking: RunBlocking = run_in_thread
    """Runs a picklable blocking function off the event loop (a process pool in serve)."""
    progress: Callable[[float], None] = lambda fraction: None
    """Reports the fraction done (0..1); cheap to call often, the caller throttles."""
    options: dict[str, Any] = field(default_factory=dict)
    """Handler settings from the relay's configuration, e.g. ``{"video_crf": 23}``."""
    companions: list[Companion] = field(default_factory=list)
    """Files sent with this one that belong to it (captions of a clip, a Live Photo's clip)."""


@dataclass(frozen=True, slots=True)
class Companion:
    """A file that is not an item of its own but part of another (``relay.pairing``)."""

    role: str
    """``captions`` (an SRT or WebVTT file for a clip) or ``motion`` (a Live Photo's MOV)."""
    path: Path
    filename: str
    lang: str | None = None


@dataclass(slots=True)
class RenditionFile:
    name: str
    path: Path
    mime: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    lang: str | None = None
    loudness: dict[str, Any] | None = None
    """Audio and video: the input's measured loudness, and the target it was taken to."""
    files: tuple[Path, ...] = ()
    """Files that go with ``path`` (an HLS ladder's playlists and segments), stored under the
    same key prefix by their paths relative to ``path``'s folder."""
    pages: int | None = None
    """A PDF's ``preview``: the document's page count."""


@dataclass(slots=True)
class HandlerOutput:
    renditions: list[RenditionFile] = field(default_factory=list)
    served_original: Path | None = None
    """A cleaned copy to serve instead of the source (e.g. location stripped), or None."""
    served_original_mime: str | None = None
    served_original_sha256: str | None = None
    """The served original's SHA-256 when the handler made it from bytes it held, so that it
    is not read back for it; None: the pipeline hashes the file."""
