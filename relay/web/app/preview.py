"""What each channel will get of a post: its text as that channel's adapter cuts it, and which
media go with it.

The text comes from the adapters' own functions (Mastodon's ``status_text`` with the limits the
instance states, Bluesky's ``record``, Micropub's ``entry_properties``), never from a copy of
their rules, so the preview cannot drift from what is sent. Mastodon's limits are asked of the
instance as a delivery would; an instance that does not answer in time is previewed with
Mastodon's own defaults, and the page says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from relay.errors import PublishError
from relay.publish import Destination, Media, Outgoing, adapter_for, bluesky, micropub, wordpress
from relay.publish.mastodon import Limits, MastodonAdapter
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.web.app")

LIMITS_TIMEOUT = 3.0
"""How long the page waits for an instance to state its limits before using the defaults."""
LIMITS_TTL = 600.0
"""An instance's limits rarely change: kept this long per instance (a failure for a tenth)."""

_instance_limits: dict[str, tuple[float, Limits, bool]] = {}


@dataclass(slots=True)
class ChannelPreview:
    """One channel's copy of the post, as the page shows it."""

    destination_id: str
    type: str
    text: str
    cut: bool
    """The text is shorter than the post's: the channel's limit cut it."""
    limit: int | None = None
    """The channel's length limit in characters, where it has one."""
    media: list[str] = field(default_factory=list)
    """Item ids of the media that go with the copy."""
    link_card: bool = False
    """No media go; the channel shows a card that links the post's page."""
    defaults: bool = False
    """The channel's own limits could not be read; its usual ones were used."""
    unknown: bool = False
    """An adapter the relay does not know how to preview (a plug-in): sent as it is."""
    refused: str = ""
    """Why the channel's preflight says it will not take this post (Instagram without a photo
    or video, …): the delivery would fail with this, the other channels go on."""
    link: str = ""
    """Where the page link goes, for channels that let the person choose (X): ``in_post``,
    ``in_reply`` (then ``reply`` is that reply's text) or ``none``."""
    reply: str = ""
    notes: list[str] = field(default_factory=list)
    """What the relay changes so the channel takes a medium (X: a video cut to 140 s)."""


def whole_text(outgoing: Outgoing) -> str:
    """Title, text and link as every adapter joins them, uncut."""
    return fit([outgoing.title, outgoing.text], outgoing.page_url, lambda _: True).text


def _ids(media: list[Media]) -> list[str]:
    return [m.item_id for m in media]


async def _mastodon(destination: Destination, http: Http, outgoing: Outgoing) -> ChannelPreview:
    adapter = MastodonAdapter(destination, http)
    limits, defaults = await _limits_of(adapter, destination)
    text = adapter.status_text(outgoing, limits)
    return ChannelPreview(
        destination.id,
        destination.type,
        text,
        cut=text != whole_text(outgoing),
        limit=limits.max_characters,
        media=_ids(adapter.choose(outgoing.media, limits)),
        defaults=defaults,
    )


async def _limits_of(adapter: MastodonAdapter, destination: Destination) -> tuple[Limits, bool]:
    """The instance's limits, as a delivery reads them; Mastodon's defaults (and True) when
    the instance does not say in time."""
    now = time.monotonic()
    cached = _instance_limits.get(adapter.base)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    try:
        limits = await asyncio.wait_for(adapter.limits(), LIMITS_TIMEOUT)
    except Exception as exc:  # unreachable, refused, slow: preview with Mastodon's defaults
        log.info("preview: limits of mastodon destination %s: %s", destination.id, exc)
        _instance_limits[adapter.base] = (now + LIMITS_TTL / 10, Limits(), True)
        return Limits(), True
    _instance_limits[adapter.base] = (now + LIMITS_TTL, limits, False)
    return limits, False


def _bluesky(destination: Destination, outgoing: Outgoing) -> ChannelPreview:
    record = bluesky.BlueskyAdapter.record(outgoing, datetime.now(UTC), None)
    text = record["text"]
    # The adapter embeds up to MAX_IMAGES images; a post without any gets a link card.
    images = [m for m in outgoing.media if m.kind == "image"][: bluesky.MAX_IMAGES]
    return ChannelPreview(
        destination.id,
        destination.type,
        text,
        cut=text != whole_text(outgoing),
        limit=300,
        media=_ids(images),
        link_card=not images,
    )


