"""The API of a post's life: ``PATCH``, ``POST …/publish``, ``DELETE`` and ``GET …/events`` on
``/api/v1/posts/{id}``. Each is a thin shell over relay/lifecycle.py: parse and check the
request strictly (an unknown field or a wrong type is 422 ``request.invalid``), check the post
is the caller's (404 if not) and not deleted (410), then one transaction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection

from relay import lifecycle
from relay.context import RELAY, Relay
from relay.db import queries
from relay.errors import NotFound, RelayError
from relay.model import PostState
from relay.web.api import authenticate
from relay.web.present import post_json

MAX_TEXT = 100_000
MAX_TAGS = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemPatch(_Strict):
    id: str = Field(min_length=1, max_length=64)
    alt: str | None = Field(default=None, max_length=5000)


class PostPatch(_Strict):
    title: str | None = Field(default=None, max_length=1000)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    private: bool | None = None
    draft: bool | None = None
    publish_at: str | None = None
    items: list[ItemPatch] | None = Field(default=None, max_length=1000)


def parse_time(value: str) -> float:
    """An RFC 3339 date-time with its offset (``2026-12-24T09:00:00+01:00``, ``…Z``) → UNIX
    seconds. A time without an offset is ambiguous and refused."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RelayError("request.invalid", f"publish_at: not RFC 3339: {value!r}") from exc
    if when.tzinfo is None:
        raise RelayError("request.invalid", "publish_at needs a time zone offset (or Z)")
    return when.timestamp()


def to_change(patch: PostPatch) -> lifecycle.Change:
    given = patch.model_fields_set
    return lifecycle.Change(
        title=patch.title,
        text=patch.text,
        tags=[t.strip() for t in patch.tags if t.strip()] if patch.tags is not None else None,
        private=patch.private,
        items=[(i.id, i.alt) for i in patch.items] if patch.items is not None else None,
        draft=patch.draft,
        publish_at=parse_time(patch.publish_at) if patch.publish_at else None,
        publish_at_given="publish_at" in given,
    )


async def _body(request: web.Request) -> PostPatch:
    try:
        data = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RelayError("request.invalid", "the body is not JSON") from exc
    if not isinstance(data, dict):
        raise RelayError("request.invalid", "the body is not a JSON object")
    try:
        return PostPatch.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RelayError("request.invalid", f"{where}: {first['msg']}") from exc


def _mine(conn: Connection, post_id: str, user_id: str, live: bool = True) -> Any:
    row = queries.post_row(conn, post_id)
    if row is None or row["user_id"] != user_id:
        raise NotFound()  # another user's post is no different from none
    if live and row["state"] == PostState.DELETED.value:
        raise RelayError("post.gone")
    return row


async def _answer(relay: Relay, post_id: str) -> web.Response:
    relay.workers.wake()  # jobs may have been queued: take them now, not at the next poll
    post = await relay.db.read(queries.load_post, post_id)
    assert post is not None
    return web.json_response(post_json(relay, post))


async def patch_post(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]
    wanted = to_change(await _body(request))

    def run(conn: Connection) -> None:
        _mine(conn, post_id, user_id)
        lifecycle.change(conn, post_id, user_id, "api", wanted)

    await relay.db.run(run)
    return await _answer(relay, post_id)


async def publish_post(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]

    def run(conn: Connection) -> None:
        _mine(conn, post_id, user_id)
        lifecycle.publish(conn, post_id, user_id, "api")

    await relay.db.run(run)
    return await _answer(relay, post_id)


async def delete_post(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]
    reason = request.query.get("reason") or None

    def run(conn: Connection) -> None:
        _mine(conn, post_id, user_id)
        lifecycle.delete(conn, post_id, user_id, "api", reason[:1000] if reason else None)

    await relay.db.run(run)
    relay.workers.wake()
    return web.Response(status=204)


async def post_events(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    post_id = request.match_info["post_id"]

    def run(conn: Connection) -> list[dict[str, Any]]:
        _mine(conn, post_id, user_id, live=False)  # a deleted post keeps its record
        return lifecycle.events(conn, post_id)

    return web.json_response({"events": await relay.db.read(run)})


def setup_routes(app: web.Application) -> None:
    app.router.add_patch("/api/v1/posts/{post_id}", patch_post)
    app.router.add_delete("/api/v1/posts/{post_id}", delete_post)
    app.router.add_post("/api/v1/posts/{post_id}/publish", publish_post)
    app.router.add_get("/api/v1/posts/{post_id}/events", post_events)
