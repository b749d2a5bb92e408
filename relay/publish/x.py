"""X (Twitter) through the X API v2: media by the chunked upload, alt text as media metadata,
then one post (``POST /2/tweets``); ``DELETE /2/tweets/:id`` takes it down.

``relay destination add --type x --token USER_ACCESS_TOKEN`` (an OAuth 2.0 user-context token
with ``tweet.read tweet.write users.read media.write``; ``--set refresh_token=…`` and
``--set token_expires_at=…`` let the relay renew it, ``--url`` reaches another API host than
``https://api.x.com``). The web app's "Connect X" gets all three (relay/web/app/connect/x.py).

Sources (read 2026-12): docs.x.com/x-api/posts/create-post (``POST /2/tweets``: ``text``,
``media.media_ids``, ``reply.in_reply_to_tweet_id``); docs.x.com/x-api/media/quickstart/
media-upload-chunked and xdevplatform/samples "Media Upload/media_upload_v2.py" (2025-08: the
v2 upload moved to ``POST /2/media/upload/initialize`` with a JSON body, then
``/2/media/upload/{id}/append`` (multipart ``media``, ``segment_index``) and
``/2/media/upload/{id}/finalize``; ``GET /2/media/upload?command=STATUS&media_id=`` while
``processing_info.state`` is ``pending``/``in_progress``); docs.x.com/x-api/media/
create-media-metadata (``POST /2/media/metadata``, alt text at most 1,000 characters).

Text: title, text and the page link counted as X counts them (twitter-text v3: a URL X
recognises counts 23, CJK and emoji 2, at most 280), by ``twitter-text-parser``, the Python port
that passes twitter-text's conformance suite. The destination setting ``link`` says where the
relay's link goes, since X charges more for a post that carries a URL: ``in_post`` (default),
``in_reply`` (a reply to the post carries it) or ``none``. ``preflight`` shows which.

Media: up to 4 images (JPEG, PNG, WebP up to 5 MB each), or one GIF (15 MB), or one video
(MP4, at most 140 s and 512 MB, its shape between 1:3 and 3:1). A longer video is cut to its
first 139 s (ffmpeg stream copy of the relay's MP4: no re-encoding); a wider one than 3:1 or a
taller one than 1:3 is padded with black bars to 3:1 or 1:3 (ffmpeg ``pad``, re-encoded to
H.264/AAC as the relay's web MP4 is, and cut in the same run when it is also too long). Both
happen at delivery, into a temporary folder removed afterwards, and ``preflight`` says so in
``notes``. One over 512 MB is left out (the page link plays it), and ``preflight`` says why in
``left_out``. Media are sent in 4 MB segments as they are read, never held whole in memory.

Once only: X has no idempotency key. A retry (attempt > 1) first reads the account's latest
posts (``GET /2/users/:id/tweets``) for the one the first try made: the one whose link (in its
``entities.urls``, as X shortens it to t.co) is the post's page, or, with ``link`` ``in_reply``
or ``none``, whose text (t.co links expanded) is this post's text. Keeping the id before the
answer is impossible when the answer itself is lost, which is the case that matters; and X
refuses the same text twice (403 "duplicate content"), which this look-up turns into success
rather than a failure. With ``in_reply`` a post found without its reply gets only the reply.

X cannot edit a post through the API: the adapter has no ``edit`` (the relay says "this
channel cannot edit a post"). Delete removes the post and the relay's reply.

Errors (X answers RFC 7807 problem bodies ``{"title", "detail", "type", "status"}``, a 400 with
``errors: [{"message", "parameters"}]``): 401 → ``destination.reconnect_needed``; 403 duplicate
content → ``publish.duplicate``; other 403 → ``publish.unauthorized``; 429 →
``publish.rate_limited`` saying when ``x-rate-limit-reset`` allows more; 5xx → retried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from relay.errors import PublishError, TransientPublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http
from relay.publish.text import fit

log = logging.getLogger("relay.publish.x")

API = "https://api.x.com"
MB = 1024 * 1024
MAX_WEIGHTED = 280
MAX_IMAGES = 4
IMAGE_BYTES = 5 * MB
GIF_BYTES = 15 * MB
VIDEO_BYTES = 512 * MB
VIDEO_SECONDS = 140.0
MIN_ASPECT, MAX_ASPECT = 1 / 3, 3.0
ALT_CHARS = 1000
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime")
TRIM_TO = 139.0
"""Seconds of a longer video sent: cut by stream copy, which ends at a packet boundary, so a
second under X's 140 s limit."""
TRIM_TIMEOUT = 120.0
PAD_TIMEOUT = 600.0
"""Seconds a padding re-encode may take: up to 140 s of video at the web MP4's settings."""
DELIVERY_TIME = 120.0
"""Seconds a delivery gets without a re-encode (relay/publish/deliver.py's default)."""
PAD_CRF, PAD_PRESET = 23, "veryfast"
"""The web MP4's quality (handlers/video.py with the default ``RELAY_VIDEO_CRF`` and
``RELAY_VIDEO_PRESET``): the padded copy looks as the clip does on the post's page."""
CHUNK = 4 * MB
"""Bytes per APPEND: X takes segments up to 5 MB."""
LINK_PLACES = ("in_post", "in_reply", "none")
RECENT = 20
"""How many of the account's latest posts a retry reads for the one a first try made."""
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
# Seconds between STATUS polls when X does not say (it usually does: check_after_secs).
POLL_DELAYS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5)


