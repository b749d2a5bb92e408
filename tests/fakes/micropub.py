"""A Micropub server (W3C Recommendation, 23 May 2017) with a media endpoint, on 127.0.0.1.

What it enforces, with the spec's error bodies ``{"error", "error_description"}``:
- The token: ``Authorization: Bearer`` or an ``access_token`` form field, not both
  (``400 invalid_request``); none is ``401 unauthorized``, a wrong one ``403 forbidden``, one
  without the ``create`` (or, at the media endpoint, ``media``) scope ``401 insufficient_scope``.
- ``GET ?q=config`` → ``media-endpoint`` (unless ``media_endpoint=False``), ``syndicate-to`` and
  ``q`` (the supported-queries extension); ``q=source&url=…`` → one post's properties;
  ``q=source`` without ``url`` → ``{"items": […]}``, newest first, ``limit`` honoured (the
  post-list extension; only when ``source_query=True``). Any other ``q`` is ``400``.
- Create: ``application/json`` with ``{"type": ["h-entry"], "properties": {…}}`` where every
  property is an array (``400 invalid_request`` otherwise), or form-encoded ``h=entry`` with
  ``name[]`` arrays; ``photo``/``video``/``audio`` values are absolute http(s) URLs or, for
  photos, ``{"value", "alt"}``; an entry needs content, a name or a medium. ``mp-*`` commands are
  not stored; ``mp-slug`` names the post's URL, made unique with ``-2``… Answers ``201 Created``
  (or ``202 Accepted`` with ``accepted=True``) and ``Location``.
- The media endpoint: ``multipart/form-data`` with exactly one part, named ``file``, with a
  filename (``400 invalid_request``); ``201 Created`` with ``Location``; the file is served there.

Idempotency, as real servers differ: the spec has none. ``mp-slug`` is only a hint, and most
servers that honour it make it unique (WordPress's Micropub plugin goes through
``wp_unique_post_slug``), so a repeat makes a second post; servers that write files at the slug
(static-site ones) overwrite instead. ``Idempotency-Key`` (IETF httpapi draft) is honoured by few.
This fake takes none by default; ``idempotency=True`` makes it answer a repeated key with the post
it made for it, like a careful server.

Update and delete (§3.3, §3.4), JSON only: ``{"action": "update", "url", "replace": {name:
[values]}, "add": {…}, "delete": [names] | {name: [values]}}`` wants the ``update`` scope and
answers ``204 No Content`` (the URL unchanged); ``{"action": "delete", "url"}`` wants ``delete``
and answers ``204``. A URL that is no post (or a deleted one) is ``400 invalid_request``, as the
spec's error list has no 404; deleted posts are kept apart (``deleted``), so ``undelete`` could
bring them back. ``revisions`` counts updates that changed something.

IndieAuth (the 2022 spec), for connecting from the web app: ``GET /`` is the person's home page
(``me``), naming ``micropub``, ``authorization_endpoint`` and ``token_endpoint`` with ``<link>``
elements, or with ``indieauth_metadata=True`` an ``indieauth-metadata`` ``Link`` header to a
metadata document (``issuer``, endpoints). ``GET /auth`` takes ``response_type=code``, a
``client_id`` URL, a ``redirect_uri`` on the client's own host, ``state``, and PKCE (S256 only,
required); it shows an Allow/Deny form whose answer redirects back with ``code`` (or
``error=access_denied``), ``state`` and ``iss``. ``POST /token`` exchanges the code once, for the
same client and redirect URI and the verifier of the challenge (``400 invalid_grant``), and
answers ``access_token``, ``scope`` and ``me`` (``answer_me`` makes it claim another profile).
The tokens it issues work at the endpoint like ``token``.

Scripting: ``fake.script("create", 503)`` answers the next create with 503 without doing it;
``fake.script("create", LOST)`` creates the post, then answers 502. Routes: ``create`` (every
``POST`` to the endpoint: creates, updates and deletes),
``media``, ``query``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from tests.fakes import LOST, Answer, Recorded, ScriptedFake, plain, unique_slug

MEDIA_PROPERTIES = ("photo", "video", "audio")
INDIEAUTH_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "me",
)


@dataclass
class FakeMicropub(ScriptedFake):
    max_body: ClassVar[int] = 256 << 20
    token: str = "mp-token-123"
    scope: tuple[str, ...] = ("create", "update", "delete", "media")
    media_endpoint: bool = True
    source_query: bool = False
    idempotency: bool = False
    accepted: bool = False
    entries: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    indieauth_metadata: bool = False
    answer_me: str = ""
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/micropub"

    def seen(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # --- helpers --------------------------------------------------------------------------

    def _authorize(self, request: web.Request, form: dict[str, list[str]], scope: str) -> None:
        header = request.headers.get("Authorization", "")
        in_form = form.get("access_token", [])
        if header and in_form:
            raise _error(400, "invalid_request", "The token goes in the header or the body.")
        token = in_form[0] if in_form else ""
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                raise _error(401, "unauthorized", "Use a Bearer token.")
        if not token:
            raise _error(401, "unauthorized", "No access token was provided in the request.")
        if token != self.token and token not in self.issued:
            raise _error(403, "forbidden", "The access token is not valid for this site.")
        if scope not in self.scope:
            raise _error(
                401,
                "insufficient_scope",
                f"The token lacks the {scope} scope.",
                scope=scope,
            )

    def _earlier(self, key: str | None, request: Any) -> str | None:
        """The location made for an earlier ``request`` with this Idempotency-Key, when this
        fake honours them; the key with another request is 422."""
        if not (self.idempotency and key and key in self.keys):
            return None
        location, fingerprint = self.keys[key]
        if fingerprint != _fingerprint(request):
            raise _error(422, "invalid_request", "Idempotency-Key reused for another request.")
        return location

    def _remember(self, key: str | None, location: str, request: Any) -> None:
        if self.idempotency and key:
            self.keys[key] = (location, _fingerprint(request))

    # --- routes ---------------------------------------------------------------------------

    async def query(self, request: web.Request) -> web.Response:
        await self._record(request, "query")
        self._authorize(request, {}, "create" if "create" in self.scope else "media")
        q = request.query.get("q")
        if q == "config":
            config: dict[str, Any] = {"syndicate-to": [], "q": ["config", "syndicate-to"]}
            if self.source_query:
                config["q"].append("source")
            if self.media_endpoint:
                config["media-endpoint"] = f"{self.url}/micropub/media"
            return web.json_response(config)
        if q == "syndicate-to":
            return web.json_response({"syndicate-to": []})
        if q == "source" and "url" in request.query:
            entry = next((e for e in self.entries if e["url"] == request.query["url"]), None)
            if entry is None:
                raise _error(400, "invalid_request", "No such post.")
            return web.json_response({"type": ["h-entry"], "properties": entry["properties"]})
        if q == "source" and self.source_query:
            limit = int(request.query.get("limit", "10"))
            items = [
                {"type": ["h-entry"], "properties": {**e["properties"], "url": [e["url"]]}}
                for e in reversed(self.entries)
            ][:limit]
            return web.json_response({"items": items})
        raise _error(400, "invalid_request", f"Unsupported query {q!r}.")

    async def create(self, request: web.Request) -> web.Response:
        action = await self._record(request, "create")
        seen = self.requests[-1]
        content_type = request.content_type
        if content_type == "application/json":
            self._authorize(request, {}, "create")
            try:
                body = json.loads(seen.body)
            except ValueError:
                raise _error(400, "invalid_request", "The body is not JSON.") from None
            if isinstance(body, dict) and "action" in body:
                return await self._act(request, body, action)
            if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
                raise _error(400, "invalid_request", "Expected {type, properties}.")
            kind = body.get("type")
            properties = body["properties"]
        elif content_type == "application/x-www-form-urlencoded":
            form: dict[str, list[str]] = {}
            for name, value in parse_qsl(seen.body.decode(), keep_blank_values=True):
                form.setdefault(name.removesuffix("[]"), []).append(value)
            self._authorize(request, form, "create")
            form.pop("access_token", None)
            kind = [f"h-{form.pop('h', ['entry'])[0]}"]
            properties = form
        else:
            raise _error(400, "invalid_request", f"Unsupported Content-Type {content_type!r}.")
        if kind != ["h-entry"]:
            raise _error(400, "invalid_request", f"Unsupported type {kind!r}.")
        for name, values in properties.items():
            if not isinstance(values, list) or not values:
                raise _error(
                    400, "invalid_request", f"Property {name!r} must be a non-empty array."
                )
        for name in MEDIA_PROPERTIES:
            for value in properties.get(name, []):
                url = value.get("value") if isinstance(value, dict) else value
                if name != "photo" and isinstance(value, dict):
                    raise _error(400, "invalid_request", f"{name} values are URLs.")
                if isinstance(value, dict) and not isinstance(value.get("alt", ""), str):
                    raise _error(400, "invalid_request", "alt must be a string.")
                if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                    raise _error(400, "invalid_request", f"{name} must be an absolute URL.")
        if not any(properties.get(n) for n in ("content", "name", *MEDIA_PROPERTIES)):
            raise _error(400, "invalid_request", "An entry needs content, a name or media.")

        key = request.headers.get("Idempotency-Key")
        earlier = self._earlier(key, properties)
        if earlier is not None:
            return self._created(earlier)

        commands = {n: v for n, v in properties.items() if n.startswith("mp-")}
        stored = {n: v for n, v in properties.items() if not n.startswith("mp-")}
        wanted = str(commands.get("mp-slug", [""])[0]) or uuid.uuid4().hex[:8]
        slug = unique_slug(
            re.sub(r"[^a-z0-9-]+", "-", wanted.lower()).strip("-"),
            {e["slug"] for e in self.entries},
        )
        location = f"{self.url}/entries/{slug}"
        self.entries.append(
            {"slug": slug, "url": location, "properties": stored, "commands": commands}
        )
        self._remember(key, location, properties)
        if action == LOST:
            raise plain(502)
        return self._created(location)

    async def _act(
        self, request: web.Request, body: dict[str, Any], action: str | None
    ) -> web.Response:
        kind = body["action"]
        if kind not in ("update", "delete", "undelete"):
            raise _error(400, "invalid_request", f"Unsupported action {kind!r}.")
        self._authorize(request, {}, "delete" if kind == "undelete" else kind)
        url = body.get("url")
        if not isinstance(url, str):
            raise _error(400, "invalid_request", "The url is missing.")
        pool = self.deleted if kind == "undelete" else self.entries
        entry = next((e for e in pool if e["url"] == url), None)
        if entry is None:
            raise _error(400, "invalid_request", "There is no post at this URL.")
        if kind == "delete":
            self.entries.remove(entry)
            self.deleted.append(entry)
        elif kind == "undelete":
            self.deleted.remove(entry)
            self.entries.append(entry)
        else:
            before = json.dumps(entry["properties"], sort_keys=True)
            properties = entry["properties"]
            for part in ("replace", "add"):
                changes = body.get(part, {})
                if not isinstance(changes, dict) or not all(
                    isinstance(v, list) for v in changes.values()
                ):
                    raise _error(400, "invalid_request", f"{part} takes arrays of values.")
                for name, values in changes.items():
                    if part == "replace":
                        properties[name] = list(values)
                    else:
                        properties.setdefault(name, []).extend(values)
            removed = body.get("delete", [])
            if isinstance(removed, list):
                for name in removed:
                    properties.pop(str(name), None)
            elif isinstance(removed, dict):
                for name, values in removed.items():
                    kept = [v for v in properties.get(name, []) if v not in values]
                    properties[name] = kept
            else:
                raise _error(400, "invalid_request", "delete takes names or values.")
            if json.dumps(properties, sort_keys=True) != before:
                entry["revisions"] = entry.get("revisions", 0) + 1
        if action == LOST:
            raise plain(502)
        return web.Response(status=204)

    def _created(self, location: str) -> web.Response:
        status = 202 if self.accepted else 201
        return web.Response(status=status, headers={"Location": location})

    async def media(self, request: web.Request) -> web.Response:
        action = await self._record(request, "media")
        self._authorize(request, {}, "media")
        if request.content_type != "multipart/form-data":
            raise _error(400, "invalid_request", "Upload with multipart/form-data.")
        parts = _form_parts(request.headers["Content-Type"], self.requests[-1].body)
        if len(parts) != 1 or parts[0][0] != "file" or not parts[0][1]:
            raise _error(
                400, "invalid_request", "Send exactly one part, named file, with a filename."
            )
        _, filename, mime, data = parts[0]
        if not data:
            raise _error(400, "invalid_request", "The file is empty.")
        key = request.headers.get("Idempotency-Key")
        earlier = self._earlier(key, parts)
        if earlier is not None:
            return web.Response(status=201, headers={"Location": earlier})
        suffix = "." + filename.rsplit(".", 1)[1] if "." in filename else ""
        path = f"/media/{uuid.uuid4().hex}{suffix}"
        self.files[path] = (mime, data)
        self._remember(key, f"{self.url}{path}", parts)
        if action == LOST:
            raise plain(502)
        return web.Response(status=201, headers={"Location": f"{self.url}{path}"})

    # --- IndieAuth: the site's home page, its authorization and token endpoints -------------

    @property
    def me(self) -> str:
        return f"{self.url}/"

    async def home(self, request: web.Request) -> web.Response:
        """The person's home page: its endpoints as ``Link`` headers and ``<link>`` elements
        (the metadata document's link when ``indieauth_metadata``)."""
        links = [f'<link rel="micropub" href="{self.endpoint}">']
        response = web.Response(content_type="text/html")
        if self.indieauth_metadata:
            metadata = f"{self.url}/.well-known/oauth-authorization-server"
            response.headers.add("Link", f'<{metadata}>; rel="indieauth-metadata"')
        else:
            links += [
                f'<link rel="authorization_endpoint" href="{self.url}/auth">',
                f'<link rel="token_endpoint" href="{self.url}/token">',
            ]
        response.text = (
            '<!doctype html><html lang="en"><head><title>Anna</title>'
            + "".join(links)
            + '</head><body><p class="h-card">Anna</p></body></html>'
        )
        return response

    async def metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": f"{self.url}/",
                "authorization_endpoint": f"{self.url}/auth",
                "token_endpoint": f"{self.url}/token",
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": list(self.scope),
            }
        )

    def _authorization_request(self, params: Any) -> dict[str, str]:
        found = {k: str(params.get(k, "")) for k in INDIEAUTH_FIELDS}
        client, redirect = urlsplit(found["client_id"]), urlsplit(found["redirect_uri"])
        if (
            client.scheme not in ("http", "https")
            or not client.path
            or (client.scheme, client.netloc) != (redirect.scheme, redirect.netloc)
        ):
            # A redirect URI elsewhere than the client would need the client's page to list it.
            raise Answer(web.Response(text="invalid client_id or redirect_uri", status=400))
        if found["response_type"] != "code":
            raise self._back(found, error="unsupported_response_type")
        if not found["code_challenge"] or found["code_challenge_method"] != "S256":
            raise self._back(found, error="invalid_request")
        return found

    def _back(self, found: dict[str, str], **query: str) -> web.HTTPFound:
        target = found["redirect_uri"]
        answer = {**query, "state": found["state"], "iss": f"{self.url}/"}
        return web.HTTPFound(target + ("&" if "?" in target else "?") + urlencode(answer))

    async def authorization_page(self, request: web.Request) -> web.Response:
        found = self._authorization_request(request.query)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in found.items()
        )
        page = f"""<!doctype html><html lang="en"><title>Sign in to {html.escape(self.me)}</title>
<main><h1>Sign in to {html.escape(found["client_id"])}</h1>
<p>Allow it to {html.escape(found["scope"] or "identify you")} as {html.escape(self.me)}?</p>
<form method="post" action="/auth">{hidden}
<button type="submit" name="allow" value="1">Allow</button>
<button type="submit" name="deny" value="1">Deny</button></form></main></html>"""
        return web.Response(text=page, content_type="text/html")

    async def authorization(self, request: web.Request) -> web.Response:
        form = await request.post()
        found = self._authorization_request(form)
        if form.get("deny"):
            raise self._back(found, error="access_denied")
        code = uuid.uuid4().hex
        self.codes[code] = {**found, "used": ""}
        raise self._back(found, code=code)

    async def token_endpoint(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self.codes.get(str(form.get("code", "")))
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if form.get("grant_type") != "authorization_code":
            raise _error(400, "unsupported_grant_type", "Only authorization_code.")
        if (
            grant is None
            or grant["used"]
            or grant["client_id"] != form.get("client_id")
            or grant["redirect_uri"] != form.get("redirect_uri")
            or grant["code_challenge"] != challenge
        ):
            raise _error(400, "invalid_grant", "The code is invalid, used, or not yours.")
        grant["used"] = "yes"
        token = uuid.uuid4().hex
        self.issued.add(token)
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": grant["scope"],
                "me": self.answer_me or self.me,
            }
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/micropub", self.query)
        app.router.add_post("/micropub", self.create)
        app.router.add_post("/micropub/media", self.media)
        app.router.add_get("/media/{name}", self.stored_file)
        app.router.add_get("/", self.home)
        app.router.add_get("/.well-known/oauth-authorization-server", self.metadata)
        app.router.add_get("/auth", self.authorization_page)
        app.router.add_post("/auth", self.authorization)
        app.router.add_post("/token", self.token_endpoint)


def _error(status: int, error: str, description: str, **more: str) -> Answer:
    body = {"error": error, "error_description": description, **more}
    return Answer(web.json_response(body, status=status))


def _fingerprint(value: Any) -> str:
    """What a repeat must match (the draft: same key, same request), ignoring how it was
    encoded (key order, multipart boundary)."""
    canonical = json.dumps(value, sort_keys=True, default=lambda b: b.hex())
    return hashlib.sha256(canonical.encode()).hexdigest()


def _form_parts(content_type: str, body: bytes) -> list[tuple[str, str, str, bytes]]:
    """(name, filename, type, bytes) of each part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return []
    return [
        (
            part.get_param("name", "", header="content-disposition"),
            part.get_filename() or "",
            part.get_content_type(),
            part.get_payload(decode=True) or b"",
        )
        for part in message.iter_parts()
    ]


def fake_micropub(**settings: Any) -> AbstractContextManager[FakeMicropub]:
    return FakeMicropub(**settings).running()
