"""Facebook Pages through the Graph API: photos uploaded unpublished, then one Page post that
carries them; a post without photos is a link post to the relay's page.

``relay destination add --type facebook --token PAGE_TOKEN --set page_id=123`` (``--url`` only
to reach another Graph host or version than ``https://graph.facebook.com/v21.0``). The token is
a Page access token with ``pages_manage_posts``, ``pages_read_engagement`` and
``pages_show_list``; the web app's "Connect Facebook" gets one (relay/web/app/connect/meta.py).

Once only: Graph has no idempotency key, so a retry first reads the Page's latest posts for
one whose message holds the post's page link (every message ends with it), and takes that one.

A video (the post's first MP4, when the post has no photos) goes through Meta's Resumable Upload
API and then becomes a Page video (Graph API "Upload a file",
https://developers.facebook.com/docs/graph-api/guides/upload, and Video API "Publishing",
https://developers.facebook.com/docs/video-api/guides/publishing; the graph-video host and the
``upload_phase`` start/transfer/finish protocol are deprecated there):

1. ``POST /{app-id}/uploads?file_name&file_length&file_type=video/mp4`` → ``{"id": "upload:…"}``;
   the app id is the destination's ``app_id`` (the web app's connect flow stores
   ``RELAY_META_APP_ID``; the CLI takes ``--set app_id=…``). Without one, videos go as the link.
2. ``POST /upload:…`` with ``Authorization: OAuth TOKEN`` and ``file_offset: N``, the bytes from
   N on streamed from the store (never the whole clip in memory) → ``{"h": FILE_HANDLE}``. A
   transfer cut off is resumed: ``GET /upload:…`` says ``{"file_offset": N}``, what Meta kept.
3. ``POST /{page-id}/videos`` with ``fbuploader_video_file_chunk=FILE_HANDLE``, ``description``
   (the message), ``title`` and the clip's poster as ``thumb`` → ``{"id": VIDEO_ID}``
   (https://developers.facebook.com/docs/graph-api/reference/page/videos).
The delivery keeps ``video:VIDEO_ID``; an edit changes the video's ``description``.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from relay.errors import PublishError, TransientPublishError
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
VIDEO_TYPES = ("video/mp4",)
VIDEO_BYTES = 10 * 1024 * MB  # the Video API's limit for a Page video
UPLOAD_TRIES = 5
"""Transfers of one video upload session: the first and the resumptions after a cut."""
VIDEO_PREFIX = "video:"
UPLOAD_BYTES_PER_SECOND = 1 * MB
"""The slowest upload a delivery waits for: a Page video's publish may take its size at this
rate (plus the default), rather than time out on every try."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a Page post of this delivery will be: its message and the photos it carries."""

    text: str
    media: list[Media]
    """The photos the post carries."""
    left_out: list[str]
    video: Media | None = None
    """The video the post is (a Page post carries photos or one video, not both)."""