def x_length(text: str) -> int:
    """The weighted length X gives ``text`` (twitter-text v3 configuration)."""
    # Imported here, when a post goes to X: twitter_text compiles its emoji pattern at import,
    # ~0.55 s of every start of the relay and of each of its commands.
    from twitter_text import parse_tweet

    return int(parse_tweet(text).weightedLength)


def fits(text: str) -> bool:
    return x_length(text) <= MAX_WEIGHTED


def status_url(username: str | None, tweet_id: str) -> str:
    if username:
        return f"https://x.com/{username}/status/{tweet_id}"
    return f"https://x.com/i/web/status/{tweet_id}"


# --- errors -------------------------------------------------------------------------------


def _problem(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _said(problem: Mapping[str, Any], body: str) -> str:
    """What X said, for the post's owner: the problem's detail and the parameters' messages."""
    parts = [str(problem.get("detail") or problem.get("title") or "")]
    for error in problem.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    said = "; ".join(p for p in parts if p) or body.strip()
    return said[:300]


def x_error(status: int, body: str, headers: Mapping[str, str], path: str) -> PublishError:
    """The publish error for an X answer that is not a success."""
    problem = _problem(body)
    said = _said(problem, body)
    detail = f"{path}: {status} {problem.get('type') or ''}".strip()
    if status == 401:
        return PublishError("destination.reconnect_needed", detail, said)
    if status == 403 and "duplicate" in said.lower():
        return PublishError("publish.duplicate", detail, said)
    if status == 403:
        return PublishError("publish.unauthorized", detail, said)
    if status == 429:
        reset = headers.get("x-rate-limit-reset", "")
        when = ""
        if reset.isdigit():
            when = datetime.fromtimestamp(int(reset), UTC).strftime("%H:%M UTC")
        remote = f"X allows more at {when}" if when else said
        return TransientPublishError("publish.rate_limited", f"{detail} reset {reset}", remote)
    if status >= 500 or status in (408, 409):
        return TransientPublishError("publish.unreachable", detail, said)
    return PublishError("publish.rejected", detail, said)


class XApi:
    """One API host and one user access token, in the ``Authorization`` header only."""

    def __init__(self, http: Http, base: str, token: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.token = token

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = await self.http.request(method, self.base + path, headers=headers, **kwargs)
        async with response:
            text = await response.text(errors="replace")
            return response.status, text, {k.lower(): v for k, v in response.headers.items()}

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body, headers = await self.call(method, path, **kwargs)
        if status >= 300:
            raise x_error(status, body, headers, path)
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientPublishError("publish.unreachable", f"{path}: not JSON") from exc


# --- what a post becomes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What X will get of a delivery: the post's text, its media, and the reply that carries
    the link (``in_reply``), or none."""

    text: str
    media: list[Media]
    left_out: list[str]
    link: str
    """Where the page link goes: ``in_post``, ``in_reply`` or ``none``."""
    reply: str = ""
    cut: bool = False
    """The title and text were shortened to fit (the link never is)."""
    notes: tuple[str, ...] = ()
    """What the relay changes to make X take a medium (a video cut to 140 s, padded to 3:1)."""


def _category(medium: Media) -> str:
    if medium.kind == "video":
        return "tweet_video"
    return "tweet_gif" if medium.mime == "image/gif" else "tweet_image"


def _video_problem(medium: Media) -> str | None:
    if medium.mime not in VIDEO_TYPES:
        return f"X takes MP4 videos, not {medium.mime}"
    if medium.bytes > VIDEO_BYTES:
        return "X takes videos up to 512 MB; the page link plays this one"
    return None


def too_long(medium: Media) -> bool:
    return medium.kind == "video" and (medium.duration or 0) > VIDEO_SECONDS


def pad_to(medium: Media) -> str | None:
    """The shape a video is padded to, "3:1" (wider than X takes) or "1:3" (taller); None when
    X takes its shape, or its size is not known."""
    if medium.kind != "video" or not medium.width or not medium.height:
        return None
    aspect = medium.width / medium.height
    if aspect > MAX_ASPECT:
        return "3:1"
    if aspect < MIN_ASPECT:
        return "1:3"
    return None


def choose(media: list[Media]) -> tuple[list[Media], list[str]]:
    """Up to 4 images, or one GIF, or one video (a video first: it is what the post is about
    when there is one); the rest left out with the reason."""
    left_out: list[str] = []
    video = None
    for medium in media:
        if medium.kind == "video" and video is None:
            problem = _video_problem(medium)
            if problem is None:
                video = medium
            else:
                left_out.append(f"{medium.item_id}: {problem}")
    if video is not None:
        left_out += [f"{m.item_id}: X takes one video alone" for m in media if m is not video]
        return [video], left_out
    chosen: list[Media] = []
    for medium in media:
        if medium.kind == "video":
            continue
        if medium.kind != "image":
            left_out.append(f"{medium.item_id}: X cannot carry a {medium.kind}")
        elif medium.mime == "image/gif":
            if chosen or medium.bytes > GIF_BYTES:
                left_out.append(f"{medium.item_id}: X takes one GIF alone, up to 15 MB")
            else:
                return [medium], left_out + [
                    f"{m.item_id}: X takes a GIF alone" for m in media if m is not medium
                ]
        elif medium.mime not in IMAGE_TYPES or medium.bytes > IMAGE_BYTES:
            left_out.append(f"{medium.item_id}: X takes JPEG, PNG or WebP up to 5 MB")
        elif len(chosen) >= MAX_IMAGES:
            left_out.append(f"{medium.item_id}: X takes at most {MAX_IMAGES} images")
        else:
            chosen.append(medium)
    return chosen, left_out


def plan_for(outgoing: Outgoing, link: str) -> Plan:
    media, left_out = choose(outgoing.media)
    if link == "in_post":
        fitted = fit([outgoing.title, outgoing.text], outgoing.page_url, fits)
        reply = ""
    else:
        fitted = fit([outgoing.title, outgoing.text], "", fits)
        reply = outgoing.page_url if link == "in_reply" else ""
    text = fitted.text
    if not text and not media:
        if link == "none":
            raise PublishError(
                "publish.rejected",
                "x preflight: nothing to post without the link",
                "this post has no text or media, and the channel's setting leaves the link out",
            )
        # Nothing but the link to say: a reply to an empty post cannot be, so it is the post.
        text, reply = outgoing.page_url, ""
    if not fits(text) or (reply and not fits(reply)):
        raise PublishError(
            "publish.rejected",
            "x preflight: the page link alone is too long",
            f"X takes at most {MAX_WEIGHTED} characters",
        )
    notes: list[str] = []
    for m in media:
        if too_long(m):
            notes.append(
                f"{m.item_id}: X takes videos up to {VIDEO_SECONDS:.0f} s; the relay sends the"
                f" first {TRIM_TO:.0f} s of this one ({m.duration:.0f} s), the page link plays"
                " it all"
            )
        if shape := pad_to(m):
            notes.append(
                f"{m.item_id}: X takes videos between 1:3 and 3:1; this one is padded to {shape}"
            )
    return Plan(text, media, left_out, link, reply, fitted.cut, tuple(notes))


def _expanded(tweet: Mapping[str, Any]) -> str:
    """The post's text with X's t.co links put back to what they stand for."""
    text = str(tweet.get("text") or "")
    for url in (tweet.get("entities") or {}).get("urls") or []:
        short, long = url.get("url"), url.get("expanded_url")
        if short and long:
            text = text.replace(str(short), str(long))
    return text


def _links_to(tweet: Mapping[str, Any], page_url: str) -> bool:
    urls = (tweet.get("entities") or {}).get("urls") or []
    return any(u.get("expanded_url") == page_url for u in urls) or page_url in _expanded(tweet)


# --- cutting a longer video, padding one of another shape -----------------------------------


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


def pad_filter(shape: str) -> str:
    """ffmpeg's ``pad`` to ``shape`` around the picture, centred, black, both sides even (H.264
    4:2:0 wants them so). Written in the input's own ``iw``/``ih``, which are the upright
    picture's (ffmpeg turns a phone clip's display matrix into pixels before filtering), so it
    fits whatever the rendition's encoded orientation. Rounding up keeps the shape within X's
    limit: the long side stays, the short one becomes at least a third of it."""
    wide, tall = "w=ceil(iw/2)*2:h=ceil(iw/6)*2", "w=ceil(ih/6)*2:h=ceil(ih/2)*2"
    size = wide if shape == "3:1" else tall
    return f"pad={size}:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=1,format=yuv420p"


async def _spool(medium: Media, path: Path) -> None:
    with path.open("wb") as f:
        async for chunk in medium.read():
            await asyncio.to_thread(f.write, chunk)


async def fitted_video(medium: Media, work: Path) -> Path:
    """The relay's own MP4 rendition made to fit X, in ``work``: cut to its first ``TRIM_TO``
    seconds when longer than X takes, padded to 3:1 or 1:3 when of another shape. A cut alone
    is a stream copy (no re-encoding: cheap enough for a delivery); padding re-encodes the
    picture (H.264, the web MP4's CRF and preset) and the sound (AAC 128 kb/s), cut in the same
    run. ffmpeg reads only that file, as an MP4 (``-protocol_whitelist file``, ``-f mp4``), and
    streams to a file: nothing of the video is held in memory."""
    source, out = work / "in.mp4", work / "out.mp4"
    await _spool(medium, source)
    shape = pad_to(medium)
    cut = ["-t", f"{TRIM_TO:.3f}"] if too_long(medium) else []
    if shape:
        codecs = [
            "-vf", pad_filter(shape), "-c:v", "libx264", "-crf", str(PAD_CRF),
            "-preset", PAD_PRESET, "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
            "-map_metadata", "-1", "-max_muxing_queue_size", "1024",
        ]  # fmt: skip
        doing, timeout = f"padding {medium.item_id} to {shape}", PAD_TIMEOUT
        public = f"the relay could not pad the video to {shape} for X"
    else:
        codecs = ["-c", "copy"]
        doing, timeout = f"cutting {medium.item_id}", TRIM_TIMEOUT
        public = "the relay could not cut the video to X's 140 seconds"
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-f", "mp4",
        "-i", str(source), *cut, "-map", "0:v:0", "-map", "0:a:0?", *codecs,
        "-movflags", "+faststart", "-y", str(out),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, errors = await asyncio.wait_for(process.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as stopped:
        process.kill()  # a re-encode left running would hold a core after the delivery ended
        await process.wait()
        if isinstance(stopped, asyncio.CancelledError):
            raise
        raise TransientPublishError("publish.unreachable", f"x: {doing} timed out") from None
    finally:
        source.unlink(missing_ok=True)  # half the disk the delivery needs, freed before upload
    if process.returncode != 0 or not out.is_file():
        log.warning("x: ffmpeg failed %s: %s", doing, errors[-300:])
        raise PublishError(
            "publish.rejected", f"x: ffmpeg exit {process.returncode} {doing}", public
        )
    return out


# --- the adapter -----------------------------------------------------------------------------


class XAdapter:
    type: ClassVar[str] = "x"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=MAX_IMAGES,
        max_videos=1,
        image_bytes=IMAGE_BYTES,
        video_bytes=VIDEO_BYTES,
        video_seconds=VIDEO_SECONDS,
        text_chars=MAX_WEIGHTED,
    )
    poll_delays: ClassVar[tuple[float, ...]] = POLL_DELAYS

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.token:
            raise PublishError("publish.rejected", "an x destination needs --token")
        link = str(destination.config.get("link") or "in_post")
        if link not in LINK_PLACES:
            raise PublishError("publish.rejected", f"link must be one of {', '.join(LINK_PLACES)}")
        self.link = link
        self.user_id = str(destination.config.get("user_id") or "")
        self.username = str(destination.config.get("username") or "") or None
        self.destination_id = destination.id
        self.api = XApi(http, destination.url or API, destination.token)

    def preflight(self, outgoing: Outgoing) -> Plan:
        return plan_for(outgoing, self.link)

    def timeout_for(self, outgoing: Outgoing) -> float | None:
        """More time for a publish that pads a video (relay/publish/deliver.py asks): the
        re-encode may take up to ``PAD_TIMEOUT`` before the upload's usual two minutes. The
        worker keeps the job's lease all along."""
        media, _ = choose(outgoing.media)
        return DELIVERY_TIME + PAD_TIMEOUT if any(pad_to(m) for m in media) else None

    # --- media ---

    async def _upload(self, medium: Media) -> str:
        if not too_long(medium) and pad_to(medium) is None:
            return await self._upload_stream(medium, medium.bytes, medium.read())
        with tempfile.TemporaryDirectory(prefix="relay-x-") as work:
            made = await fitted_video(medium, Path(work))
            return await self._upload_stream(medium, made.stat().st_size, _file_chunks(made))

    async def _upload_stream(self, medium: Media, total: int, chunks: AsyncIterator[bytes]) -> str:
        """INIT, APPEND in segments of ``CHUNK`` bytes as they are read, FINALIZE, then
        STATUS until X has processed it; alt text as the medium's metadata."""
        init = await self.api.json(
            "POST",
            "/2/media/upload/initialize",
            json={
                "media_type": medium.mime,
                "total_bytes": total,
                "media_category": _category(medium),
            },
        )
        media_id = str(init["data"]["id"])
        index = 0
        buffer = bytearray()

        async def append(segment: bytes) -> None:
            form = aiohttp.FormData()
            form.add_field("segment_index", str(index))
            form.add_field(
                "media", segment, filename="chunk", content_type="application/octet-stream"
            )
            await self.api.json(
                "POST", f"/2/media/upload/{media_id}/append", data=form, timeout=UPLOAD_TIMEOUT
            )

        async for chunk in chunks:
            buffer += chunk
            while len(buffer) >= CHUNK:
                await append(bytes(buffer[:CHUNK]))
                del buffer[:CHUNK]
                index += 1
        if buffer:
            await append(bytes(buffer))
        final = await self.api.json("POST", f"/2/media/upload/{media_id}/finalize")
        await self._processed(media_id, (final.get("data") or {}).get("processing_info"))
        if medium.alt and medium.kind == "image":
            await self.api.json(
                "POST",
                "/2/media/metadata",
                json={"id": media_id, "metadata": {"alt_text": {"text": medium.alt[:ALT_CHARS]}}},
            )
        return media_id

    async def _processed(self, media_id: str, info: Mapping[str, Any] | None) -> None:
        for delay in self.poll_delays:
            state = str((info or {}).get("state") or "succeeded")
            if state == "succeeded":
                return
            if state == "failed":
                error = (info or {}).get("error") or {}
                raise PublishError(
                    "publish.rejected",
                    f"/2/media/upload {media_id}: processing failed",
                    str(error.get("message") or "X could not process the medium")[:300],
                )
            wait = (info or {}).get("check_after_secs")
            await asyncio.sleep(min(float(wait), delay) if isinstance(wait, int | float) else delay)
            answer = await self.api.json(
                "GET", "/2/media/upload", params={"command": "STATUS", "media_id": media_id}
            )
            info = (answer.get("data") or {}).get("processing_info")
        raise TransientPublishError(
            "publish.unreachable", f"/2/media/upload {media_id}: still processing"
        )

    # --- once only ---

    async def _me(self) -> str:
        if not self.user_id:
            me = await self.api.json("GET", "/2/users/me")
            self.user_id = str(me["data"]["id"])
            self.username = self.username or me["data"].get("username")
        return self.user_id

    async def _recent(self) -> list[dict[str, Any]]:
        answer = await self.api.json(
            "GET",
            f"/2/users/{await self._me()}/tweets",
            params={
                "max_results": str(RECENT),
                "tweet.fields": "entities,referenced_tweets,created_at",
            },
        )
        return [t for t in answer.get("data") or [] if isinstance(t, dict)]

    def _made_earlier(
        self, recent: list[dict[str, Any]], plan: Plan, page_url: str
    ) -> tuple[str | None, str | None]:
        """(post id, reply id) a first try made, each None when it did not."""
        if plan.link == "in_post" or not plan.reply:
            if plan.link == "in_post" or plan.text == page_url:
                found = next((t for t in recent if _links_to(t, page_url)), None)
            else:
                found = next((t for t in recent if _expanded(t) == plan.text), None)
            return (str(found["id"]) if found else None), None
        post = next((t for t in recent if _expanded(t) == plan.text), None)
        if post is None:
            return None, None
        reply = next(
            (
                t
                for t in recent
                if _links_to(t, page_url)
                and any(
                    r.get("type") == "replied_to" and str(r.get("id")) == str(post["id"])
                    for r in t.get("referenced_tweets") or []
                )
            ),
            None,
        )
        return str(post["id"]), (str(reply["id"]) if reply else None)

    async def _tweet(self, body: dict[str, Any]) -> str:
        answer = await self.api.json("POST", "/2/tweets", json=body)
        return str(answer["data"]["id"])

    async def publish(self, outgoing: Outgoing) -> Published:
        plan = self.preflight(outgoing)
        for reason in plan.left_out:
            log.info("x destination %s: left out: %s", self.destination_id, reason)
        for note in plan.notes:
            log.info("x destination %s: %s", self.destination_id, note)
        post_id = reply_id = None
        if outgoing.attempt > 1:
            post_id, reply_id = self._made_earlier(await self._recent(), plan, outgoing.page_url)
            if post_id:
                log.info("delivery %s: already posted as %s", outgoing.delivery_id, post_id)
        if post_id is None:
            body: dict[str, Any] = {"text": plan.text}
            if plan.media:
                body["media"] = {"media_ids": [await self._upload(m) for m in plan.media]}
            try:
                post_id = await self._tweet(body)
            except PublishError as exc:
                if exc.code != "publish.duplicate":
                    raise
                # X has this text already: a first try whose answer was lost, or not ours.
                post_id, reply_id = self._made_earlier(
                    await self._recent(), plan, outgoing.page_url
                )
                if post_id is None:
                    raise
        if plan.reply and reply_id is None:
            reply_id = await self._tweet(
                {"text": plan.reply, "reply": {"in_reply_to_tweet_id": post_id}}
            )
        remote_id = f"{post_id}+{reply_id}" if reply_id else post_id
        return Published(status_url(self.username, post_id), remote_id)

    # --- delete (relay.publish.Retractor); no edit: X's API cannot ---

    async def _delete(self, tweet_id: str) -> None:
        path = f"/2/tweets/{tweet_id}"
        status, body, headers = await self.api.call("DELETE", path)
        if status == 404 or (status == 200 and '"deleted":false' in body.replace(" ", "")):
            log.info("x post %s already gone", tweet_id)
            return
        if status >= 300:
            raise x_error(status, body, headers, path)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /2/tweets/:id`` for the reply (when the link went in one), then the post; one
        already gone is success."""
        ids = (remote.remote_id or "").split("+")
        if not all(i.isdigit() for i in ids):
            raise PublishError("publish.rejected", f"no X post id kept for {remote.delivery_id}")
        for tweet_id in reversed(ids):
            await self._delete(tweet_id)

    async def check(self) -> str:
        me = await self.api.json("GET", "/2/users/me")
        return f"can post to X as @{me['data'].get('username') or me['data'].get('id')}"


ADAPTER = XAdapter


# --- renewing the 2-hour access token (called by relay/publish/renew.py) --------------------


@dataclass(frozen=True, slots=True)
class XClient:
    """The relay's X app (a confidential client): its id, secret and token endpoint."""

    client_id: str
    client_secret: str
    api: str = API

    def basic(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def client_from(settings: Any) -> XClient | None:
    """The relay's X app from ``RELAY_X_CLIENT_ID``/``RELAY_X_CLIENT_SECRET``; None unset."""
    secret = settings.x_client_secret
    if not settings.x_client_id or secret is None:
        return None
    return XClient(settings.x_client_id, secret.get_secret_value(), settings.x_api_url)


RENEW_BEFORE = 300.0
"""Renew a token that ends within five minutes (they last two hours)."""
EXPIRES_AT = "token_expires_at"
REFRESH = "refresh_token"


def needs_renewal(config: Mapping[str, Any], now: float | None = None) -> bool:
    try:
        ends = float(config[EXPIRES_AT])
    except (KeyError, TypeError, ValueError):
        return False
    return bool(config.get(REFRESH)) and ends - (now or time.time()) <= RENEW_BEFORE


async def refresh(
    http: Http, client: XClient, refresh_token: str
) -> tuple[int, dict[str, Any] | None]:
    """``POST /2/oauth2/token`` with ``grant_type=refresh_token`` (the client's id and secret
    as HTTP Basic): (status, answer). X's refresh tokens are single-use: the answer carries the
    next one, which must be kept at once."""
    response = await http.request(
        "POST",
        client.api.rstrip("/") + "/2/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
        },
        headers={"Authorization": client.basic()},
    )
    async with response:
        text = await response.text(errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    return response.status, answer if isinstance(answer, dict) else None


def renewed_config(config: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    lasts = answer.get("expires_in")
    return {
        **config,
        REFRESH: str(answer.get("refresh_token") or config.get(REFRESH) or ""),
        EXPIRES_AT: int(time.time() + (float(lasts) if isinstance(lasts, int | float) else 7200)),
    }
