"""YouTube through the YouTube Data API v3: one video per post, sent by the resumable upload
protocol, with the post's title, its text and page link as the description, its tags, a privacy
that follows the post, the video's poster as thumbnail and, once items carry one, its captions.

``relay destination add --type youtube --token ACCESS_TOKEN`` (``--set refresh_token=…
--set client_id=… --set client_secret=…`` to refresh it: access tokens last an hour); the web
app's "Connect YouTube" sets all of them (relay/web/app/connect/youtube.py). ``--url`` only for
another host than ``https://www.googleapis.com``. ``--set private_as=unlisted`` makes the
relay's private posts unlisted videos instead of private ones.

Sources (read 2026-12):
- videos.insert and "Resumable Uploads",
  https://developers.google.com/youtube/v3/docs/videos/insert,
  https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol: ``POST
  /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status`` with the video resource
  as JSON and ``X-Upload-Content-Length``/``-Type`` answers the session URI in ``Location``;
  the bytes go by ``PUT`` in chunks whose size is a multiple of 256 KiB (the last one excepted)
  with ``Content-Range: bytes FIRST-LAST/TOTAL``; ``308 Resume Incomplete`` carries ``Range:
  bytes=0-LAST`` of what the server holds; after a lost connection ``Content-Range: bytes
  */TOTAL`` with no body asks for that, and the upload goes on from there; ``201`` ends it with
  the video resource. A 5xx is a lost chunk too; a 404 is a session gone (sessions last a week).
- Title at most 100 characters, description at most 5,000 bytes, neither with ``<`` or ``>``;
  tags at most 500 characters in all (videos resource, "snippet").
- thumbnails.set (``POST /upload/youtube/v3/thumbnails/set?videoId=``, JPEG or PNG up to 2 MB;
  channels that are not verified get 403 and keep YouTube's own frame: logged, not a failure);
  captions.insert (``POST /upload/youtube/v3/captions?part=snippet``, multipart).
- videos.update (``PUT /youtube/v3/videos?part=snippet``: the snippet must repeat ``title`` and
  ``categoryId``), videos.delete (``DELETE /youtube/v3/videos?id=``, 404 when gone).
- Shorts, YouTube Help "Upload YouTube Shorts": a vertical or square video; "#Shorts" in the
  title or description helps it be shown as one. YouTube has taken Shorts up to three minutes
  since 2024-10; the relay marks vertical clips of at most 60 s, which are Shorts in any case.
- Quota (relay/publish/google.py): a refused upload for quota is a failure that says when the
  quota comes back (midnight Pacific Time), not a retry that burns the delivery's attempts.

Which file: the original when YouTube takes its container (MP4, QuickTime, WebM, Matroska,
AVI, MPEG, 3GPP, FLV, WMV; every codec phones and cameras put in them, H.264, HEVC, VP9, AV1,
ProRes, is one YouTube transcodes) and it is at most four times the size of the web MP4;
else the web MP4. YouTube transcodes whatever it gets, so the better source wins: the original
keeps the full resolution and quality that the web MP4 (scaled, re-encoded) gave up. An
original many times larger is an editing codec's bitrate that YouTube throws away, and only
makes the upload longer. The relay's original is the one it serves: location data removed.

Once only: the relay keeps no upload session across attempts (deliveries have no state for
it), so a retry first looks among the channel's latest uploads for the video tagged with the
delivery's idempotency key (``relay-<key>``) and takes that one; a session cut off by a crash
is left to expire. Within one attempt, a dropped connection resumes the same session at the
server's offset. The bytes are streamed from the store: one chunk (8 MiB) in memory at most.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from relay.errors import PublishError, TransientPublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote, google
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.publish.youtube")

API = "https://www.googleapis.com"
WATCH = "https://www.youtube.com/watch?v="
SHORTS = "https://www.youtube.com/shorts/"
QUANTUM = 256 * 1024
"""Every chunk but the last is a multiple of this (the resumable protocol's rule)."""
CHUNK = 32 * QUANTUM
MAX_TITLE = 100
MAX_DESCRIPTION_BYTES = 5000
MAX_TAGS_CHARS = 500
MAX_BYTES = 256 * 1024**3
MAX_SECONDS = 12 * 3600.0
SHORT_SECONDS = 60.0
THUMBNAIL_BYTES = 2 * 1024 * 1024
THUMBNAIL_TYPES = ("image/jpeg", "image/png")
CAPTION_BYTES = 10 * 1024 * 1024
ORIGINAL_FACTOR = 4
UPLOAD_TYPES = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
        "video/avi",
        "video/mpeg",
        "video/3gpp",
        "video/3gpp2",
        "video/x-flv",
        "video/x-ms-wmv",
        "video/x-ms-asf",
        "video/mp2t",
    }
)
PRIVACY_FOR_PRIVATE = ("private", "unlisted")
CATEGORY = "22"  # People & Blogs, YouTube's own default for uploads
RESUMES = 5
"""Lost connections (or 5xx) one upload may resume after, each after a growing pause."""
RESUME_PAUSE = 0.5
SLOW_UPLINK = 256 * 1024  # bytes a second
UPLOAD_GRACE = 300.0
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
_RANGE = re.compile(r"bytes=0-(\d+)$")


