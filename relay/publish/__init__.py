"""Passing posts on: the ``Adapter`` protocol and the registry of adapters by type name.

An adapter declares what it ``accepts`` and publishes one post to one destination, once: it gets
a stable idempotency key per delivery and must use it so that a retry after a lost response does
not post twice. It raises ``TransientPublishError`` when the destination may take the post later
(the delivery retries with backoff) and ``PublishError`` when it will not (the delivery stops and
shows why). Third-party packages add adapters through the ``relay.adapters`` entry-point group.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from relay.errors import PublishError, TransientPublishError
from relay.publish.net import Http

log = logging.getLogger("relay.publish")


@dataclass(frozen=True, slots=True)
class Accepts:
    """What a destination takes. ``links_only`` adapters get the page URL and text; the others
    may also get media bytes within these bounds (None: no limit known)."""

    links_only: bool = True
    max_images: int = 0
    max_videos: int = 0
    image_bytes: int | None = None
    image_pixels: int | None = None
    video_bytes: int | None = None
    video_seconds: float | None = None
    text_chars: int | None = None
    alt_text_required: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    user_id: str
    type: str
    url: str | None = None
    secret: str | None = None
    token: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Captions:
    """A clip's captions track (WebVTT) as a channel that takes captions may send it."""

    lang: str
    """BCP 47, e.g. ``sv`` or ``en``."""
    mime: str
    """``text/vtt``."""
    bytes: int
    url: str
    read: Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True, slots=True)
class Media:
    """One medium of the post as an adapter may send it."""

    item_id: str
    kind: str
    mime: str
    bytes: int
    url: str
    width: int | None
    height: int | None
    duration: float | None
    alt: str
    read: Callable[[], AsyncIterator[bytes]]
    variants: dict[str, Media] = field(default_factory=dict)
    """Other forms of the same item an adapter may prefer (a video's ``original``, metadata
    stripped, its ``poster`` and its first ``captions`` track)."""
    read_from: Callable[[int], AsyncIterator[bytes]] | None = None
    """The bytes from an offset on (resuming an upload where the channel says it stopped)."""
    captions: tuple[Captions, ...] = ()
    """A clip's captions, one per language (empty for anything else)."""
    pages: int | None = None
    """A PDF's page count, where the relay could read it (handlers/document.py)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery of one post: what the adapter needs and nothing else."""

    delivery_id: str
    idempotency_key: str
    attempt: int
    post: dict[str, Any]
    """The post object of shared/CONTRACT.md, as the API shows it."""
    page_url: str
    title: str
    text: str
    media: list[Media]


@dataclass(frozen=True, slots=True)
class Published:
    remote_url: str | None
    remote_id: str | None = None


class Adapter(Protocol):
    type: ClassVar[str]
    accepts: ClassVar[Accepts]

    def __init__(self, destination: Destination, http: Http) -> None: ...

    async def publish(self, outgoing: Outgoing) -> Published: ...

    async def check(self) -> str:
        """Verify the credentials without posting; returns what the destination said."""
        ...


@dataclass(frozen=True, slots=True)
class Remote:
    """What a channel made of one delivery: enough to change or remove it later."""

    delivery_id: str
    remote_id: str | None
    remote_url: str | None
    idempotency_key: str
    """Stable across the retries of one edit or one removal (never the publish's key), so a
    repeat after a lost answer lands on the same change."""


# Capabilities beyond ``publish`` (tusd's style: small, optional, checked with ``isinstance``).
# A channel without one says so on the delivery ("this channel cannot edit a post"). Both must
# be idempotent: the job that calls them may call again after a lost answer. An adapter that
# cannot edit in place but can delete and post again does that only when the user asks.


@runtime_checkable
class Editor(Protocol):
    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """Replace the remote copy's content with ``outgoing``'s (the post as it is now)."""
        ...


@runtime_checkable
class Retractor(Protocol):
    async def retract(self, remote: Remote, post_id: str) -> None:
        """Delete (or trash) the remote copy; a copy already gone is success, not an error."""
        ...


AdapterFactory = Callable[[Destination, Http], Adapter]


_BUILTIN = (
    "webhook",
    "mastodon",
    "bluesky",
    "wordpress",
    "micropub",
    "facebook",
    "instagram",
    "threads",
    "youtube",
    "linkedin",
    "x",
)


def _builtin() -> dict[str, AdapterFactory]:
    # Our own adapters: one that does not import is a broken install, and the relay must not
    # start (it used to drop them silently, and their deliveries failed as "unknown type").
    found: dict[str, AdapterFactory] = {}
    for name in _BUILTIN:
        module = importlib.import_module(f"relay.publish.{name}")
        found[name] = module.WebhookAdapter if name == "webhook" else module.ADAPTER
    return found


@dataclass(slots=True)
class Registry:
    adapters: dict[str, AdapterFactory]
    broken: dict[str, str]
    """Entry-point name → why it did not load (shown to the operator, never to users)."""


_REGISTRY: Registry | None = None


def load() -> Registry:
    """The adapters by type name, built once: built-ins, then the ``relay.adapters`` entry points.

    A third-party entry point that fails to load is logged (name, package, error) and listed in
    ``broken``; the relay runs on without it. One operator's broken plug-in must not stop every
    other user's photos and deliveries; its own deliveries wait and retry
    (``publish.adapter_unavailable``) until the operator fixes it and restarts.
    """
    global _REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    adapters = _builtin()
    broken: dict[str, str] = {}
    for entry in entry_points(group="relay.adapters"):
        if entry.name in adapters:
            log.warning(
                "adapter entry point %s (%s) ignored: a built-in adapter has that name",
                entry.name,
                entry.value,
            )
            continue
        try:
            adapters[entry.name] = entry.load()
        except Exception as exc:  # a plug-in's import may raise anything
            broken[entry.name] = f"{type(exc).__name__}: {exc}"
            log.error(
                "adapter %r (entry point %s) cannot be loaded: %s; destinations of this type "
                "will not be delivered to until it is fixed and the relay restarted",
                entry.name,
                entry.value,
                broken[entry.name],
            )
    _REGISTRY = Registry(adapters, broken)
    return _REGISTRY


def reset() -> None:
    """Forget the loaded registry (tests that change the installed entry points)."""
    global _REGISTRY
    _REGISTRY = None


def registry() -> dict[str, AdapterFactory]:
    return load().adapters


def adapter_for(destination: Destination, http: Http) -> Adapter:
    loaded = load()
    factory = loaded.adapters.get(destination.type)
    if factory is None:
        if destination.type in loaded.broken:
            raise TransientPublishError(
                "publish.adapter_unavailable",
                f"{destination.type}: {loaded.broken[destination.type]}",
            )
        raise PublishError("publish.unknown_type", destination.type)
    return factory(destination, http)
