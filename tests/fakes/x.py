"""The X API v2 on 127.0.0.1, as strict as the real one about what the relay sends.

Sources: docs.x.com (Create Post, Delete Post, User's Posts, Users me, chunked media upload
with the 2025 ``/2/media/upload/initialize``·``/{id}/append``·``/{id}/finalize`` endpoints,
media metadata, OAuth 2.0 Authorization Code with PKCE); the error bodies are X's RFC 7807
problems as X sends them.

- Every call wants ``Authorization: Bearer <user access token>``; none, an unknown, a revoked
  or an expired one is 401 ``{"title": "Unauthorized", "type": "about:blank", "status": 401,
  "detail": "Unauthorized"}``. A token without the scope a route needs is 403.
- ``POST /2/media/upload/initialize`` (JSON ``media_type``, ``total_bytes``,
  ``media_category`` ``tweet_image`` ≤ 5 MB | ``tweet_gif`` ≤ 15 MB | ``tweet_video`` ≤ 512 MB,
  the category matching the type); ``…/{id}/append`` (multipart ``media``, ``segment_index``
  in order, ≤ 5 MB a segment, never past ``total_bytes``); ``…/{id}/finalize`` (every byte
  there; an image must open, a video must be MP4): videos then go ``pending`` →
  ``in_progress`` → ``succeeded`` over ``processing_polls`` reads of ``GET /2/media/upload
  ?command=STATUS&media_id=`` (``failed``, "Duration too long", for a video over 140 s as
  ffprobe measures it; ``failed``, "Unsupported aspect ratio", for one whose upright picture is
  wider than 3:1 or taller than 1:3, X's documented video limit: the docs give the limit, not
  the words, which follow the duration error's form). ``POST /2/media/metadata``
  (``alt_text.text`` ≤ 1,000).
- ``POST /2/tweets`` (JSON): ``text`` within 280 as twitter-text weighs it, ``media.media_ids``
  (processed media of this user, at most 4 images or one GIF or video), ``reply``
  (``in_reply_to_tweet_id`` of an existing post); the same text as one of the user's posts is
  403 "You are not allowed to create a Tweet with duplicate content." The text is kept with
  each URL X recognises replaced by a ``https://t.co/…`` link (``entities.urls`` keeps what
  it stands for), as X does. 201 ``{"data": {"id", "text"}}``.
- ``DELETE /2/tweets/{id}``: the user's own post → ``{"data": {"deleted": true}}``; one not
  there → 404 problem ``resource-not-found``.
- ``GET /2/users/{id}/tweets`` (``max_results`` 5-100), newest first; ``GET /2/users/me``.
- OAuth: ``GET /i/oauth2/authorize`` checks ``response_type=code``, the client id, the
  ``redirect_uri``, the scopes, ``state`` and an S256 ``code_challenge``, and shows
  "Authorize app" / "Cancel"; ``POST`` of that form redirects back with ``code`` and ``state``
  (or ``error=access_denied``). ``POST /2/oauth2/token`` wants the client's id and secret as
  HTTP Basic: ``authorization_code`` (the code once, the same ``redirect_uri``, the
  ``code_verifier`` of the challenge) or ``refresh_token`` (single-use: each answer carries a
  new one, the old one is then ``invalid_request``), answering ``expires_in`` 7200.

Routes for scripting (``fail``/``lose``): ``tweets.create``, ``tweets.delete``,
``tweets.list``, ``users.me``, ``media.init``, ``media.append``, ``media.finalize``,
``media.status``, ``media.metadata``, ``oauth.token``, ``oauth.revoke``, ``oauth.authorize``.
``POST /2/oauth2/revoke`` (HTTP Basic, ``token``) ends an access or refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from PIL import Image
from twitter_text import extract_urls_with_indices, parse_tweet

from tests.fakes import FakeService

MB = 1024 * 1024
LIMITS = {"tweet_image": 5 * MB, "tweet_gif": 15 * MB, "tweet_video": 512 * MB}
SCOPES = {"tweet.read", "tweet.write", "users.read", "media.write", "offline.access"}


@dataclass(frozen=True)
class Measured:
    """What X measures of a video it processes: its duration and its upright picture's size."""

    duration: float
    width: int
    height: int