def _clean(text: str) -> str:
    """YouTube refuses ``<`` and ``>`` in titles and descriptions: the look-alike angles."""
    return text.replace("<", "‹").replace(">", "›")


def _title_fits(text: str) -> bool:
    return len(text) <= MAX_TITLE


def _description_fits(text: str) -> bool:
    return len(text.encode()) <= MAX_DESCRIPTION_BYTES


def marker(key: str) -> str:
    """The tag that finds this delivery's video again."""
    return "relay-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)[:60]


def _tags(wanted: list[str], key: str) -> list[str]:
    """The marker first, then the post's tags while they fit YouTube's 500 characters (a tag
    with a space counts its quotes too); commas and angles are not allowed in a tag."""
    tags = [marker(key)]
    used = len(tags[0])
    for tag in wanted:
        tag = re.sub(r"[<>,\"]", "", str(tag)).strip()
        if not tag or tag in tags:
            continue
        cost = len(tag) + (2 if " " in tag else 0) + 1  # +1: the separator
        if used + cost > MAX_TAGS_CHARS:
            break
        tags.append(tag)
        used += cost
    return tags


@dataclass(frozen=True, slots=True)
class Plan:
    """What the video on YouTube will be."""

    video: Media
    source: str
    """Which file is sent and why (the rule above), for the log and the preview."""
    title: str
    description: str
    tags: list[str]
    privacy: str
    short: bool
    poster: Media | None = None
    captions: Media | None = None
    left_out: list[str] = field(default_factory=list)
    cut: bool = False
    """The title or the description is shorter than the post's: YouTube's limits cut it."""


def choose_file(medium: Media) -> tuple[Media, str]:
    """The original or the web MP4, by the rule in the module's docstring."""
    original = medium.variants.get("original")
    if original is None:
        return medium, "the web MP4 (no original kept)"
    if original.mime.lower() not in UPLOAD_TYPES:
        return medium, f"the web MP4 (YouTube does not take {original.mime})"
    if original.bytes > ORIGINAL_FACTOR * medium.bytes:
        return medium, (
            f"the web MP4 (the original, {original.bytes} bytes, is more than"
            f" {ORIGINAL_FACTOR} times larger)"
        )
    return original, "the original (YouTube transcodes it from the best source)"


def is_short(medium: Media) -> bool:
    """Vertical and at most 60 s (the web MP4's upright size and length)."""
    return bool(
        medium.width
        and medium.height
        and medium.height > medium.width
        and medium.duration is not None
        and medium.duration <= SHORT_SECONDS
    )


