"""LinkedIn's OAuth and Community Management APIs on 127.0.0.1, as strict as the real ones about
what the relay sends (sources in relay/publish/linkedin.py's docstring).

Every ``/rest/`` call needs ``LinkedIn-Version: YYYYMM`` (none: 400 ``VERSION_MISSING``; an
unknown one: 426 ``NONEXISTENT_VERSION``) and ``X-Restli-Protocol-Version: 2.0.0`` (400
otherwise), and every API call (``/rest/``, ``/v2/``, the upload URLs) a bearer token: none is
401 ``EMPTY_ACCESS_TOKEN`` (65604), an unknown one 401 ``INVALID_ACCESS_TOKEN`` (65600), a revoked
one 401 ``REVOKED_ACCESS_TOKEN`` (65601), one after ``expire()`` 401 ``EXPIRED_ACCESS_TOKEN``
(65602). Errors are LinkedIn's body ``{"status", "serviceErrorCode", "code", "message"}``.

- OAuth: ``GET /oauth/v2/authorization`` (an unknown ``client_id`` or ``redirect_uri`` is an
  error page, never a redirect) shows the scopes with "Allow" / "Cancel"; ``POST`` answers by a
  redirect with ``code`` and ``state`` (or ``error=user_cancelled_authorize``).
  ``POST /oauth/v2/accessToken`` (form): ``authorization_code`` once per code for the same
  ``redirect_uri``, or ``refresh_token``; both with the app's id and secret. Tokens last
  ``expires_in`` 5184000 s (60 days); refresh tokens (when ``refresh_tokens``) 365 days.
- ``GET /v2/userinfo`` (``openid profile``): ``sub``, ``name``.
- ``GET /rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED``
  (``r_organization_admin``), ``GET /rest/organizations/{id}``.
- Images, videos, documents: ``POST /rest/{images|videos|documents}?action=initializeUpload``
  with ``initializeUploadRequest.owner`` the token's member or a Page they administer; the
  bytes PUT to the upload URL(s) (a video in 4 MB parts, each answered with an ``ETag``;
  ``finalizeUpload`` with those ETags in order; ``uploadThumbnail``/``uploadCaptions`` give a
  ``thumbnailUploadUrl``/``captionsUploadUrl`` whose PUT is kept). Images over 36,152,320
  pixels, or not JPEG, PNG or GIF, fail processing; videos over 500 MB are refused at
  ``initializeUpload``; PDFs over 100 MB or 300 pages fail processing. Videos and documents
  are ``PROCESSING`` for ``processing_polls`` reads of ``GET /rest/{api}/{urn}``, then
  ``AVAILABLE``.
- ``POST /rest/posts``: ``author``, ``commentary`` (at most 3,000 characters), ``visibility``,
  ``distribution.feedDistribution`` and ``lifecycleState`` are required (422 otherwise); media
  must be ``AVAILABLE`` and the author's; ``multiImage`` takes 2 to 20. 201, empty body, the
  URN in ``x-restli-id``. The commentary is "little text": what a reader sees (``shown``) stops
  at the first reserved character that is not escaped, as LinkedIn silently cuts it.
- ``GET /rest/posts/{urn}``, ``POST /rest/posts/{urn}`` with ``X-RestLi-Method:
  PARTIAL_UPDATE`` and ``{"patch": {"$set": {"commentary": …}}}`` (204, counted in
  ``revisions``), ``DELETE /rest/posts/{urn}`` (204; 404 once gone), and the finder
  ``GET /rest/posts?q=author&author=…`` (``X-RestLi-Method: FINDER``; a person's posts need
  ``r_member_social``, a Page's ``r_organization_social``).

Routes for scripting (``fail``/``lose``): ``oauth.authorize``, ``oauth.approve``,
``oauth.token``, ``userinfo``, ``acls``, ``organization``, ``images.action``, ``videos.action``,
``documents.action``, ``images.get``, ``videos.get``, ``documents.get``, ``upload``,
``posts.create``, ``posts.find``, ``posts.get``, ``posts.update``, ``posts.delete``.
"""

from __future__ import annotations

import io
import itertools
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pypdfium2 as pdfium
from aiohttp import web
from PIL import Image

from tests.fakes import FakeService, consent_page

MB = 1024 * 1024
PART = 4 * MB
VERSIONS = re.compile(r"^20(2[4-9])(0[1-9]|1[0-2])$")
RESERVED = set("\\|{}@[]()<>#*_~")
# A link as LinkedIn's linkifier sees it; a backslash (never valid in a URL) ends it.
_URL = re.compile(r"https?://[^\s<>\"'\\]+")


