"""W3C Micropub: the post becomes an h-entry created with the JSON syntax and a Bearer token.

``q=config`` tells where the site's media endpoint is; when there is one, each image, video and
audio file is uploaded there (``multipart/form-data``, one part named ``file``, answered with
``201`` and a ``Location``) and the entry points at those URLs; otherwise it points at the relay's
own media URLs. The entry carries ``name`` (the title), ``content`` (the text and the page's link),
``photo`` with alt text, ``video``, ``audio`` and ``mp-slug``; the server answers ``201``/``202``
with the new post's URL in ``Location``.

Micropub defines no idempotency, so a retry is kept from posting twice by what the site offers:
- every create carries ``Idempotency-Key`` (the delivery's key; IETF httpapi draft), which a
  careful server uses to answer a repeat with the post it already made; each media upload carries
  a key of its own, so such a server also hands back the same file URLs and the repeated entry is
  the same request (the draft refuses a known key with another body, ``422``);
- ``mp-slug`` is ``relay-<key>``: servers that write a post at its slug replace rather than add;
- when ``q=config`` lists ``source`` among its queries (the post-list extension), the adapter first
  looks through the latest posts for one that links this relay page or has this slug, and takes
  it instead of creating another.
A server with none of these may still get a second post after a lost answer; nothing else in the
protocol can tell.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, ClassVar, NoReturn
from urllib.parse import urljoin

from aiohttp import MultipartWriter
from aiohttp.payload import AsyncIterablePayload

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http, raise_for_status

MAX_PHOTOS = 20  # bounds on one delivery's uploads, not limits of the protocol
MAX_VIDEOS = 5
CONFIG_TTL = 600.0
SOURCE_LIMIT = 20  # how many recent posts to look through for an earlier try's post
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
    "audio/mpeg": ".mp3",
}
PROPERTY = {"image": "photo", "video": "video", "audio": "audio"}

# q=config rarely changes and every delivery would ask again: kept per endpoint and token.
_configs: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


class _SizedStream(AsyncIterablePayload):
    """A streamed part whose length is known, so the request has a Content-Length: some
    servers (PHP, WSGI) read chunked bodies as empty."""

    def __init__(self, media: Media) -> None:
        super().__init__(media.read(), content_type=media.mime)
        self._size = media.bytes


def _texts(values: Any) -> list[str]:
    """The strings of a property's values, whether plain, ``{"value"}`` or ``{"html"}``."""
    found = []
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(str(value[k]) for k in ("value", "html") if isinstance(value.get(k), str))
    return found


def entry_properties(
    outgoing: Outgoing, urls: list[tuple[Media, str]], slug: str
) -> dict[str, list[Any]]:
    content = outgoing.text.strip()
    content = f"{content}\n\n{outgoing.page_url}" if content else outgoing.page_url
    properties: dict[str, list[Any]] = {"content": [content], "mp-slug": [slug]}
    if outgoing.title:
        properties["name"] = [outgoing.title]
    for media, url in urls:
        name = PROPERTY[media.kind]
        # Items rarely carry alt text yet; the title describes a photo post better than nothing.
        alt = media.alt or outgoing.title
        value: Any = {"value": url, "alt": alt} if name == "photo" and alt else url
        properties.setdefault(name, []).append(value)
    return properties


