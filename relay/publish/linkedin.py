"""LinkedIn: a person's feed (``urn:li:person:…``) or an organization's Page the person
administers (``urn:li:organization:…``), through the versioned Community Management APIs.

``relay destination add --type linkedin --token TOKEN --set author=urn:li:person:ID`` (or
``urn:li:organization:ID``); ``--url`` replaces ``https://api.linkedin.com``. The token has
``w_member_social`` (a person) or ``w_organization_social`` (a Page; ``r_organization_social``
lets a retry look for what a lost answer made). The web app connects it by 3-legged OAuth
(relay/web/app/connect/linkedin.py) and keeps the refresh token, when the app has one, sealed in
the destination's secret; relay/publish/renew.py renews the 60-day token before it ends.

Every call carries ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0``; the
token goes in ``Authorization``, never in a URL. Sources (read December 2026):

- Posts API: https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
  ``POST /rest/posts`` (201, the post's URN in ``x-restli-id``), partial update (``POST
  /rest/posts/{urn}`` with ``X-RestLi-Method: PARTIAL_UPDATE`` and ``{"patch": {"$set":
  {"commentary": …}}}``: only the commentary of a published post can change), ``DELETE
  /rest/posts/{urn}``, the finder ``GET /rest/posts?q=author&author={urn}``.
- Images API (``/rest/images?action=initializeUpload``, at most 36,152,320 pixels; JPEG, PNG,
  GIF): https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/images-api
- Videos API (``initializeUpload`` with ``fileSizeBytes``, the file PUT in the parts of
  ``uploadInstructions``, each part's ``ETag`` to ``finalizeUpload``; MP4, 3 s to 30 min, 75 KB
  to 500 MB): https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/videos-api
- Documents API (PDF up to 100 MB and 300 pages):
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/documents-api
- Multi-image posts (2 to 20 images): https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/multiimage-post-api
- The "little text" format of ``commentary``: ``| { } @ [ ] ( ) < > # \\ * _ ~`` are reserved
  and backslash-escaped, or LinkedIn cuts the text at the first one:
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/little-text-format
- Errors are ``{"status", "serviceErrorCode", "code", "message"}``: 401 (``INVALID_ACCESS_TOKEN``,
  ``REVOKED_ACCESS_TOKEN``, ``EXPIRED_ACCESS_TOKEN``) is a dead token → "reconnect needed";
  403 a permission the token lacks; 422 a post LinkedIn refuses; 429 the daily throttle.

A post carries one kind of content: one image or 2-20 (multi-image), one video, or one PDF as
a document post; the first medium LinkedIn takes decides which, the rest is left out (the page
link shows everything). A PDF the relay counted over 300 pages (its preview's ``pages``) is left
out before any upload, rather than uploaded for LinkedIn to fail processing. Commentary: title,
text and the page link, cut to 3,000 characters as escaped, the link kept and never escaped (so
it stays a link).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from multidict import CIMultiDict

from relay.errors import PublishError, TransientPublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http
from relay.publish.text import cut, fit, url_spans

log = logging.getLogger("relay.publish.linkedin")

API = "https://api.linkedin.com"
VERSION = "202511"
"""``LinkedIn-Version`` (YYYYMM): LinkedIn serves each version for a year at least."""
MB = 1024 * 1024
MAX_COMMENTARY = 3000
MAX_IMAGES = 20
IMAGE_PIXELS = 36_152_320
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif")
VIDEO_BYTES = 500 * MB
VIDEO_MIN_BYTES = 75 * 1024
MIN_SECONDS, MAX_SECONDS = 3.0, 30 * 60.0
DOCUMENT_BYTES = 100 * MB
DOCUMENT_PAGES = 300
DOCUMENT_TYPES = ("application/pdf",)
UPLOAD_TIMEOUT = 600.0
# Video and document processing at LinkedIn, polled with these pauses (seconds) before the post
# is made; still processing after them is a retry later (the upload stays LinkedIn's).
POLL_DELAYS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5)
RESERVED = set("\\|{}@[]()<>#*_~")
DEAD_TOKEN = ("INVALID_ACCESS_TOKEN", "REVOKED_ACCESS_TOKEN", "EXPIRED_ACCESS_TOKEN")


def escape_little_text(text: str) -> str:
    """``text`` in LinkedIn's little text format: every reserved character backslash-escaped,
    except inside URLs, which LinkedIn links only as written."""
    out: list[str] = []
    position = 0
    for start, end in url_spans(text):
        out.extend("\\" + ch if ch in RESERVED else ch for ch in text[position:start])
        out.append(text[start:end])
        position = end
    out.extend("\\" + ch if ch in RESERVED else ch for ch in text[position:])
    return "".join(out)


def unescape_little_text(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        out.append(next(chars, "") if ch == "\\" else ch)
    return "".join(out)


def linkedin_error(status: int, body: str, path: str) -> PublishError:
    """The publish error for a LinkedIn answer that is not a success."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = parsed if isinstance(parsed, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or body.strip())[:300]
    detail = f"{path}: {status} {code} serviceErrorCode {error.get('serviceErrorCode')}"
    if status == 401 or code in DEAD_TOKEN:
        return PublishError("destination.reconnect_needed", detail, message)
    if status == 403:
        return PublishError("publish.unauthorized", detail, message)
    if status == 429:
        return TransientPublishError("publish.rate_limited", detail, message)
    if status in (408, 409, 425) or status >= 500:
        return TransientPublishError("publish.unreachable", detail, message)
    return PublishError("publish.rejected", detail, message)


