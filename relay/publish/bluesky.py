"""Bluesky (AT Protocol): an ``app.bsky.feed.post`` record written to the account's PDS.

``--url`` is the PDS (``https://bsky.social`` when omitted), ``--set handle=anna.bsky.social``
the account and ``--token`` an app password (Settings → App passwords), never the main one.

Once only: the record key is a TID derived from the delivery and the post's time, and the record
is written with ``com.atproto.repo.putRecord``: a retry after a lost answer writes the same key
again and replaces the record with the same content, so there is one post on the far side.

Images (up to 4) are uploaded as blobs with their alt text and aspect ratio; one over Bluesky's
1,000,000 bytes is re-encoded as a JPEG at falling quality, then size, until it fits. Bluesky's own
video upload is a separate service, so a video becomes a link card to the post's page with the
poster frame as its picture; a post without media gets a link card too. The text (title, text, the
page link) is cut to 300 graphemes with the link kept whole and marked by a link facet.

Removal deletes the record (``com.atproto.repo.deleteRecord`` with the repo, collection and key
of the ``at://`` URI kept as the delivery's remote id); a record already gone is success, as the
PDS itself answers. Bluesky has no edit: by default an edit says on the delivery that this
channel cannot edit a post. ``--set edit=repost`` makes an edit write a new record and then
delete the old one (likes, replies and reposts of the old one are lost; only when asked), with
the new record's key derived from the edit, so a repeat writes the same record again.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from datetime import UTC, datetime
from typing import Any, ClassVar

from PIL import Image

from relay.errors import PublishError, TransientPublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http, raise_for_status
from relay.publish.text import bluesky_fits, cut, fit

log = logging.getLogger("relay.publish.bluesky")

DEFAULT_PDS = "https://bsky.social"
POST = "app.bsky.feed.post"
MAX_BLOB = 1_000_000  # app.bsky.embed.images#image and #external thumb: maxSize
MAX_IMAGES = 4
DESCRIPTION_GRAPHEMES = 300
POSTER_MAX_BYTES = 20 * 1024 * 1024
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# XRPC error names that mean the credentials will not do; anything else goes by HTTP status.
EDIT_MODES = ("refuse", "repost")
AUTH_ERRORS = frozenset(
    {
        "AuthenticationRequired",
        "ExpiredToken",
        "InvalidToken",
        "AccountTakedown",
        "AccountDeactivated",
        "AuthFactorTokenRequired",
    }
)


def tid(microseconds: int, clock_id: int) -> str:
    """A TID (atproto record key): 1 zero bit, 53 bits of microseconds since the epoch, 10 bits
    of clock id, as 13 characters of base32-sortable."""
    value = ((microseconds & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def record_key(delivery_id: str, created: datetime) -> str:
    """The same TID for every try of a delivery. It stays close to the post's time (Bluesky sorts
    and shows by it), offset within that second by the delivery's hash, which also gives the
    clock id: two deliveries of one post to one account do not share a key."""
    digest = int.from_bytes(hashlib.sha256(delivery_id.encode()).digest()[:8], "big")
    micros = int(created.timestamp()) * 1_000_000 + (digest >> 10) % 1_000_000
    return tid(micros, digest & 0x3FF)


def created_at(post: dict[str, Any]) -> datetime:
    raw = post.get("created_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    # Not expected: posts have their time. Without it a retry may choose another key.
    log.warning("post %s has no created_at; record key from the current time", post.get("id"))
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def network_rendition(data: bytes, limit: int = MAX_BLOB) -> tuple[bytes, str, int, int]:
    """A JPEG of ``data`` within ``limit`` bytes: lower quality first, then smaller by a quarter
    at a time. Blocking (Pillow): run it in a thread."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = opened
        if image.mode in ("RGBA", "LA", "P", "PA"):
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        elif image.mode != "RGB":
            image = image.convert("RGB")
    candidate = image
    while True:
        for quality in (85, 75, 65, 55):
            out = io.BytesIO()
            candidate.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
            if out.tell() <= limit:
                return out.getvalue(), "image/jpeg", candidate.width, candidate.height
        if min(candidate.size) <= 64:
            raise PublishError("publish.rejected", f"no rendition under {limit} bytes")
        # Bytes go roughly with pixels: shrink by what the last try missed, and a margin, so
        # a very detailed picture takes one or two steps rather than many.
        scale = min(0.85, (limit / out.tell()) ** 0.5 * 0.95)
        size = (max(1, round(candidate.width * scale)), max(1, round(candidate.height * scale)))
        candidate = image.resize(size, Image.Resampling.LANCZOS)