class Api:
    """One Google API host and one access token; a token refused (401) is refreshed once with
    the destination's refresh token when it has one. The token goes in a header only."""

    def __init__(self, http: Http, base: str, token: str, config: dict[str, Any]) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.token = token
        self.config = config
        self.refreshed = False

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
        extra = kwargs.pop("headers", {})
        # ``data`` may be a factory: a one-shot stream is made anew for the call after a refresh.
        data = kwargs.pop("data", None)
        while True:
            headers = {"Authorization": f"Bearer {self.token}", **extra}
            body = data() if callable(data) else data
            response = await self.http.request(
                method, self.url(path), headers=headers, data=body, **kwargs
            )
            async with response:
                status = response.status
                found = {k: v for k, v in response.headers.items()}
                text = await response.text(errors="replace")
            if status == 401 and not self.refreshed and self.config.get("refresh_token"):
                self.refreshed = True
                self.token, _ends = await google.refresh(self.http, self.config)
                continue
            return status, found, text

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, _headers, text = await self.call(method, path, **kwargs)
        if status >= 300:
            raise google.api_error(status, text, urlsplit(self.url(path)).path)
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise TransientPublishError("publish.unreachable", f"{path}: not JSON") from exc


async def _skip(stream: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
    """``stream`` without its first ``count`` bytes (a resume before what is held in memory)."""
    async for piece in stream:
        if count >= len(piece):
            count -= len(piece)
            continue
        yield piece[count:]
        count = 0


async def _once(body: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for at in range(0, len(body), piece):
        yield bytes(view[at : at + piece])


class YouTubeAdapter:
    type: ClassVar[str] = "youtube"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_videos=1,
        video_bytes=MAX_BYTES,
        video_seconds=MAX_SECONDS,
        text_chars=MAX_DESCRIPTION_BYTES,
    )
    chunk: ClassVar[int] = CHUNK
    resume_pause: ClassVar[float] = RESUME_PAUSE

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "a youtube destination needs --token")
        private_as = str(destination.config.get("private_as") or "private")
        if private_as not in PRIVACY_FOR_PRIVATE:
            raise PublishError(
                "publish.rejected",
                "youtube: bad private_as",
                f"private_as must be private or unlisted, not {private_as[:40]}",
            )
        self.private_as = private_as
        self.language = str(destination.config.get("language") or "en")
        self.destination_id = destination.id
        self.api = Api(http, destination.url or API, destination.token, dict(destination.config))

    # --- what goes out --------------------------------------------------------------------

    def preflight(self, outgoing: Outgoing) -> Plan:
        videos = [m for m in outgoing.media if m.kind == "video"]
        if not videos:
            raise PublishError(
                "publish.rejected",
                "youtube preflight: no video",
                "YouTube takes a video; this post has none",
            )
        medium = videos[0]
        left_out = [
            f"{m.item_id}: YouTube takes one video" for m in outgoing.media if m is not medium
        ]
        if (medium.duration or 0) > MAX_SECONDS:
            raise PublishError(
                "publish.rejected", "youtube preflight: too long", "YouTube takes up to 12 hours"
            )
        video, source = choose_file(medium)
        short = is_short(medium)
        title = self._title(outgoing, short)
        parts = [_clean(outgoing.text)]
        if short and "#shorts" not in outgoing.text.lower():
            parts.append("#Shorts")
        fitted = fit(parts, outgoing.page_url, _description_fits)
        private = bool(outgoing.post.get("private"))
        poster = medium.variants.get("poster")
        if poster is not None and (
            poster.mime not in THUMBNAIL_TYPES or poster.bytes > THUMBNAIL_BYTES
        ):
            left_out.append(f"{medium.item_id}: the poster is not a JPEG or PNG up to 2 MB")
            poster = None
        captions = medium.variants.get("captions")
        if captions is not None and captions.bytes > CAPTION_BYTES:
            left_out.append(f"{medium.item_id}: the captions track is larger than 10 MB")
            captions = None
        return Plan(
            video=video,
            source=source,
            title=title,
            description=fitted.text,
            tags=_tags(list(outgoing.post.get("tags") or []), outgoing.idempotency_key),
            privacy=self.private_as if private else "public",
            short=short,
            poster=poster,
            captions=captions,
            left_out=left_out,
            cut=fitted.cut or len(" ".join(outgoing.title.split())) > MAX_TITLE,
        )

    def _title(self, outgoing: Outgoing, short: bool) -> str:
        """The post's title, else the text's first line, else "Video"; 100 characters at most,
        with " #Shorts" at its end when a Short's title has room for it."""
        first = outgoing.text.strip().splitlines()[0] if outgoing.text.strip() else ""
        title = " ".join(_clean(outgoing.title or first or "Video").split())
        title = fit([title], "", _title_fits).text.strip() or "Video"
        if short and "#shorts" not in title.lower() and len(title) + 8 <= MAX_TITLE:
            title += " #Shorts"
        return title

    def _snippet(self, plan: Plan) -> dict[str, Any]:
        return {
            "title": plan.title,
            "description": plan.description,
            "tags": plan.tags,
            "categoryId": CATEGORY,
        }

    def timeout_for(self, outgoing: Outgoing) -> float:
        """How long a delivery may take (relay/publish/deliver.py): a gigabyte clip does not
        upload in the two minutes other channels get; this allows a slow uplink (2 Mbit/s).
        The worker keeps the job's lease all along, so no other node starts it meanwhile."""
        videos = [m for m in outgoing.media if m.kind == "video"]
        if not videos:
            return 0.0
        return UPLOAD_GRACE + choose_file(videos[0])[0].bytes / SLOW_UPLINK

    # --- publish ------------------------------------------------------------------------------

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        log.info("youtube destination %s: sending %s", self.destination_id, plan.source)
        for reason in plan.left_out:
            log.info("youtube destination %s: left out: %s", self.destination_id, reason)
        video = None
        if outgoing.attempt > 1:
            video = await self._uploaded_with(marker(outgoing.idempotency_key))
            if video is not None:
                log.info("delivery %s: already uploaded as %s", outgoing.delivery_id, video["id"])
        if video is None:
            session = await self._start(plan)
            video = await self._send(session, plan.video)
        video_id = str(video["id"])
        await self._thumbnail(video_id, plan.poster)
        if plan.captions is not None:
            await self._captions(video_id, plan.captions)
        return Published((SHORTS if plan.short else WATCH) + video_id, video_id)

    async def _start(self, plan: Plan) -> str:
        """A resumable upload session; its URI (where the bytes go)."""
        body = {
            "snippet": self._snippet(plan),
            "status": {"privacyStatus": plan.privacy, "embeddable": True},
        }
        status, headers, text = await self.api.call(
            "POST",
            "/upload/youtube/v3/videos",
            params={"uploadType": "resumable", "part": "snippet,status"},
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Length": str(plan.video.bytes),
                "X-Upload-Content-Type": plan.video.mime,
            },
        )
        if status >= 300:
            raise google.api_error(status, text, "/upload/youtube/v3/videos")
        location = headers.get("Location", "")
        here, there = urlsplit(self.api.base), urlsplit(location)
        # The token goes with every chunk: only to the host the session was asked of.
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            raise TransientPublishError(
                "publish.unreachable", f"youtube: upload session on another host ({there.netloc})"
            )
        return location

    async def _put(
        self, session: str, body: bytes | None, content_range: str, mime: str
    ) -> tuple[int, dict[str, str], str] | None:
        """One PUT to the session (``body`` None: the question how much arrived); None when
        the connection was lost (or Google said 5xx): the caller asks how much arrived.

        A chunk goes as a one-shot stream with its length: aiohttp would otherwise send a PUT
        again by itself after a dropped connection, from the chunk's first byte, behind the
        back of the resume (the server may hold part of it by then)."""
        headers = {"Content-Range": content_range, "Content-Length": str(len(body or b""))}
        if body:
            headers["Content-Type"] = mime
        try:
            status, found, text = await self.api.call(
                "PUT",
                session,
                data=(lambda: _once(body)) if body else None,
                headers=headers,
                timeout=UPLOAD_TIMEOUT,
            )
        except TransientPublishError as exc:
            log.info("youtube upload: %s; asking the session where it stands", exc.code)
            return None
        if status >= 500:
            return None
        return status, found, text

    async def _send(self, session: str, video: Media) -> dict[str, Any]:
        """Stream ``video`` into the session in chunks; the video resource when done."""
        total = video.bytes
        stream: AsyncIterator[bytes] = video.read()
        pending = bytearray()
        start = 0  # the offset of pending[0]: what the server holds
        exhausted = False
        lost = 0
        while True:
            while not exhausted and len(pending) < self.chunk:
                try:
                    pending += await anext(stream)
                except StopAsyncIteration:
                    exhausted = True
            if exhausted and start + len(pending) != total:
                raise PublishError(
                    "publish.rejected",
                    f"youtube: the stored video has {start + len(pending)} bytes, not {total}",
                )
            final = exhausted and len(pending) <= self.chunk
            size = len(pending) if final else self.chunk
            if size == 0:
                answer = await self._put(session, None, f"bytes */{total}", video.mime)
            else:
                answer = await self._put(
                    session,
                    bytes(pending[:size]),
                    f"bytes {start}-{start + size - 1}/{total}",
                    video.mime,
                )
            if answer is None:
                lost += 1
                if lost > RESUMES:
                    raise TransientPublishError(
                        "publish.unreachable", f"youtube: upload lost {lost} times"
                    )
                await asyncio.sleep(self.resume_pause * lost)
                answer = await self._put(session, None, f"bytes */{total}", video.mime)
                if answer is None:
                    continue  # asked again on the next round, after a longer pause
            status, headers, text = answer
            if status in (200, 201):
                return dict(json.loads(text))
            if status == 404 or status == 410:
                raise TransientPublishError(
                    "publish.unreachable", "youtube: the upload session expired; starting again"
                )
            if status != 308:
                raise google.api_error(status, text, "/upload/youtube/v3/videos (session)")
            match = _RANGE.match(headers.get("Range", "").strip())
            held = int(match.group(1)) + 1 if match else 0
            if held > total:
                raise TransientPublishError("publish.unreachable", f"youtube: holds {held} bytes")
            if start <= held <= start + len(pending):
                del pending[: held - start]
            else:
                # The server holds less than what left memory: read the file again from there.
                log.info("youtube upload: resuming at %d from the store", held)
                stream = _skip(video.read(), held)
                pending = bytearray()
                exhausted = False
            start = held

    async def _uploaded_with(self, tag: str) -> dict[str, Any] | None:
        """Among the channel's latest 50 uploads, the video tagged ``tag``."""
        channels = await self.api.json(
            "GET",
            "/youtube/v3/channels",
            params={"part": "contentDetails", "mine": "true"},
        )
        items = channels.get("items") or []
        if not items:
            return None
        uploads = items[0].get("contentDetails", {}).get("relatedPlaylists", {}).get("uploads")
        if not uploads:
            return None
        listed = await self.api.json(
            "GET",
            "/youtube/v3/playlistItems",
            params={"part": "contentDetails", "playlistId": uploads, "maxResults": "50"},
        )
        ids = [
            str(i.get("contentDetails", {}).get("videoId"))
            for i in listed.get("items") or []
            if i.get("contentDetails", {}).get("videoId")
        ]
        if not ids:
            return None
        videos = await self.api.json(
            "GET", "/youtube/v3/videos", params={"part": "snippet,status", "id": ",".join(ids)}
        )
        for video in videos.get("items") or []:
            if tag in (video.get("snippet", {}).get("tags") or []):
                return dict(video)
        return None

    async def _thumbnail(self, video_id: str, poster: Media | None) -> None:
        """The poster as the video's thumbnail. A channel that may not set custom thumbnails
        (not verified) keeps YouTube's frame: logged, the video is up all the same."""
        if poster is None:
            return
        data = b"".join([piece async for piece in poster.read()])
        try:
            await self.api.json(
                "POST",
                "/upload/youtube/v3/thumbnails/set",
                params={"videoId": video_id, "uploadType": "media"},
                data=data,
                headers={"Content-Type": poster.mime},
            )
        except TransientPublishError:
            raise
        except PublishError as exc:
            if exc.code in (google.RECONNECT, google.QUOTA):
                raise
            log.warning("youtube video %s: thumbnail not set: %s %s", video_id, exc, exc.remote)

    async def _captions(self, video_id: str, captions: Media) -> None:
        """captions.insert, once: a track the video already has (a retry) is not sent again."""
        found = await self.api.json(
            "GET", "/youtube/v3/captions", params={"part": "snippet", "videoId": video_id}
        )
        if any(c.get("snippet", {}).get("name") == "relay" for c in found.get("items") or []):
            return
        data = b"".join([piece async for piece in captions.read()])
        metadata = {"snippet": {"videoId": video_id, "language": self.language, "name": "relay"}}
        with aiohttp.MultipartWriter("related") as body:
            body.append_json(metadata)
            body.append(data, {"Content-Type": captions.mime})
        await self.api.json(
            "POST",
            "/upload/youtube/v3/captions",
            params={"part": "snippet", "uploadType": "multipart"},
            data=body,
        )

    # --- edit and delete (relay.publish.Editor, Retractor) ------------------------------------

    def _video_id(self, remote: Remote) -> str:
        if not remote.remote_id or not re.fullmatch(r"[A-Za-z0-9_-]{6,64}", remote.remote_id):
            raise PublishError("publish.rejected", f"no video id kept for {remote.delivery_id}")
        return remote.remote_id

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """videos.update of the title, description and tags (and the privacy when the post's
        changed); a repeat after a lost answer reads the video first and sends nothing when it
        already says this. The video itself cannot be replaced on YouTube."""
        video_id = self._video_id(remote)
        found = await self.api.json(
            "GET", "/youtube/v3/videos", params={"part": "snippet,status", "id": video_id}
        )
        items = found.get("items") or []
        if not items:
            raise PublishError("publish.rejected", f"youtube: video {video_id} is gone")
        current = items[0]
        snippet = dict(current.get("snippet") or {})
        plan = self.preflight(outgoing)
        kept_tags = [t for t in snippet.get("tags") or [] if str(t).startswith("relay-")]
        wanted = {
            "title": plan.title,
            "description": plan.description,
            "tags": kept_tags + [t for t in plan.tags if not t.startswith("relay-")],
            "categoryId": snippet.get("categoryId") or CATEGORY,
        }
        privacy = (current.get("status") or {}).get("privacyStatus")
        same = all(snippet.get(k) == v for k, v in wanted.items())
        if not same or privacy != plan.privacy:
            parts = ["snippet"] + ([] if privacy == plan.privacy else ["status"])
            body: dict[str, Any] = {"id": video_id, "snippet": wanted}
            if "status" in parts:
                body["status"] = {"privacyStatus": plan.privacy}
            await self.api.json(
                "PUT",
                "/youtube/v3/videos",
                params={"part": ",".join(parts)},
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json; charset=UTF-8"},
            )
        return Published(remote.remote_url, video_id)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """videos.delete; a video already gone (404) is success."""
        video_id = self._video_id(remote)
        status, _headers, text = await self.api.call(
            "DELETE", "/youtube/v3/videos", params={"id": video_id}
        )
        if status == 404:
            log.info("delivery %s: video already gone", remote.delivery_id)
            return
        if status >= 300:
            raise google.api_error(status, text, "/youtube/v3/videos")

    async def check(self) -> str:
        answer = await self.api.json(
            "GET", "/youtube/v3/channels", params={"part": "snippet", "mine": "true"}
        )
        items = answer.get("items") or []
        if not items:
            raise PublishError(
                "publish.rejected", "youtube: no channel", "this Google account has no channel"
            )
        return f"can upload to the YouTube channel {items[0]['snippet'].get('title')}"


ADAPTER = YouTubeAdapter
