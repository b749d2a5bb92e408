"""A Bluesky PDS (AT Protocol XRPC) on 127.0.0.1, as strict as the real one about what the relay
sends it.

What it enforces, with the PDS's error names (``{"error": NAME, "message": …}``):
- ``com.atproto.server.createSession``: a JSON body with ``identifier`` (handle or DID) and
  ``password`` (the app password); anything else ``401 AuthenticationRequired`` "Invalid
  identifier or password" (also after ``revoke()``). Answers ``accessJwt``, ``refreshJwt``,
  ``handle``, ``did``.
- Every other call wants ``Authorization: Bearer <accessJwt>``: none is ``401
  AuthenticationRequired``, an unknown token ``400 InvalidToken``, one after
  ``expire_sessions()`` ``400 ExpiredToken``.
- ``com.atproto.repo.uploadBlob``: the raw bytes with a ``Content-Type``; more than
  ``upload_limit`` (1,000,000) bytes is ``400 BlobTooLarge``. Answers the blob reference
  (``$type: blob``, ``ref.$link`` = the CID of the bytes, ``mimeType``, ``size``).
- ``com.atproto.repo.putRecord``: ``repo`` is the session's DID or handle, ``collection``
  ``app.bsky.feed.post``, ``rkey`` a TID (the collection's key type), and the record valid for
  the lexicon: ``$type``; ``text`` at most 300 graphemes and 3000 UTF-8 bytes; ``createdAt`` a
  datetime; facets whose byte ranges lie inside the text on character boundaries (and, stricter
  than the PDS, a link facet's range must hold exactly its URI); an embed of
  ``app.bsky.embed.images`` (1 to 4 images, each with ``alt`` and a blob of this account, image
  type, at most 1,000,000 bytes: ``BlobTooLarge``; ``aspectRatio`` positive integers) or
  ``app.bsky.embed.external`` (``uri``, ``title``, ``description``, an optional ``thumb`` blob).
  Records are kept by key: writing the same key again replaces the record, so there is still one
  post. Invalid input is ``400 InvalidRequest``.
- ``com.atproto.server.getSession``.
- ``com.atproto.repo.deleteRecord``: ``repo`` (this account's DID or handle, else ``400
  InvalidRequest`` "Could not find repo"), ``collection`` and ``rkey``; the record goes (kept in
  ``deleted``). A record that is not there is no error: the PDS answers ``200`` ``{}`` and
  nothing changes, so a repeat is safe.

Routes for scripting (``fail``/``lose``): ``createSession``, ``getSession``, ``uploadBlob``,
``putRecord``, ``deleteRecord``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import regex
from aiohttp import web

from tests.fakes import FakeService, error

POST = "app.bsky.feed.post"
MAX_IMAGE_BYTES = 1_000_000
TID = regex.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
DATETIME = regex.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
GRAPHEME = regex.compile(r"\X")


class Invalid(Exception):
    def __init__(self, message: str, name: str = "InvalidRequest") -> None:
        super().__init__(message)
        self.name = name


def cid(data: bytes, codec: int) -> str:
    """A CIDv1 (sha2-256) in base32, as the PDS names blobs (raw, 0x55) and records (0x71)."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


@dataclass
class Blob:
    cid: str
    mime: str
    size: int
    data: bytes