def _measure(data: bytes) -> Measured:
    """The video as ffprobe reads it; a quarter turn (display matrix) swaps width and height."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "format=duration:stream=width,height:stream_side_data=rotation", "-of", "json",
             f.name],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    try:
        probed = json.loads(out.stdout)
        duration = float(probed["format"]["duration"])
    except (ValueError, KeyError, TypeError):
        return Measured(0.0, 0, 0)
    [stream] = probed.get("streams") or [{}]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    turns = [d.get("rotation") for d in stream.get("side_data_list") or []]
    if any(abs(int(t or 0)) % 180 == 90 for t in turns):
        width, height = height, width
    return Measured(duration, width, height)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, kind: str = "about:blank",
                 **more: Any) -> None:  # fmt: skip
        super().__init__(detail)
        self.status = status
        self.body = {"title": title, "detail": detail, "type": kind, "status": status, **more}


def invalid(message: str, parameter: str, value: Any = None) -> Problem:
    problem = Problem(
        400,
        "Invalid Request",
        "One or more parameters to your request was invalid.",
        "https://api.twitter.com/2/problems/invalid-request",
    )
    problem.body.pop("status")
    problem.body["errors"] = [{"parameters": {parameter: [str(value)]}, "message": message}]
    return problem


UNAUTHORIZED = Problem(401, "Unauthorized", "Unauthorized")


@dataclass
class Token:
    user: str
    scopes: set[str]
    expires_at: float


@dataclass
class FakeX(FakeService):
    user_id: str = "1400000000000000001"
    username: str = "kommunen"
    client_id: str = "X-client-" + "c" * 16
    client_secret: str = "X-secret-" + "s" * 32
    token: str = "XAccess" + "a" * 30
    refresh: str = "XRefresh" + "r" * 30
    processing_polls: int = 2
    tokens: dict[str, Token] = field(default_factory=dict)
    refresh_tokens: dict[str, set[str]] = field(default_factory=dict)
    """Live refresh tokens and the scopes they carry."""
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    tweets: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refreshed: int = 0
    lifetime: int = 7200
    """Seconds an access token lasts (``expires_in``)."""
    throttled: dict[str, int] = field(default_factory=dict)
    """Routes whose next call is 429 with ``x-rate-limit-reset`` at this epoch second."""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1860000000000000001))

    def __post_init__(self) -> None:
        self.tokens[self.token] = Token(self.user_id, set(SCOPES), time.time() + 7200)
        self.refresh_tokens[self.refresh] = set(SCOPES)

    # --- what tests look at and change ---

    def live(self) -> list[dict[str, Any]]:
        return sorted(
            (t for t in self.tweets.values() if not t["deleted"]), key=lambda t: int(t["id"])
        )

    def expire(self, token: str) -> None:
        self.tokens[token].expires_at = time.time() - 1

    def revoke_refresh(self, refresh: str) -> None:
        self.refresh_tokens.pop(refresh, None)

    def routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/i/oauth2/authorize", self.authorize, name="oauth.authorize")
        add("POST", "/i/oauth2/authorize", self.approve, name="oauth.approve")
        add("POST", "/2/oauth2/token", self.oauth_token, name="oauth.token")
        add("POST", "/2/oauth2/revoke", self.oauth_revoke, name="oauth.revoke")
        add("GET", "/2/users/me", self._api(self.me, "users.read"), name="users.me")
        add("GET", "/2/users/{id}/tweets", self._api(self.list, "tweet.read"), name="tweets.list")
        add("POST", "/2/tweets", self._api(self.create, "tweet.write"), name="tweets.create")
        add("DELETE", "/2/tweets/{id}", self._api(self.delete, "tweet.write"),
            name="tweets.delete")  # fmt: skip
        add("POST", "/2/media/upload/initialize", self._api(self.init, "media.write"),
            name="media.init")  # fmt: skip
        add("POST", "/2/media/upload/{id}/append", self._api(self.append, "media.write"),
            name="media.append")  # fmt: skip
        add("POST", "/2/media/upload/{id}/finalize", self._api(self.finalize, "media.write"),
            name="media.finalize")  # fmt: skip
        add("GET", "/2/media/upload", self._api(self.status, "media.write"), name="media.status")
        add("POST", "/2/media/metadata", self._api(self.metadata, "media.write"),
            name="media.metadata")  # fmt: skip

    # --- the API ---

    def _api(self, handler: Any, scope: str) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            reset = self.throttled.pop(request.match_info.route.name or "", None)
            if reset is not None:
                body = {"title": "Too Many Requests", "detail": "Too Many Requests",
                        "type": "about:blank", "status": 429}  # fmt: skip
                headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                           "x-rate-limit-reset": str(reset)}  # fmt: skip
                return web.json_response(body, status=429, headers=headers)
            try:
                header = request.headers.get("Authorization", "")
                if "access_token" in request.query or not header.startswith("Bearer "):
                    raise UNAUTHORIZED
                found = self.tokens.get(header.removeprefix("Bearer "))
                if found is None or found.expires_at < time.time():
                    raise UNAUTHORIZED
                if scope not in found.scopes:
                    raise Problem(403, "Forbidden", f"Missing scope {scope}")
                return await handler(request, found)
            except Problem as problem:
                return web.json_response(
                    problem.body, status=problem.status, content_type="application/problem+json"
                )

        return wrapped

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise invalid("Content-Type must be application/json", "Content-Type")
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise invalid("Request body is not valid JSON", "body") from None
        if not isinstance(body, dict):
            raise invalid("Request body must be an object", "body")
        return body

    async def me(self, request: web.Request, token: Token) -> web.Response:
        return web.json_response(
            {"data": {"id": token.user, "name": "Kommunen", "username": self.username}}
        )

    async def list(self, request: web.Request, token: Token) -> web.Response:
        if request.match_info["id"] != token.user:
            raise Problem(403, "Forbidden", "You can only read your own posts here")
        try:
            most = int(request.query.get("max_results", "10"))
        except ValueError:
            raise invalid("max_results must be a number", "max_results") from None
        if not 5 <= most <= 100:
            raise invalid("The `max_results` query parameter value is not between 5 and 100",
                          "max_results", most)  # fmt: skip
        fields = set(request.query.get("tweet.fields", "").split(","))
        mine = [t for t in reversed(self.live()) if t["author"] == token.user][:most]
        data = []
        for tweet in mine:
            shown = {"id": tweet["id"], "text": tweet["text"]}
            if "entities" in fields and tweet["entities"]:
                shown["entities"] = {"urls": tweet["entities"]}
            if "referenced_tweets" in fields and tweet["reply_to"]:
                shown["referenced_tweets"] = [{"type": "replied_to", "id": tweet["reply_to"]}]
            data.append(shown)
        return web.json_response({"data": data, "meta": {"result_count": len(data)}})

    def _shorten(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """The text as X keeps it: each URL it recognises as a t.co link."""
        kept, entities, offset = text, [], 0
        for found in extract_urls_with_indices(text):
            start, end = found["indices"]
            short = "https://t.co/" + secrets.token_urlsafe(7)[:10]
            kept = kept[: start + offset] + short + kept[end + offset :]
            end_short = start + offset + len(short)
            entities.append(
                {
                    "url": short,
                    "expanded_url": found["url"],
                    "start": start + offset,
                    "end": end_short,
                }  # fmt: skip
            )
            offset += len(short) - (end - start)
        return kept, entities

    async def create(self, request: web.Request, token: Token) -> web.Response:
        body = await self._json(request)
        unknown = set(body) - {"text", "media", "reply", "reply_settings", "quote_tweet_id"}
        if unknown:
            raise invalid(f"Unknown field {sorted(unknown)[0]}", sorted(unknown)[0])
        text = body.get("text")
        media = body.get("media")
        if not isinstance(text, str) or (not text and not media):
            raise invalid("$.text: text or media is required", "text")
        if parse_tweet(text).weightedLength > 280:
            raise Problem(403, "Forbidden", "Your Tweet text is too long.")
        media_ids: list[str] = []
        if media is not None:
            media_ids = media.get("media_ids") if isinstance(media, dict) else None
            if not isinstance(media_ids, list) or not 1 <= len(media_ids) <= 4:
                raise invalid("$.media.media_ids: 1 to 4 ids", "media.media_ids", media_ids)
            for media_id in media_ids:
                found = self.media.get(str(media_id))
                if found is None or found["user"] != token.user or found["state"] != "succeeded":
                    raise invalid("Your media IDs are invalid.", "media.media_ids",
                                  media_id)  # fmt: skip
            kinds = [self.media[str(m)]["category"] for m in media_ids]
            if len(kinds) > 1 and any(k != "tweet_image" for k in kinds):
                raise invalid("Your media IDs are invalid: a video or GIF goes alone",
                              "media.media_ids", media_ids)  # fmt: skip
        reply_to = None
        if body.get("reply") is not None:
            reply_to = str((body["reply"] or {}).get("in_reply_to_tweet_id") or "")
            target = self.tweets.get(reply_to)
            if target is None or target["deleted"]:
                raise invalid("The Tweet you are replying to is not visible or was deleted.",
                              "reply.in_reply_to_tweet_id", reply_to)  # fmt: skip
        for tweet in self.live():
            if tweet["author"] == token.user and tweet["original"] == text and not media_ids:
                raise Problem(
                    403, "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                )  # fmt: skip
        kept, entities = self._shorten(text)
        tweet_id = str(next(self._ids))
        self.tweets[tweet_id] = {
            "id": tweet_id, "author": token.user, "text": kept, "original": text,
            "entities": entities, "media": [str(m) for m in media_ids], "reply_to": reply_to,
            "deleted": False,
        }  # fmt: skip
        return web.json_response({"data": {"id": tweet_id, "text": kept}}, status=201)

    async def delete(self, request: web.Request, token: Token) -> web.Response:
        tweet = self.tweets.get(request.match_info["id"])
        if tweet is None or tweet["deleted"]:
            raise Problem(404, "Not Found Error",
                          f"Could not find tweet with id: [{request.match_info['id']}].",
                          "https://api.twitter.com/2/problems/resource-not-found")  # fmt: skip
        if tweet["author"] != token.user:
            raise Problem(403, "Forbidden", "You are not allowed to delete this Tweet.")
        tweet["deleted"] = True
        return web.json_response({"data": {"deleted": True}})

    # --- media ---

    async def init(self, request: web.Request, token: Token) -> web.Response:
        body = await self._json(request)
        media_type, total, category = (
            body.get("media_type"), body.get("total_bytes"), body.get("media_category"),
        )  # fmt: skip
        if not isinstance(media_type, str) or not isinstance(total, int) or total <= 0:
            raise invalid("media_type and total_bytes are required", "total_bytes", total)
        if category not in LIMITS:
            raise invalid("Invalid media_category", "media_category", category)
        wanted = ("tweet_video" if media_type.startswith("video/")
                  else "tweet_gif" if media_type == "image/gif" else "tweet_image")  # fmt: skip
        if category != wanted:
            raise invalid(f"media_category {category} does not fit {media_type}",
                          "media_category", category)  # fmt: skip
        if total > LIMITS[category]:
            raise invalid(f"File size exceeds {LIMITS[category]} bytes.", "total_bytes", total)
        media_id = str(next(self._ids))
        self.media[media_id] = {
            "id": media_id, "user": token.user, "type": media_type, "category": category,
            "total": total, "data": b"", "segments": 0, "state": "uploading", "alt": None,
            "polls": 0,
        }  # fmt: skip
        return web.json_response({"data": {"id": media_id, "media_key": f"3_{media_id}",
                                           "expires_after_secs": 86400}})  # fmt: skip

    def _own(self, media_id: str, token: Token) -> dict[str, Any]:
        found = self.media.get(media_id)
        if found is None or found["user"] != token.user:
            raise invalid("Invalid media id", "media_id", media_id)
        return found

    async def append(self, request: web.Request, token: Token) -> web.Response:
        found = self._own(request.match_info["id"], token)
        if found["state"] != "uploading":
            raise invalid("The upload is finalized already", "media_id", found["id"])
        if request.content_type != "multipart/form-data":
            raise invalid("APPEND is multipart/form-data", "Content-Type")
        form = await request.post()
        segment, media = form.get("segment_index"), form.get("media")
        if segment != str(found["segments"]):
            raise invalid("Segments must come in order", "segment_index", segment)
        if not isinstance(media, web.FileField):
            raise invalid("media is required", "media")
        chunk = media.file.read()
        if len(chunk) > 5 * MB or len(found["data"]) + len(chunk) > found["total"]:
            raise invalid("Segment too large", "media")
        found["data"] += chunk
        found["segments"] += 1
        return web.json_response({"data": {"expires_at": int(time.time()) + 86400}})

    async def finalize(self, request: web.Request, token: Token) -> web.Response:
        found = self._own(request.match_info["id"], token)
        if len(found["data"]) != found["total"]:
            raise invalid(f"File size mismatch: got {len(found['data'])} of {found['total']}",
                          "total_bytes", found["total"])  # fmt: skip
        if found["category"] == "tweet_video":
            if found["data"][4:8] != b"ftyp":
                raise invalid("InvalidMedia: unsupported video format", "media")
            measured = _measure(found["data"])
            found["duration"] = measured.duration
            found["size"] = (measured.width, measured.height)
            found["state"] = "pending"
            info = {"state": "pending", "check_after_secs": 1}
            return web.json_response({"data": {"id": found["id"], "processing_info": info}})
        try:
            with Image.open(io.BytesIO(found["data"])) as image:
                image.verify()
        except Exception:
            raise invalid("InvalidMedia: the image cannot be read", "media") from None
        found["state"] = "succeeded"
        return web.json_response({"data": {"id": found["id"], "size": found["total"]}})

    async def status(self, request: web.Request, token: Token) -> web.Response:
        if request.query.get("command") != "STATUS":
            raise invalid("command must be STATUS", "command")
        found = self._own(request.query.get("media_id", ""), token)
        if found["state"] in ("pending", "in_progress"):
            found["polls"] += 1
            found["state"] = ("succeeded" if found["polls"] >= self.processing_polls
                              else "in_progress")  # fmt: skip
            if found["state"] == "succeeded":
                found["failure"] = self._refusal(found)
                if found["failure"]:
                    found["state"] = "failed"
        info: dict[str, Any] = {"state": found["state"]}
        if found["state"] == "failed":
            info.update(progress_percent=100, error={
                "code": 1, "name": "InvalidMedia",
                "message": f"Invalid or Unsupported media, Reason: {found['failure']}.",
            })  # fmt: skip
        if found["state"] == "in_progress":
            info.update(check_after_secs=1, progress_percent=50)
        return web.json_response({"data": {"id": found["id"], "processing_info": info}})

    @staticmethod
    def _refusal(found: dict[str, Any]) -> str:
        """Why X fails a processed video, or ""."""
        if not 0.5 <= found["duration"] <= 140:
            return "Duration too long"
        width, height = found["size"]
        if not width or not height or not 1 / 3 <= width / height <= 3:
            return "Unsupported aspect ratio"
        return ""

    async def metadata(self, request: web.Request, token: Token) -> web.Response:
        body = await self._json(request)
        found = self._own(str(body.get("id") or ""), token)
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if not isinstance(alt, str) or len(alt) > 1000:
            raise invalid("alt_text.text: at most 1000 characters", "metadata.alt_text", alt)
        found["alt"] = alt
        associated = {"alt_text": {"text": alt}}
        return web.json_response({"data": {"id": found["id"], "associated_metadata": associated}})

    # --- OAuth 2.0 with PKCE ---

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type")
        if q.get("client_id") != self.client_id:
            problems.append("client_id")
        if not q.get("redirect_uri"):
            problems.append("redirect_uri")
        if not q.get("state") or not q.get("code_challenge"):
            problems.append("state / code_challenge")
        if q.get("code_challenge_method") != "S256":
            problems.append("code_challenge_method")
        scopes = set(q.get("scope", "").split(" "))
        if not scopes <= SCOPES or "tweet.write" not in scopes:
            problems.append("scope")
        if problems:
            page = f"<h1>Something went wrong</h1><p>{html.escape(', '.join(problems))}</p>"
            return web.Response(text=page, status=400, content_type="text/html")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in q.items()
        )
        page = (
            "<!doctype html><html lang=en><title>Authorize app</title><main>"
            f"<h1>Relay wants to access your X account @{self.username}</h1>"
            f"<p>{html.escape(q['scope'])}</p><form method=post>{hidden}"
            "<button name=decision value=allow>Authorize app</button>"
            "<button name=decision value=deny>Cancel</button></form></main></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = str(form["redirect_uri"])
        if form.get("decision") != "allow":
            query = {"error": "access_denied", "state": str(form["state"])}
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {
                "redirect_uri": target, "challenge": str(form["code_challenge"]),
                "scopes": set(str(form["scope"]).split(" ")), "used": False,
            }  # fmt: skip
            query = {"state": str(form["state"]), "code": code}
        raise web.HTTPFound(f"{target}?{urlencode(query)}")

    async def oauth_revoke(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            body = {"error": "unauthorized_client",
                    "error_description": "Missing valid authorization header"}  # fmt: skip
            return web.json_response(body, status=401)
        form = await request.post()
        token = str(form.get("token", ""))
        self.refresh_tokens.pop(token, None)
        self.tokens.pop(token, None)
        return web.json_response({"revoked": True})

    async def oauth_token(self, request: web.Request) -> web.Response:
        def error(kind: str, description: str, status: int = 400) -> web.Response:
            return web.json_response({"error": kind, "error_description": description},
                                     status=status)  # fmt: skip

        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return error("unauthorized_client", "Missing valid authorization header", 401)
        if request.content_type != "application/x-www-form-urlencoded":
            return error("invalid_request", "Content-Type must be form-urlencoded")
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            found = self.codes.get(str(form.get("code", "")))
            if found is None or found["used"] or found["redirect_uri"] != form.get("redirect_uri"):
                return error("invalid_request", "Value passed for the code was invalid.")
            verifier = str(form.get("code_verifier", ""))
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != found["challenge"]:
                return error("invalid_request", "Value passed for the code verifier was invalid.")
            found["used"] = True
            scopes = found["scopes"]
        elif grant == "refresh_token":
            scopes = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if scopes is None:
                return error("invalid_request", "Value passed for the token was invalid.")
            self.refreshed += 1
        else:
            return error("invalid_request", "Missing required parameter [grant_type].")
        self.token = "XAccess" + secrets.token_urlsafe(24)
        self.tokens[self.token] = Token(self.user_id, set(scopes), time.time() + self.lifetime)
        answer = {"token_type": "bearer", "expires_in": self.lifetime, "access_token": self.token,
                  "scope": " ".join(sorted(scopes))}  # fmt: skip
        if "offline.access" in scopes:
            self.refresh = "XRefresh" + secrets.token_urlsafe(24)
            self.refresh_tokens[self.refresh] = set(scopes)
            answer["refresh_token"] = self.refresh
        return web.json_response(answer)
