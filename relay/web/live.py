"""Live broadcasts over HTTP: the HLS a broadcast makes while it runs (``/live/{post}/…``, from
the node that takes it in, relay/intake/live.py, or, on a shared store, from any node: the
playlist read from the store with its segments made the store's URLs, as relay/web/streaming.py
does for a VOD ladder, and a segment asked of this node redirected there), and the callbacks
of nginx-rtmp for operators who ingest with it instead (``on_publish``/``on_publish_done``, see
README "Going live")."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from relay.context import RELAY, Relay
from relay.db import live as db_live
from relay.db import queries
from relay.intake.live import PLAYLIST, LiveDoor
from relay.model import Post, PostState
from relay.storage import hls
from relay.storage import live as stored

LIVE_DOOR = web.AppKey("live_door", LiveDoor)

PLAYLIST_WAIT = 10.0
"""Seconds a request for a live broadcast's playlist waits for its first segment."""

_FILE = re.compile(r"^(index\.m3u8|s\d{5}\.ts)$")
_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t"}


def playlist_url(public_url: str, post_id: str) -> str:
    return f"{public_url}/live/{post_id}/{PLAYLIST}"


async def on_air(relay: Relay, post: Post) -> dict[str, str] | None:
    """What the post page needs to play a broadcast that is live now: its playlist."""
    broadcast = await relay.db.read(db_live.broadcast_of_post, post.id)
    if broadcast is None or broadcast["state"] != "live":
        return None
    return {"playlist": playlist_url(relay.settings.public_url, post.id)}


async def live_file(request: web.Request) -> web.StreamResponse:
    post_id, name = request.match_info["post_id"], request.match_info["name"]
    door = request.app.get(LIVE_DOOR)
    if door is None or not _FILE.match(name):
        raise web.HTTPNotFound()
    folder = door.live_dir(post_id)
    relay = request.app[RELAY]
    shared = stored.shared(relay.store)
    if folder is None and shared is None:
        raise web.HTTPNotFound()
    row = await relay.db.read(queries.post_row, post_id)
    if row is None or row["draft"] or row["state"] == PostState.DELETED.value:
        raise web.HTTPNotFound()
    if folder is None:
        return await _from_store(relay, post_id, name, private=bool(row["private"]))
    path = folder / name
    playlist = name.endswith(".m3u8")
    if playlist:
        # The post (and its page) comes with the first frame, the playlist with the first
        # segment, seconds later: a player asking in between waits for it rather than taking a
        # 404, which players (hls.js among them) treat as the end.
        for _ in range(int(PLAYLIST_WAIT / 0.25)):
            if path.is_file():
                break
            await asyncio.sleep(0.25)
    if not path.is_file():
        raise web.HTTPNotFound()
    headers = {
        "Content-Type": _TYPES[path.suffix],
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",  # players on other sites (embeds) fetch it
        # The playlist grows every segment; a segment never changes once listed.
        "Cache-Control": "no-cache" if playlist else "public, max-age=86400, immutable",
    }
    return web.FileResponse(path, headers=headers)


async def _from_store(relay: Relay, post_id: str, name: str, *, private: bool) -> web.Response:
    """A broadcast another node takes in, from the shared store (relay/storage/live.py)."""
    if name != PLAYLIST:
        # A player that had the playlist from the taking node names segments relatively.
        raise web.HTTPFound(relay.media_url(stored.key_of(post_id, name), private=private))
    broadcast = await relay.db.read(db_live.broadcast_of_post, post_id)
    if broadcast is None:
        raise web.HTTPNotFound()
    key = stored.key_of(post_id, PLAYLIST)
    text = await hls.read_text(relay.store, key)
    # As on the taking node: a player early for the first segment waits for it.
    for _ in range(int(PLAYLIST_WAIT / 0.5)):
        if text is not None or broadcast["state"] != "live":
            break
        await asyncio.sleep(0.5)
        text = await hls.read_text(relay.store, key)
    if text is None:
        raise web.HTTPNotFound()
    out = [
        relay.media_url(stored.key_of(post_id, line), private=private)
        if stored.SEGMENT.match(line)
        else line
        for line in (raw.strip() for raw in text.splitlines())
        if line.startswith("#") or stored.SEGMENT.match(line)  # nothing else is passed on
    ]
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": stored.PLAYLIST_CACHE,  # it grows; its links are signed afresh
    }
    return web.Response(text="\n".join(out) + "\n", content_type=hls.PLAYLIST_MIME, headers=headers)


async def on_publish(request: web.Request) -> web.Response:
    """nginx-rtmp's ``on_publish``: form-encoded ``name=KEY`` (and app, addr…); 2xx lets the
    sender publish, 403 refuses it (nginx-rtmp then closes the connection)."""
    form = await request.post()
    key = str(form.get("name", "")).partition("?")[0].strip()
    relay = request.app[RELAY]
    found = await relay.db.read(db_live.live_key, key) if key else None
    if found is None:
        return web.json_response(
            {"error": {"code": "live.bad_key", "message": "The stream key is wrong or revoked."}},
            status=403,
        )
    return web.json_response({"ok": True})


async def on_publish_done(request: web.Request) -> web.Response:
    """nginx-rtmp's ``on_publish_done``: the sender stopped; nothing to refuse any more."""
    await request.post()
    return web.json_response({"ok": True})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/live/{post_id}/{name}", live_file)
    app.router.add_post("/api/v1/live/on_publish", on_publish)
    app.router.add_post("/api/v1/live/on_publish_done", on_publish_done)