class FacebookAdapter:
    type: ClassVar[str] = "facebook"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_PHOTOS,
        max_videos=1,
        image_bytes=PHOTO_BYTES,
        video_bytes=VIDEO_BYTES,
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
        app_id = str(destination.config.get("app_id") or "")
        self.app_id = app_id if app_id.isdigit() else None
        self.destination_id = destination.id
        self.graph = Graph(http, destination.url or GRAPH, destination.token)

    def preflight(self, outgoing: Outgoing) -> Plan:
        """The post as the Page will take it; what it would refuse is left out (the page link,
        which shows everything, stays)."""
        photos: list[Media] = []
        videos: list[Media] = []
        left_out: list[str] = []
        for medium in outgoing.media:
            if medium.kind == "video":
                videos.append(medium)
            elif medium.kind != "image":
                left_out.append(f"{medium.item_id}: a {medium.kind} goes as the page link")
            elif medium.mime not in PHOTO_TYPES or medium.bytes > PHOTO_BYTES:
                left_out.append(f"{medium.item_id}: {medium.mime}, {medium.bytes} bytes")
            elif len(photos) >= MAX_PHOTOS:
                left_out.append(f"{medium.item_id}: more than {MAX_PHOTOS} photos")
            else:
                photos.append(medium)
        video = None
        for medium in videos:
            if photos or video is not None:
                left_out.append(f"{medium.item_id}: a Page post carries photos or one video")
            elif self.app_id is None:
                left_out.append(f"{medium.item_id}: uploading a video needs the Meta app's id")
            elif medium.mime not in VIDEO_TYPES or medium.bytes > VIDEO_BYTES:
                left_out.append(f"{medium.item_id}: {medium.mime}, {medium.bytes} bytes")
            else:
                video = medium
        message = fit(
            [outgoing.title, outgoing.text], outgoing.page_url, lambda t: len(t) <= MAX_MESSAGE
        ).text
        return Plan(message, photos, left_out, video)

    def timeout_for(self, outgoing: Outgoing) -> float | None:
        """More time for a publish that uploads a video (relay/publish/deliver.py asks)."""
        video = self.preflight(outgoing).video
        return None if video is None else 120 + video.bytes / UPLOAD_BYTES_PER_SECOND

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

    # --- video (Resumable Upload API, then /{page-id}/videos) -----------------------------------

    def _oauth(self, **extra: str) -> dict[str, str]:
        # The upload session's calls take the token in the "OAuth" scheme (the guide's form).
        return {"Authorization": f"OAuth {self.graph.token}", **extra}

    async def _upload_video(self, medium: Media, key: str) -> str:
        """The clip's file handle: a session, then the bytes streamed from the store; a cut
        transfer resumes where Meta says it stopped."""
        session = await self.graph.json(
            "POST",
            f"/{self.app_id}/uploads",
            params={
                "file_name": f"relay-{key}.mp4".lower().replace("_", "-"),
                "file_length": str(medium.bytes),
                "file_type": medium.mime,
            },
        )
        session_id = str(session.get("id") or "")
        if not session_id.startswith("upload:"):
            raise TransientPublishError("publish.unreachable", f"no upload session: {session}")
        offset = 0
        for _ in range(UPLOAD_TRIES):
            try:
                answer = await self.graph.json(
                    "POST",
                    f"/{session_id}",
                    headers=self._oauth(
                        file_offset=str(offset), **{"Content-Length": str(medium.bytes - offset)}
                    ),
                    data=_stream(medium, offset),
                    timeout=UPLOAD_TIMEOUT,
                )
                if answer.get("h"):
                    return str(answer["h"])
            except TransientPublishError as exc:
                if exc.code != "publish.unreachable":
                    raise
                log.info("video upload %s cut at about %s: %s", session_id, offset, exc)
            state = await self.graph.json("GET", f"/{session_id}", headers=self._oauth())
            kept = state.get("file_offset")
            if not isinstance(kept, int) or not 0 <= kept <= medium.bytes:
                raise TransientPublishError("publish.unreachable", f"upload offset {kept!r}")
            offset = kept
        raise TransientPublishError(
            "publish.unreachable", f"video upload {session_id}: cut {UPLOAD_TRIES} times"
        )

    async def _post_video(self, plan: Plan, medium: Media, outgoing: Outgoing) -> str:
        handle = await self._upload_video(medium, outgoing.idempotency_key)
        form = aiohttp.FormData()
        form.add_field("fbuploader_video_file_chunk", handle)
        form.add_field("description", plan.text)
        if outgoing.title:
            form.add_field("title", outgoing.title[:255])
        if (thumb := medium.variants.get("poster")) is not None:
            poster = b"".join([chunk async for chunk in thumb.read()])
            form.add_field("thumb", poster, filename="poster.jpg", content_type="image/jpeg")
        answer = await self.graph.json(
            "POST", f"/{self.page_id}/videos", data=form, timeout=UPLOAD_TIMEOUT
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
        link = answer.get("permalink_url")
        # A video's permalink is relative to facebook.com ("/kommunen/videos/123/").
        return (
            f"https://www.facebook.com{link}" if isinstance(link, str) and link[:1] == "/" else link
        )

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("facebook destination %s: not attached: %s", self.destination_id, reason)
        if outgoing.attempt > 1:
            found = await self._already_posted(outgoing.page_url)
            if found is not None:
                log.info("delivery %s: already posted as %s", outgoing.delivery_id, found["id"])
                return Published(found.get("permalink_url"), str(found["id"]))
        if plan.video is not None:
            video_id = await self._post_video(plan, plan.video, outgoing)
            return Published(await self._permalink(video_id), VIDEO_PREFIX + video_id)
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
        """The Graph id the delivery made: a Page post's, or a video's (``video:ID``)."""
        found = (remote.remote_id or "").removeprefix(VIDEO_PREFIX)
        if not found or not found.replace("_", "").isdigit():
            raise PublishError("publish.rejected", f"no Page post id kept for {remote.delivery_id}")
        return found

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """``POST /{post-id}`` with the new ``message`` (a video's ``description``); the media
        stay. A repeat after a lost answer reads the post first and sends nothing when it
        already says this."""
        post_id = self._post_id(remote)
        field = "description" if (remote.remote_id or "").startswith(VIDEO_PREFIX) else "message"
        message = self.preflight(outgoing).text
        current = await self.graph.json(
            "GET", f"/{post_id}", params={"fields": f"id,{field},permalink_url"}
        )
        if current.get(field) != message:
            await self.graph.json("POST", f"/{post_id}", data={field: message})
        return Published(
            absolute(current.get("permalink_url")) or remote.remote_url, remote.remote_id
        )

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /{post-id}`` (or the video's); one already gone is success."""
        if not await self.graph.delete(self._post_id(remote)):
            log.info("delivery %s: Page post already gone", remote.delivery_id)

    async def check(self) -> str:
        page = await self.graph.json("GET", f"/{self.page_id}", params={"fields": "id,name"})
        return f"can post to the Facebook Page {page.get('name') or self.page_id}"


def absolute(link: Any) -> str | None:
    """A permalink as a full URL: a video's is relative to facebook.com ("/page/videos/1/")."""
    if not isinstance(link, str) or not link:
        return None
    return f"https://www.facebook.com{link}" if link.startswith("/") else link


async def _stream(medium: Media, offset: int) -> AsyncIterator[bytes]:
    """The medium's bytes from ``offset`` on, as the store gives them."""
    if medium.read_from is not None:
        async for chunk in medium.read_from(offset):
            yield chunk
        return
    skip = offset
    async for chunk in medium.read():
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:]
        skip = 0


ADAPTER = FacebookAdapter
