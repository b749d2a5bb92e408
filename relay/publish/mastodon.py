"""Mastodon (and servers speaking its API): media through ``POST /api/v2/media``, then one status.

``--url`` is the instance (``https://mastodon.social``), ``--token`` an access token with
``write:media write:statuses read:accounts``; ``--set visibility=unlisted`` changes the default
``public``.

Once only: the status carries ``Idempotency-Key`` = the delivery's key, so a retry after a lost
answer gets the status the first try made. Mastodon keeps those keys for one hour, and retries may
go on for longer, so a retry first looks through the account's latest statuses for one that
already links the post's page.

Text: title, text and the page link, cut to the instance's ``max_characters`` the way Mastodon
counts (every URL as ``characters_reserved_per_url``), never cutting the link. Media the instance
cannot take (too large, too many pixels, a type it does not list, a video next to images) are left
out with a log line; the link to the page, which shows them all, always stays.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import mimetypes
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from relay.errors import PublishError, TransientPublishError
from relay.publish import Accepts, Destination, Media, Outgoing, Published, Remote
from relay.publish.net import Http, raise_for_status
from relay.publish.text import fit, mastodon_length

log = logging.getLogger("relay.publish.mastodon")

MB = 1024 * 1024
VISIBILITIES = ("public", "unlisted", "private", "direct")
# Media uploads may be large and slow; the whole delivery is still bounded by its own timeout.
UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the instance says it takes (``GET /api/v2/instance`` → ``configuration``); the
    defaults are Mastodon's own, for servers that do not say."""

    max_characters: int = 500
    url_chars: int = 23
    max_media: int = 4
    image_bytes: int = 16 * MB
    image_pixels: int = 33_177_600
    video_bytes: int = 99 * MB
    video_pixels: int = 8_294_400
    mime_types: frozenset[str] | None = None

    @classmethod
    def from_instance(cls, instance: dict[str, Any]) -> Limits:
        config = instance.get("configuration") or {}
        statuses = config.get("statuses") or {}
        media = config.get("media_attachments") or {}
        defaults = cls()

        def number(section: dict[str, Any], key: str, default: int) -> int:
            value = section.get(key)
            return int(value) if isinstance(value, int | float) and value > 0 else default

        types = media.get("supported_mime_types")
        return cls(
            max_characters=number(statuses, "max_characters", defaults.max_characters),
            url_chars=number(statuses, "characters_reserved_per_url", defaults.url_chars),
            max_media=number(statuses, "max_media_attachments", defaults.max_media),
            image_bytes=number(media, "image_size_limit", defaults.image_bytes),
            image_pixels=number(media, "image_matrix_limit", defaults.image_pixels),
            video_bytes=number(media, "video_size_limit", defaults.video_bytes),
            video_pixels=number(media, "video_matrix_limit", defaults.video_pixels),
            mime_types=frozenset(types) if isinstance(types, list) and types else None,
        )


