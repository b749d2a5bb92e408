"""Passing posts on: the ``Adapter`` protocol and the registry of adapters by type name.

An adapter declares what it ``accepts`` and publishes one post to one destination, once: it gets
a stable idempotency key per delivery and must use it so that a retry after a lost response does
not post twice. It raises ``TransientPublishError`` when the destination may take the post later
(the delivery retries with backoff) and ``PublishError`` when it will not (the delivery stops and
shows why). Third-party packages add adapters through the ``relay.adapters`` entry-point group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from relay.errors import PublishError
from relay.publish.net import Http


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


def _builtin() -> dict[str, AdapterFactory]:
    from relay.publish import webhook

    found: dict[str, AdapterFactory] = {"webhook": webhook.WebhookAdapter}
    for name in ("mastodon", "bluesky", "wordpress", "micropub"):
        try:
            module = __import__(f"relay.publish.{name}", fromlist=["ADAPTER"])
        except ImportError:
            continue
        found[name] = module.ADAPTER
    return found


def registry() -> dict[str, AdapterFactory]:
    adapters = _builtin()
    for entry in entry_points(group="relay.adapters"):
        adapters.setdefault(entry.name, entry.load())
    return adapters


def adapter_for(destination: Destination, http: Http) -> Adapter:
    factory = registry().get(destination.type)
    if factory is None:
        raise PublishError("publish.unknown_type", destination.type)
    return factory(destination, http)