@dataclass(frozen=True, slots=True)
class Plan:
    text: str
    """The commentary, escaped."""
    kind: str
    """``none``, ``image``, ``video`` or ``document``: what the post carries."""
    media: list[Media]
    left_out: list[str]


def _unfit(medium: Media) -> str | None:
    """Why LinkedIn would refuse this medium, or None."""
    if medium.kind == "image":
        if medium.mime not in IMAGE_TYPES:
            return "LinkedIn takes images as JPEG, PNG or GIF"
        if medium.width and medium.height and medium.width * medium.height > IMAGE_PIXELS:
            return "the image has more than 36 million pixels"
        return None
    if medium.kind == "video":
        if medium.mime != "video/mp4":
            return "LinkedIn takes videos as MP4"
        if not VIDEO_MIN_BYTES <= medium.bytes <= VIDEO_BYTES:
            return "LinkedIn takes videos of 75 KB to 500 MB"
        if medium.duration is not None and not MIN_SECONDS <= medium.duration <= MAX_SECONDS:
            return "LinkedIn takes videos of 3 seconds to 30 minutes"
        return None
    if medium.kind == "document":
        if medium.mime not in DOCUMENT_TYPES:
            return "LinkedIn takes documents as PDF here"
        if medium.bytes > DOCUMENT_BYTES:
            return "LinkedIn takes documents up to 100 MB"
        if medium.pages is not None and medium.pages > DOCUMENT_PAGES:
            return (
                f"LinkedIn takes documents of up to {DOCUMENT_PAGES} pages"
                f" (this one has {medium.pages})"
            )
        return None
    return f"LinkedIn cannot carry a {medium.kind}"


def _title(outgoing: Outgoing) -> str:
    """A video's or document's title (LinkedIn requires one): the post's title, else the start
    of its text, else its page link."""
    return outgoing.title.strip() or cut(outgoing.text.strip(), 100) or outgoing.page_url


async def _parts(
    source: AsyncIterator[bytes], ranges: Sequence[tuple[int, int]]
) -> AsyncIterator[bytes]:
    """The bytes of ``source`` cut at the given inclusive (first, last) ranges, in order."""
    buffer = bytearray()
    position = 0
    for first, last in ranges:
        size = last - first + 1
        while len(buffer) < size:
            chunk = await anext(source, None)
            if chunk is None:
                break
            buffer.extend(chunk)
        if first != position or len(buffer) < size:
            raise PublishError("publish.rejected", "video upload parts do not cover the file")
        yield bytes(buffer[:size])
        del buffer[:size]
        position += size