class MicropubAdapter:
    type: ClassVar[str] = "micropub"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False, max_images=MAX_PHOTOS, max_videos=MAX_VIDEOS
    )

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.url or not destination.token:
            raise PublishError(
                "publish.rejected", "a micropub destination needs --url ENDPOINT and --token"
            )
        self.endpoint = destination.url
        self.token = destination.token
        self.http = http
        self._cache_key = (self.endpoint, hashlib.sha256(self.token.encode()).hexdigest())

    def _headers(self, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **more}

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[int, str, str | None]:
        response = await self.http.request(method, url, **kwargs)
        async with response:
            text = await response.text(errors="replace")
            return response.status, text, response.headers.get("Location")

    @staticmethod
    def _raise(status: int, text: str, url: str) -> NoReturn:
        remote = text
        try:
            body = json.loads(text)
            if isinstance(body, dict) and "error" in body:
                remote = f"{body['error']}: {body.get('error_description', '')}".rstrip(": ")
        except ValueError:
            pass
        if 300 <= status < 400:
            raise PublishError("publish.rejected", f"{url}: {status} (redirects not followed)")
        raise_for_status(status, remote, url)
        raise PublishError("publish.rejected", f"{url}: unexpected {status}", remote)

    async def _query(self, q: str, **params: str) -> tuple[int, Any]:
        status, text, _ = await self._send(
            "GET", self.endpoint, params={"q": q, **params}, headers=self._headers()
        )
        if status in (401, 403) or status >= 500 or status == 429:
            self._raise(status, text, self.endpoint)
        try:
            return status, json.loads(text) if status == 200 else None
        except ValueError:
            return status, None

    async def config(self) -> dict[str, Any]:
        cached = _configs.get(self._cache_key)
        if cached is not None and time.monotonic() - cached[0] < CONFIG_TTL:
            return cached[1]
        _, found = await self._query("config")
        # A server without q=config (it answers 400) simply has no media endpoint to offer.
        config = found if isinstance(found, dict) else {}
        _configs[self._cache_key] = (time.monotonic(), config)
        return config

    async def _earlier_post(
        self, config: dict[str, Any], outgoing: Outgoing, slug: str
    ) -> tuple[bool, str | None]:
        """Whether an earlier try of this delivery made a post, and that post's URL."""
        if "source" not in (config.get("q") or []):
            return False, None
        status, found = await self._query("source", limit=str(SOURCE_LIMIT))
        if status != 200 or not isinstance(found, dict):
            return False, None
        for entry in found.get("items") or []:
            properties = entry.get("properties") if isinstance(entry, dict) else None
            if not isinstance(properties, dict):
                continue
            urls = _texts(properties.get("url", []))
            mine = any(url.rstrip("/").endswith("/" + slug) for url in urls) or any(
                outgoing.page_url in text for text in _texts(properties.get("content", []))
            )
            if mine:
                return True, urls[0] if urls else None
        return False, None

    async def _upload(self, media_endpoint: str, media: Media, filename: str, key: str) -> str:
        form = MultipartWriter("form-data")
        part = form.append_payload(_SizedStream(media))
        part.set_content_disposition("form-data", name="file", filename=filename)
        status, text, location = await self._send(
            "POST", media_endpoint, data=form, headers=self._headers(**{"Idempotency-Key": key})
        )
        if status >= 300:
            self._raise(status, text, media_endpoint)
        if not location:
            raise PublishError(
                "publish.rejected", f"{media_endpoint}: {status} without a Location header"
            )
        return urljoin(media_endpoint, location)

    async def publish(self, outgoing: Outgoing) -> Published:
        config = await self.config()
        # Only characters every slug scheme keeps, so the URL ends in what the adapter looks for.
        slug = "relay-" + re.sub(r"[^a-z0-9]+", "-", outgoing.idempotency_key.lower()).strip("-")
        made, earlier = await self._earlier_post(config, outgoing, slug)
        if made:
            return Published(remote_url=earlier, remote_id=earlier)

        media_endpoint = config.get("media-endpoint")
        chosen = [m for m in outgoing.media if m.kind == "image"][:MAX_PHOTOS]
        chosen += [m for m in outgoing.media if m.kind == "video"][:MAX_VIDEOS]
        chosen += [m for m in outgoing.media if m.kind == "audio"][:MAX_VIDEOS]
        urls = []
        for n, media in enumerate(chosen):
            if isinstance(media_endpoint, str) and media_endpoint:
                filename = f"{slug}-{n}{EXTENSIONS.get(media.mime, '')}"
                # Its own key per file: a server that honours keys then hands back the same URL
                # on a retry, so the entry's body, and with it the entry's key, stay the same.
                url = await self._upload(
                    urljoin(self.endpoint, media_endpoint),
                    media,
                    filename,
                    f"{outgoing.idempotency_key}-{n}",
                )
            else:
                url = media.url
            urls.append((media, url))

        entry = {"type": ["h-entry"], "properties": entry_properties(outgoing, urls, slug)}
        status, text, location = await self._send(
            "POST",
            self.endpoint,
            data=json.dumps(entry, ensure_ascii=False).encode(),
            headers=self._headers(
                **{"Content-Type": "application/json", "Idempotency-Key": outgoing.idempotency_key}
            ),
        )
        if status >= 300:
            self._raise(status, text, self.endpoint)
        # 201 Created or 202 Accepted; a server that answers without Location still made the
        # post, so this is a success without a link rather than a retry that would post again.
        url = urljoin(self.endpoint, location) if location else None
        return Published(remote_url=url, remote_id=url)

    # --- update and delete (relay.publish.Editor, Retractor) ----------------------------------

    def _remote_url(self, remote: Remote) -> str:
        url = remote.remote_url or remote.remote_id
        if not url:
            # A server that answered without Location gave the relay nothing to name the post by.
            raise PublishError("publish.rejected", f"no post URL kept for {remote.delivery_id}")
        return url

    async def _action(self, body: dict[str, Any], key: str) -> tuple[int, str, str | None]:
        return await self._send(
            "POST",
            self.endpoint,
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers=self._headers(**{"Content-Type": "application/json", "Idempotency-Key": key}),
        )

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """``{"action": "update", "url": …, "replace": {…}}`` (Micropub §3.3): the entry's name,
        content and photos replaced with the post as it is now. Replacing is the same request
        each time, so a repeat after a lost answer is safe. The media stay where the publish put
        them (the relay's URLs, or the media endpoint's, which ``q=source`` tells)."""
        url = self._remote_url(remote)
        replace: dict[str, list[Any]] = {}
        status, found = await self._query("source", url=url)
        kept = found.get("properties", {}) if status == 200 and isinstance(found, dict) else {}
        urls: list[tuple[Media, str]] = []
        photos = [m for m in outgoing.media if m.kind == "image"][:MAX_PHOTOS]
        old_photos = [_texts([v])[0] for v in kept.get("photo", []) if _texts([v])]
        for n, media in enumerate(photos):
            urls.append((media, old_photos[n] if n < len(old_photos) else media.url))
        properties = entry_properties(outgoing, urls, "")
        replace["content"] = properties["content"]
        if "name" in properties:
            replace["name"] = properties["name"]
        if "photo" in properties:
            replace["photo"] = properties["photo"]
        body: dict[str, Any] = {"action": "update", "url": url, "replace": replace}
        if not outgoing.title and kept.get("name"):
            body["delete"] = ["name"]
        status, text, location = await self._action(body, remote.idempotency_key)
        if status >= 300:
            self._raise(status, text, self.endpoint)
        # 201 with Location: the update moved the post (Micropub §3.3.3)
        moved = urljoin(self.endpoint, location) if status == 201 and location else url
        return Published(remote_url=moved, remote_id=moved)

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``{"action": "delete", "url": …}`` (Micropub §3.4). A post already gone answers
        404/410, or 400 ``invalid_request`` when the server says so in its own words: then
        ``q=source`` for the URL decides, and no post there is success."""
        url = self._remote_url(remote)
        status, text, _ = await self._action(
            {"action": "delete", "url": url}, remote.idempotency_key
        )
        if status < 300 or status in (404, 410):
            return
        if status == 400:
            found, _ = await self._query("source", url=url)
            if found in (400, 404, 410):
                return
        self._raise(status, text, self.endpoint)

    async def check(self) -> str:
        _configs.pop(self._cache_key, None)
        status, found = await self._query("config")
        if status != 200:
            raise PublishError("publish.rejected", f"{self.endpoint}: q=config answered {status}")
        config = found if isinstance(found, dict) else {}
        media = config.get("media-endpoint") or "none"
        queries = ", ".join(config.get("q") or []) or "not listed"
        return f"{self.endpoint} answered 200: media endpoint {media}; queries {queries}"


ADAPTER = MicropubAdapter
