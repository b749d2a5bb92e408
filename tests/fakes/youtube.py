"""Google's OAuth 2.0 endpoints and the YouTube Data API v3 on 127.0.0.1, as strict as the real
ones about what the relay sends.

Sources (read 2026-12): https://developers.google.com/identity/protocols/oauth2/web-server,
https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol,
https://developers.google.com/youtube/v3/docs/videos (insert, list, update, delete),
https://developers.google.com/youtube/v3/docs/thumbnails/set,
https://developers.google.com/youtube/v3/docs/captions/insert,
https://developers.google.com/youtube/v3/docs/errors,
https://developers.google.com/youtube/v3/determine_quota_cost.

Paths as on the real hosts (one host here): ``/o/oauth2/v2/auth`` (accounts.google.com),
``/token`` (oauth2.googleapis.com), ``/youtube/v3/…`` and ``/upload/youtube/v3/…``
(www.googleapis.com).

Every API error is Google's ``{"error": {"code", "message", "errors": [{"message", "domain",
"reason"}]}}``:
- no, unknown or expired access token: 401 ``authError`` ("Invalid Credentials"); a token
  without the scope a call needs (``youtube.upload`` to upload; ``youtube.force-ssl`` to
  update, delete, caption): 403 ``insufficientPermissions``.
- quota: every call costs its units (channels/playlistItems/videos.list 1, videos.update and
  videos.delete 50, thumbnails.set 50, captions.list 50, captions.insert 400) out of
  ``units`` a day; videos.insert has a bucket of its own (``inserts``, 100 a day, 1 each).
  Used up: 403 ``quotaExceeded`` with Google's own message.
- videos.insert (resumable): ``uploadType=resumable``, ``part`` naming every part of the body,
  ``Content-Type: application/json``, ``X-Upload-Content-Length`` and a video
  ``X-Upload-Content-Type``; title required, at most 100 characters, description at most 5,000
  bytes, neither with ``<``/``>`` (400 ``invalidTitle``/``invalidDescription``); tags at most
  500 characters (400 ``invalidTags``); privacyStatus public, unlisted or private. Answers 200
  with the session URI in ``Location``.
- the session: ``PUT`` with ``Content-Range: bytes FIRST-LAST/TOTAL`` (FIRST must be what the
  session holds, the body LAST-FIRST+1 bytes, every chunk but the last a multiple of 256 KiB:
  400 otherwise), or ``bytes */TOTAL`` with no body to ask; 308 with ``Range: bytes=0-N`` (no
  ``Range`` while it holds nothing) until the last byte, then 201 with the video resource.
  ``drop_upload_after(n)``: the next chunk keeps its first ``n`` bytes, then the connection
  drops (what a lost mobile link does). An unknown session is 404.
- videos.update replaces the snippet (``title`` and ``categoryId`` required) and, when named in
  ``part``, the status; counted in ``revisions``. videos.delete: 204, 404 ``videoNotFound``.
- thumbnails.set: JPEG or PNG up to 2 MB that PIL opens; ``unverified`` channels get 403
  ``forbidden``. captions.insert: ``multipart/related``, JSON snippet (``videoId``,
  ``language``) then the track.

Routes for ``fail``/``lose``: ``oauth.dialog``, ``oauth.approve``, ``oauth.token``,
``channels.list``, ``playlistItems.list``, ``videos.list``, ``videos.insert``, ``videos.upload``,
``videos.update``, ``videos.delete``, ``thumbnails.set``, ``captions.list``,
``captions.insert``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from PIL import Image

from tests.fakes import FakeService, consent_page

UPLOAD = "https://www.googleapis.com/auth/youtube.upload"
FORCE_SSL = "https://www.googleapis.com/auth/youtube.force-ssl"
QUANTUM = 256 * 1024
COSTS = {
    "channels.list": 1,
    "playlistItems.list": 1,
    "videos.list": 1,
    "videos.update": 50,
    "videos.delete": 50,
    "thumbnails.set": 50,
    "captions.list": 50,
    "captions.insert": 400,
}
QUOTA_MESSAGE = (
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/'
    'getting-started#quota">quota</a>.'
)


class GoogleError(Exception):
    def __init__(self, status: int, reason: str, message: str, domain: str = "youtube") -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": domain, "reason": reason}],
            }
        }
        if status == 401:
            self.body["error"]["errors"][0].update(location="Authorization", locationType="header")
            self.body["error"]["status"] = "UNAUTHENTICATED"


def _id(length: int = 11) -> str:
    return secrets.token_urlsafe(length)[:length]


@dataclass
class FakeYouTube(FakeService):
    client_id: str = "1234-relay.apps.googleusercontent.com"
    client_secret: str = "GOCSPX-" + "s" * 20
    channel_id: str = "UC" + "k" * 22
    channel_title: str = "Kommunen Play"
    access_token: str = "ya29.a0" + "x" * 30
    refresh_token: str = "1//0g" + "r" * 30
    inserts: int = 100
    units: int = 10_000
    used_inserts: int = 0
    used_units: int = 0
    unverified: bool = False
    tokens: dict[str, set[str]] = field(default_factory=dict)
    """Live access tokens and their scopes."""
    refresh_tokens: dict[str, set[str]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By id, newest last: ``snippet``, ``status``, ``data`` (the bytes), ``thumbnail``,
    ``captions``, ``revisions``, ``deleted``."""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: list[tuple[int, int]] = field(default_factory=list)
    """(first byte, length) of every chunk received, in order."""
    _drop_after: int | None = None

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.access_token, {UPLOAD, FORCE_SSL})
        self.refresh_tokens.setdefault(self.refresh_token, {UPLOAD, FORCE_SSL})

    @property
    def uploads_playlist(self) -> str:
        return "UU" + self.channel_id[2:]

    def live(self) -> list[dict[str, Any]]:
        return [v for v in self.videos.values() if not v.get("deleted")]

    def expire(self, token: str) -> None:
        self.tokens.pop(token, None)

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)

    def drop_upload_after(self, count: int) -> None:
        self._drop_after = count

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/o/oauth2/v2/auth", self.dialog, name="oauth.dialog")
        add("POST", "/o/oauth2/v2/auth", self.approve, name="oauth.approve")
        add("POST", "/token", self.token, name="oauth.token")
        for method, path, name, handler in (
            ("GET", "/youtube/v3/channels", "channels.list", self.channels_list),
            ("GET", "/youtube/v3/playlistItems", "playlistItems.list", self.playlist_items),
            ("GET", "/youtube/v3/videos", "videos.list", self.videos_list),
            ("PUT", "/youtube/v3/videos", "videos.update", self.videos_update),
            ("DELETE", "/youtube/v3/videos", "videos.delete", self.videos_delete),
            ("POST", "/upload/youtube/v3/videos", "videos.insert", self.videos_insert),
            ("PUT", "/upload/youtube/v3/videos", "videos.upload", self.videos_upload),
            ("POST", "/upload/youtube/v3/thumbnails/set", "thumbnails.set", self.thumbnails_set),
            ("GET", "/youtube/v3/captions", "captions.list", self.captions_list),
            ("POST", "/upload/youtube/v3/captions", "captions.insert", self.captions_insert),
        ):
            add(method, path, self._api(name, handler), name=name)

    # --- plumbing -----------------------------------------------------------------------------

    def _api(self, name: str, handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                if name != "videos.upload":  # the session URI is its own authority
                    self._authorize(request, name)
                    self._charge(name)
                return await handler(request)
            except GoogleError as exc:
                return web.json_response(exc.body, status=exc.status)

        return run

    def _authorize(self, request: web.Request, name: str) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise GoogleError(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token,"
                " login cookie or other valid authentication credential.",
                "global",
            )
        needed = {UPLOAD, FORCE_SSL} if name in ("videos.insert", "thumbnails.set") else {FORCE_SSL}
        if name.endswith(".list"):
            needed = {UPLOAD, FORCE_SSL}
        if not needed & self.tokens[token]:
            raise GoogleError(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )

    def _charge(self, name: str) -> None:
        if name == "videos.insert":
            if self.used_inserts + 1 > self.inserts:
                raise GoogleError(403, "quotaExceeded", QUOTA_MESSAGE, "youtube.quota")
            self.used_inserts += 1
            return
        cost = COSTS[name]
        if self.used_units + cost > self.units:
            raise GoogleError(403, "quotaExceeded", QUOTA_MESSAGE, "youtube.quota")
        self.used_units += cost

    @staticmethod
    def _required(request: web.Request, *names: str) -> None:
        for name in names:
            if not request.query.get(name):
                raise GoogleError(
                    400, "required", f"No filter selected. Expected one of: {name}", "global"
                )

    def _video(self, video_id: str) -> dict[str, Any]:
        found = self.videos.get(video_id)
        if found is None or found.get("deleted"):
            raise GoogleError(
                404,
                "videoNotFound",
                'The video identified by the <code><a href="/youtube/v3/docs/videos/update#id">'
                "id</a></code> parameter could not be found.",
            )
        return found

    def _resource(self, video: dict[str, Any], parts: list[str]) -> dict[str, Any]:
        shown: dict[str, Any] = {"kind": "youtube#video", "id": video["id"]}
        for part in parts:
            if part in ("snippet", "status"):
                shown[part] = video[part]
        return shown

    @staticmethod
    def _check_snippet(snippet: Any) -> None:
        if not isinstance(snippet, dict):
            raise GoogleError(400, "invalidVideoMetadata", "The request metadata is invalid.")
        title = snippet.get("title")
        if not isinstance(title, str) or not title.strip():
            raise GoogleError(
                400, "invalidTitle", "The request metadata specifies an invalid or empty title."
            )
        if len(title) > 100 or re.search(r"[<>]", title):
            raise GoogleError(
                400, "invalidTitle", "The request metadata specifies an invalid title."
            )
        description = snippet.get("description", "")
        if len(description.encode()) > 5000 or re.search(r"[<>]", description):
            raise GoogleError(
                400, "invalidDescription", "The request metadata specifies an invalid description."
            )
        tags = snippet.get("tags") or []
        counted = sum(len(t) + (2 if " " in t else 0) for t in tags) + max(0, len(tags) - 1)
        if counted > 500 or any(re.search(r"[<>,]", t) for t in tags):
            raise GoogleError(400, "invalidTags", "The request metadata specifies invalid tags.")
        category = snippet.get("categoryId")
        if category is not None and category not in (
            "1",
            "2",
            "10",
            "17",
            "20",
            "22",
            "24",
            "25",
            "26",
            "27",
            "28",
        ):
            raise GoogleError(
                400,
                "invalidCategoryId",
                "The snippet.categoryId property specifies an invalid category ID.",
            )

    @staticmethod
    def _check_status(status: Any) -> None:
        if not isinstance(status, dict) or status.get("privacyStatus") not in (
            "public",
            "unlisted",
            "private",
        ):
            raise GoogleError(
                400, "invalidVideoMetadata", "The request metadata specifies an invalid privacy."
            )

    # --- channels, uploads, videos ------------------------------------------------------------

    async def channels_list(self, request: web.Request) -> web.Response:
        self._required(request, "part")
        if request.query.get("mine") != "true":
            raise GoogleError(400, "missingRequiredParameter", "No filter selected.")
        parts = request.query["part"].split(",")
        item: dict[str, Any] = {"kind": "youtube#channel", "id": self.channel_id}
        if "snippet" in parts:
            item["snippet"] = {"title": self.channel_title, "customUrl": "@kommunenplay"}
        if "contentDetails" in parts:
            item["contentDetails"] = {"relatedPlaylists": {"uploads": self.uploads_playlist}}
        return web.json_response({"kind": "youtube#channelListResponse", "items": [item]})

    async def playlist_items(self, request: web.Request) -> web.Response:
        self._required(request, "part", "playlistId")
        if request.query["playlistId"] != self.uploads_playlist:
            raise GoogleError(404, "playlistNotFound", "The playlist could not be found.")
        most = int(request.query.get("maxResults", "5"))
        if not 0 <= most <= 50:
            raise GoogleError(400, "invalidParameter", "maxResults is out of range.")
        newest = list(reversed(self.live()))[:most]
        items = [
            {"kind": "youtube#playlistItem", "contentDetails": {"videoId": v["id"]}} for v in newest
        ]
        return web.json_response({"kind": "youtube#playlistItemListResponse", "items": items})

    async def videos_list(self, request: web.Request) -> web.Response:
        self._required(request, "part", "id")
        ids = request.query["id"].split(",")
        if len(ids) > 50:
            raise GoogleError(400, "invalidParameter", "Too many ids.")
        parts = request.query["part"].split(",")
        items = [
            self._resource(self.videos[i], parts)
            for i in ids
            if i in self.videos and not self.videos[i].get("deleted")
        ]
        return web.json_response({"kind": "youtube#videoListResponse", "items": items})

    async def videos_update(self, request: web.Request) -> web.Response:
        self._required(request, "part")
        parts = request.query["part"].split(",")
        body = await request.json()
        video = self._video(str(body.get("id", "")))
        snippet = body.get("snippet")
        if "snippet" in parts:
            self._check_snippet(snippet)
            if not snippet.get("categoryId"):
                raise GoogleError(
                    400, "invalidCategoryId", "The request metadata must specify a category."
                )
        if "status" in parts:
            self._check_status(body.get("status"))
        if "snippet" in parts:
            # The snippet is replaced: what is not sent (tags, description) is removed.
            video["snippet"] = {
                "channelId": self.channel_id,
                "publishedAt": video["snippet"]["publishedAt"],
                **snippet,
            }
        if "status" in parts:
            video["status"] = {**video["status"], **body["status"]}
        video["revisions"] += 1
        return web.json_response(self._resource(video, parts))

    async def videos_delete(self, request: web.Request) -> web.Response:
        self._required(request, "id")
        self._video(request.query["id"])["deleted"] = True
        return web.Response(status=204)

    # --- the resumable upload ----------------------------------------------------------------

    async def videos_insert(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("uploadType") != "resumable":
            raise GoogleError(400, "invalidParameter", "uploadType must be resumable here.")
        parts = query.get("part", "").split(",")
        if not request.content_type == "application/json":
            raise GoogleError(400, "parseError", "The request body must be JSON.", "global")
        body = await request.json()
        for name in body:
            if name not in parts:
                raise GoogleError(
                    400, "unexpectedPart", f"The request body has a {name} not named in part."
                )
        self._check_snippet(body.get("snippet"))
        self._check_status(body.get("status"))
        length = request.headers.get("X-Upload-Content-Length", "")
        kind = request.headers.get("X-Upload-Content-Type", "")
        if not length.isdigit() or int(length) <= 0:
            raise GoogleError(400, "badContent", "X-Upload-Content-Length is required.")
        if not (kind.startswith("video/") or kind == "application/octet-stream"):
            raise GoogleError(400, "invalidContentType", "The uploaded file is not a video.")
        upload_id = secrets.token_urlsafe(24)
        self.sessions[upload_id] = {
            "total": int(length),
            "mime": kind,
            "body": body,
            "received": bytearray(),
            "video_id": None,
        }
        location = f"{self.url}/upload/youtube/v3/videos?" + urlencode(
            {"uploadType": "resumable", "part": query.get("part", ""), "upload_id": upload_id}
        )
        return web.Response(status=200, headers={"Location": location})

    def _progress(self, session: dict[str, Any]) -> web.Response:
        held = len(session["received"])
        if session["video_id"] is not None:
            video = self.videos[session["video_id"]]
            return web.json_response(self._resource(video, ["snippet", "status"]), status=201)
        headers = {"Range": f"bytes=0-{held - 1}"} if held else {}
        return web.Response(status=308, headers=headers)

    async def videos_upload(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.query.get("upload_id", ""))
        if session is None:
            raise GoogleError(404, "notFound", "The upload session was not found.", "global")
        total = session["total"]
        given = request.headers.get("Content-Range", "")
        asked = re.fullmatch(r"bytes \*/(\d+)", given)
        sent = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", given)
        if asked:
            if int(asked.group(1)) != total or request.content_length not in (None, 0):
                raise GoogleError(400, "badRequest", "Invalid Content-Range.", "global")
            return self._progress(session)
        if not sent or int(sent.group(3)) != total:
            raise GoogleError(400, "badRequest", "Failed to parse Content-Range header.", "global")
        first, last = int(sent.group(1)), int(sent.group(2))
        size = last - first + 1
        if session["video_id"] is not None:
            return self._progress(session)
        if first != len(session["received"]) or size <= 0 or last >= total:
            raise GoogleError(400, "badRequest", "Content-Range does not continue the upload.")
        if last + 1 != total and size % QUANTUM:
            raise GoogleError(
                400, "badRequest", "Chunk size must be a multiple of 256 KiB (262144 bytes)."
            )
        if request.content_length != size:
            raise GoogleError(400, "badRequest", "Content-Length does not match Content-Range.")
        self.chunks.append((first, size))
        if self._drop_after is not None:
            keep, self._drop_after = min(self._drop_after, size), None
            session["received"] += await request.content.readexactly(keep)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        session["received"] += await request.read()
        if len(session["received"]) < total:
            return self._progress(session)
        video_id = _id()
        body = session["body"]
        self.videos[video_id] = {
            "id": video_id,
            "snippet": {
                "channelId": self.channel_id,
                "publishedAt": "2026-12-07T03:00:00Z",
                "categoryId": "22",
                **body["snippet"],
            },
            "status": {"uploadStatus": "uploaded", **body["status"]},
            "mime": session["mime"],
            "data": bytes(session["received"]),
            "thumbnail": None,
            "captions": [],
            "revisions": 0,
            "deleted": False,
        }
        session["video_id"] = video_id
        return self._progress(session)

    # --- thumbnails, captions ----------------------------------------------------------------

    async def thumbnails_set(self, request: web.Request) -> web.Response:
        self._required(request, "videoId")
        video = self._video(request.query["videoId"])
        if self.unverified:
            raise GoogleError(
                403,
                "forbidden",
                "The authenticated user doesnt have permissions to upload and set custom video"
                " thumbnails.",
            )
        if request.content_type not in ("image/jpeg", "image/png"):
            raise GoogleError(400, "invalidImage", "The provided image content is invalid.")
        data = await request.read()
        if len(data) > 2 * 1024 * 1024:
            raise GoogleError(413, "mediaBodyTooLarge", "The thumbnail is larger than 2 MB.")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except Exception as exc:
            raise GoogleError(
                400, "invalidImage", "The provided image content is invalid."
            ) from exc
        video["thumbnail"] = data
        return web.json_response(
            {
                "kind": "youtube#thumbnailSetResponse",
                "items": [
                    {
                        "default": {
                            "url": f"{self.url}/vi/{video['id']}/default.jpg",
                            "width": 120,
                            "height": 90,
                        }
                    }
                ],
            }
        )

    async def captions_list(self, request: web.Request) -> web.Response:
        self._required(request, "part", "videoId")
        video = self._video(request.query["videoId"])
        return web.json_response(
            {"items": [{"id": c["id"], "snippet": c["snippet"]} for c in video["captions"]]}
        )

    async def captions_insert(self, request: web.Request) -> web.Response:
        self._required(request, "part")
        if request.query.get("uploadType") != "multipart" or request.content_type != (
            "multipart/related"
        ):
            raise GoogleError(400, "invalidParameter", "Send the caption as multipart/related.")
        reader = await request.multipart()
        meta_part = await reader.next()
        if meta_part is None:
            raise GoogleError(400, "mediaBodyRequired", "The request has no metadata.")
        metadata = json.loads(await meta_part.read())  # type: ignore[union-attr]
        file_part = await reader.next()
        if file_part is None:
            raise GoogleError(400, "mediaBodyRequired", "The request has no caption track.")
        snippet = metadata.get("snippet") or {}
        video = self._video(str(snippet.get("videoId", "")))
        if not snippet.get("language"):
            raise GoogleError(400, "invalidMetadata", "The caption's language is required.")
        data = await file_part.read()  # type: ignore[union-attr]
        caption = {
            "id": _id(24),
            "snippet": {**snippet, "trackKind": "standard"},
            "data": bytes(data),
        }
        video["captions"].append(caption)
        return web.json_response(
            {"kind": "youtube#caption", "id": caption["id"], "snippet": caption["snippet"]}
        )

    # --- OAuth 2.0 ----------------------------------------------------------------------------

    async def dialog(self, request: web.Request) -> web.Response:
        """Google's consent screen: an unknown client or no redirect is an error page (never a
        redirect); offline access, consent and S256 PKCE are required of the relay."""
        query = request.query
        if query.get("client_id") != self.client_id or not query.get("redirect_uri"):
            page = "<!doctype html><title>Error</title><h1>Error 401: invalid_client</h1>"
            return web.Response(text=page, status=401, content_type="text/html")
        scopes = set(query.get("scope", "").split())
        if (
            query.get("response_type") != "code"
            or not query.get("state")
            or UPLOAD not in scopes
            or query.get("access_type") != "offline"
            or query.get("prompt") != "consent"
            or query.get("code_challenge_method") != "S256"
            or len(query.get("code_challenge", "")) != 43
        ):
            page = "<!doctype html><title>Error</title><h1>Error 400: invalid_request</h1>"
            return web.Response(text=page, status=400, content_type="text/html")
        return consent_page(
            query,
            ("redirect_uri", "state", "scope", "code_challenge"),
            title="Sign in - Google Accounts",
            heading="Relay wants access to your Google Account",
            asked=" ".join(scopes),
            action="/o/oauth2/v2/auth",
        )

    async def approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = str(form["redirect_uri"])
        state = str(form.get("state", ""))
        if form.get("choice") != "allow":
            query = {"error": "access_denied", "state": state}
        else:
            code = "4/0A" + secrets.token_urlsafe(24)
            self.codes[code] = {
                "redirect_uri": target,
                "used": False,
                "scope": str(form.get("scope", "")),
                "challenge": str(form.get("code_challenge", "")),
            }
            query = {"code": code, "scope": str(form.get("scope", "")), "state": state}
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Unauthorized"}, status=401
            )
        grant = form.get("grant_type")
        invalid = web.json_response(
            {"error": "invalid_grant", "error_description": "Bad Request"}, status=400
        )
        if grant == "refresh_token":
            scopes = self.refresh_tokens.get(form.get("refresh_token", ""))
            if scopes is None:
                return web.json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                    status=400,
                )
            fresh = "ya29.a0" + secrets.token_urlsafe(24)
            self.tokens[fresh] = set(scopes)
            return web.json_response(
                {
                    "access_token": fresh,
                    "expires_in": 3599,
                    "scope": " ".join(sorted(scopes)),
                    "token_type": "Bearer",
                }
            )
        if grant != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        given = self.codes.get(form.get("code", ""))
        if given is None or given["used"] or given["redirect_uri"] != form.get("redirect_uri"):
            return invalid
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != given["challenge"]:
            return invalid
        given["used"] = True
        scopes = set(given["scope"].split()) & {UPLOAD, FORCE_SSL}
        fresh = "ya29.a0" + secrets.token_urlsafe(24)
        self.tokens[fresh] = scopes
        self.refresh_tokens[self.refresh_token] = scopes
        return web.json_response(
            {
                "access_token": fresh,
                "expires_in": 3599,
                "refresh_token": self.refresh_token,
                "scope": " ".join(sorted(scopes)),
                "token_type": "Bearer",
            }
        )