class LinkedInAdapter:
    type: ClassVar[str] = "linkedin"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_IMAGES,
        max_videos=1,
        image_pixels=IMAGE_PIXELS,
        video_bytes=VIDEO_BYTES,
        video_seconds=MAX_SECONDS,
        text_chars=MAX_COMMENTARY,
    )
    poll_delays: ClassVar[tuple[float, ...]] = POLL_DELAYS

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "a linkedin destination needs --token")
        author = str(destination.config.get("author") or "")
        kind, _, number = author.removeprefix("urn:li:").partition(":")
        if not author.startswith("urn:li:") or kind not in ("person", "organization") or not number:
            raise PublishError(
                "publish.rejected",
                "a linkedin destination needs --set author=urn:li:person:ID or"
                " urn:li:organization:ID",
            )
        self.author = author
        self.organization = kind == "organization"
        self.destination_id = destination.id
        self.http = http
        self.base = (destination.url or API).rstrip("/")
        self.token = destination.token
        self.version = str(destination.config.get("version") or VERSION)

    # --- calls --------------------------------------------------------------------------------

    def _headers(self, restli_method: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "LinkedIn-Version": self.version,
            "X-Restli-Protocol-Version": "2.0.0",
        }
        if restli_method:
            headers["X-RestLi-Method"] = restli_method
        return headers

    async def _call(
        self, method: str, path: str, restli_method: str | None = None, **kwargs: Any
    ) -> tuple[int, str, CIMultiDict[str]]:
        url = path if path.startswith("http") else self.base + path
        response = await self.http.request(
            method, url, headers=self._headers(restli_method), **kwargs
        )
        async with response:
            return (
                response.status,
                await response.text(errors="replace"),
                CIMultiDict(response.headers),
            )

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body, _headers = await self._call(method, path, **kwargs)
        if status >= 300:
            raise linkedin_error(status, body, path.split("?")[0])
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientPublishError(
                "publish.unreachable", f"{path}: not JSON", body[:300]
            ) from exc

    # --- what goes --------------------------------------------------------------------------

    def commentary(self, outgoing: Outgoing) -> str:
        fitted = fit(
            [outgoing.title, outgoing.text],
            outgoing.page_url,
            lambda t: len(escape_little_text(t)) <= MAX_COMMENTARY,
        ).text
        return escape_little_text(fitted)

    def preflight(self, outgoing: Outgoing) -> Plan:
        media: list[Media] = []
        left_out: list[str] = []
        kind = "none"
        for medium in outgoing.media:
            reason = _unfit(medium)
            if reason is None and kind not in ("none", medium.kind):
                reason = f"a LinkedIn post with {kind}s carries no {medium.kind}"
            elif reason is None and kind in ("video", "document"):
                reason = f"a LinkedIn post carries one {kind}"
            elif reason is None and len(media) >= MAX_IMAGES:
                reason = f"a LinkedIn post carries up to {MAX_IMAGES} images"
            if reason is None:
                kind = medium.kind
                media.append(medium)
            else:
                left_out.append(f"{medium.item_id}: {reason}")
        return Plan(self.commentary(outgoing), kind, media, left_out)

    # --- uploads ------------------------------------------------------------------------------

    async def _initialize(self, api: str, request: dict[str, Any]) -> dict[str, Any]:
        answer = await self._json(
            "POST",
            f"/rest/{api}?action=initializeUpload",
            json={"initializeUploadRequest": {"owner": self.author, **request}},
        )
        value = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(value, dict):
            raise TransientPublishError("publish.unreachable", f"/rest/{api}: no upload value")
        return value

    async def _put_raw(self, url: str, data: Any, mime: str) -> tuple[int, str, CIMultiDict[str]]:
        # The upload URLs want the same bearer token; a failed PUT is retried as a whole. They
        # carry LinkedIn's signed parameters: a failure names the upload, never its URL.
        try:
            response = await self.http.request(
                "PUT",
                url,
                data=data,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": mime},
                timeout=UPLOAD_TIMEOUT,
            )
        except PublishError as exc:
            raise type(exc)(exc.code, "the upload to LinkedIn failed") from None
        async with response:
            status, body = response.status, await response.text(errors="replace")
            headers = CIMultiDict(response.headers)
        if status >= 300:
            raise linkedin_error(status, body, "upload")
        return status, body, headers

    async def _wait_available(self, api: str, urn: str) -> None:
        """Poll ``GET /rest/{api}/{urn}`` until ``AVAILABLE``; ``PROCESSING_FAILED`` is
        LinkedIn's refusal of the medium."""
        path = f"/rest/{api}/{quote(urn, safe='')}"
        for delay in self.poll_delays:
            answer = await self._json("GET", path)
            status = str(answer.get("status") or "")
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                reason = answer.get("processingFailureReason") or "processing failed"
                raise PublishError("publish.rejected", f"{api} {urn}: {status}", str(reason))
            await asyncio.sleep(delay)
        raise TransientPublishError(
            "publish.unreachable", f"{api} {urn}: still processing after {sum(self.poll_delays)} s"
        )

    async def _image(self, medium: Media) -> str:
        value = await self._initialize("images", {})
        await self._put_raw(str(value["uploadUrl"]), medium.read(), medium.mime)
        urn = str(value["image"])
        await self._wait_available("images", urn)
        return urn

    async def _document(self, medium: Media) -> str:
        value = await self._initialize("documents", {})
        await self._put_raw(str(value["uploadUrl"]), medium.read(), medium.mime)
        urn = str(value["document"])
        await self._wait_available("documents", urn)
        return urn

    async def _video(self, medium: Media) -> str:
        # The poster as the video's thumbnail, and a captions file when the item has one: other
        # forms of the item that deliveries hand over as ``variants`` where they know them.
        variants = getattr(medium, "variants", None) or {}
        poster, captions = variants.get("poster"), variants.get("captions")
        value = await self._initialize(
            "videos",
            {
                "fileSizeBytes": medium.bytes,
                "uploadCaptions": captions is not None,
                "uploadThumbnail": poster is not None,
            },
        )
        urn = str(value["video"])
        instructions = sorted(value.get("uploadInstructions") or [], key=lambda i: i["firstByte"])
        ranges = [(int(i["firstByte"]), int(i["lastByte"])) for i in instructions]
        if not ranges or ranges[-1][1] + 1 != medium.bytes:
            raise PublishError("publish.rejected", f"{urn}: upload instructions do not fit")
        etags: list[str] = []
        parts = _parts(medium.read().__aiter__(), ranges)
        for instruction in instructions:
            part = await anext(parts)
            _status, _body, headers = await self._put_raw(
                str(instruction["uploadUrl"]), part, "application/octet-stream"
            )
            etag = headers.get("ETag")
            if not etag:
                raise TransientPublishError("publish.unreachable", f"{urn}: a part has no ETag")
            etags.append(etag)
        await self._json(
            "POST",
            "/rest/videos?action=finalizeUpload",
            json={
                "finalizeUploadRequest": {
                    "video": urn,
                    "uploadToken": str(value.get("uploadToken") or ""),
                    "uploadedPartIds": etags,
                }
            },
        )
        for extra, key in ((poster, "thumbnailUploadUrl"), (captions, "captionsUploadUrl")):
            if extra is not None and value.get(key):
                await self._put_raw(str(value[key]), extra.read(), extra.mime)
        await self._wait_available("videos", urn)
        return urn

    async def _content(self, plan: Plan, outgoing: Outgoing) -> dict[str, Any] | None:
        if plan.kind == "image" and len(plan.media) > 1:
            images = []
            for medium in plan.media:
                image = {"id": await self._image(medium)}
                if medium.alt:
                    image["altText"] = medium.alt
                images.append(image)
            return {"multiImage": {"images": images}}
        if plan.kind == "none":
            return None
        medium = plan.media[0]
        if plan.kind == "image":
            media = {"id": await self._image(medium)}
            if medium.alt:
                media["altText"] = medium.alt
        elif plan.kind == "video":
            media = {"id": await self._video(medium), "title": _title(outgoing)}
        else:
            media = {"id": await self._document(medium), "title": _title(outgoing)}
        return {"media": media}

    # --- publish ------------------------------------------------------------------------------

    async def _already_posted(self, page_url: str) -> str | None:
        """The URN of a post of this author that carries the page link, or None. A person's
        posts can be read only with ``r_member_social``, which LinkedIn grants few apps: without
        it (403) the retry cannot tell, and posts."""
        path = f"/rest/posts?q=author&author={quote(self.author, safe='')}&count=20"
        status, body, _headers = await self._call("GET", path, "FINDER")
        if status == 403:
            log.info(
                "destination %s: cannot read its posts to find a lost one", self.destination_id
            )
            return None
        if status >= 300:
            raise linkedin_error(status, body, "/rest/posts")
        try:
            elements = json.loads(body).get("elements") or []
        except (ValueError, AttributeError):
            raise TransientPublishError("publish.unreachable", "/rest/posts: not JSON") from None
        for post in elements:
            if page_url in unescape_little_text(str(post.get("commentary") or "")):
                return str(post["id"])
        return None

    @staticmethod
    def _url(urn: str) -> str:
        return f"https://www.linkedin.com/feed/update/{urn}/"

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("linkedin destination %s: left out: %s", self.destination_id, reason)
        if outgoing.attempt > 1:
            found = await self._already_posted(outgoing.page_url)
            if found is not None:
                log.info("delivery %s: already posted as %s", outgoing.delivery_id, found)
                return Published(self._url(found), found)
        body: dict[str, Any] = {
            "author": self.author,
            "commentary": plan.text,
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        content = await self._content(plan, outgoing)
        if content is not None:
            body["content"] = content
        status, text, headers = await self._call("POST", "/rest/posts", json=body)
        if status >= 300:
            raise linkedin_error(status, text, "/rest/posts")
        urn = headers.get("x-restli-id") or ""
        if not urn:
            raise TransientPublishError("publish.unreachable", "/rest/posts: no x-restli-id")
        return Published(self._url(urn), urn)

    # --- edit and delete (relay.publish.Editor, Retractor) ------------------------------------

    @staticmethod
    def _urn(remote: Remote) -> str:
        urn = remote.remote_id or ""
        if not urn.startswith(("urn:li:share:", "urn:li:ugcPost:")):
            raise PublishError(
                "publish.rejected", f"no LinkedIn post URN kept for {remote.delivery_id}"
            )
        return urn

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """A partial update of the commentary (all LinkedIn lets change): read first, and send
        nothing when it already says this (a repeat after a lost answer)."""
        urn = self._urn(remote)
        path = f"/rest/posts/{quote(urn, safe='')}"
        commentary = self.commentary(outgoing)
        current = await self._json("GET", path)
        if current.get("commentary") != commentary:
            await self._json(
                "POST",
                path,
                restli_method="PARTIAL_UPDATE",
                json={"patch": {"$set": {"commentary": commentary}}},
            )
        return Published(self._url(urn), urn)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /rest/posts/{urn}``; a post already gone is success."""
        urn = self._urn(remote)
        path = f"/rest/posts/{quote(urn, safe='')}"
        status, body, _headers = await self._call("DELETE", path, "DELETE")
        if status in (404, 410):
            log.info("delivery %s: LinkedIn post already gone", remote.delivery_id)
        elif status >= 300:
            raise linkedin_error(status, body, "/rest/posts")

    async def check(self) -> str:
        if self.organization:
            number = self.author.rsplit(":", 1)[1]
            org = await self._json("GET", f"/rest/organizations/{number}")
            return f"can post to the LinkedIn Page {org.get('localizedName') or number}"
        me = await self._json("GET", "/v2/userinfo")
        return f"can post to LinkedIn as {me.get('name') or self.author}"


ADAPTER = LinkedInAdapter
