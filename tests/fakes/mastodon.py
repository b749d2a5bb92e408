"""A Mastodon instance (API as of Mastodon 4.x) on 127.0.0.1, as strict as the real one.

What it enforces, with Mastodon's own answers:
- ``Authorization: Bearer TOKEN`` on every call but ``/api/v2/instance``: otherwise ``401
  {"error": "The access token is invalid"}`` (also after ``revoke()``).
- ``GET /api/v2/instance``: ``configuration.statuses`` (``max_characters`` 500,
  ``characters_reserved_per_url`` 23, ``max_media_attachments`` 4) and
  ``configuration.media_attachments`` (16 MB and 33,177,600 pixels per image, 99 MB per video,
  the supported MIME types).
- ``POST /api/v2/media``: ``multipart/form-data`` with a ``file`` part that has a MIME type the
  instance supports and bytes of that type, within the size and pixel limits (``422 Validation
  failed: …``); ``description`` up to 1,500 characters; ``focus`` as ``x,y`` within -1..1.
  Answers ``202`` with ``url: null``; ``GET /api/v1/media/:id`` then answers ``206`` (empty) for
  ``processing_polls`` polls and ``200`` with the URL after.
- ``POST /api/v1/statuses`` (form, multipart or JSON): ``status`` or ``media_ids[]``; at most 4
  media, all processed, none already attached, no video next to other media; a known
  ``visibility``; the text within 500 characters counted as Mastodon does (grapheme clusters,
  each URL with a host under a top-level domain as 23). ``Idempotency-Key``: the same key again
  gives the same status back and creates nothing.
- ``GET /api/v1/accounts/verify_credentials`` and ``GET /api/v1/accounts/:id/statuses``.
- ``GET /api/v1/statuses/:id`` and ``GET /api/v1/statuses/:id/source`` (``{id, text,
  spoiler_text}``); an unknown or deleted id is ``404 {"error": "Record not found"}``.
- ``PUT /api/v1/statuses/:id`` (form or JSON, the owner only): ``status``, ``media_ids`` (the
  attachments to keep: omitted ones are dropped, new ones must be unattached and processed),
  ``media_attributes`` ``[{id, description}]`` for attachments of this status, ``sensitive``,
  ``spoiler_text``. The status keeps its id; ``edited_at`` is set and a revision kept in
  ``history`` when something changed (an edit that changes nothing adds none).
- ``PUT /api/v1/media/:id``: only an attachment not yet attached to a status (Mastodon looks it
  up among the account's unattached media): an attached one is ``404``.
- ``DELETE /api/v1/statuses/:id``: answers the deleted status with its source ``text``; after
  that the id is ``404``.

Signing in (OAuth 2 as Mastodon 4.3 speaks it, Doorkeeper's answers):
- ``POST /api/v1/apps`` (form or JSON): ``client_name`` and ``redirect_uris`` (one string, or an
  array) required, each an absolute URI without a fragment, ``scopes`` known ones (``422
  {"error": "Validation failed: …"}``); answers the app with ``client_id`` and ``client_secret``.
- ``GET /oauth/authorize``: an unknown ``client_id`` or a ``redirect_uri`` the app did not
  register gets Doorkeeper's error page (no redirect); otherwise ``response_type=code``, scopes
  within the app's, and PKCE (``code_challenge`` with ``code_challenge_method=S256``, required
  here because the relay always sends it) or a redirect back with ``error=…``. The page is a
  plain HTML form, as the signed-in user sees it: "Authorize" or "Deny".
- ``POST /oauth/authorize`` (the form, with its ``authenticity_token``): redirects to the
  ``redirect_uri`` with ``code`` and ``state``; Deny (``_method=delete``) with
  ``error=access_denied``.
- ``POST /oauth/token``: ``grant_type=authorization_code``, the app's ``client_id`` and
  ``client_secret`` (``401 invalid_client``), the ``code`` once, for the same app and the same
  ``redirect_uri``, with the ``code_verifier`` whose S256 is the challenge (``400
  invalid_grant``). The token it answers works on every route like ``token``.
- ``POST /oauth/revoke``: the app's credentials and a token it issued; that token stops working.

Routes for scripting (``fail``/``lose``): ``apps.create``, ``oauth.authorize``,
``oauth.approve``, ``oauth.token``, ``oauth.revoke``, ``instance``, ``media.create``, ``media.get``,
``media.update``, ``statuses.create``, ``statuses.get``, ``statuses.source``,
``statuses.update``, ``statuses.delete``, ``accounts.verify``, ``accounts.statuses``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import regex
from aiohttp import web
from PIL import Image

from tests.fakes import FakeService, error

MB = 1024 * 1024
INVALID_TOKEN = {"error": "The access token is invalid"}
SCOPES = {
    "read",
    "write",
    "follow",
    "push",
    "profile",
    "read:accounts",
    "read:statuses",
    "write:media",
    "write:statuses",
}
IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/avif"]
VIDEO_TYPES = ["video/webm", "video/mp4", "video/quicktime", "video/ogg"]
AUDIO_TYPES = [
    "audio/wave",
    "audio/wav",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp3",
    "audio/mp4",
    "audio/aac",
    "audio/flac",
    "audio/webm",
]
MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
# Mastodon extracts URLs with twitter-text: a scheme, then a host that ends in a top-level domain
# (an IP address or a bare name is no URL to it), up to white space; a final full stop or
# closing bracket stays outside.
URL = regex.compile(r"https?://[^\s<>\"']+", regex.IGNORECASE)
GRAPHEME = regex.compile(r"\X")


def countable_length(text: str, url_length: int = 23) -> int:
    def replace(match: regex.Match[str]) -> str:
        url = match.group(0)
        trailing = ""
        while url and url[-1] in ".,;:!?)]}'\"…":
            trailing = url[-1] + trailing
            url = url[:-1]
        host = (urlsplit(url).hostname or "").rstrip(".")
        tld = host.rsplit(".", 1)[-1] if "." in host else ""
        if len(tld) >= 2 and (tld.isalpha() or tld.startswith("xn--")):
            return "x" * url_length + trailing
        return match.group(0)

    return len(GRAPHEME.findall(URL.sub(replace, text)))


def render(text: str) -> str:
    """The status ``content`` as Mastodon renders plain text: paragraphs, line breaks, links."""

    def link(match: regex.Match[str]) -> str:
        url = match.group(0)
        return f'<a href="{url}" rel="nofollow noopener" target="_blank">{url}</a>'

    paragraphs = []
    for paragraph in text.split("\n\n"):
        escaped = html.escape(paragraph, quote=False)
        paragraphs.append("<p>" + URL.sub(link, escaped).replace("\n", "<br />") + "</p>")
    return "".join(paragraphs)


@dataclass
class Attachment:
    id: str
    type: str
    mime: str
    size: int
    description: str | None
    focus: tuple[float, float] | None
    polls_left: int
    data: bytes
    status_id: str | None = None

    def json(self, base: str) -> dict[str, Any]:
        done = self.polls_left <= 0
        meta: dict[str, Any] = {}
        if self.focus is not None:
            meta["focus"] = {"x": self.focus[0], "y": self.focus[1]}
        return {
            "id": self.id,
            "type": self.type,
            "url": f"{base}/system/media/{self.id}/original" if done else None,
            "preview_url": f"{base}/system/media/{self.id}/small",
            "remote_url": None,
            "meta": meta,
            "description": self.description,
            "blurhash": None,
        }


@dataclass
class FakeMastodon(FakeService):
    token: str = "mastodon-token-anna"
    username: str = "anna"
    account_id: str = "109000000000000001"
    processing_polls: int = 1
    """GET /api/v1/media/:id answers 206 this many times before 200."""
    max_characters: int = 500
    listed: bool = True
    """False: the account's statuses list comes back empty, as from a server that hides it."""
    image_size_limit: int = 16 * MB
    image_matrix_limit: int = 33_177_600
    video_size_limit: int = 99 * MB
    media: dict[str, Attachment] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[str, str] = field(default_factory=dict)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per status id, each earlier revision an edit replaced (text and media descriptions)."""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(110_000_000_000_000_001))
    _revoked: bool = False
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Registered apps by ``client_id``."""
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Authorization codes given out, by code (``used`` once exchanged)."""
    issued: dict[str, str] = field(default_factory=dict)
    """Access tokens issued through OAuth (token → client_id); revoked ones are dropped."""
    _forms: set[str] = field(default_factory=set)

    def revoke(self) -> None:
        self._revoked = True

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/instance", self.instance, name="instance")
        app.router.add_post("/api/v2/media", self.create_media, name="media.create")
        app.router.add_get("/api/v1/media/{id}", self.get_media, name="media.get")
        app.router.add_post("/api/v1/statuses", self.create_status, name="statuses.create")
        app.router.add_put("/api/v1/media/{id}", self.update_media, name="media.update")
        app.router.add_get("/api/v1/statuses/{id}", self.get_status, name="statuses.get")
        app.router.add_get(
            "/api/v1/statuses/{id}/source", self.status_source, name="statuses.source"
        )
        app.router.add_put("/api/v1/statuses/{id}", self.update_status, name="statuses.update")
        app.router.add_delete("/api/v1/statuses/{id}", self.delete_status, name="statuses.delete")
        app.router.add_get(
            "/api/v1/accounts/verify_credentials", self.verify, name="accounts.verify"
        )
        app.router.add_get(
            "/api/v1/accounts/{id}/statuses", self.account_statuses, name="accounts.statuses"
        )
        app.router.add_post("/api/v1/apps", self.create_app, name="apps.create")
        app.router.add_get("/oauth/authorize", self.authorize_page, name="oauth.authorize")
        app.router.add_post("/oauth/authorize", self.authorize, name="oauth.approve")
        app.router.add_post("/oauth/token", self.token_exchange, name="oauth.token")
        app.router.add_post("/oauth/revoke", self.revoke_token, name="oauth.revoke")

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.issued:
            return True
        return not self._revoked and header == f"Bearer {self.token}"

    def _account(self) -> dict[str, Any]:
        return {
            "id": self.account_id,
            "username": self.username,
            "acct": self.username,
            "display_name": "Anna",
            "url": f"{self.url}/@{self.username}",
        }

    async def instance(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "domain": urlsplit(self.url).netloc,
                "title": "Fake Mastodon",
                "version": "4.3.0",
                "configuration": {
                    "urls": {"streaming": "wss://127.0.0.1"},
                    "accounts": {"max_featured_tags": 10},
                    "statuses": {
                        "max_characters": self.max_characters,
                        "max_media_attachments": 4,
                        "characters_reserved_per_url": 23,
                    },
                    "media_attachments": {
                        "supported_mime_types": IMAGE_TYPES + VIDEO_TYPES + AUDIO_TYPES,
                        "image_size_limit": self.image_size_limit,
                        "image_matrix_limit": self.image_matrix_limit,
                        "video_size_limit": self.video_size_limit,
                        "video_frame_rate_limit": 120,
                        "video_matrix_limit": 8_294_400,
                    },
                    "polls": {"max_options": 4, "max_characters_per_option": 50},
                },
            }
        )

    async def verify(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        return web.json_response(self._account())

    async def create_media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        if request.content_type != "multipart/form-data":
            return error(422, {"error": "Validation failed: File can't be blank"})
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return error(422, {"error": "Validation failed: File can't be blank"})
        mime = upload.content_type
        data = upload.file.read()
        kind = next(
            (
                k
                for k, types in (
                    ("image", IMAGE_TYPES),
                    ("video", VIDEO_TYPES),
                    ("audio", AUDIO_TYPES),
                )
                if mime in types
            ),
            None,
        )
        if kind is None or not data:
            return error(422, {"error": "Validation failed: File content type is invalid"})
        if mime in MAGIC and not data.startswith(MAGIC[mime]):
            return error(422, {"error": "Validation failed: File content type is invalid"})
        limit = self.image_size_limit if kind == "image" else self.video_size_limit
        if len(data) > limit:
            return error(
                422,
                {"error": f"Validation failed: File file size must be less than {limit // MB} MB"},
            )
        if kind == "image" and mime in MAGIC:
            try:
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
            except Exception:
                return error(422, {"error": "Validation failed: File is invalid"})
            if width * height > self.image_matrix_limit:
                return error(422, {"error": "Validation failed: File dimensions are too large"})
        description = form.get("description")
        if description is not None and len(str(description)) > 1500:
            return error(422, {"error": "Validation failed: Description is too long"})
        focus = None
        if (raw := form.get("focus")) is not None:
            try:
                x, y = (float(v) for v in str(raw).split(","))
            except ValueError:
                return error(422, {"error": "Validation failed: Focus is invalid"})
            if not (-1 <= x <= 1 and -1 <= y <= 1):
                return error(422, {"error": "Validation failed: Focus is invalid"})
            focus = (x, y)
        attachment = Attachment(
            id=str(next(self._ids)),
            type=kind,
            mime=mime,
            size=len(data),
            description=str(description) if description is not None else None,
            focus=focus,
            polls_left=self.processing_polls,
            data=data,
        )
        self.media[attachment.id] = attachment
        # Mastodon 4 answers 200 for small images it processes at once, 202 otherwise; this
        # fake always takes the longer way so the adapter's polling is exercised.
        return web.json_response(attachment.json(self.url), status=202)

    async def get_media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        attachment = self.media.get(request.match_info["id"])
        if attachment is None:
            return error(404, {"error": "Record not found"})
        if attachment.polls_left > 0:
            attachment.polls_left -= 1
            return web.Response(status=206)
        return web.json_response(attachment.json(self.url))

    async def _status_params(self, request: web.Request) -> tuple[str, list[str], str | None]:
        if request.content_type == "application/json":
            body = await request.json()
            ids = body.get("media_ids") or []
            return str(body.get("status") or ""), [str(i) for i in ids], body.get("visibility")
        form = await request.post()
        ids = [str(i) for i in form.getall("media_ids[]", [])]
        visibility = form.get("visibility")
        return str(form.get("status", "")), ids, str(visibility) if visibility else None

    async def create_status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotency:
            existing = next(s for s in self.statuses if s["id"] == self.idempotency[key])
            return web.json_response(existing)
        text, media_ids, visibility = await self._status_params(request)
        if not text.strip() and not media_ids:
            return error(422, {"error": "Validation failed: Text can't be blank"})
        if len(media_ids) > 4:
            return error(422, {"error": "Cannot attach more than 4 files"})
        attachments = [self.media.get(i) for i in media_ids]
        if any(a is None or a.status_id is not None for a in attachments):
            return error(422, {"error": "Media attachments not found"})
        found = [a for a in attachments if a is not None]
        if any(a.polls_left > 0 for a in found):
            return error(
                422,
                {
                    "error": "Cannot attach files that have not finished processing. "
                    "Try again in a moment!"
                },
            )
        if len(found) > 1 and any(a.type != "image" for a in found):
            return error(
                422, {"error": "Cannot attach a video to a post that already contains images"}
            )
        if visibility is not None and visibility not in ("public", "unlisted", "private", "direct"):
            return error(
                422, {"error": "Validation failed: Visibility is not included in the list"}
            )
        if countable_length(text) > self.max_characters:
            return error(
                422,
                {
                    "error": f"Validation failed: Text character limit of {self.max_characters} "
                    "exceeded"
                },
            )
        status_id = str(next(self._ids))
        for attachment in found:
            attachment.status_id = status_id
        status = {
            "id": status_id,
            "created_at": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "visibility": visibility or "public",
            "uri": f"{self.url}/users/{self.username}/statuses/{status_id}",
            "url": f"{self.url}/@{self.username}/{status_id}",
            "content": render(text),
            "text": text,  # Mastodon returns the source only on delete; kept for assertions
            "account": self._account(),
            "media_attachments": [a.json(self.url) for a in found],
            "sensitive": False,
            "spoiler_text": "",
            "edited_at": None,
        }
        self.statuses.append(status)
        if key:
            self.idempotency[key] = status_id
        return web.json_response(status)

    async def account_statuses(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        if request.match_info["id"] != self.account_id:
            return error(404, {"error": "Record not found"})
        try:
            limit = min(40, max(1, int(request.query.get("limit", "20"))))
        except ValueError:
            limit = 20
        newest_first = list(reversed(self.statuses))[:limit] if self.listed else []
        return web.json_response(
            [{k: v for k, v in s.items() if k != "text"} for s in newest_first]
        )

    def status(self, status_id: str) -> dict[str, Any] | None:
        return next((s for s in self.statuses if s["id"] == status_id), None)

    def _shown(self, status: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in status.items() if k != "text"}
        shown["media_attachments"] = [
            self.media[a["id"]].json(self.url) for a in status["media_attachments"]
        ]
        return shown

    async def get_status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        status = self.status(request.match_info["id"])
        if status is None:
            return error(404, {"error": "Record not found"})
        return web.json_response(self._shown(status))

    async def status_source(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        status = self.status(request.match_info["id"])
        if status is None:
            return error(404, {"error": "Record not found"})
        return web.json_response(
            {"id": status["id"], "text": status["text"], "spoiler_text": status["spoiler_text"]}
        )

    async def update_media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        attachment = self.media.get(request.match_info["id"])
        if attachment is None or attachment.status_id is not None:
            return error(404, {"error": "Record not found"})
        form = await request.post()
        if (description := form.get("description")) is not None:
            attachment.description = str(description)
        return web.json_response(attachment.json(self.url))

    async def update_status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        status = self.status(request.match_info["id"])
        if status is None:
            return error(404, {"error": "Record not found"})
        attributes: list[Any] = []
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                return error(422, {"error": "Validation failed"})
            text = str(body.get("status") or "")
            media_ids = [str(i) for i in body.get("media_ids") or []]
            attributes = body.get("media_attributes") or []
            sensitive = bool(body.get("sensitive", status["sensitive"]))
            spoiler = str(body.get("spoiler_text", status["spoiler_text"]) or "")
        else:
            form = await request.post()
            text = str(form.get("status", ""))
            media_ids = [str(i) for i in form.getall("media_ids[]", [])]
            sensitive = str(form.get("sensitive", status["sensitive"])).lower() == "true"
            spoiler = str(form.get("spoiler_text", status["spoiler_text"]))
        if not text.strip() and not media_ids:
            return error(422, {"error": "Validation failed: Text can't be blank"})
        if countable_length(text) > self.max_characters:
            return error(
                422,
                {
                    "error": f"Validation failed: Text character limit of {self.max_characters} "
                    "exceeded"
                },
            )
        if len(media_ids) > 4:
            return error(422, {"error": "Cannot attach more than 4 files"})
        attachments = [self.media.get(i) for i in media_ids]
        if any(a is None or a.status_id not in (None, status["id"]) for a in attachments):
            return error(422, {"error": "Media attachments not found"})
        found = [a for a in attachments if a is not None]
        if any(a.polls_left > 0 for a in found):
            return error(422, {"error": "Cannot attach files that have not finished processing."})
        descriptions: dict[str, str] = {}
        for attribute in attributes:
            if not isinstance(attribute, dict) or str(attribute.get("id")) not in media_ids:
                return error(422, {"error": "Validation failed: media_attributes"})
            if len(str(attribute.get("description") or "")) > 1500:
                return error(422, {"error": "Validation failed: Description is too long"})
            descriptions[str(attribute["id"])] = str(attribute.get("description") or "")
        before = {
            "text": status["text"],
            "media": [
                (a["id"], self.media[a["id"]].description) for a in status["media_attachments"]
            ],
            "sensitive": status["sensitive"],
            "spoiler_text": status["spoiler_text"],
        }
        after = {
            "text": text,
            "media": [(a.id, descriptions.get(a.id, a.description)) for a in found],
            "sensitive": sensitive,
            "spoiler_text": spoiler,
        }
        if before != after:
            self.history.setdefault(status["id"], []).append(before)
            for attachment in self.media.values():
                if attachment.status_id == status["id"] and attachment not in found:
                    attachment.status_id = None
            for attachment in found:
                attachment.status_id = status["id"]
                attachment.description = descriptions.get(attachment.id, attachment.description)
            status.update(
                text=text,
                content=render(text),
                sensitive=sensitive,
                spoiler_text=spoiler,
                media_attachments=[a.json(self.url) for a in found],
                edited_at=datetime.now(UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            )
        return web.json_response(self._shown(status))

    async def delete_status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error(401, INVALID_TOKEN)
        status = self.status(request.match_info["id"])
        if status is None:
            return error(404, {"error": "Record not found"})
        self.statuses.remove(status)
        self.deleted.append(status)
        return web.json_response({**self._shown(status), "text": status["text"]})

    def dump(self) -> str:
        return json.dumps(self.statuses, indent=1, ensure_ascii=False)

    # --- signing in: apps and OAuth 2 ------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            try:
                found = await request.json()
            except ValueError:
                raise web.HTTPBadRequest() from None
            return found if isinstance(found, dict) else {}
        form = await request.post()
        return {k: form.getall(k) if k.endswith("[]") else form.get(k) for k in form}

    async def create_app(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        name = str(params.get("client_name") or "").strip()
        uris: Any = params.get("redirect_uris") or params.get("redirect_uris[]") or ""
        if isinstance(uris, str):
            uris = uris.split()
        scopes = str(params.get("scopes") or "read").split()
        if not name:
            return error(422, {"error": "Validation failed: Application name can't be blank"})
        if not uris:
            return error(422, {"error": "Validation failed: Redirect URI can't be blank"})
        for uri in uris:
            parts = urlsplit(str(uri))
            if uri != "urn:ietf:wg:oauth:2.0:oob" and (
                not parts.scheme or not parts.netloc or parts.fragment
            ):
                return error(
                    422, {"error": "Validation failed: Redirect URI must be an absolute URI."}
                )
        if any(s not in SCOPES for s in scopes):
            return error(422, {"error": "Validation failed: Scopes are invalid"})
        client_id = secrets.token_urlsafe(32)
        app = {
            "id": str(len(self.apps) + 1),
            "name": name,
            "website": params.get("website"),
            "scopes": scopes,
            "redirect_uris": [str(u) for u in uris],
            "redirect_uri": "\n".join(str(u) for u in uris),
            "client_id": client_id,
            "client_secret": secrets.token_urlsafe(32),
            "client_secret_expires_at": 0,
            "vapid_key": "BCk-fake",
        }
        self.apps[client_id] = app
        return web.json_response(app)

    def _doorkeeper_page(self, message: str, status: int) -> web.Response:
        page = (
            "<!doctype html><title>An error has occurred</title><h1>An error has occurred</h1>"
            f"<p>{html.escape(message)}</p>"
        )
        return web.Response(text=page, status=status, content_type="text/html")

    def _back(self, redirect_uri: str, **query: str) -> web.Response:
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + sep + urlencode({k: v for k, v in query.items() if v}))

    def _check_authorization(self, query: Any) -> web.Response | dict[str, Any]:
        """The app, or Doorkeeper's answer to a request it will not show the form for."""
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return self._doorkeeper_page(
                "Client authentication failed due to unknown client, no client authentication "
                "included, or unsupported authentication method.",
                401,
            )
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app["redirect_uris"]:
            return self._doorkeeper_page("The redirect uri included is not valid.", 400)
        state = query.get("state", "")
        if query.get("response_type") != "code":
            self._back(redirect_uri, error="unsupported_response_type", state=state)
        scopes = query.get("scope", "read").split()
        if not scopes or any(s not in app["scopes"] for s in scopes):
            self._back(redirect_uri, error="invalid_scope", state=state)
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            self._back(
                redirect_uri,
                error="invalid_request",
                error_description="Code challenge is required (S256).",
                state=state,
            )
        return app

    async def authorize_page(self, request: web.Request) -> web.Response:
        checked = self._check_authorization(request.query)
        if isinstance(checked, web.Response):
            return checked
        form_token = secrets.token_urlsafe(16)
        self._forms.add(form_token)
        keep = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(request.query.get(k, ""))}">'
            for k in (
                "client_id",
                "redirect_uri",
                "state",
                "response_type",
                "scope",
                "code_challenge",
                "code_challenge_method",
            )
        )
        token = f'<input type="hidden" name="authenticity_token" value="{form_token}">'
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in request.query["scope"].split())
        page = f"""<!doctype html><html lang="en"><title>Authorization required</title>
<main><h1>Authorization required</h1>
<p>{html.escape(checked["name"])} would like permission to access your account
@{html.escape(self.username)}. It is a third-party application.</p><ul>{scopes}</ul>
<form method="post" action="/oauth/authorize">{token}{keep}
<button type="submit">Authorize</button></form>
<form method="post" action="/oauth/authorize">{token}{keep}
<input type="hidden" name="_method" value="delete"><button type="submit">Deny</button></form>
</main></html>"""
        return web.Response(text=page, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("authenticity_token") not in self._forms:
            return self._doorkeeper_page("Invalid authenticity token.", 422)
        self._forms.discard(str(form["authenticity_token"]))
        query = {k: str(v) for k, v in form.items()}
        checked = self._check_authorization(query)
        if isinstance(checked, web.Response):
            return checked
        if query.get("_method") == "delete":
            self._back(
                query["redirect_uri"],
                error="access_denied",
                error_description="The resource owner or authorization server denied the request.",
                state=query.get("state", ""),
            )
        code = secrets.token_urlsafe(32)
        self.codes[code] = {
            "client_id": query["client_id"],
            "redirect_uri": query["redirect_uri"],
            "scope": query.get("scope", "read"),
            "code_challenge": query["code_challenge"],
            "used": False,
        }
        self._back(query["redirect_uri"], code=code, state=query.get("state", ""))
        raise AssertionError("unreachable")

    def _client(self, request: web.Request, params: dict[str, Any]) -> dict[str, Any] | None:
        client_id, secret = params.get("client_id"), params.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        app = self.apps.get(str(client_id or ""))
        if app is None or not secrets.compare_digest(app["client_secret"], str(secret or "")):
            return None
        return app

    async def token_exchange(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        app = self._client(request, params)
        if app is None:
            return error(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed due to unknown client, "
                    "no client authentication included, or unsupported authentication method.",
                },
            )
        if params.get("grant_type") != "authorization_code":
            return error(400, {"error": "unsupported_grant_type"})
        invalid_grant = {
            "error": "invalid_grant",
            "error_description": "The provided authorization grant is invalid, expired, "
            "revoked, does not match the redirection URI used in the authorization request, "
            "or was issued to another client.",
        }
        grant = self.codes.get(str(params.get("code") or ""))
        if (
            grant is None
            or grant["used"]
            or grant["client_id"] != app["client_id"]
            or grant["redirect_uri"] != params.get("redirect_uri")
        ):
            return error(400, invalid_grant)
        verifier = str(params.get("code_verifier") or "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if not 43 <= len(verifier) <= 128 or challenge != grant["code_challenge"]:
            return error(400, invalid_grant)
        grant["used"] = True
        token = secrets.token_urlsafe(32)
        self.issued[token] = app["client_id"]
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": grant["scope"],
                "created_at": int(datetime.now(UTC).timestamp()),
            }
        )

    async def revoke_token(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        app = self._client(request, params)
        if app is None:
            return error(403, {"error": "unauthorized_client"})
        token = str(params.get("token") or "")
        if self.issued.get(token) == app["client_id"]:
            del self.issued[token]
        return web.json_response({})
