"""Facebook Pages through the Graph API: photos uploaded unpublished, then one Page post that
carries them; a post without photos is a link post to the relay's page.

``relay destination add --type facebook --token PAGE_TOKEN --set page_id=123`` (``--url`` only
to reach another Graph host or version than ``https://graph.facebook.com/v21.0``). The token is
a Page access token with ``pages_manage_posts``, ``pages_read_engagement`` and
``pages_show_list``; the web app's "Connect Facebook" gets one (relay/web/app/connect/meta.py).

Once only: Graph has no idempotency key, so a retry first reads the Page's latest posts for
one whose message holds the post's page link (every message ends with it), and takes that one.

Videos are not uploaded yet: the link to the relay's page, which plays them, stays in the post.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.graph import Graph
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.publish.facebook")

GRAPH = "https://graph.facebook.com/v21.0"
MB = 1024 * 1024
MAX_MESSAGE = 63_206  # a Page post's message, in characters
MAX_PHOTOS = 10
PHOTO_BYTES = 4 * MB  # /photos takes JPEG, PNG, GIF, BMP, TIFF up to 4 MB
PHOTO_TYPES = ("image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff")
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a Page post of this delivery will be: its message and the photos it carries."""

    text: str
    media: list[Media]
    """The photos the post carries."""
    left_out: list[str]


class FacebookAdapter:
    type: ClassVar[str] = "facebook"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_PHOTOS,
        image_bytes=PHOTO_BYTES,
        text_chars=MAX_MESSAGE,
    )

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "a facebook destination needs --token")
        page_id = str(destination.config.get("page_id") or "")
        if not page_id.isdigit():
            raise PublishError(
                "publish.rejected", "a facebook destination needs --set page_id=<the Page's id>"
            )
        self.page_id = page_id
        self.destination_id = destination.id
        self.graph = Graph(http, destination.url or GRAPH, destination.token)

    def preflight(self, outgoing: Outgoing) -> Plan:
        """The post as the Page will take it; what it would refuse is left out (the page link,
        which shows everything, stays)."""
        photos: list[Media] = []
        left_out: list[str] = []
        for medium in outgoing.media:
            if medium.kind != "image":
                left_out.append(f"{medium.item_id}: a {medium.kind} goes as the page link")
            elif medium.mime not in PHOTO_TYPES or medium.bytes > PHOTO_BYTES:
                left_out.append(f"{medium.item_id}: {medium.mime}, {medium.bytes} bytes")
            elif len(photos) >= MAX_PHOTOS:
                left_out.append(f"{medium.item_id}: more than {MAX_PHOTOS} photos")
            else:
                photos.append(medium)
        message = fit(
            [outgoing.title, outgoing.text], outgoing.page_url, lambda t: len(t) <= MAX_MESSAGE
        ).text
        return Plan(message, photos, left_out)

    async def _upload(self, medium: Media, index: int, key: str) -> str:
        """An unpublished photo of the Page, to attach to the post; named by the delivery, never
        by the user's file name."""
        form = aiohttp.FormData()
        extension = mimetypes.guess_extension(medium.mime) or ""
        form.add_field(
            "source",
            medium.read(),
            filename=f"relay-{key}-{index}{extension}".lower().replace("_", "-"),
            content_type=medium.mime,
        )
        form.add_field("published", "false")
        if medium.alt:
            form.add_field("alt_text_custom", medium.alt)
        answer = await self.graph.json(
            "POST", f"/{self.page_id}/photos", data=form, timeout=UPLOAD_TIMEOUT
        )
        return str(answer["id"])

    async def _already_posted(self, page_url: str) -> dict[str, Any] | None:
        answer = await self.graph.json(
            "GET",
            f"/{self.page_id}/feed",
            params={"fields": "id,message,permalink_url", "limit": "25"},
        )
        for post in answer.get("data") or []:
            if page_url in str(post.get("message") or ""):
                return post
        return None

    async def _permalink(self, post_id: str) -> str | None:
        answer = await self.graph.json("GET", f"/{post_id}", params={"fields": "permalink_url"})
        return answer.get("permalink_url")

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("facebook destination %s: not attached: %s", self.destination_id, reason)
        if outgoing.attempt > 1:
            found = await self._already_posted(outgoing.page_url)
            if found is not None:
                log.info("delivery %s: already posted as %s", outgoing.delivery_id, found["id"])
                return Published(found.get("permalink_url"), str(found["id"]))
        form: dict[str, str] = {"message": plan.text}
        if plan.media:
            for index, medium in enumerate(plan.media):
                photo_id = await self._upload(medium, index, outgoing.idempotency_key)
                form[f"attached_media[{index}]"] = json.dumps({"media_fbid": photo_id})
        else:
            form["link"] = outgoing.page_url
        answer = await self.graph.json("POST", f"/{self.page_id}/feed", data=form)
        post_id = str(answer["id"])
        return Published(await self._permalink(post_id), post_id)

    # --- edit and delete (relay.publish.Editor, Retractor) ------------------------------------

    def _post_id(self, remote: Remote) -> str:
        if not remote.remote_id or not remote.remote_id.replace("_", "").isdigit():
            raise PublishError("publish.rejected", f"no Page post id kept for {remote.delivery_id}")
        return remote.remote_id

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """``POST /{post-id}`` with the new ``message``; the photos stay. A repeat after a lost
        answer reads the post first and sends nothing when it already says this."""
        post_id = self._post_id(remote)
        message = self.preflight(outgoing).text
        current = await self.graph.json(
            "GET", f"/{post_id}", params={"fields": "id,message,permalink_url"}
        )
        if current.get("message") != message:
            await self.graph.json("POST", f"/{post_id}", data={"message": message})
        return Published(current.get("permalink_url") or remote.remote_url, post_id)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /{post-id}``; one already gone is success."""
        if not await self.graph.delete(self._post_id(remote)):
            log.info("delivery %s: Page post already gone", remote.delivery_id)

    async def check(self) -> str:
        page = await self.graph.json("GET", f"/{self.page_id}", params={"fields": "id,name"})
        return f"can post to the Facebook Page {page.get('name') or self.page_id}"


ADAPTER = FacebookAdapter