@dataclass
class FakeBluesky(FakeService):
    handle: str = "anna.test"
    did: str = "did:plc:7iza6de2dwap2sbkpav7c6c6"
    app_password: str = "abcd-efgh-ijkl-mnop"
    upload_limit: int = MAX_IMAGE_BYTES
    blobs: dict[str, Blob] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The account's app.bsky.feed.post records by record key."""
    writes: list[str] = field(default_factory=list)
    """Record keys in the order putRecord wrote them."""
    deleted: list[str] = field(default_factory=list)
    """Record keys in the order deleteRecord removed them."""
    _sessions: dict[str, bool] = field(default_factory=dict)
    _revoked: bool = False

    def revoke(self) -> None:
        """The app password is revoked: no new sessions."""
        self._revoked = True

    def expire_sessions(self) -> None:
        for token in self._sessions:
            self._sessions[token] = False

    def routes(self, app: web.Application) -> None:
        base = "/xrpc/"
        app.router.add_post(
            base + "com.atproto.server.createSession", self.create_session, name="createSession"
        )
        app.router.add_get(
            base + "com.atproto.server.getSession", self.get_session, name="getSession"
        )
        app.router.add_post(
            base + "com.atproto.repo.uploadBlob", self.upload_blob, name="uploadBlob"
        )
        app.router.add_post(base + "com.atproto.repo.putRecord", self.put_record, name="putRecord")
        app.router.add_post(
            base + "com.atproto.repo.deleteRecord", self.delete_record, name="deleteRecord"
        )

    @staticmethod
    def _error(status: int, name: str, message: str) -> web.Response:
        return error(status, {"error": name, "message": message})

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return self._error(401, "AuthenticationRequired", "Authentication Required")
        alive = self._sessions.get(header.removeprefix("Bearer "))
        if alive is None:
            return self._error(400, "InvalidToken", "Token could not be verified")
        if not alive:
            return self._error(400, "ExpiredToken", "Token has expired")
        return None

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise Invalid(f"Wrong request encoding (Content-Type): {request.content_type}")
        try:
            body = await request.json()
        except ValueError as exc:
            raise Invalid("Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise Invalid("Input must be an object")
        return body

    async def create_session(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
        except Invalid as exc:
            return self._error(400, exc.name, str(exc))
        for key in ("identifier", "password"):
            if not isinstance(body.get(key), str):
                return self._error(400, "InvalidRequest", f'Input must have the property "{key}"')
        identifier = body["identifier"].lower().lstrip("@")
        if (
            self._revoked
            or identifier not in (self.handle, self.did)
            or body["password"] != self.app_password
        ):
            return self._error(401, "AuthenticationRequired", "Invalid identifier or password")
        access = "fake-access." + secrets.token_urlsafe(16)
        self._sessions[access] = True
        return web.json_response(
            {
                "accessJwt": access,
                "refreshJwt": "fake-refresh." + secrets.token_urlsafe(16),
                "handle": self.handle,
                "did": self.did,
                "active": True,
            }
        )

    async def get_session(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        return web.json_response({"handle": self.handle, "did": self.did, "active": True})

    async def upload_blob(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        mime = request.headers.get("Content-Type", "").split(";")[0].strip()
        if not mime:
            return self._error(400, "InvalidRequest", "Request encoding (Content-Type) required")
        data = await request.read()
        if not data:
            return self._error(400, "InvalidRequest", "Request body required")
        if len(data) > self.upload_limit:
            return self._error(
                400,
                "BlobTooLarge",
                f"This file is too large. It is {len(data)} bytes but the maximum size is "
                f"{self.upload_limit} bytes.",
            )
        blob = Blob(cid(data, 0x55), mime, len(data), data)
        self.blobs[blob.cid] = blob
        return web.json_response(
            {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": blob.cid},
                    "mimeType": mime,
                    "size": len(data),
                }
            }
        )

    def _blob(self, value: Any, where: str) -> Blob:
        if not isinstance(value, dict) or value.get("$type") != "blob":
            raise Invalid(f"{where} should be a blob ref")
        link = (value.get("ref") or {}).get("$link") if isinstance(value.get("ref"), dict) else None
        blob = self.blobs.get(str(link))
        if blob is None:
            raise Invalid(f"Could not find blob: {link}", "BlobNotFound")
        if value.get("mimeType") != blob.mime or value.get("size") != blob.size:
            raise Invalid(f"{where} does not match the uploaded blob")
        if not blob.mime.startswith("image/"):
            raise Invalid(
                f"Wrong type of file. It is {blob.mime} but it must match image/*.",
                "InvalidMimeType",
            )
        if blob.size > MAX_IMAGE_BYTES:
            raise Invalid(
                f"This file is too large. It is {blob.size} bytes but the maximum size is "
                f"{MAX_IMAGE_BYTES} bytes.",
                "BlobTooLarge",
            )
        return blob

    def _validate(self, record: Any) -> None:
        prefix = "Invalid app.bsky.feed.post record: "
        if not isinstance(record, dict) or record.get("$type") != POST:
            raise Invalid(prefix + "Record/$type must be app.bsky.feed.post")
        text = record.get("text")
        if not isinstance(text, str):
            raise Invalid(prefix + 'Record must have the property "text"')
        encoded = text.encode()
        if len(encoded) > 3000:
            raise Invalid(prefix + "Record/text must not be longer than 3000 characters")
        if len(GRAPHEME.findall(text)) > 300:
            raise Invalid(prefix + "Record/text must not be longer than 300 graphemes")
        created = record.get("createdAt")
        if not isinstance(created, str) or not DATETIME.match(created):
            raise Invalid(prefix + "Record/createdAt must be an valid atproto datetime")
        try:
            datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError as exc:
            raise Invalid(prefix + "Record/createdAt must be an valid atproto datetime") from exc
        for number, facet in enumerate(record.get("facets") or []):
            where = f"{prefix}Record/facets/{number}"
            index = facet.get("index") if isinstance(facet, dict) else None
            if not isinstance(index, dict):
                raise Invalid(where + ' must have the property "index"')
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
                raise Invalid(where + "/index must have byteStart < byteEnd, both integers ≥ 0")
            if end > len(encoded):
                raise Invalid(where + "/index lies beyond the text")
            try:
                covered = encoded[start:end].decode()
            except UnicodeDecodeError as exc:
                raise Invalid(where + "/index cuts a character") from exc
            features = facet.get("features")
            if not isinstance(features, list) or not features:
                raise Invalid(where + ' must have the property "features"')
            for feature in features:
                kind = feature.get("$type") if isinstance(feature, dict) else None
                if kind == "app.bsky.richtext.facet#link":
                    uri = feature.get("uri")
                    if not isinstance(uri, str) or ":" not in uri:
                        raise Invalid(where + "/features/uri must be a valid uri")
                    if covered != uri:
                        raise Invalid(where + f"/index covers {covered!r}, not the link {uri!r}")
                elif kind not in ("app.bsky.richtext.facet#mention", "app.bsky.richtext.facet#tag"):
                    raise Invalid(where + f"/features has an unknown $type {kind!r}")
        embed = record.get("embed")
        if embed is None:
            return
        kind = embed.get("$type") if isinstance(embed, dict) else None
        if kind == "app.bsky.embed.images":
            images = embed.get("images")
            if not isinstance(images, list) or not images:
                raise Invalid(prefix + 'Record/embed must have the property "images"')
            if len(images) > 4:
                raise Invalid(prefix + "Record/embed/images must not have more than 4 elements")
            for number, image in enumerate(images):
                where = f"{prefix}Record/embed/images/{number}"
                if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                    raise Invalid(where + ' must have the property "alt"')
                self._blob(image.get("image"), where + "/image")
                ratio = image.get("aspectRatio")
                if ratio is not None and not (
                    isinstance(ratio, dict)
                    and all(
                        isinstance(ratio.get(k), int) and ratio[k] >= 1 for k in ("width", "height")
                    )
                ):
                    raise Invalid(where + "/aspectRatio must have integer width and height ≥ 1")
        elif kind == "app.bsky.embed.external":
            external = embed.get("external")
            if not isinstance(external, dict):
                raise Invalid(prefix + 'Record/embed must have the property "external"')
            for key in ("uri", "title", "description"):
                if not isinstance(external.get(key), str):
                    raise Invalid(prefix + f'Record/embed/external must have the property "{key}"')
            if ":" not in external["uri"]:
                raise Invalid(prefix + "Record/embed/external/uri must be a valid uri")
            if "thumb" in external:
                self._blob(external["thumb"], prefix + "Record/embed/external/thumb")
        else:
            raise Invalid(prefix + f"Record/embed $type {kind!r} is not one of the union's")

    async def put_record(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            body = await self._json_body(request)
            for key in ("repo", "collection", "rkey", "record"):
                if key not in body:
                    raise Invalid(f'Input must have the property "{key}"')
            if body["repo"] not in (self.did, self.handle):
                raise Invalid(f"Could not find repo: {body['repo']}")
            if body["collection"] != POST:
                raise Invalid(f"This fake keeps {POST} records only, not {body['collection']}")
            rkey = body["rkey"]
            if not isinstance(rkey, str) or not TID.match(rkey):
                raise Invalid(f"Invalid TID: {rkey!r} (app.bsky.feed.post keys are TIDs)")
            if body.get("validate", True) is not False:
                self._validate(body["record"])
        except Invalid as exc:
            return self._error(400, exc.name, str(exc))
        record = body["record"]
        self.records[rkey] = record
        self.writes.append(rkey)
        record_cid = cid(json.dumps(record, sort_keys=True).encode(), 0x71)
        return web.json_response(
            {
                "uri": f"at://{self.did}/{POST}/{rkey}",
                "cid": record_cid,
                "commit": {"cid": cid(record_cid.encode(), 0x71), "rev": rkey},
                "validationStatus": "valid",
            }
        )

    async def delete_record(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        try:
            body = await self._json_body(request)
            for key in ("repo", "collection", "rkey"):
                if not isinstance(body.get(key), str):
                    raise Invalid(f'Input must have the property "{key}"')
            if body["repo"] not in (self.did, self.handle):
                raise Invalid(f"Could not find repo: {body['repo']}")
        except Invalid as exc:
            return self._error(400, exc.name, str(exc))
        if body["collection"] != POST or body["rkey"] not in self.records:
            return web.json_response({})
        del self.records[body["rkey"]]
        self.deleted.append(body["rkey"])
        return web.json_response(
            {"commit": {"cid": cid(body["rkey"].encode(), 0x71), "rev": body["rkey"]}}
        )
