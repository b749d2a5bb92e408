"""Instagram professional accounts through the Graph API's content publishing: a container per
medium, made by Instagram fetching the medium from the relay's own (signed) URL, polled until
``FINISHED``, then ``media_publish``.

``relay destination add --type instagram --token TOKEN --set ig_user_id=1784…``: the token has
``instagram_basic``, ``instagram_content_publish`` and ``pages_read_engagement`` (Facebook
Login, the Page the account is linked to); ``--url`` only for another Graph host or version.

Preflight (``preflight``), before anything is sent: Instagram takes no post without a photo or
a video, photos only as JPEG with an aspect ratio between 4:5 and 1.91:1, Reels of 3 s to 15
min, up to 10 media in a carousel, a caption of 2,200 characters with at most 30 hashtags.
A photo of another shape goes as its ``fit_instagram`` rendition (handlers/image.py: padded,
never cropped, to 4:5 or 1.91:1, 320-1440 px wide), which the delivery makes before this
adapter runs (relay/publish/deliver.py), and the preview says so before it exists. Media outside
those are left out; a post left with none is refused with a plain reason. The
caption is cut to fit, the page link kept.

Publishing quota: ``content_publishing_limit`` is read first; when the day's posts are used
up the delivery waits and retries (``publish.rate_limited``) rather than fail.

Once only: a retry first looks through the account's latest media for a caption that holds
the post's page link. Edit and delete: the Instagram Graph API offers neither for published
media, so the adapter has no ``edit``/``retract`` and the delivery says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published
from relay.publish.graph import POLL_DELAYS, Graph, hashtags
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.publish.instagram")

GRAPH = "https://graph.facebook.com/v21.0"
MB = 1024 * 1024
MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_CAROUSEL = 10
IMAGE_BYTES = 8 * MB
MIN_RATIO, MAX_RATIO = 4 / 5, 1.91
MIN_SECONDS, MAX_SECONDS = 3.0, 15 * 60.0
FIT_INSTAGRAM = "fit_instagram"
"""A photo's rendition padded to a shape Instagram takes, made by the first Instagram delivery
that needs it (relay/publish/deliver.py, handlers/image.py), which hands it over as a variant."""


@dataclass(frozen=True, slots=True)
class Plan:
    text: str
    """The caption."""
    media: list[Media]
    left_out: list[str]
    notes: list[str] = field(default_factory=list)
    """What the relay changed so Instagram takes a medium (a photo padded to 4:5)."""


def _aspect_name(medium: Media) -> str:
    """The aspect a padded photo was given, as people say it."""
    if medium.width and medium.height and medium.width < medium.height:
        return "4:5"
    return "1.91:1"


def _fitted(medium: Media) -> tuple[Media, str | None]:
    """The medium Instagram is sent: a photo of a shape it refuses swapped for its padded
    ``fit_instagram`` rendition when the relay made one, with a note saying so."""
    padded = medium.variants.get(FIT_INSTAGRAM)
    if medium.kind != "image" or padded is None or _unfit(medium) is None or _unfit(padded):
        return medium, None
    return padded, f"{medium.item_id}: the photo is padded to {_aspect_name(padded)}"


def _unfit(medium: Media) -> str | None:
    """Why Instagram would refuse this medium, or None."""
    if medium.kind == "image":
        if medium.mime != "image/jpeg":
            return "Instagram takes photos only as JPEG"
        if medium.bytes > IMAGE_BYTES:
            return "the photo is larger than 8 MB"
        if medium.width and medium.height:
            ratio = medium.width / medium.height
            if not MIN_RATIO - 0.005 <= ratio <= MAX_RATIO + 0.005:
                return (
                    f"the photo's shape ({medium.width}×{medium.height}) is outside what"
                    " Instagram shows (from 4:5 upright to 1.91:1 wide)"
                )
        return None
    if medium.kind == "video":
        if medium.duration is not None and not MIN_SECONDS <= medium.duration <= MAX_SECONDS:
            return "Instagram takes videos of 3 seconds to 15 minutes"
        return None
    return f"Instagram cannot carry a {medium.kind}"


class InstagramAdapter:
    type: ClassVar[str] = "instagram"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_CAROUSEL,
        max_videos=MAX_CAROUSEL,
        image_bytes=IMAGE_BYTES,
        video_seconds=MAX_SECONDS,
        text_chars=MAX_CAPTION,
    )
    poll_delays: ClassVar[tuple[float, ...]] = POLL_DELAYS

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "an instagram destination needs --token")
        user_id = str(destination.config.get("ig_user_id") or "")
        if not user_id.isdigit():
            raise PublishError(
                "publish.rejected",
                "an instagram destination needs --set ig_user_id=<the account's id>",
            )
        self.user_id = user_id
        self.destination_id = destination.id
        self.graph = Graph(http, destination.url or GRAPH, destination.token)

    def preflight(self, outgoing: Outgoing) -> Plan:
        """What Instagram will be sent; raises ``publish.rejected`` with a plain reason when it
        would refuse the post whatever the relay did."""
        media: list[Media] = []
        left_out: list[str] = []
        notes: list[str] = []
        for original in outgoing.media:
            medium, note = _fitted(original)
            reason = _unfit(medium)
            if reason is None and len(media) >= MAX_CAROUSEL:
                reason = f"Instagram takes up to {MAX_CAROUSEL} photos or videos in one post"
            if reason is None:
                media.append(medium)
                notes.extend(filter(None, [note]))
            else:
                left_out.append(reason)
        if not media:
            why = left_out[0] if left_out else "this post has none"
            raise PublishError(
                "publish.rejected",
                f"instagram preflight: no medium it takes ({len(outgoing.media)} in the post)",
                f"Instagram needs a photo or a video: {why}",
            )
        if hashtags(f"{outgoing.title}\n{outgoing.text}") > MAX_HASHTAGS:
            raise PublishError(
                "publish.rejected",
                "instagram preflight: too many hashtags",
                f"Instagram takes at most {MAX_HASHTAGS} hashtags in a caption",
            )
        caption = fit(
            [outgoing.title, outgoing.text], outgoing.page_url, lambda t: len(t) <= MAX_CAPTION
        ).text
        return Plan(caption, media, left_out, notes)

    async def _container(self, medium: Media, fields: dict[str, str]) -> str:
        if medium.kind == "image":
            fields = {**fields, "image_url": medium.url}
            if medium.alt:
                fields["alt_text"] = medium.alt
        else:
            fields = {**fields, "media_type": "REELS", "video_url": medium.url}
        answer = await self.graph.json("POST", f"/{self.user_id}/media", data=fields)
        return str(answer["id"])

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("instagram destination %s: left out: %s", self.destination_id, reason)
        for note in plan.notes:
            log.info("instagram destination %s: %s", self.destination_id, note)
        made = await self.graph.already_posted(f"/{self.user_id}/media", "caption", outgoing)
        if made is not None:
            return made
        await self.graph.require_quota(f"/{self.user_id}/content_publishing_limit", "Instagram")
        if len(plan.media) == 1:
            container = await self._container(plan.media[0], {"caption": plan.text})
        else:
            children = [
                await self._container(medium, {"is_carousel_item": "true"}) for medium in plan.media
            ]
            for child in children:
                await self.graph.wait_finished(child, "status_code", self.poll_delays)
            answer = await self.graph.json(
                "POST",
                f"/{self.user_id}/media",
                data={
                    "media_type": "CAROUSEL",
                    "children": ",".join(children),
                    "caption": plan.text,
                },
            )
            container = str(answer["id"])
        await self.graph.wait_finished(container, "status_code", self.poll_delays)
        published = await self.graph.json(
            "POST", f"/{self.user_id}/media_publish", data={"creation_id": container}
        )
        media_id = str(published["id"])
        media = await self.graph.json("GET", f"/{media_id}", params={"fields": "permalink"})
        return Published(media.get("permalink"), media_id)

    async def check(self) -> str:
        account = await self.graph.json("GET", f"/{self.user_id}", params={"fields": "id,username"})
        return f"can post to Instagram as @{account.get('username') or self.user_id}"


ADAPTER = InstagramAdapter