def _dimensions(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # only for the aspect ratio: a picture Pillow cannot read goes without
        return None


async def _read(medium: Media) -> bytes:
    chunks = [chunk async for chunk in medium.read()]
    return b"".join(chunks)


class BlueskyAdapter:
    type: ClassVar[str] = "bluesky"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False, max_images=MAX_IMAGES, image_bytes=MAX_BLOB, text_chars=300
    )

    def __init__(self, destination: Destination, http: Http) -> None:
        handle = str(destination.config.get("handle", "")).strip().lstrip("@")
        if not handle:
            raise PublishError("publish.rejected", "a bluesky destination needs --set handle=…")
        if not destination.token:
            raise PublishError(
                "publish.rejected", "a bluesky destination needs --token (app password)"
            )
        self.base = (destination.url or DEFAULT_PDS).rstrip("/")
        self.identifier = handle
        self.password = destination.token
        self.destination_id = destination.id
        self.edit_mode = str(destination.config.get("edit") or "refuse")
        if self.edit_mode not in EDIT_MODES:
            raise PublishError(
                "publish.rejected", f"edit must be one of {', '.join(EDIT_MODES)}: {self.edit_mode}"
            )
        self.http = http

    def _fail(self, status: int, body: str, nsid: str) -> None:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        name = message = ""
        if isinstance(parsed, dict):
            name = str(parsed.get("error") or "")
            message = str(parsed.get("message") or "")
        remote = ": ".join(p for p in (name, message) if p) or body
        if name in AUTH_ERRORS:
            raise PublishError("publish.unauthorized", f"{nsid}: {status}", remote)
        if name == "RateLimitExceeded":
            raise TransientPublishError("publish.rate_limited", f"{nsid}: {status}", remote)
        raise_for_status(status, remote, f"{self.base}/xrpc/{nsid}")

    async def _xrpc(self, nsid: str, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.http.request(
            "POST", f"{self.base}/xrpc/{nsid}", headers=headers, **kwargs
        )
        async with response:
            status, body = response.status, await response.text(errors="replace")
        if status >= 300:
            self._fail(status, body, nsid)
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise TransientPublishError("publish.unreachable", f"{nsid}: not JSON") from exc
        if not isinstance(answer, dict):
            raise TransientPublishError("publish.unreachable", f"{nsid}: unexpected answer")
        return answer

    async def session(self) -> dict[str, Any]:
        """A fresh session for this publish: app passwords do not expire, access tokens do."""
        return await self._xrpc(
            "com.atproto.server.createSession",
            json={"identifier": self.identifier, "password": self.password},
        )

    async def _blob(self, token: str, data: bytes, mime: str) -> dict[str, Any]:
        answer = await self._xrpc(
            "com.atproto.repo.uploadBlob", token, data=data, headers={"Content-Type": mime}
        )
        return answer["blob"]

    async def _fitted(self, data: bytes, mime: str) -> tuple[bytes, str, tuple[int, int] | None]:
        if len(data) <= MAX_BLOB:
            return data, mime, _dimensions(data)
        fitted, fitted_mime, width, height = await asyncio.to_thread(network_rendition, data)
        log.info(
            "bluesky destination %s: image of %d bytes re-encoded to %d bytes (%dx%d)",
            self.destination_id,
            len(data),
            len(fitted),
            width,
            height,
        )
        return fitted, fitted_mime, (width, height)

    async def _image(self, token: str, medium: Media) -> dict[str, Any]:
        data, mime, size = await self._fitted(await _read(medium), medium.mime)
        entry: dict[str, Any] = {"alt": medium.alt, "image": await self._blob(token, data, mime)}
        if size and size[0] > 0 and size[1] > 0:
            entry["aspectRatio"] = {"width": size[0], "height": size[1]}
        return entry

    async def _poster(self, token: str, outgoing: Outgoing, video: Media) -> dict[str, Any] | None:
        """The video's poster frame as a blob for the link card, or None (then the card has no
        picture: the link still leads to the video)."""
        poster = next(
            (
                rendition
                for item in outgoing.post.get("items", [])
                if item.get("id") == video.item_id
                for rendition in item.get("renditions", [])
                if rendition.get("name") == "poster"
            ),
            None,
        )
        if poster is None:
            return None
        url = poster["url"]
        try:
            response = await self.http.request("GET", url)
            async with response:
                if response.status != 200:
                    raise PublishError("publish.rejected", f"{url}: {response.status}")
                received = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    received += chunk
                    if len(received) > POSTER_MAX_BYTES:
                        raise PublishError("publish.rejected", f"{url}: poster too large")
            data, mime, _ = await self._fitted(bytes(received), poster.get("mime") or "image/jpeg")
        except (PublishError, OSError) as exc:
            log.info(
                "bluesky destination %s: link card without poster (%s)", self.destination_id, exc
            )
            return None
        return await self._blob(token, data, mime)

    def _skip(self, medium: Media, reason: str) -> None:
        log.info(
            "bluesky destination %s: item %s not embedded (%s); the post's link leads to it",
            self.destination_id,
            medium.item_id,
            reason,
        )

    async def _embed(self, token: str, outgoing: Outgoing) -> dict[str, Any]:
        images = [m for m in outgoing.media if m.kind == "image"]
        if images:
            for medium in outgoing.media:
                if medium.kind != "image":
                    self._skip(medium, "a post embeds images or a link card, not both")
            for medium in images[MAX_IMAGES:]:
                self._skip(medium, f"Bluesky takes {MAX_IMAGES} images per post")
            return {
                "$type": "app.bsky.embed.images",
                "images": [await self._image(token, m) for m in images[:MAX_IMAGES]],
            }
        videos = [m for m in outgoing.media if m.kind == "video"]
        for medium in outgoing.media:
            self._skip(medium, "shown through the link card")
        external: dict[str, Any] = {
            "uri": outgoing.page_url,
            "title": outgoing.title or cut(outgoing.text.strip().split("\n", 1)[0], 100),
            "description": cut(outgoing.text, DESCRIPTION_GRAPHEMES),
        }
        if videos:
            thumb = await self._poster(token, outgoing, videos[0])
            if thumb is not None:
                external["thumb"] = thumb
        return {"$type": "app.bsky.embed.external", "external": external}

    @staticmethod
    def record(
        outgoing: Outgoing, moment: datetime, embed: dict[str, Any] | None
    ) -> dict[str, Any]:
        fitted = fit([outgoing.title, outgoing.text], outgoing.page_url, bluesky_fits)
        start, end = fitted.link_bytes
        record: dict[str, Any] = {
            "$type": POST,
            "text": fitted.text,
            "facets": [
                {
                    "index": {"byteStart": start, "byteEnd": end},
                    "features": [
                        {"$type": "app.bsky.richtext.facet#link", "uri": outgoing.page_url}
                    ],
                }
            ],
            "createdAt": iso(moment),
        }
        if embed is not None:
            record["embed"] = embed
        return record

    async def publish(self, outgoing: Outgoing) -> Published:
        session = await self.session()
        # The key comes from the delivery: every try of it writes the same record.
        return await self._put(session, outgoing, outgoing.delivery_id)

    async def _put(self, session: dict[str, Any], outgoing: Outgoing, key: str) -> Published:
        """Write the post's record under a key made from ``key`` (putRecord: a repeat replaces
        the record instead of adding a second one)."""
        token, did, handle = session["accessJwt"], session["did"], session["handle"]
        moment = created_at(outgoing.post)
        rkey = record_key(key, moment)
        embed = await self._embed(token, outgoing)
        written = await self._xrpc(
            "com.atproto.repo.putRecord",
            token,
            json={
                "repo": did,
                "collection": POST,
                "rkey": rkey,
                "record": self.record(outgoing, moment, embed),
            },
        )
        return Published(
            remote_url=f"https://bsky.app/profile/{handle}/post/{rkey}",
            remote_id=written.get("uri") or f"at://{did}/{POST}/{rkey}",
        )

    # --- delete, and edit as delete and post again (relay.publish.Retractor, Editor) ---------

    @staticmethod
    def _parts(remote: Remote) -> tuple[str, str, str]:
        """repo, collection and record key of the ``at://`` URI kept as the remote id."""
        uri = remote.remote_id or ""
        repo, _, rest = uri.removeprefix("at://").partition("/")
        collection, _, rkey = rest.partition("/")
        if not uri.startswith("at://") or not repo or not collection or not rkey or "/" in rkey:
            raise PublishError("publish.rejected", f"no at:// URI kept for {remote.delivery_id}")
        return repo, collection, rkey

    async def _delete(self, token: str, repo: str, collection: str, rkey: str) -> None:
        # The PDS answers 200 for a record that is not there: a repeat is a no-op.
        await self._xrpc(
            "com.atproto.repo.deleteRecord",
            token,
            json={"repo": repo, "collection": collection, "rkey": rkey},
        )

    async def retract(self, remote: Remote, post_id: str) -> None:
        repo, collection, rkey = self._parts(remote)
        session = await self.session()
        await self._delete(session["accessJwt"], repo, collection, rkey)

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        if self.edit_mode != "repost":
            raise PublishError(
                "publish.cannot_edit",
                "Bluesky cannot edit a post; --set edit=repost deletes and posts it again",
            )
        repo, collection, old_rkey = self._parts(remote)
        session = await self.session()
        # From the edit's own key: every try of this edit writes the same new record.
        published = await self._put(session, outgoing, remote.idempotency_key)
        # The new copy first, then the old one goes: never a moment with none.
        if (published.remote_id or "").rsplit("/", 1)[-1] != old_rkey:
            await self._delete(session["accessJwt"], repo, collection, old_rkey)
        return published

    async def check(self) -> str:
        session = await self.session()
        return f"authenticated as {session['handle']} ({session['did']}) on {self.base}"


ADAPTER = BlueskyAdapter
