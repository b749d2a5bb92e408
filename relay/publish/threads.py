"""Threads through the Threads API (``graph.threads.net``): a container (text, an image, a
video, or a carousel of them, fetched by Threads from the relay's signed URLs), polled until
``FINISHED``, then ``threads_publish``.

``relay destination add --type threads --token TOKEN --set threads_user_id=…``: the token has
``threads_basic``, ``threads_content_publish`` (and ``threads_delete`` to take posts down).

Text: title, text and page link within 500 characters as Threads counts them (an emoji as its
UTF-8 bytes), cut with the link kept. Images JPEG or PNG up to 8 MB, videos up to 5 minutes,
up to 20 in a carousel; the rest is left out (the page link shows it all).

Publishing quota (``threads_publishing_limit``): used up means wait and retry, not fail.
Once only: a retry first reads the account's latest threads for one holding the page link.
Delete: ``DELETE /{threads-media-id}``; Threads cannot edit a post.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.graph import POLL_DELAYS, Graph
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.publish.threads")

GRAPH = "https://graph.threads.net/v1.0"
MB = 1024 * 1024
MAX_TEXT = 500
MAX_CAROUSEL = 20
IMAGE_BYTES = 8 * MB
IMAGE_TYPES = ("image/jpeg", "image/png")
MAX_SECONDS = 300.0


def threads_length(text: str) -> int:
    """Characters as Threads counts them: an emoji counts its UTF-8 bytes."""
    return sum(
        len(ch.encode()) if ord(ch) > 0xFFFF or unicodedata.category(ch) == "So" else 1
        for ch in text
    )


@dataclass(frozen=True, slots=True)
class Plan:
    text: str
    media: list[Media]
    left_out: list[str]


class ThreadsAdapter:
    type: ClassVar[str] = "threads"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_CAROUSEL,
        max_videos=MAX_CAROUSEL,
        image_bytes=IMAGE_BYTES,
        video_seconds=MAX_SECONDS,
        text_chars=MAX_TEXT,
    )
    poll_delays: ClassVar[tuple[float, ...]] = POLL_DELAYS

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "a threads destination needs --token")
        user_id = str(destination.config.get("threads_user_id") or "me")
        if not (user_id.isdigit() or user_id == "me"):
            raise PublishError("publish.rejected", "threads_user_id must be the account's id")
        self.user_id = user_id
        self.destination_id = destination.id
        self.graph = Graph(http, destination.url or GRAPH, destination.token)

    def preflight(self, outgoing: Outgoing) -> Plan:
        media: list[Media] = []
        left_out: list[str] = []
        for medium in outgoing.media:
            if medium.kind == "image" and (
                medium.mime not in IMAGE_TYPES or medium.bytes > IMAGE_BYTES
            ):
                left_out.append(f"{medium.item_id}: Threads takes JPEG or PNG up to 8 MB")
            elif medium.kind == "video" and (medium.duration or 0) > MAX_SECONDS:
                left_out.append(f"{medium.item_id}: Threads takes videos up to 5 minutes")
            elif medium.kind not in ("image", "video"):
                left_out.append(f"{medium.item_id}: Threads cannot carry a {medium.kind}")
            elif len(media) >= MAX_CAROUSEL:
                left_out.append(f"{medium.item_id}: more than {MAX_CAROUSEL} media")
            else:
                media.append(medium)
        text = fit(
            [outgoing.title, outgoing.text],
            outgoing.page_url,
            lambda t: threads_length(t) <= MAX_TEXT,
        ).text
        if threads_length(text) > MAX_TEXT:
            raise PublishError(
                "publish.rejected",
                "threads preflight: the page link alone is too long",
                f"Threads takes at most {MAX_TEXT} characters",
            )
        return Plan(text, media, left_out)

    async def _container(self, fields: dict[str, str], medium: Media | None) -> str:
        if medium is not None and medium.kind == "image":
            fields = {**fields, "media_type": "IMAGE", "image_url": medium.url}
            if medium.alt:
                fields["alt_text"] = medium.alt
        elif medium is not None:
            fields = {**fields, "media_type": "VIDEO", "video_url": medium.url}
        answer = await self.graph.json("POST", f"/{self.user_id}/threads", data=fields)
        return str(answer["id"])

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("threads destination %s: left out: %s", self.destination_id, reason)
        made = await self.graph.already_posted(f"/{self.user_id}/threads", "text", outgoing)
        if made is not None:
            return made
        await self.graph.require_quota(f"/{self.user_id}/threads_publishing_limit", "Threads")
        if not plan.media:
            container = await self._container({"media_type": "TEXT", "text": plan.text}, None)
        elif len(plan.media) == 1:
            container = await self._container({"text": plan.text}, plan.media[0])
        else:
            children = [
                await self._container({"is_carousel_item": "true"}, medium) for medium in plan.media
            ]
            for child in children:
                await self.graph.wait_finished(child, "status", self.poll_delays)
            container = await self._container(
                {"media_type": "CAROUSEL", "children": ",".join(children), "text": plan.text},
                None,
            )
        await self.graph.wait_finished(container, "status", self.poll_delays)
        published = await self.graph.json(
            "POST", f"/{self.user_id}/threads_publish", data={"creation_id": container}
        )
        thread_id = str(published["id"])
        thread = await self.graph.json("GET", f"/{thread_id}", params={"fields": "permalink"})
        return Published(thread.get("permalink"), thread_id)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /{threads-media-id}``; one already gone is success."""
        if not remote.remote_id or not remote.remote_id.isdigit():
            raise PublishError("publish.rejected", f"no thread id kept for {remote.delivery_id}")
        if not await self.graph.delete(remote.remote_id):
            log.info("delivery %s: thread already gone", remote.delivery_id)

    async def check(self) -> str:
        account = await self.graph.json("GET", f"/{self.user_id}", params={"fields": "id,username"})
        return f"can post to Threads as @{account.get('username') or self.user_id}"


ADAPTER = ThreadsAdapter