def _message(body: str) -> str:
    """Mastodon's ``{"error": "…"}``, or the body as it came."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed["error"]
    return body


class MastodonAdapter:
    type: ClassVar[str] = "mastodon"
    accepts: ClassVar[Accepts] = Accepts(
        links_only=False,
        max_images=4,
        max_videos=1,
        image_bytes=16 * MB,
        image_pixels=33_177_600,
        video_bytes=99 * MB,
        text_chars=500,
    )
    # Seconds between polls of a medium the server still processes: about a minute in all,
    # inside the delivery's own timeout; after that the delivery retries later.
    poll_delays: ClassVar[tuple[float, ...]] = (0.25, 0.5, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5)

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.url:
            raise PublishError("publish.rejected", "a mastodon destination needs --url (instance)")
        if not destination.token:
            raise PublishError("publish.rejected", "a mastodon destination needs --token")
        self.base = destination.url.rstrip("/")
        self.token = destination.token
        self.destination_id = destination.id
        self.visibility = str(destination.config.get("visibility", "public"))
        if self.visibility not in VISIBILITIES:
            raise PublishError(
                "publish.rejected", f"visibility must be one of {', '.join(VISIBILITIES)}"
            )
        self.http = http
        self._limits: Limits | None = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = await self.http.request(method, self.base + path, headers=headers, **kwargs)
        async with response:
            return response.status, await response.text(errors="replace")

    def _fail(self, status: int, body: str, path: str) -> None:
        message = _message(body)
        if status == 422 and "processing" in message.lower():
            # "Cannot attach files that have not finished processing": later, it will.
            raise TransientPublishError("publish.unreachable", f"{path}: {status}", message)
        raise_for_status(status, message, self.base + path)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self._call(method, path, **kwargs)
        self._fail(status, body, path)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientPublishError(
                "publish.unreachable", f"{path}: not JSON", body[:300]
            ) from exc

    async def limits(self) -> Limits:
        if self._limits is None:
            status, body = await self._call("GET", "/api/v2/instance")
            if status in (404, 410):  # before Mastodon 4.0; v1 has the same configuration
                status, body = await self._call("GET", "/api/v1/instance")
            if status in (404, 410):
                self._limits = Limits()
            else:
                self._fail(status, body, "/api/v2/instance")
                try:
                    self._limits = Limits.from_instance(json.loads(body))
                except (ValueError, AttributeError, TypeError):
                    self._limits = Limits()
        return self._limits

    def _skip(self, medium: Media, reason: str) -> None:
        log.info(
            "mastodon destination %s: item %s not attached (%s); the post's link leads to it",
            self.destination_id,
            medium.item_id,
            reason,
        )

    def choose(self, media: list[Media], limits: Limits) -> list[Media]:
        """The media to attach. Mastodon takes up to ``max_media`` images, or one video or
        audio alone; the first medium that fits decides which."""
        fitting = []
        for medium in media:
            pixels = (medium.width or 0) * (medium.height or 0)
            if medium.kind not in ("image", "video", "audio"):
                self._skip(medium, f"kind {medium.kind}")
            elif limits.mime_types is not None and medium.mime not in limits.mime_types:
                self._skip(medium, f"{medium.mime} not supported by the instance")
            elif medium.kind == "image" and medium.bytes > limits.image_bytes:
                self._skip(medium, f"{medium.bytes} bytes > {limits.image_bytes}")
            elif medium.kind == "image" and pixels > limits.image_pixels:
                self._skip(medium, f"{pixels} pixels > {limits.image_pixels}")
            elif medium.kind != "image" and medium.bytes > limits.video_bytes:
                self._skip(medium, f"{medium.bytes} bytes > {limits.video_bytes}")
            elif medium.kind == "video" and pixels > limits.video_pixels:
                self._skip(medium, f"{pixels} pixels > {limits.video_pixels}")
            else:
                fitting.append(medium)
        if not fitting:
            return []
        if fitting[0].kind == "image":
            chosen = [m for m in fitting if m.kind == "image"][: limits.max_media]
        else:
            chosen = fitting[:1]
        for medium in fitting:
            if medium not in chosen:
                self._skip(
                    medium,
                    "the instance takes up to "
                    f"{limits.max_media} images or one video or audio per status",
                )
        return chosen

    async def _upload(self, medium: Media) -> str | None:
        """The attachment id, or None when the instance refused this medium."""
        form = aiohttp.FormData()
        extension = mimetypes.guess_extension(medium.mime) or ""
        form.add_field(
            "file", medium.read(), filename=f"{medium.item_id}{extension}", content_type=medium.mime
        )
        if medium.alt:
            form.add_field("description", medium.alt)
        form.add_field("focus", "0.0,0.0")
        status, body = await self._call("POST", "/api/v2/media", data=form, timeout=UPLOAD_TIMEOUT)
        if status in (413, 415, 422):
            self._skip(medium, f"the instance answered {status}: {_message(body)[:200]}")
            return None
        self._fail(status, body, "/api/v2/media")
        attachment = json.loads(body)
        if status == 202 or attachment.get("url") is None:
            return await self._processed(str(attachment["id"]), medium)
        return str(attachment["id"])

    async def _processed(self, media_id: str, medium: Media) -> str | None:
        """Wait while the instance processes the medium (206, or a null ``url``)."""
        path = f"/api/v1/media/{media_id}"
        for delay in self.poll_delays:
            await asyncio.sleep(delay)
            status, body = await self._call("GET", path)
            if status == 206:
                continue
            if status == 422:  # the instance could not process it
                self._skip(medium, f"the instance could not process it: {_message(body)[:200]}")
                return None
            self._fail(status, body, path)
            if json.loads(body).get("url") is not None:
                return media_id
        raise TransientPublishError(
            "publish.unreachable", f"{path}: still processing after {sum(self.poll_delays)} s"
        )

    async def _already_posted(self, page_url: str) -> dict[str, Any] | None:
        """A status of this account's latest that links ``page_url``: what an earlier try posted
        when its answer was lost after the instance forgot the idempotency key."""
        account = await self._json("GET", "/api/v1/accounts/verify_credentials")
        statuses = await self._json(
            "GET", f"/api/v1/accounts/{account['id']}/statuses", params={"limit": "40"}
        )
        needles = {page_url, html.escape(page_url)}
        for status in statuses if isinstance(statuses, list) else []:
            content = status.get("content") or ""
            if any(f'href="{needle}"' in content for needle in needles):
                return status
        return None

    def status_text(self, outgoing: Outgoing, limits: Limits) -> str:
        return fit(
            [outgoing.title, outgoing.text],
            outgoing.page_url,
            lambda text: mastodon_length(text, limits.url_chars) <= limits.max_characters,
        ).text

    async def publish(self, outgoing: Outgoing) -> Published:
        limits = await self.limits()
        if outgoing.attempt > 1:
            try:
                found = await self._already_posted(outgoing.page_url)
            except TransientPublishError:
                raise
            except PublishError as exc:
                # A token without read:accounts can still post; the idempotency key remains.
                log.info(
                    "delivery %s: no look for an earlier status (%s)", outgoing.delivery_id, exc
                )
                found = None
            if found is not None:
                log.info("delivery %s: already posted as %s", outgoing.delivery_id, found["id"])
                return Published(remote_url=found.get("url"), remote_id=str(found["id"]))
        media_ids = []
        for medium in self.choose(outgoing.media, limits):
            media_id = await self._upload(medium)
            if media_id is not None:
                media_ids.append(media_id)
        form: list[tuple[str, str]] = [
            ("status", self.status_text(outgoing, limits)),
            ("visibility", self.visibility),
        ]
        form += [("media_ids[]", media_id) for media_id in media_ids]
        status = await self._json(
            "POST",
            "/api/v1/statuses",
            data=form,
            headers={"Idempotency-Key": outgoing.idempotency_key},
        )
        return Published(
            remote_url=status.get("url") or status.get("uri"), remote_id=str(status["id"])
        )

    # --- edit and delete (relay.publish.Editor, Retractor) ------------------------------------

    def _status_path(self, remote: Remote) -> str:
        if not remote.remote_id or not remote.remote_id.isdigit():
            raise PublishError("publish.rejected", f"no status id kept for {remote.delivery_id}")
        return f"/api/v1/statuses/{remote.remote_id}"

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        """``PUT /api/v1/statuses/:id``: the new text, the same attachments, and the changed
        alt texts as ``media_attributes`` (Mastodon 4.1+; ``PUT /api/v1/media/:id`` only
        changes media not yet attached, and answers 404 for these). The status keeps its id.

        A repeat after a lost answer first reads the status's source: when it already says what
        this edit would, nothing is sent, so an edit lands once in the status's history."""
        path = self._status_path(remote)
        limits = await self.limits()
        status, body = await self._call("GET", path)
        if status == 404:
            raise PublishError("publish.rejected", f"{path}: 404", "the status is gone")
        self._fail(status, body, path)
        current = json.loads(body)
        source = await self._json("GET", path + "/source")
        text = self.status_text(outgoing, limits)
        attached = [a for a in current.get("media_attachments") or [] if a.get("id")]
        # Attachments were made in the order of the chosen media; that order pairs them again.
        chosen = self.choose(outgoing.media, limits)
        changed_alt = [
            {"id": str(attachment["id"]), "description": medium.alt}
            for medium, attachment in zip(chosen, attached, strict=False)
            if medium.alt and medium.alt != (attachment.get("description") or "")
        ]
        if source.get("text") == text and not changed_alt:
            return Published(
                remote_url=current.get("url") or remote.remote_url, remote_id=remote.remote_id
            )
        payload: dict[str, Any] = {
            "status": text,
            # Omitting media_ids would drop every attachment: name them to keep them.
            "media_ids": [str(a["id"]) for a in attached],
            "sensitive": bool(current.get("sensitive")),
            "spoiler_text": str(current.get("spoiler_text") or ""),
        }
        if changed_alt:
            payload["media_attributes"] = changed_alt
        edited = await self._json("PUT", path, json=payload)
        return Published(
            remote_url=edited.get("url") or remote.remote_url, remote_id=str(edited["id"])
        )

    async def retract(self, remote: Remote, post_id: str) -> None:
        """``DELETE /api/v1/statuses/:id``; a 404 means an earlier try (or a person) already
        deleted it: success."""
        path = self._status_path(remote)
        status, body = await self._call("DELETE", path)
        if status == 404:
            log.info("delivery %s: status %s already gone", remote.delivery_id, remote.remote_id)
            return
        self._fail(status, body, path)

    async def check(self) -> str:
        account = await self._json("GET", "/api/v1/accounts/verify_credentials")
        acct = account.get("acct") or account.get("username")
        return f"authenticated as @{acct} on {urlsplit(self.base).netloc}"


ADAPTER = MastodonAdapter