class LinkedInError(Exception):
    def __init__(self, status: int, code: str, message: str, service_code: int = 100) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "status": status,
            "serviceErrorCode": service_code,
            "code": code,
            "message": message,
        }


def shown(commentary: str) -> str:
    """What a reader sees of a little-text commentary: escapes resolved, and the text cut at
    the first unescaped reserved character outside a URL (LinkedIn's silent truncation)."""
    out: list[str] = []
    position = 0
    urls = [(m.start(), m.end()) for m in _URL.finditer(commentary)]
    while position < len(commentary):
        url = next((u for u in urls if u[0] == position), None)
        if url is not None:
            out.append(commentary[url[0] : url[1]])
            position = url[1]
            continue
        ch = commentary[position]
        if ch == "\\" and position + 1 < len(commentary):
            out.append(commentary[position + 1])
            position += 2
            continue
        if ch in RESERVED:
            break
        out.append(ch)
        position += 1
    return "".join(out)


@dataclass
class FakeLinkedIn(FakeService):
    client_id: str = "78linkedinapp"
    client_secret: str = "li-secret-" + "s" * 16
    member_id: str = "AbC123xYz"
    member_name: str = "Anna Lind"
    organizations: dict[str, str] = field(default_factory=lambda: {"2414183": "Kommunen"})
    """The Pages the member administers, by id."""
    token: str = "AQV" + "t" * 40
    """A member token with every scope, for tests that skip the sign-in."""
    refresh_tokens: bool = True
    processing_polls: int = 1
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every access token given: ``scopes``, ``expired``, ``revoked``."""
    refresh: dict[str, set[str]] = field(default_factory=dict)
    """Refresh token → the scopes it renews."""
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count = field(
        default_factory=lambda: itertools.count(7_300_000_000_000_000_001)
    )

    def __post_init__(self) -> None:
        self.tokens[self.token] = {"scopes": set(ALL_SCOPES), "expired": False, "revoked": False}

    @property
    def person(self) -> str:
        return f"urn:li:person:{self.member_id}"

    @property
    def organization(self) -> str:
        return f"urn:li:organization:{next(iter(self.organizations))}"

    def live(self) -> list[dict[str, Any]]:
        return [p for p in self.posts.values() if not p.get("deleted")]

    def expire(self, token: str) -> None:
        self.tokens[token]["expired"] = True

    def revoke(self, token: str) -> None:
        self.tokens[token]["revoked"] = True

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/oauth/v2/authorization", self.authorize, name="oauth.authorize")
        add("POST", "/oauth/v2/authorization", self.approve, name="oauth.approve")
        add("POST", "/oauth/v2/accessToken", self.access_token, name="oauth.token")
        add("GET", "/v2/userinfo", self._wrap(self.userinfo, rest=False), name="userinfo")
        add("GET", "/rest/organizationAcls", self._wrap(self.acls), name="acls")
        add(
            "GET",
            "/rest/organizations/{id}",
            self._wrap(self.organization_get),
            name="organization",
        )
        for api in ("images", "videos", "documents"):
            add("POST", f"/rest/{api}", self._wrap(self.asset_action), name=f"{api}.action")
            add("GET", f"/rest/{api}/{{urn}}", self._wrap(self.asset_get), name=f"{api}.get")
        add("PUT", "/upload/{asset}/{part}", self._wrap(self.upload, rest=False), name="upload")
        add("POST", "/rest/posts", self._wrap(self.create_post), name="posts.create")
        add("GET", "/rest/posts", self._wrap(self.find_posts), name="posts.find")
        add("GET", "/rest/posts/{urn}", self._wrap(self.get_post), name="posts.get")
        add("POST", "/rest/posts/{urn}", self._wrap(self.update_post), name="posts.update")
        add("DELETE", "/rest/posts/{urn}", self._wrap(self.delete_post), name="posts.delete")

    # --- plumbing -----------------------------------------------------------------------------

    def _wrap(self, handler: Any, rest: bool = True) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                token = self._token(request)
                if rest:
                    self._versioned(request)
                return await handler(request, token)
            except LinkedInError as exc:
                return web.json_response(exc.body, status=exc.status)

        return run

    def _versioned(self, request: web.Request) -> None:
        version = request.headers.get("LinkedIn-Version")
        if not version:
            raise LinkedInError(
                400,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the"
                " LinkedIn-Version header.",
            )
        if not VERSIONS.match(version):
            raise LinkedInError(
                426, "NONEXISTENT_VERSION", f"Requested version {version} is not active"
            )
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            raise LinkedInError(
                400,
                "ILLEGAL_ARGUMENT",
                "X-Restli-Protocol-Version 2.0.0 is required for this resource",
            )

    def _token(self, request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not token:
            raise LinkedInError(401, "EMPTY_ACCESS_TOKEN", "Empty oauth2 access token", 65604)
        found = self.tokens.get(token)
        if found is None:
            raise LinkedInError(401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600)
        if found["revoked"]:
            raise LinkedInError(
                401,
                "REVOKED_ACCESS_TOKEN",
                "The token used in the request has been revoked by the user",
                65601,
            )
        if found["expired"]:
            raise LinkedInError(
                401, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired", 65602
            )
        return found

    @staticmethod
    def _denied(what: str) -> LinkedInError:
        return LinkedInError(403, "ACCESS_DENIED", f"Not enough permissions to access: {what}", 100)

    def _may_act_as(self, token: dict[str, Any], owner: str, what: str) -> None:
        """Whether the token may post (or upload) as ``owner``."""
        if owner == self.person and "w_member_social" in token["scopes"]:
            return
        org = owner.removeprefix("urn:li:organization:")
        if org in self.organizations and "w_organization_social" in token["scopes"]:
            return
        raise self._denied(what)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Request body is not JSON") from None
        if not isinstance(body, dict):
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Request body is not an object")
        return body

    # --- OAuth --------------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id or not query.get("redirect_uri"):
            page = "<!doctype html><title>Error</title><h1>Bummer, something went wrong.</h1>"
            return web.Response(text=page, status=400, content_type="text/html")
        if query.get("response_type") != "code" or not query.get("scope"):
            page = "<!doctype html><title>Error</title><h1>Invalid request</h1>"
            return web.Response(text=page, status=400, content_type="text/html")
        return consent_page(
            query,
            ("redirect_uri", "state", "scope"),
            title="LinkedIn",
            heading="Relay would like to access your LinkedIn account",
            asked=query["scope"],
            action="/oauth/v2/authorization",
            cancel="cancel",
        )

    async def approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = str(form["redirect_uri"])
        state = str(form.get("state", ""))
        if form.get("choice") != "allow":
            query = {
                "error": "user_cancelled_authorize",
                "error_description": "The user cancelled the authorization",
                "state": state,
            }
        else:
            code = secrets.token_urlsafe(24)
            scopes = set(str(form.get("scope", "")).split())
            self.codes[code] = {"redirect_uri": target, "used": False, "scopes": scopes}
            query = {"code": code, "state": state}
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    def _grant(self, scopes: set[str], refresh_token: str | None = None) -> dict[str, Any]:
        token = "AQV" + secrets.token_urlsafe(30)
        self.tokens[token] = {"scopes": scopes, "expired": False, "revoked": False}
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": 5184000,
            "scope": ",".join(sorted(scopes)),
        }
        if self.refresh_tokens:
            refresh = refresh_token or "AQX" + secrets.token_urlsafe(30)
            self.refresh[refresh] = scopes
            answer.update(refresh_token=refresh, refresh_token_expires_in=31536000)
        return answer

    async def access_token(self, request: web.Request) -> web.Response:
        def oauth_error(error: str, description: str, status: int = 400) -> web.Response:
            return web.json_response(
                {"error": error, "error_description": description}, status=status
            )

        if request.query:
            return oauth_error("invalid_request", "Parameters belong in the request body")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return oauth_error("invalid_client", "Client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            scopes = self.refresh.get(form.get("refresh_token", ""))
            if scopes is None:
                return oauth_error("invalid_request", "The provided refresh token is invalid")
            return web.json_response(self._grant(scopes, form["refresh_token"]))
        if grant != "authorization_code":
            return oauth_error("unsupported_grant_type", "grant_type is not supported")
        given = self.codes.get(form.get("code", ""))
        if given is None or given["used"] or given["redirect_uri"] != form.get("redirect_uri"):
            return oauth_error(
                "invalid_request",
                "Unable to retrieve access token: appid/redirect uri/code verifier does not"
                " match authorization code. Or authorization code expired.",
            )
        given["used"] = True
        return web.json_response(self._grant(given["scopes"]))

    # --- people and Pages ---------------------------------------------------------------------

    async def userinfo(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        if not {"openid", "profile"} <= token["scopes"]:
            raise self._denied("/userinfo")
        given, _, family = self.member_name.partition(" ")
        return web.json_response(
            {"sub": self.member_id, "name": self.member_name, "given_name": given,
             "family_name": family, "locale": {"country": "SE", "language": "sv"}}
        )  # fmt: skip

    async def acls(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        if "r_organization_admin" not in token["scopes"]:
            raise self._denied("organizationAcls.FINDER-roleAssignee")
        if request.query.get("q") != "roleAssignee":
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Missing or unknown finder q")
        role, state = request.query.get("role"), request.query.get("state")
        elements = [
            {"organization": f"urn:li:organization:{oid}", "role": "ADMINISTRATOR",
             "state": "APPROVED", "roleAssignee": self.person}
            for oid in self.organizations
            if role in (None, "ADMINISTRATOR") and state in (None, "APPROVED")
        ]  # fmt: skip
        return web.json_response({"paging": {"count": 10, "start": 0}, "elements": elements})

    async def organization_get(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        oid = request.match_info["id"]
        if oid not in self.organizations:
            raise LinkedInError(404, "NOT_FOUND", f"Organization {oid} not found")
        return web.json_response(
            {"id": int(oid), "localizedName": self.organizations[oid], "vanityName": "kommunen"}
        )

    # --- images, videos, documents ------------------------------------------------------------

    async def asset_action(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        api = request.path.rsplit("/", 1)[1]
        action = request.query.get("action")
        body = await self._body(request)
        if api == "videos" and action == "finalizeUpload":
            return await self._finalize(body, token)
        if action != "initializeUpload":
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", f"Unknown action {action}")
        init = body.get("initializeUploadRequest")
        if not isinstance(init, dict) or not init.get("owner"):
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY",
                "ERROR :: /initializeUploadRequest/owner :: field is required but not found",
            )  # fmt: skip
        self._may_act_as(token, str(init["owner"]), f"{api}.ACTION-initializeUpload")
        kind = api[:-1]
        number = next(self._ids)
        urn = f"urn:li:{kind}:C4D{number}"
        asset: dict[str, Any] = {
            "urn": urn, "kind": kind, "owner": init["owner"], "status": "WAITING_UPLOAD",
            "data": b"", "polls_left": self.processing_polls,
        }  # fmt: skip
        value: dict[str, Any] = {"uploadUrlExpiresAt": 1_900_000_000_000}
        if kind == "video":
            size = init.get("fileSizeBytes")
            if not isinstance(size, int) or size <= 0:
                raise LinkedInError(
                    422, "UNPROCESSABLE_ENTITY",
                    "ERROR :: /initializeUploadRequest/fileSizeBytes :: field is required",
                )  # fmt: skip
            if size > 500 * MB:
                raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Video size exceeds 500 MB")
            starts = list(range(0, size, PART))
            asset.update(size=size, parts={}, token=secrets.token_urlsafe(8))
            value.update(
                video=urn,
                uploadToken=asset["token"],
                uploadInstructions=[
                    {
                        "uploadUrl": f"{self.url}/upload/{number}/{i}",
                        "firstByte": first,
                        "lastByte": min(first + PART, size) - 1,
                    }
                    for i, first in enumerate(starts)
                ],  # fmt: skip
                thumbnailUploadUrl=(
                    f"{self.url}/upload/{number}/thumbnail" if init.get("uploadThumbnail") else ""
                ),
                captionsUploadUrl=(
                    f"{self.url}/upload/{number}/captions" if init.get("uploadCaptions") else ""
                ),
            )
        else:
            value.update({kind: urn, "uploadUrl": f"{self.url}/upload/{number}/0"})
        self.assets[str(number)] = asset
        return web.json_response({"value": value})

    async def upload(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        asset = self.assets.get(request.match_info["asset"])
        if asset is None:
            return web.Response(status=404)
        data = await request.read()
        if asset["kind"] == "video" and request.match_info["part"] == "thumbnail":
            asset["thumbnail"] = (request.headers.get("Content-Type"), data)
            return web.Response(status=201)
        if asset["kind"] == "video" and request.match_info["part"] == "captions":
            asset["captions"] = (request.headers.get("Content-Type"), data)
            return web.Response(status=201)
        part = int(request.match_info["part"])
        if asset["kind"] == "video":
            etag = '"' + secrets.token_hex(8) + '"'
            asset["parts"][part] = (etag, data)
            return web.Response(status=200, headers={"ETag": etag})
        asset["data"] = data
        asset["status"] = "PROCESSING"
        if asset["kind"] == "image":
            asset["status"], asset["failure"] = self._image_check(data)
            asset["polls_left"] = 0
        else:
            asset["status"], asset["failure"] = self._document_check(data)
        return web.Response(status=201)

    @staticmethod
    def _image_check(data: bytes) -> tuple[str, str | None]:
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
        except OSError:
            return "PROCESSING_FAILED", "Not an image"
        if kind not in ("JPEG", "PNG", "GIF"):
            return "PROCESSING_FAILED", "Unsupported image format"
        if width * height > 36_152_320:
            return "PROCESSING_FAILED", "Image exceeds 36152320 pixels"
        return "AVAILABLE", None

    @staticmethod
    def _document_check(data: bytes) -> tuple[str, str | None]:
        if len(data) > 100 * MB:
            return "PROCESSING_FAILED", "Document exceeds 100 MB"
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return "PROCESSING_FAILED", "Not a supported document"
        try:
            if len(pdf) > 300:
                return "PROCESSING_FAILED", "Document exceeds 300 pages"
        finally:
            pdf.close()
        return "PROCESSING", None

    async def _finalize(self, body: dict[str, Any], token: dict[str, Any]) -> web.Response:
        request = body.get("finalizeUploadRequest") or {}
        urn = str(request.get("video", ""))
        asset = next((a for a in self.assets.values() if a["urn"] == urn), None)
        if asset is None:
            raise LinkedInError(404, "NOT_FOUND", f"Video {urn} not found")
        self._may_act_as(token, asset["owner"], "videos.ACTION-finalizeUpload")
        parts = [asset["parts"].get(i) for i in range(len(range(0, asset["size"], PART)))]
        if request.get("uploadToken") != asset["token"] or None in parts:
            raise LinkedInError(
                400, "ILLEGAL_ARGUMENT", "Upload is incomplete or uploadToken wrong"
            )
        if request.get("uploadedPartIds") != [p[0] for p in parts]:  # type: ignore[index]
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "uploadedPartIds do not match the parts")
        asset["data"] = b"".join(p[1] for p in parts)  # type: ignore[index]
        if len(asset["data"]) != asset["size"]:
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Uploaded bytes differ from fileSizeBytes")
        asset["status"] = "PROCESSING"
        return web.Response(status=200)

    async def asset_get(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        urn = request.match_info["urn"]
        asset = next((a for a in self.assets.values() if a["urn"] == urn), None)
        if asset is None:
            raise LinkedInError(404, "NOT_FOUND", f"{urn} not found")
        if asset["status"] == "PROCESSING":
            asset["polls_left"] -= 1
            if asset["polls_left"] < 0:
                asset["status"] = "AVAILABLE"
        answer: dict[str, Any] = {"id": urn, "owner": asset["owner"], "status": asset["status"]}
        if asset.get("failure"):
            answer["processingFailureReason"] = asset["failure"]
        return web.json_response(answer)

    # --- posts --------------------------------------------------------------------------------

    def _available(self, urn: str, author: str) -> dict[str, Any]:
        asset = next((a for a in self.assets.values() if a["urn"] == urn), None)
        if asset is None or asset["owner"] != author:
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY", f"ERROR :: /content/media/id :: {urn} not found"
            )
        if asset["status"] != "AVAILABLE":
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY", f"ERROR :: /content/media/id :: {urn} is not ready"
            )
        return asset

    async def create_post(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        body = await self._body(request)
        for name in ("author", "commentary", "visibility", "distribution", "lifecycleState"):
            if name not in body:
                raise LinkedInError(
                    422, "UNPROCESSABLE_ENTITY",
                    f"ERROR :: /{name} :: field is required but not found and has no default"
                    " value",
                )  # fmt: skip
        if not (body["distribution"] or {}).get("feedDistribution"):
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY",
                "ERROR :: /distribution/feedDistribution :: field is required but not found",
            )  # fmt: skip
        author = str(body["author"])
        self._may_act_as(token, author, "partnerApiPostsExternal.CREATE.20251101")
        commentary = str(body["commentary"])
        if len(commentary) > 3000:
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY",
                f"ERROR :: /commentary :: length of {len(commentary)} exceeds maximum 3000",
            )  # fmt: skip
        content = body.get("content") or {}
        kind, media = "none", []
        if "multiImage" in content:
            images = content["multiImage"].get("images") or []
            if not 2 <= len(images) <= 20:
                raise LinkedInError(
                    422, "UNPROCESSABLE_ENTITY",
                    "ERROR :: /content/multiImage/images :: takes 2 to 20 images",
                )  # fmt: skip
            kind = "multiImage"
            media = [
                {"id": i["id"], "altText": i.get("altText"),
                 "data": self._available(i["id"], author)["data"]}
                for i in images
            ]  # fmt: skip
        elif "media" in content:
            one = content["media"]
            asset = self._available(str(one.get("id", "")), author)
            kind = asset["kind"]
            if kind in ("video", "document") and not one.get("title"):
                raise LinkedInError(
                    422, "UNPROCESSABLE_ENTITY",
                    "ERROR :: /content/media/title :: field is required for this media",
                )  # fmt: skip
            media = [{"id": one["id"], "altText": one.get("altText"), "title": one.get("title"),
                      "data": asset["data"], "thumbnail": asset.get("thumbnail"),
                      "captions": asset.get("captions")}]  # fmt: skip
        urn = f"urn:li:share:{next(self._ids)}"
        self.posts[urn] = {
            "id": urn, "author": author, "commentary": commentary, "shown": shown(commentary),
            "visibility": body["visibility"], "lifecycleState": body["lifecycleState"],
            "kind": kind, "media": media, "revisions": 0,
        }  # fmt: skip
        return web.Response(status=201, headers={"x-restli-id": urn})

    def _post(self, urn: str) -> dict[str, Any]:
        post = self.posts.get(urn)
        if post is None or post.get("deleted"):
            raise LinkedInError(404, "NOT_FOUND", f"Post {urn} not found")
        return post

    @staticmethod
    def _shown(post: dict[str, Any]) -> dict[str, Any]:
        return {k: post[k] for k in ("id", "author", "commentary", "visibility", "lifecycleState")}

    async def get_post(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        return web.json_response(self._shown(self._post(request.match_info["urn"])))

    async def find_posts(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        if request.query.get("q") != "author" or "author" not in request.query:
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "Missing or unknown finder q")
        if request.headers.get("X-RestLi-Method") != "FINDER":
            raise LinkedInError(400, "ILLEGAL_ARGUMENT", "X-RestLi-Method FINDER is required")
        author = request.query["author"]
        needed = (
            "r_member_social" if author.startswith("urn:li:person:") else "r_organization_social"
        )
        if needed not in token["scopes"]:
            raise self._denied("partnerApiPostsExternal.FINDER-author.20251101")
        found = [self._shown(p) for p in self.live() if p["author"] == author][::-1]
        count = int(request.query.get("count", "10"))
        return web.json_response(
            {"paging": {"start": 0, "count": count}, "elements": found[:count]}
        )

    async def update_post(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        if request.headers.get("X-RestLi-Method") != "PARTIAL_UPDATE":
            raise LinkedInError(
                400, "ILLEGAL_ARGUMENT", "X-RestLi-Method PARTIAL_UPDATE is required"
            )
        post = self._post(request.match_info["urn"])
        self._may_act_as(token, post["author"], "partnerApiPostsExternal.PARTIAL_UPDATE.20251101")
        changes = ((await self._body(request)).get("patch") or {}).get("$set") or {}
        if not changes or set(changes) - {
            "commentary",
            "contentCallToActionLabel",
            "lifecycleState",
        }:
            raise LinkedInError(
                422, "UNPROCESSABLE_ENTITY", f"ERROR :: /patch :: cannot update {sorted(changes)}"
            )
        if "commentary" in changes:
            if len(str(changes["commentary"])) > 3000:
                raise LinkedInError(
                    422, "UNPROCESSABLE_ENTITY", "ERROR :: /commentary :: exceeds maximum 3000"
                )
            post["commentary"] = str(changes["commentary"])
            post["shown"] = shown(post["commentary"])
        post["revisions"] += 1
        return web.Response(status=204)

    async def delete_post(self, request: web.Request, token: dict[str, Any]) -> web.Response:
        post = self._post(request.match_info["urn"])
        self._may_act_as(token, post["author"], "partnerApiPostsExternal.DELETE.20251101")
        post["deleted"] = True
        return web.Response(status=204)


ALL_SCOPES = (
    "openid",
    "profile",
    "w_member_social",
    "w_organization_social",
    "r_organization_admin",
    "r_organization_social",
)