def _micropub(destination: Destination, outgoing: Outgoing) -> ChannelPreview:
    kinds = (
        ("image", micropub.MAX_PHOTOS),
        ("video", micropub.MAX_VIDEOS),
        ("audio", micropub.MAX_VIDEOS),
    )
    chosen = [
        m for kind, most in kinds for m in [m for m in outgoing.media if m.kind == kind][:most]
    ]
    properties = micropub.entry_properties(outgoing, [(m, m.url) for m in chosen], "preview")
    body = str(properties["content"][0])
    text = f"{outgoing.title}\n\n{body}" if outgoing.title else body
    return ChannelPreview(destination.id, destination.type, text, cut=False, media=_ids(chosen))


def _wordpress(destination: Destination, outgoing: Outgoing) -> ChannelPreview:
    images = [m for m in outgoing.media if m.kind == "image"][: wordpress.MAX_IMAGES]
    linked = [m for m in outgoing.media if m.kind in ("video", "audio")]
    return ChannelPreview(
        destination.id,
        destination.type,
        whole_text(outgoing),
        cut=False,
        media=_ids(images + linked),
    )


def _meta(destination: Destination, http: Http, outgoing: Outgoing) -> ChannelPreview:
    """The Meta adapters' own ``preflight``: the text they send, the media they keep, or why
    they refuse the post."""
    adapter = adapter_for(destination, http)
    limit = adapter.accepts.text_chars
    try:
        plan = adapter.preflight(outgoing)  # type: ignore[attr-defined]
    except PublishError as exc:
        return ChannelPreview(
            destination.id, destination.type, "", cut=False, limit=limit, refused=exc.remote
        )
    text = plan.text
    return ChannelPreview(
        destination.id,
        destination.type,
        text,
        cut=getattr(plan, "cut", text != whole_text(outgoing)),
        limit=limit,
        # a Facebook Page video goes as the post's medium, beside no photos
        media=_ids([*plan.media, *filter(None, [getattr(plan, "video", None)])]),
        link=getattr(plan, "link", ""),
        reply=getattr(plan, "reply", ""),
        notes=list(getattr(plan, "notes", ())),
    )


def _youtube(destination: Destination, http: Http, outgoing: Outgoing) -> ChannelPreview:
    """The YouTube adapter's own ``preflight``: the video's title and description, the video
    it sends, or why it refuses the post (no video)."""
    adapter = adapter_for(destination, http)
    try:
        plan = adapter.preflight(outgoing)  # type: ignore[attr-defined]
    except PublishError as exc:
        return ChannelPreview(destination.id, destination.type, "", cut=False, refused=exc.remote)
    return ChannelPreview(
        destination.id,
        destination.type,
        f"{plan.title}\n\n{plan.description}",
        cut=plan.cut,
        media=[plan.video.item_id],
    )


def _linkedin(destination: Destination, http: Http, outgoing: Outgoing) -> ChannelPreview:
    """LinkedIn's own preflight, its commentary shown as readers see it (unescaped)."""
    from relay.publish.linkedin import unescape_little_text

    adapter = adapter_for(destination, http)
    plan = adapter.preflight(outgoing)  # type: ignore[attr-defined]
    text = unescape_little_text(plan.text)
    return ChannelPreview(
        destination.id,
        destination.type,
        text,
        cut=text != whole_text(outgoing),
        limit=adapter.accepts.text_chars,
        media=_ids(plan.media),
    )


async def channel_preview(
    destination: Destination, http: Http, outgoing: Outgoing
) -> ChannelPreview:
    """What ``destination`` will get of ``outgoing``."""
    kind = destination.type
    if kind == "mastodon":
        return await _mastodon(destination, http, outgoing)
    if kind == "bluesky":
        return _bluesky(destination, outgoing)
    if kind == "micropub":
        return _micropub(destination, outgoing)
    if kind == "wordpress":
        return _wordpress(destination, outgoing)
    if kind in ("facebook", "instagram", "threads", "x"):
        return _meta(destination, http, outgoing)
    if kind == "youtube":
        return _youtube(destination, http, outgoing)
    if kind == "linkedin":
        return _linkedin(destination, http, outgoing)
    if kind == "webhook":  # the whole post as JSON
        return ChannelPreview(
            destination.id, kind, whole_text(outgoing), cut=False, media=_ids(outgoing.media)
        )
    preview = ChannelPreview(
        destination.id, kind, whole_text(outgoing), cut=False, media=_ids(outgoing.media)
    )
    try:
        limit = adapter_for(destination, http).accepts.text_chars
    except Exception:  # a broken or missing plug-in: nothing more to tell
        limit = None
    preview.limit = limit
    preview.unknown = True
    return preview


async def previews(
    found: list[Destination], http: Http, outgoing: Outgoing
) -> list[ChannelPreview]:
    """Every channel's preview, asked of the channels at once (one slow instance does not hold
    up the others more than ``LIMITS_TIMEOUT``)."""
    return list(await asyncio.gather(*(channel_preview(d, http, outgoing) for d in found)))
