"""Meta's Graph API (Facebook Pages, Instagram content publishing) and the Threads API on
127.0.0.1, as strict as the real ones about what the relay sends.

Facebook and Instagram answer under ``/v21.0`` (``facebook_url``), Threads under
``/threads/v1.0`` (``threads_url``), as graph.facebook.com and graph.threads.net do.

Every error is Graph's body ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}`` with HTTP 400 (Graph's status for nearly everything):
- The token, as ``Authorization: Bearer`` or ``access_token``: none is code 2500 ("An active
  access token must be used…"); an unknown or revoked one code 190 subcode 460; one after
  ``expire()`` code 190 subcode 463 ("Session has expired").
- A Page token works on its Page only; a user token on its Instagram account; a Threads token on
  its Threads user (code 200 "Permissions error" otherwise).
- Unknown object ids: code 100 subcode 33 ("Unsupported get request. Object with ID … does not
  exist…"), also for a deleted post.

Facebook Pages:
- ``POST /{page-id}/photos``: ``source`` (multipart, image bytes PIL can open, up to 4 MB:
  code 324 "Requires upload file" / 100 otherwise); ``published=false`` keeps it unpublished for
  ``attached_media``; ``alt_text_custom``.
- ``POST /{page-id}/feed``: ``message``, ``link``, ``attached_media[N]`` = ``{"media_fbid": …}``
  of unpublished photos of this Page not attached yet; one of ``message``/``link``/media
  (code 100). Answers ``{"id": "PAGE_POST"}``. ``GET /{page-id}/feed``: newest first.
- ``GET /{post-id}``, ``POST /{post-id}`` (``message``: an edit, counted in ``revisions``),
  ``DELETE /{post-id}`` (``{"success": true}``).
- Videos (Resumable Upload API, https://developers.facebook.com/docs/graph-api/guides/upload,
  and https://developers.facebook.com/docs/video-api/guides/publishing):
  ``POST /{app-id}/uploads`` with ``file_name``, ``file_length`` and ``file_type`` (one of
  application/pdf, image/jpeg, image/jpg, image/png, video/mp4; code 100 otherwise) for this
  app → ``{"id": "upload:SESSION"}``. ``POST /upload:SESSION`` with ``Authorization: OAuth
  TOKEN`` (another scheme is code 190) and a ``file_offset`` header equal to what the session
  holds (code 100 otherwise), the bytes as the body → ``{"h": HANDLE}`` once all
  ``file_length`` bytes are in; ``GET /upload:SESSION`` → ``{"id", "file_offset"}``.
  ``cut_uploads`` lists byte counts after which the next transfers drop the connection (what
  arrived so far is kept, as Meta keeps it). ``POST /{page-id}/videos`` with
  ``fbuploader_video_file_chunk`` = a complete MP4's handle (used once), ``description``,
  ``title``, ``thumb`` (an image file) → ``{"id": VIDEO}``; the video also shows in the Page's
  feed as a post whose message is the description. ``GET /{video-id}`` gives ``description``
  and a relative ``permalink_url``; ``POST /{video-id}`` edits ``description``; ``DELETE``.

Instagram (``ig_user_id``):
- ``GET /{ig-user-id}/content_publishing_limit``: ``quota_usage`` of ``quota_total`` (50).
- ``POST /{ig-user-id}/media``: ``image_url`` (the fake fetches it: it must answer 200 with a
  JPEG, else code 9004 subcode 2207052 "media could not be fetched"; a shape outside 4:5…1.91:1
  is code 36003 subcode 2207009), or ``media_type=REELS`` with ``video_url``, or
  ``media_type=CAROUSEL`` with 2-10 ``children`` made with ``is_carousel_item=true``;
  ``caption`` at most 2,200 characters and 30 hashtags (code 100); ``alt_text``. The container
  is ``IN_PROGRESS`` for ``processing_polls`` reads of ``status_code``, then ``FINISHED``.
- ``POST /{ig-user-id}/media_publish`` (``creation_id``): a container not ``FINISHED`` is code
  9007 subcode 2207027 ("Media ID is not available"); the quota used up is code 4 subcode
  2207042; a container is published once.
- ``GET /{ig-user-id}/media``: newest first, with ``caption`` and ``permalink``.

Threads (``threads_user_id``):
- ``POST /{threads-user-id}/threads``: ``media_type`` TEXT (``text`` required), IMAGE
  (``image_url``, fetched: JPEG or PNG up to 8 MB), VIDEO (``video_url``) or CAROUSEL
  (2-20 ``children``: containers of this account made with ``is_carousel_item=true`` and
  ``FINISHED``); ``media_type`` is required (code 100); ``text`` at most 500 characters counted
  as Threads does (emoji as UTF-8 bytes); ``alt_text``. ``status`` goes IN_PROGRESS → FINISHED
  like Instagram's (https://developers.facebook.com/docs/threads/posts/).
- ``POST /{threads-user-id}/threads_publish`` (a carousel item alone is code 100),
  ``GET /{threads-user-id}/threads``, ``GET …/threads_publishing_limit`` (250 a day),
  ``DELETE /{threads-media-id}``.
- Tokens (https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/):
  ``POST /oauth/access_token`` (form: ``client_id``, ``client_secret``, ``code``,
  ``grant_type=authorization_code``, ``redirect_uri``); ``GET /access_token`` (query:
  ``grant_type=th_exchange_token``, ``client_secret``, ``access_token``); ``GET
  /refresh_access_token`` (query: ``grant_type=th_refresh_token``, ``access_token``; a header
  token does not count). Any other method is 405, as no route.

Facebook Login (``app_id``, ``app_secret``):
- ``GET /dialog/oauth``: an unknown ``client_id`` or no ``redirect_uri`` is an error page (no
  redirect); else a page with the scopes and "Continue" / "Cancel", which ``POST /dialog/oauth``
  answers with a redirect to ``redirect_uri`` with ``code`` and ``state`` (or
  ``error=access_denied``).
- ``/v21.0/oauth/access_token`` (query or form): the app's id and secret, then a ``code`` once
  for the same ``redirect_uri`` (a short-lived token), or ``grant_type=fb_exchange_token`` with
  a short-lived token (the long-lived ``user_token``).
- ``GET /v21.0/me/accounts`` with a user token: the Page, its token and its linked Instagram
  account (``instagram_business_account{id,username}``).

Media URLs the fake cannot reach (the contract tests' ``relay.example``) may be given in
``fetchable``; ``unfetchable`` lists URL prefixes that fail as if the relay were not reachable.

Routes for scripting (``fail``/``lose``): ``object.get``, ``object.update``, ``object.delete``,
``page.photos``, ``page.feed.create``, ``app.uploads``, ``upload.transfer``, ``upload.state``,
``page.videos``, ``page.feed``, ``ig.media.create``, ``ig.media``,
``ig.publish``, ``ig.limit``, ``threads.get``, ``threads.delete``, ``threads.create``,
``threads.list``, ``threads.publish``, ``threads.limit``, ``oauth.dialog``, ``oauth.approve``,
``oauth.token`` (GET), ``oauth.token.post``, ``me.accounts``.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from PIL import Image

from tests.fakes import FakeService, consent_page

FB = "/v21.0"
TH = "/threads/v1.0"
MB = 1024 * 1024


class GraphError(Exception):
    def __init__(
        self, message: str, code: int, subcode: int | None = None, kind: str = "OAuthException"
    ) -> None:
        super().__init__(message)
        self.body = {
            "error": {
                "message": message,
                "type": kind,
                "code": code,
                **({"error_subcode": subcode} if subcode is not None else {}),
                "fbtrace_id": "A" + secrets.token_urlsafe(8),
            }
        }


def threads_length(text: str) -> int:
    return sum(
        len(ch.encode()) if ord(ch) > 0xFFFF or unicodedata.category(ch) == "So" else 1
        for ch in text
    )


def gone(object_id: str, method: str = "get") -> GraphError:
    return GraphError(
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be"
        " loaded due to missing permissions, or does not support this operation.",
        100,
        33,
        "GraphMethodException",
    )


@dataclass
class FakeMeta(FakeService):
    page_id: str = "104000000000001"
    page_name: str = "Kommunen"
    page_token: str = "EAAPage" + "x" * 20
    ig_user_id: str = "17841400000000001"
    ig_username: str = "kommunen"
    user_token: str = "EAAUser" + "y" * 20
    threads_user_id: str = "25000000000000001"
    threads_username: str = "kommunen"
    threads_token: str = "THAAThreads" + "z" * 20
    processing_polls: int = 1
    ig_quota: int = 50
    threads_quota: int = 250
    fetchable: dict[str, bytes] = field(default_factory=dict)
    unfetchable: list[str] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every object by id: ``kind`` (photo, page_post, ig_container, ig_media,
    threads_container, thread) and its fields."""
    fetched: list[str] = field(default_factory=list)
    app_id: str = "1234567890"
    app_secret: str = "meta-app-secret-" + "s" * 16
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Login codes given out (``redirect_uri``, ``used``)."""
    short_tokens: set[str] = field(default_factory=set)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Resumable upload sessions by id: ``file_length``, ``file_type``, ``data``, ``handle``."""
    cut_uploads: list[int] = field(default_factory=list)
    _revoked: set[str] = field(default_factory=set)
    _expired: set[str] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(900_000_000_001))

    @property
    def facebook_url(self) -> str:
        return self.url + FB

    @property
    def threads_url(self) -> str:
        return self.url + TH

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o["kind"] == kind and not o.get("deleted")]

    def revoke(self, token: str) -> None:
        self._revoked.add(token)

    def expire(self, token: str) -> None:
        self._expired.add(token)

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        # before ``/{id}``, which would take ``upload:…`` for an object id
        add("POST", FB + "/upload:{sid}", self.upload_transfer, name="upload.transfer")
        add("GET", FB + "/upload:{sid}", self.upload_state, name="upload.state")
        add("POST", FB + "/{id}/uploads", self._wrap(self.app_uploads), name="app.uploads")
        add("POST", FB + "/{id}/videos", self._wrap(self.page_videos), name="page.videos")
        add("GET", "/dialog/oauth", self.dialog, name="oauth.dialog")
        add("POST", "/dialog/oauth", self.approve, name="oauth.approve")
        add("GET", FB + "/oauth/access_token", self.access_token, name="oauth.token")
        add("POST", FB + "/oauth/access_token", self.access_token, name="oauth.token.post")
        add("GET", FB + "/me/accounts", self._wrap(self.accounts), name="me.accounts")
        add("POST", FB + "/{id}/photos", self._wrap(self.page_photos), name="page.photos")
        add("POST", FB + "/{id}/feed", self._wrap(self.create_page_post), name="page.feed.create")
        add("GET", FB + "/{id}/feed", self._wrap(self.page_feed), name="page.feed")
        add("POST", FB + "/{id}/media", self._wrap(self.ig_create), name="ig.media.create")
        add("GET", FB + "/{id}/media", self._wrap(self.ig_list), name="ig.media")
        add("POST", FB + "/{id}/media_publish", self._wrap(self.ig_publish), name="ig.publish")
        add(
            "GET", FB + "/{id}/content_publishing_limit", self._wrap(self.ig_limit), name="ig.limit"
        )
        add("GET", FB + "/{id}", self._wrap(self.get_object), name="object.get")
        add("POST", FB + "/{id}", self._wrap(self.update_object), name="object.update")
        add("DELETE", FB + "/{id}", self._wrap(self.delete_object), name="object.delete")
        add("POST", TH + "/{id}/threads", self._wrap(self.th_create), name="threads.create")
        add("GET", TH + "/{id}/threads", self._wrap(self.th_list), name="threads.list")
        add(
            "POST",
            TH + "/{id}/threads_publish",
            self._wrap(self.th_publish),
            name="threads.publish",
        )
        add(
            "GET",
            TH + "/{id}/threads_publishing_limit",
            self._wrap(self.th_limit),
            name="threads.limit",
        )
        # Threads' own login: the same dialog, its own token endpoints (no version in the path)
        add("POST", "/threads/oauth/access_token", self.threads_code, name="threads.oauth.token")
        add("GET", "/threads/access_token", self.threads_exchange, name="threads.oauth.exchange")
        add("GET", "/threads/refresh_access_token", self.threads_refresh, name="threads.refresh")
        add("GET", TH + "/{id}", self._wrap(self.get_object), name="threads.get")
        add("DELETE", TH + "/{id}", self._wrap(self.delete_object), name="threads.delete")

    # --- plumbing -----------------------------------------------------------------------------

    def _wrap(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.Response:
            try:
                params = dict(request.query)
                if request.method == "POST":
                    form = await request.post()
                    for key, value in form.items():
                        params[key] = value if isinstance(value, str) else value.file.read()
                token = self._token(request, params)
                answer = await handler(request, request.match_info.get("id", "me"), params, token)
            except GraphError as exc:
                return web.json_response(exc.body, status=400)
            return web.json_response(answer)

        return run

    def _token(
        self, request: web.Request, params: dict[str, Any], scheme: str | None = "Bearer "
    ) -> str:
        """The call's token; ``scheme`` None: only the ``access_token`` parameter counts."""
        header = request.headers.get("Authorization", "")
        if scheme is not None and header.startswith(scheme):
            token = header[len(scheme) :]
        else:
            token = str(params.pop("access_token", ""))
        if not token:
            raise GraphError(
                "An active access token must be used to query information about the current user.",
                2500,
            )
        if token in self._expired:
            raise GraphError(
                "Error validating access token: Session has expired on Sunday, 06-Dec-26"
                " 12:00:00 PST.",
                190,
                463,
            )
        known = {self.page_token, self.user_token, self.threads_token} | self.short_tokens
        if token in self._revoked or token not in known:
            raise GraphError(
                "Error validating access token: The session has been invalidated because the"
                " user changed their password or Facebook has changed the session for security"
                " reasons.",
                190,
                460,
            )
        return token

    def _owner(self, token: str, owner: str) -> None:
        allowed = {
            self.page_id: {self.page_token},
            # the Instagram account linked to the Page: the Page's token, or the user's
            self.ig_user_id: {self.user_token, self.page_token},
            self.threads_user_id: {self.threads_token},
        }
        if token not in allowed.get(owner, set()):
            raise GraphError("(#200) Permissions error", 200)

    def _new(self, kind: str, **fields: Any) -> dict[str, Any]:
        object_id = str(next(self._ids))
        self.objects[object_id] = {"id": object_id, "kind": kind, **fields}
        return self.objects[object_id]

    def _object(self, object_id: str, method: str = "get") -> dict[str, Any]:
        if object_id == "me" and object_id not in self.objects:
            raise gone(object_id, method)
        found = self.objects.get(object_id)
        if found is None or found.get("deleted"):
            raise gone(object_id, method)
        return found

    async def _fetch(self, url: str, code: int, subcode: int) -> bytes:
        """Fetch a medium as Meta's crawler does; a failure is Meta's fetch error."""
        self.fetched.append(url)
        if any(url.startswith(prefix) for prefix in self.unfetchable):
            data = None
        elif url in self.fetchable:
            return self.fetchable[url]
        else:
            try:
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    data = await response.read() if response.status == 200 else None
            except aiohttp.ClientError:
                data = None
        if data is None:
            raise GraphError("The media could not be fetched from this URI: " + url, code, subcode)
        return data

    def _fields(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        wanted = [f for f in str(params.get("fields") or "id").split(",") if f]
        polled = "status_code" in wanted or "status" in wanted
        if obj["kind"].endswith("_container") and polled and obj["state"] == "IN_PROGRESS":
            obj["polls_left"] -= 1
            if obj["polls_left"] < 0:
                obj["state"] = "FINISHED"
        shown = {"id": obj["id"]}
        for name in wanted:
            if name in ("status_code", "status"):
                shown[name] = obj.get("state")
            elif name in obj and not name.startswith("_"):
                shown[name] = obj[name]
        return shown

    # --- objects ------------------------------------------------------------------------------

    async def get_object(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        if oid == "me":
            oid = {self.threads_token: self.threads_user_id}.get(token, "")
        if oid == self.page_id:
            self._owner(token, oid)
            return {"id": oid, "name": self.page_name}
        if oid in (self.ig_user_id, self.threads_user_id):
            self._owner(token, oid)
            name = self.ig_username if oid == self.ig_user_id else self.threads_username
            return {"id": oid, "username": name}
        obj = self._object(oid)
        self._owner(token, obj["owner"])
        return self._fields(obj, params)

    async def update_object(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        obj = self._object(oid, "post")
        self._owner(token, obj["owner"])
        if obj["kind"] == "video" and "description" in params:
            if params["description"] != obj.get("description"):
                obj["description"] = params["description"]
                obj["revisions"] = obj.get("revisions", 0) + 1
                self.objects[obj["post"]]["message"] = params["description"]
            return {"success": True}
        if obj["kind"] != "page_post" or "message" not in params:
            raise GraphError("(#100) Invalid parameter", 100)
        if params["message"] != obj.get("message"):
            obj["message"] = params["message"]
            obj["revisions"] = obj.get("revisions", 0) + 1
        return {"success": True}

    async def delete_object(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        obj = self._object(oid, "delete")
        self._owner(token, obj["owner"])
        if obj["kind"] not in ("page_post", "thread", "photo", "video"):
            raise GraphError("(#3) Application does not have the capability", 3)
        obj["deleted"] = True
        if obj["kind"] == "video":
            self.objects[obj["post"]]["deleted"] = True
        return {"success": True, **({"deleted_id": oid} if obj["kind"] == "thread" else {})}

    # --- Facebook Pages -----------------------------------------------------------------------

    async def page_photos(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        source = params.get("source")
        if not isinstance(source, bytes):
            if "url" not in params:
                raise GraphError("(#324) Requires upload file", 324, kind="OAuthException")
            source = await self._fetch(str(params["url"]), 324, 2069019)
        if len(source) > 4 * MB:
            raise GraphError("(#100) The photo is larger than 4 MB", 100)
        try:
            with Image.open(io.BytesIO(source)) as image:
                size = image.size
        except OSError:
            raise GraphError("(#324) Missing or invalid image file", 324) from None
        published = str(params.get("published", "true")).lower() != "false"
        photo = self._new(
            "photo",
            owner=oid,
            size=size,
            data=source,
            alt_text_custom=params.get("alt_text_custom"),
            published=published,
            attached_to=None,
        )
        return {"id": photo["id"]}

    async def create_page_post(
        self, request: web.Request, oid: str, params: dict, token: str
    ) -> Any:
        self._owner(token, oid)
        photos = []
        for index in itertools.count():
            raw = params.get(f"attached_media[{index}]")
            if raw is None:
                break
            try:
                fbid = str(json.loads(raw)["media_fbid"])
            except (ValueError, KeyError, TypeError):
                raise GraphError("(#100) param attached_media must be an array", 100) from None
            photo = self.objects.get(fbid)
            if photo is None or photo["kind"] != "photo" or photo["owner"] != oid:
                raise GraphError(f"(#100) Invalid media_fbid {fbid}", 100)
            if photo["published"] or photo["attached_to"]:
                raise GraphError("(#100) Media already published or attached", 100)
            photos.append(photo)
        if not params.get("message") and not params.get("link") and not photos:
            raise GraphError("(#100) Missing message or attachment", 100)
        post_id = f"{oid}_{next(self._ids)}"
        post = {
            "id": post_id,
            "kind": "page_post",
            "owner": oid,
            "message": params.get("message", ""),
            "link": params.get("link"),
            "photos": [p["id"] for p in photos],
            "permalink_url": f"https://www.facebook.com/{oid}/posts/{post_id.split('_')[1]}",
        }
        self.objects[post_id] = post
        for photo in photos:
            photo["attached_to"] = post_id
        return {"id": post_id}

    # --- Resumable Upload API and Page videos ---------------------------------------------------

    async def app_uploads(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        if oid != self.app_id:
            raise GraphError(f"(#100) Invalid app id {oid}", 100)
        if token not in (self.page_token, self.user_token):
            raise GraphError("(#200) Permissions error", 200)
        try:
            length = int(params["file_length"])
        except (KeyError, ValueError):
            raise GraphError("(#100) The parameter file_length is required", 100) from None
        kind = params.get("file_type")
        allowed = ("application/pdf", "image/jpeg", "image/jpg", "image/png", "video/mp4")
        if kind not in allowed or length <= 0 or not params.get("file_name"):
            raise GraphError("(#100) Invalid file_type, file_length or file_name", 100)
        session = "upload:" + secrets.token_urlsafe(12)
        self.uploads[session] = {
            "file_length": length,
            "file_type": kind,
            "file_name": params["file_name"],
            "token": token,
            "data": bytearray(),
            "handle": None,
            "used": False,
        }
        return {"id": session}

    def _upload_session(self, request: web.Request) -> dict[str, Any]:
        if not request.headers.get("Authorization", "").startswith("OAuth "):
            raise GraphError("(#190) This upload takes Authorization: OAuth <token>", 190)
        token = self._token(request, {}, scheme="OAuth ")
        session = self.uploads.get("upload:" + request.match_info["sid"])
        if session is None or session["token"] != token:
            raise gone("upload:" + request.match_info["sid"])
        return session

    async def upload_state(self, request: web.Request) -> web.Response:
        try:
            session = self._upload_session(request)
        except GraphError as exc:
            return web.json_response(exc.body, status=400)
        sid = "upload:" + request.match_info["sid"]
        return web.json_response({"id": sid, "file_offset": len(session["data"])})

    async def upload_transfer(self, request: web.Request) -> web.Response:
        try:
            session = self._upload_session(request)
            offset = request.headers.get("file_offset")
            if offset is None or not offset.isdigit():
                raise GraphError("(#100) The file_offset header is required", 100)
            if int(offset) != len(session["data"]):
                raise GraphError(
                    f"(#100) file_offset {offset} does not match the {len(session['data'])}"
                    " bytes received",
                    100,
                )
        except GraphError as exc:
            return web.json_response(exc.body, status=400)
        cut = self.cut_uploads.pop(0) if self.cut_uploads else None
        received = 0
        async for chunk in request.content.iter_chunked(65536):
            if cut is not None and received + len(chunk) >= cut:
                session["data"] += chunk[: cut - received]
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            received += len(chunk)
            session["data"] += chunk
            if len(session["data"]) > session["file_length"]:
                body = GraphError("(#100) More bytes than file_length", 100).body
                return web.json_response(body, status=400)
        if len(session["data"]) < session["file_length"]:
            sid = "upload:" + request.match_info["sid"]
            return web.json_response({"id": sid, "file_offset": len(session["data"])})
        session["handle"] = session["handle"] or "2:" + secrets.token_urlsafe(24)
        return web.json_response({"h": session["handle"]})

    async def page_videos(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        handle = params.get("fbuploader_video_file_chunk")
        session = next((u for u in self.uploads.values() if handle and u["handle"] == handle), None)
        if session is None or session["used"] or session["file_type"] != "video/mp4":
            raise GraphError("(#100) Invalid fbuploader_video_file_chunk", 100)
        if bytes(session["data"][4:8]) != b"ftyp":
            raise GraphError("There was a problem uploading your video file.", 390, 1363030)
        thumb = params.get("thumb")
        thumb_size = None
        if thumb is not None:
            try:
                with Image.open(io.BytesIO(thumb)) as image:
                    thumb_size = image.size
            except (OSError, TypeError):
                raise GraphError("(#100) thumb must be an image file", 100) from None
        session["used"] = True
        video = self._new(
            "video",
            owner=oid,
            description=params.get("description", ""),
            title=params.get("title"),
            thumb_size=thumb_size,
            data=bytes(session["data"]),
        )
        video["permalink_url"] = f"/{oid}/videos/{video['id']}/"
        post_id = f"{oid}_{next(self._ids)}"
        self.objects[post_id] = {
            "id": post_id,
            "kind": "page_post",
            "owner": oid,
            "message": video["description"],
            "link": None,
            "photos": [],
            "video": video["id"],
            "permalink_url": f"https://www.facebook.com/{oid}/posts/{post_id.split('_')[1]}",
        }
        video["post"] = post_id
        return {"id": video["id"]}

    async def page_feed(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        posts = [p for p in self.of_kind("page_post") if p["owner"] == oid][::-1]
        return {"data": [self._fields(p, params) for p in posts[: int(params.get("limit", 25))]]}

    # --- Instagram ----------------------------------------------------------------------------

    def _caption(self, caption: str, limit: int) -> None:
        if len(caption) > limit:
            raise GraphError(f"(#100) Param caption must be at most {limit} characters long.", 100)
        if sum(1 for w in caption.split() if w.startswith("#") and len(w) > 1) > 30:
            raise GraphError("(#100) The caption has more than 30 hashtags.", 100)

    async def ig_create(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        caption = str(params.get("caption", ""))
        self._caption(caption, 2200)
        media_type = params.get("media_type", "IMAGE")
        carousel_item = str(params.get("is_carousel_item", "false")).lower() == "true"
        fields: dict[str, Any] = {
            "owner": oid,
            "caption": caption,
            "state": "IN_PROGRESS",
            "polls_left": self.processing_polls,
            "carousel_item": carousel_item,
        }
        if media_type == "CAROUSEL":
            children = [c for c in str(params.get("children", "")).split(",") if c]
            if not 2 <= len(children) <= 10:
                raise GraphError("(#100) A carousel takes 2 to 10 children", 100)
            for child in children:
                found = self.objects.get(child)
                if found is None or found["kind"] != "ig_container" or not found["carousel_item"]:
                    raise GraphError(f"(#100) Invalid child {child}", 100, 2207001)
                if found["state"] != "FINISHED":
                    raise GraphError("The media is not ready for publishing", 9007, 2207027)
            fields.update(media_type="CAROUSEL", children=children)
        elif media_type == "REELS" or (media_type == "VIDEO" and carousel_item):
            if "video_url" not in params:
                raise GraphError("(#100) The parameter video_url is required", 100)
            await self._fetch(str(params["video_url"]), 9004, 2207052)
            fields.update(media_type="VIDEO", video_url=params["video_url"])
        elif media_type == "IMAGE":
            if "image_url" not in params:
                raise GraphError("(#100) The parameter image_url is required", 100)
            data = await self._fetch(str(params["image_url"]), 9004, 2207052)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image_format, (width, height) = image.format, image.size
            except OSError:
                image_format, width, height = None, 1, 1
            if image_format != "JPEG":
                raise GraphError(
                    "Only photo or video can be accepted as media type.", 9004, 2207083
                )
            if not 0.8 - 0.005 <= width / height <= 1.91 + 0.005:
                raise GraphError("The aspect ratio is not supported.", 36003, 2207009)
            fields.update(
                media_type="IMAGE",
                image_url=params["image_url"],
                alt_text=params.get("alt_text"),
                size=(width, height),
            )
        else:
            raise GraphError(f"(#100) media_type {media_type} is not supported", 100)
        return {"id": self._new("ig_container", **fields)["id"]}

    def _used(self, kind: str, owner: str) -> int:
        return sum(1 for o in self.objects.values() if o["kind"] == kind and o["owner"] == owner)

    async def ig_limit(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        used = self._used("ig_media", oid)
        return {
            "data": [
                {
                    "quota_usage": used,
                    "config": {"quota_total": self.ig_quota, "quota_duration": 86400},
                }
            ]
        }

    async def ig_publish(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        container = self.objects.get(str(params.get("creation_id", "")))
        if container is None or container["kind"] != "ig_container" or container["owner"] != oid:
            raise GraphError("(#100) Invalid creation_id", 100)
        if container["state"] != "FINISHED":
            raise GraphError("Media ID is not available", 9007, 2207027)
        if container["carousel_item"]:
            raise GraphError("(#100) A carousel item cannot be published alone", 100)
        if self._used("ig_media", oid) >= self.ig_quota:
            raise GraphError("Application request limit reached", 4, 2207042)
        container["state"] = "PUBLISHED"
        code = secrets.token_urlsafe(8)
        media = self._new(
            "ig_media",
            owner=oid,
            caption=container["caption"],
            container=container["id"],
            media_type=container["media_type"],
            permalink=f"https://www.instagram.com/p/{code}/",
        )
        return {"id": media["id"]}

    async def ig_list(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        self._owner(token, oid)
        media = [m for m in self.of_kind("ig_media") if m["owner"] == oid][::-1]
        return {"data": [self._fields(m, params) for m in media[: int(params.get("limit", 25))]]}

    # --- Threads ------------------------------------------------------------------------------

    async def th_create(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        oid = self.threads_user_id if oid == "me" else oid
        self._owner(token, oid)
        text = str(params.get("text", ""))
        if threads_length(text) > 500:
            raise GraphError("(#100) Param text must be at most 500 characters long.", 100)
        media_type = params.get("media_type")
        carousel_item = str(params.get("is_carousel_item", "false")).lower() == "true"
        fields: dict[str, Any] = {
            "owner": oid,
            "text": text,
            "state": "IN_PROGRESS",
            "polls_left": self.processing_polls,
            "carousel_item": carousel_item,
            "media_type": media_type,
        }
        if media_type == "TEXT":
            if not text:
                raise GraphError("(#100) The parameter text is required", 100)
        elif media_type == "IMAGE":
            if "image_url" not in params:
                raise GraphError("(#100) The parameter image_url is required", 100)
            data = await self._fetch(str(params["image_url"]), 9004, 2207052)
            if len(data) > 8 * MB or not data.startswith((b"\xff\xd8\xff", b"\x89PNG")):
                raise GraphError("(#100) The image is not a JPEG or PNG up to 8 MB", 100)
            fields.update(image_url=params["image_url"], alt_text=params.get("alt_text"))
        elif media_type == "VIDEO":
            if "video_url" not in params:
                raise GraphError("(#100) The parameter video_url is required", 100)
            await self._fetch(str(params["video_url"]), 9004, 2207052)
            fields.update(video_url=params["video_url"])
        elif media_type == "CAROUSEL":
            children = [c for c in str(params.get("children", "")).split(",") if c]
            if not 2 <= len(children) <= 20:
                raise GraphError("(#100) A carousel takes 2 to 20 children", 100)
            for child in children:
                found = self.objects.get(child)
                if (
                    found is None
                    or found["kind"] != "threads_container"
                    or found["owner"] != oid
                    or not found["carousel_item"]
                ):
                    raise GraphError(f"(#100) Invalid child {child}", 100)
                if found["state"] != "FINISHED":
                    raise GraphError("Media ID is not available", 24, 4279009)
            fields.update(children=children)
        else:
            raise GraphError(
                "(#100) Param media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL", 100
            )
        return {"id": self._new("threads_container", **fields)["id"]}

    async def th_limit(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        oid = self.threads_user_id if oid == "me" else oid
        self._owner(token, oid)
        return {
            "data": [
                {
                    "quota_usage": self._used("thread", oid),
                    "config": {"quota_total": self.threads_quota, "quota_duration": 86400},
                }
            ]
        }

    async def th_publish(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        oid = self.threads_user_id if oid == "me" else oid
        self._owner(token, oid)
        container = self.objects.get(str(params.get("creation_id", "")))
        if (
            container is None
            or container["kind"] != "threads_container"
            or container["owner"] != oid
        ):
            raise GraphError("(#100) Invalid creation_id", 100)
        if container["carousel_item"]:
            raise GraphError("(#100) A carousel item cannot be published alone", 100)
        if container["state"] != "FINISHED":
            raise GraphError("Media ID is not available", 24, 4279009)
        if self._used("thread", oid) >= self.threads_quota:
            raise GraphError("Application request limit reached", 4)
        container["state"] = "PUBLISHED"
        code = secrets.token_urlsafe(8)
        thread = self._new(
            "thread",
            owner=oid,
            text=container["text"],
            container=container["id"],
            media_type=container["media_type"],
            permalink=f"https://www.threads.net/@{self.threads_username}/post/{code}",
        )
        return {"id": thread["id"]}

    async def th_list(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        oid = self.threads_user_id if oid == "me" else oid
        self._owner(token, oid)
        threads = [t for t in self.of_kind("thread") if t["owner"] == oid][::-1]
        return {"data": [self._fields(t, params) for t in threads[: int(params.get("limit", 25))]]}

    # --- Facebook Login -----------------------------------------------------------------------

    async def dialog(self, request: web.Request) -> web.Response:
        """The Login dialog as the signed-in person sees it: the app, the permissions, and two
        buttons. An unknown app or no ``redirect_uri`` is an error page, never a redirect."""
        query = request.query
        if query.get("client_id") != self.app_id or not query.get("redirect_uri"):
            page = "<!doctype html><title>Error</title><h1>Invalid App ID</h1>"
            return web.Response(text=page, status=400, content_type="text/html")
        if query.get("response_type", "code") != "code" or not query.get("state"):
            page = "<!doctype html><title>Error</title><h1>Invalid request</h1>"
            return web.Response(text=page, status=400, content_type="text/html")
        return consent_page(
            query,
            ("redirect_uri", "state", "scope"),
            title="Log in with Facebook",
            heading="Relay is requesting access",
            asked=query.get("scope", ""),
            action="/dialog/oauth",
            allow="Continue",
        )

    async def approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = str(form["redirect_uri"])
        state = str(form.get("state", ""))
        if form.get("choice") != "allow":
            query = {"error": "access_denied", "error_reason": "user_denied", "state": state}
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {"redirect_uri": target, "used": False, "scope": form.get("scope")}
            query = {"code": code, "state": state}
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    async def access_token(self, request: web.Request) -> web.Response:
        """The code (or a short-lived token) for a token; Graph takes the fields as a query or
        as a form body."""
        query = {**request.query, **{k: str(v) for k, v in (await request.post()).items()}}
        if query.get("client_id") != self.app_id or query.get("client_secret") != self.app_secret:
            body = GraphError("Error validating client secret.", 1, 0).body
            return web.json_response(body, status=400)
        if query.get("grant_type") == "fb_exchange_token":
            if query.get("fb_exchange_token") not in self.short_tokens | {self.user_token}:
                body = GraphError("Error validating access token", 190, 460).body
                return web.json_response(body, status=400)
            return web.json_response(
                {"access_token": self.user_token, "token_type": "bearer", "expires_in": 5183944}
            )
        given = self.codes.get(query.get("code", ""))
        if given is None or given["used"] or given["redirect_uri"] != query.get("redirect_uri"):
            body = GraphError("Invalid verification code format.", 100, 36007).body
            return web.json_response(body, status=400)
        given["used"] = True
        short = "EAAShort" + secrets.token_urlsafe(12)
        self.short_tokens.add(short)
        return web.json_response(
            {"access_token": short, "token_type": "bearer", "expires_in": 5183}
        )

    async def threads_code(self, request: web.Request) -> web.Response:
        """``grant_type=authorization_code``: a short-lived Threads token and the account id."""
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_secret:
            body = GraphError("Error validating client secret.", 1, 0).body
            return web.json_response(body, status=400)
        given = self.codes.get(form.get("code", ""))
        if (
            form.get("grant_type") != "authorization_code"
            or given is None
            or given["used"]
            or given["redirect_uri"] != form.get("redirect_uri")
        ):
            body = GraphError("Invalid verification code format.", 100, 36007).body
            return web.json_response(body, status=400)
        given["used"] = True
        short = "THShort" + secrets.token_urlsafe(12)
        self.short_tokens.add(short)
        return web.json_response({"access_token": short, "user_id": int(self.threads_user_id)})

    async def threads_exchange(self, request: web.Request) -> web.Response:
        """``GET /access_token?grant_type=th_exchange_token&client_secret&access_token``: the
        short-lived token for the long-lived one (a POST is no route here: 405)."""
        form = dict(request.query)
        if form.get("client_secret") != self.app_secret:
            body = GraphError("Error validating client secret.", 1, 0).body
            return web.json_response(body, status=400)
        if form.get("grant_type") != "th_exchange_token" or not str(
            form.get("access_token", "")
        ).startswith("THShort"):
            body = GraphError("Error validating access token", 190, 460).body
            return web.json_response(body, status=400)
        if form["access_token"] not in self.short_tokens:
            body = GraphError("Error validating access token", 190, 460).body
            return web.json_response(body, status=400)
        return web.json_response(
            {"access_token": self.threads_token, "token_type": "bearer", "expires_in": 5183944}
        )

    async def threads_refresh(self, request: web.Request) -> web.Response:
        """``GET /refresh_access_token?grant_type=th_refresh_token&access_token``: a live
        long-lived token for a new one (60 days); the old one stops working here (a test then
        sees which one the relay uses). Only the query's ``access_token`` counts, as documented."""
        try:
            token = self._token(request, dict(request.query), scheme=None)
        except GraphError as exc:
            return web.json_response(exc.body, status=400)
        if request.query.get("grant_type") != "th_refresh_token" or token != self.threads_token:
            body = GraphError("Error validating access token", 190, 460).body
            return web.json_response(body, status=400)
        self.threads_token = "THAARenewed" + secrets.token_urlsafe(12)
        return web.json_response(
            {"access_token": self.threads_token, "token_type": "bearer", "expires_in": 5183944}
        )

    async def accounts(self, request: web.Request, oid: str, params: dict, token: str) -> Any:
        if token not in self.short_tokens | {self.user_token}:
            raise GraphError("(#200) Permissions error", 200)
        fields = str(params.get("fields", ""))
        page: dict[str, Any] = {
            "id": self.page_id,
            "name": self.page_name,
            "access_token": self.page_token,
        }
        if "instagram_business_account" in fields:
            page["instagram_business_account"] = {
                "id": self.ig_user_id,
                "username": self.ig_username,
            }
        return {"data": [page]}
