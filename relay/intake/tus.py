"""The tus door: resumable uploads over tus 1.0.0 at ``/api/v1/tus/``.

Core, creation (with upload, and with deferred length), termination, checksum and expiration,
as https://tus.io/protocols/resumable-upload says. An upload is a row in ``uploads`` plus a file
under ``<data_dir>/tus/``, so it survives restarts and is shared by nodes that share the database
and the data folder. It belongs to the token's user; anyone else gets 404. With an S3 store the
bytes are an S3 multipart upload instead (relay/intake/tus_s3.py), so that nodes which share only
the database and the bucket continue each other's uploads.

Durability: a PATCH fsyncs the file before it records the new offset, and answers after that, so
an offset a client was told is never ahead of the disk. With the last byte the row first records
a spool name, then the file moves into the spool, then ``accept()`` commits the post and marks the
upload finished in one transaction. A crash in between is finished later (by the next PATCH or
HEAD, or the sweep): never lost, never two posts.

One writer per upload: a second PATCH (or DELETE) while one runs gets ``423 Locked`` at once, as
from tusd (tus clients retry it). On this node an in-process set says so without a round trip;
across nodes a lease in the row (``locked_until``, taken with one conditional UPDATE) does, renewed
while bytes flow and checked before each write, so two nodes never write one file. A PATCH that
leaves the upload unfinished keeps the lease for ``HOLD`` seconds more: the client's next PATCH,
which comes to the same node, writes without taking it again (a database write each, the largest
cost of a PATCH after its bytes); another node's PATCH meanwhile gets 423 until it lapses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import StreamReader, web
from aiohttp.client_exceptions import ClientPayloadError
from prometheus_client import Counter
from sqlalchemy import Connection, delete, or_, select, update

from relay import metrics
from relay.auth import new_id
from relay.context import RELAY, Relay
from relay.db import queries, tus_parts
from relay.db.schema import uploads
from relay.errors import AuthError, IntakeError, NotFound, RelayError, TooLarge, temporary_error
from relay.intake import fields as upload_fields
from relay.intake.accept import SpooledFile
from relay.intake.http import clean_filename
from relay.model import Post
from relay.web import auth
from relay.web.api import relay_error_response
from relay.web.auth import bearer_token, session_or_token, session_user

log = logging.getLogger("relay.tus")

VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
}
OFFSET_STREAM = "application/offset+octet-stream"
PREFIX = "/api/v1/tus/"
CHUNK = 1 << 20
READ_AHEAD = CHUNK
"""Bytes of a PATCH read into memory while its claim is taken, before they may be written."""
LEASE = 30.0  # seconds a writer's claim holds without renewal (a crashed node's claim lapses)
RENEW = 10.0  # while bytes flow: renew the claim and record progress this often
HOLD = 5.0  # seconds a node keeps the lease of an upload between a client's PATCHes
MARGIN = 2.0  # a lease is used, or renewed, only while it has this long left (clock skew)
SYNC_AHEAD = 2 * CHUNK
"""While a PATCH streams in, the file is flushed to disk on a thread every this many bytes: the
fsync before its answer then waits only for the last of them, not for all eight MiB."""
IDLE = 60.0  # a PATCH whose client sends nothing this long ends (what arrived is kept)
TEXT_LIMIT = 64 * 1024
WAIT = "wait"
"""Upload-Metadata key: once finished the upload waits in the spool to be joined with others
into one post (``TusDoor.join``, the web app's upload page) instead of becoming one itself."""

EXPOSE = (
    "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, "
    "Upload-Offset, Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, "
    "Location, Relay-Post-Id, Relay-Post-Url"
)
ALLOW_HEADERS = (
    "Authorization, Content-Type, Tus-Resumable, Upload-Offset, Upload-Length, "
    "Upload-Defer-Length, Upload-Metadata, Upload-Checksum, X-HTTP-Method-Override, "
    "X-Requested-With"
)
ALLOW_METHODS = "POST, HEAD, PATCH, DELETE, OPTIONS, GET"

_HEADERS = "relay.tus.headers"  # request key: headers every answer carries, errors included
_NUMBER = re.compile(r"[0-9]{1,19}")
_METADATA_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space; commas excluded by the split

Row = dict[str, Any]

received_bytes = Counter(
    "relay_tus_received_bytes",
    "Bytes of tus request bodies written to upload files",
    registry=metrics.registry,
)


# --- Upload-Metadata and headers ----------------------------------------------------------------


def parse_metadata(header: str) -> dict[str, bytes]:
    """``key base64,key2 base64,flag`` → {key: bytes}; malformed pairs are a 400."""
    found: dict[str, bytes] = {}
    for pair in header.split(","):
        if not pair.strip():
            continue
        key, _, value = pair.strip().partition(" ")
        if not _METADATA_KEY.fullmatch(key) or key in found:
            raise IntakeError("bad_request", f"Upload-Metadata key {key!r}")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True)
        except binascii.Error as exc:
            raise IntakeError("bad_request", f"Upload-Metadata {key} is not base64") from exc
    return found


def _text(meta: dict[str, bytes], *keys: str) -> str:
    for key in keys:
        if key in meta:
            return meta[key][:TEXT_LIMIT].decode("utf-8", "replace").strip()
    return ""


def _post_fields(meta: dict[str, bytes]) -> upload_fields.UploadFields:
    """The post's fields among the metadata (relay/intake/fields.py). A bare key (tus sends
    ``draft`` alone for a flag) is true."""
    found = {name: [_text(meta, name)] for name in upload_fields.NAMES if name in meta}
    for name in ("draft", "private"):
        if found.get(name) == [""]:
            found[name] = ["true"]
    return upload_fields.parse(found)


def _number(request: web.Request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not _NUMBER.fullmatch(value.strip()):
        raise IntakeError("bad_request", f"{name} must be a non-negative integer")
    return int(value)


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)  # RFC 7231 IMF-fixdate


# --- the uploads table ----------------------------------------------------------------------------


def _load(conn: Connection, upload_id: str) -> Row | None:
    row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).mappings().first()
    return dict(row) if row else None


def _insert(conn: Connection, row: Row) -> None:
    conn.execute(uploads.insert().values(**row))


def _insert_within_quota(
    conn: Connection, row: Row, max_open: int, max_reserved: int, deferred: int
) -> None:
    """Insert a new upload unless its user would then have more than ``max_open`` unfinished
    uploads or reserve more than ``max_reserved`` bytes; checked and inserted in one
    transaction, so uploads created at once cannot pass the quota together."""
    count, reserved = queries.open_uploads(conn, row["user_id"], row["created_at"], deferred)
    if count >= max_open:
        raise RelayError("tus.too_many_uploads", f"{count} unfinished uploads")
    wanted = deferred if row["length"] is None else row["length"]
    if reserved + wanted > max_reserved:
        raise RelayError("tus.quota_exceeded", f"{reserved} + {wanted} > {max_reserved} bytes")
    _insert(conn, row)


@dataclass
class _Claim:
    """A lease on an upload; ``held`` turns False once a write gave it back (or kept it for the
    next PATCH: then it is the door's, not this request's)."""

    holder: str
    until: float
    """When the lease lapses (wall clock, as the row says)."""
    held: bool = True


@dataclass
class _Held:
    """A lease this node keeps between PATCHes, and the row as its last PATCH left it (which
    nobody else can change while the lease is ours)."""

    claim: _Claim
    row: Row


def _lock_free(now: float) -> Any:
    return or_(uploads.c.locked_until.is_(None), uploads.c.locked_until < now)


def _claim(
    conn: Connection, upload_id: str, holder: str, now: float, user_id: str | None = None
) -> tuple[bool, Row | None]:
    """Take the lease if it is free (and, given ``user_id``, only on that user's upload, so a
    stranger's request never holds anyone's upload); the row either way."""
    owned = (uploads.c.user_id == user_id,) if user_id is not None else ()
    taken = conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, _lock_free(now), *owned)
        .values(
            locked_until=now + LEASE,
            locked_by=holder,
            next_part=tus_parts.skip_part_on_takeover(),
        )
    ).rowcount
    return taken == 1, _load(conn, upload_id)


def _claim_as(
    conn: Connection, upload_id: str, token: str, holder: str, now: float
) -> tuple[str | None, bool, Row | None]:
    """``_claim`` for the token's user, found in the same transaction: (None, False, None) for
    a token that is no one's."""
    user_id = queries.user_for_token(conn, token)
    if user_id is None:
        return None, False, None
    return user_id, *_claim(conn, upload_id, holder, now, user_id)


def _renew(
    conn: Connection,
    upload_id: str,
    holder: str,
    now: float,
    release: bool = False,
    lease_for: float = LEASE,
    **values: Any,
) -> bool:
    """Extend the claim (to ``now + lease_for``), or with ``release`` give it up, recording
    ``values`` in the same statement; False if it lapsed and someone else has it."""
    lease = (
        {"locked_until": None, "locked_by": None} if release else {"locked_until": now + lease_for}
    )
    return (
        conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.locked_by == holder)
            .values(**lease, **values)
        ).rowcount
        == 1
    )


def _release(conn: Connection, upload_id: str, holder: str) -> None:
    conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.locked_by == holder)
        .values(locked_until=None, locked_by=None)
    )


def _mark_finished(conn: Connection, post: Post, *, upload_id: str) -> None:
    done = conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.post_id.is_(None))
        .values(post_id=post.id)
    ).rowcount
    if done != 1:  # finished meanwhile: roll the second post back
        raise RelayError("server.unavailable", f"upload {upload_id} finished twice")


def _mark_finished_in_store(conn: Connection, post: Post, *, upload_id: str) -> None:
    """``_mark_finished``, and the parts' records go: the multipart upload is complete."""
    _mark_finished(conn, post, upload_id=upload_id)
    tus_parts.forget_parts(conn, upload_id)


def _gone_clause(now: float) -> Any:
    """Rows the sweep removes: expired unfinished uploads and old tombstones, unlocked."""
    return (
        (uploads.c.expires_at < now)
        & (uploads.c.spool_name.is_(None) | uploads.c.terminated_at.is_not(None))
        & _lock_free(now)
    )


def _sweepable(conn: Connection, now: float) -> tuple[list[str], list[Row]]:
    gone = conn.execute(select(uploads.c.id).where(_gone_clause(now))).scalars().all()
    stuck = conn.execute(
        select(uploads).where(
            uploads.c.spool_name.is_not(None),
            uploads.c.post_id.is_(None),
            uploads.c.terminated_at.is_(None),
            _lock_free(now),
        )
    ).mappings()
    return list(gone), [dict(row) for row in stuck]


def _forget(conn: Connection, ids: list[str], now: float) -> int:
    removed = conn.execute(delete(uploads).where(uploads.c.id.in_(ids), _gone_clause(now))).rowcount
    tus_parts.forget_orphan_parts(conn, ids)
    return int(removed)


# --- the door -----------------------------------------------------------------------------------


class TusDoor:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.settings = relay.settings
        self.db = relay.db
        self.dir = relay.settings.data_dir / "tus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writing: set[str] = set()  # uploads a request of this process holds
        self.held: dict[str, _Held] = {}  # leases kept between PATCHes, by upload
        self.parts: Any = None
        """``TusParts`` when the store is S3: uploads then live in the bucket, not here."""
        # relay.storage.s3 is loaded if the store is S3; importing it (and boto3) here would
        # slow every start with a local store for nothing.
        s3 = sys.modules.get("relay.storage.s3")
        if s3 is not None and isinstance(relay.store, s3.S3Store):
            from relay.intake.tus_s3 import TusParts

            self.parts = TusParts(relay.store)

    def url(self, upload_id: str) -> str:
        return f"{self.settings.public_url}{PREFIX}{upload_id}"

    # requests

    async def options(self, request: web.Request) -> web.Response:
        headers = {
            "Tus-Version": VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(self.settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        }
        if "Origin" in request.headers:  # a browser's CORS preflight (tus-js-client, Uppy)
            headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = "86400"
        return web.Response(status=204, headers=headers)

    async def create(self, request: web.Request) -> web.Response:
        _require_version(request)
        user_id = await session_or_token(request)
        length = _number(request, "Upload-Length")
        defer = request.headers.get("Upload-Defer-Length")
        if (length is None) == (defer is None) or (defer is not None and defer.strip() != "1"):
            raise IntakeError("bad_request", "send Upload-Length, or Upload-Defer-Length: 1")
        if length is not None and length > self.settings.max_upload_bytes:
            raise TooLarge("upload.too_large", f"Upload-Length {length}")
        raw_metadata = request.headers.get("Upload-Metadata", "").strip()
        _post_fields(parse_metadata(raw_metadata))  # a bad field is refused now, not at the end
        with_body = request.body_exists
        if with_body and request.content_type != OFFSET_STREAM:
            raise IntakeError("tus.unsupported_media_type")
        checksum = _checksum(request) if with_body else None
        now = time.time()
        upload_id = new_id()
        # Claimed from birth when bytes come along (or there are none to wait for).
        holder = new_id() if with_body or length == 0 else None
        row: Row = {
            "id": upload_id,
            "user_id": user_id,
            "length": length,
            "received": 0,
            "upload_metadata": raw_metadata,
            "created_at": now,
            "expires_at": now + self.settings.tus_expiry_seconds,
            "locked_until": now + LEASE if holder else None,
            "locked_by": holder,
            "spool_name": None,
            "post_id": None,
            "terminated_at": None,
            "multipart_id": None,
            "tail_key": None,
            "next_part": 1,
        }
        if self.parts is not None and length != 0:
            row["multipart_id"] = await self.parts.begin(upload_id)
        try:
            await self.db.run(
                _insert_within_quota,
                row,
                self.settings.tus_max_open_uploads_per_user,
                self.settings.tus_max_reserved_bytes_per_user,
                self.settings.max_upload_bytes,
            )
        except BaseException:
            if row["multipart_id"]:
                with contextlib.suppress(Exception):
                    await self.parts.abort(upload_id, row["multipart_id"])
            raise
        headers = request[_HEADERS]
        headers["Location"] = self.url(upload_id)
        headers["Upload-Expires"] = _http_date(row["expires_at"])
        if holder is not None:
            self.writing.add(upload_id)
            claim = _Claim(holder, now + LEASE)
            try:
                row = await self._receive(request, row, claim, checksum)
            finally:
                self.writing.discard(upload_id)
                if claim.held:
                    await self.db.run(_release, upload_id, holder)
            headers["Upload-Offset"] = str(row["received"])
            self._describe(row, headers)
        return web.Response(status=201)

    async def patch(self, request: web.Request) -> web.Response:
        _require_version(request)
        user_id = await session_user(request)  # the web app's upload page, or else a token
        # A token is looked up with the claim: one transaction, not two.
        token = None if user_id is not None else bearer_token(request)
        if request.content_type != OFFSET_STREAM:
            raise IntakeError("tus.unsupported_media_type")
        offset = _number(request, "Upload-Offset")
        if offset is None:
            raise IntakeError("bad_request", "PATCH needs Upload-Offset")
        checksum = _checksum(request)
        # The body starts coming in while the claim's transaction runs (a few ms a PATCH).
        early: list[bytes] = []
        reading = asyncio.create_task(_read_ahead(request.content, READ_AHEAD, early))
        try:
            async with self._claimed(request.match_info["upload_id"], user_id, token=token) as (
                row,
                claim,
            ):
                reading.cancel()  # what came meanwhile is in ``early``; the rest is in the stream
                await asyncio.gather(reading, return_exceptions=True)
                if offset != row["received"]:
                    raise IntakeError("tus.offset_mismatch", f"{offset} != {row['received']}")
                row = await self._receive(request, row, claim, checksum, early)
        finally:
            reading.cancel()  # refused before its end: what it read is dropped
        headers = request[_HEADERS]
        headers["Upload-Offset"] = str(row["received"])
        self._describe(row, headers)
        return web.Response(status=204)

    async def head(self, request: web.Request) -> web.Response:
        _require_version(request)
        user_id = await session_or_token(request)
        row = await self._visible(request.match_info["upload_id"], user_id)
        row = await self._settle(row)
        headers = request[_HEADERS]
        headers["Upload-Offset"] = str(row["received"])
        if row["upload_metadata"]:
            headers["Upload-Metadata"] = row["upload_metadata"]
        headers["Cache-Control"] = "no-store"
        self._describe(row, headers)
        return web.Response(status=200)

    async def info(self, request: web.Request) -> web.Response:
        """Not tus: the upload as JSON, for people and scripts."""
        user_id = await session_or_token(request)
        row = await self._settle(await self._visible(request.match_info["upload_id"], user_id))
        meta = parse_metadata(row["upload_metadata"])
        finished = row["post_id"] is not None
        body = {
            "id": row["id"],
            "url": self.url(row["id"]),
            "offset": row["received"],
            "length": row["length"],
            "metadata": {k: v.decode("utf-8", "replace") for k, v in meta.items()},
            "status": "finished" if finished else "uploading",
            "locked": self._locked(row),
            "expires": None if finished else _http_date(row["expires_at"]),
            "post_id": row["post_id"],
            "post_url": self.relay.page_url(row["post_id"]) if finished else None,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def terminate(self, request: web.Request) -> web.Response:
        _require_version(request)
        user_id = await session_or_token(request)
        async with self._claimed(request.match_info["upload_id"], user_id) as (row, _):
            if self.parts is not None:
                await self.parts.discard(row["id"], row["multipart_id"], row["tail_key"])
                if row["spool_name"] and row["post_id"] is None:  # completed, not yet a post
                    await self.parts.delete(self.parts.final_key(row["id"]))
            await asyncio.to_thread((self.dir / row["id"]).unlink, missing_ok=True)
            if row["spool_name"] and row["post_id"] is None:
                self.relay.spool.remove(row["spool_name"])
            await self.db.run(_set, row["id"], terminated_at=time.time())
        return web.Response(status=204)

    async def override(self, request: web.Request) -> web.Response:
        """``POST`` with ``X-HTTP-Method-Override``, for clients that cannot send PATCH/DELETE."""
        method = request.headers.get("X-HTTP-Method-Override", "").upper()
        handler = {"PATCH": self.patch, "DELETE": self.terminate, "HEAD": self.head}.get(method)
        if handler is None:
            raise IntakeError("method_not_allowed", f"override {method!r}")
        return await handler(request)

    def _locked(self, row: Row) -> bool:
        """A PATCH or DELETE would be refused now: one writes here, or another node holds the
        lease (a lease this node keeps between PATCHes is no obstacle to the next one here)."""
        if row["id"] in self.writing:
            return True
        return (row["locked_until"] or 0) > time.time() and row["id"] not in self.held

    # the work

    async def _visible(self, upload_id: str, user_id: str) -> Row:
        return _check_visible(await self.db.read(_load, upload_id), user_id)

    @contextlib.asynccontextmanager
    async def _claimed(
        self, upload_id: str, user_id: str | None = None, *, token: str | None = None
    ) -> AsyncIterator[tuple[Row, _Claim]]:
        """The upload, held by this request alone; 404/410 first, then 423 if someone writes.

        One write transaction takes the lease and reads the row; a PATCH gives the lease back
        in the transaction that records its offset, so a PATCH costs two commits, not four.
        """
        if upload_id in self.writing:
            await self._visible(upload_id, await self._owner(user_id, token))
            raise IntakeError("tus.locked")
        self.writing.add(upload_id)
        try:
            kept = self.held.pop(upload_id, None)
            if kept is not None and kept.claim.until - time.time() > MARGIN:
                claim = kept.claim
                try:
                    user_id = await self._owner(user_id, token)
                    row = _check_visible(kept.row, user_id)
                except RelayError:
                    self._keep(claim, kept.row)  # a stranger's request leaves the owner's lease
                    raise
                claim.held = True
            else:
                now = time.time()
                claim = _Claim(new_id(), now + LEASE)
                if user_id is None:
                    user_id, claim.held, row = await self.db.run_volatile(
                        _claim_as, upload_id, token, claim.holder, now
                    )
                else:
                    claim.held, row = await self.db.run_volatile(
                        _claim, upload_id, claim.holder, now, user_id
                    )
            try:
                row = _check_visible(row, _known(user_id))
                if not claim.held:
                    raise IntakeError("tus.locked", "claimed by another node")
                yield row, claim
            finally:
                if claim.held:
                    await self.db.run(_release, upload_id, claim.holder)
        finally:
            self.writing.discard(upload_id)

    async def _owner(self, user_id: str | None, token: str | None) -> str:
        """``user_id``, or else the user of ``token``; AuthError for no one."""
        if user_id is None and token is not None:
            user_id = await self.db.read_by_key(queries.user_for_token, token)
        return _known(user_id)

    def _keep(self, claim: _Claim, row: Row) -> None:
        """Keep ``claim`` for the upload's next PATCH here, until shortly before it lapses."""
        claim.held = False  # no longer the request's to give back
        kept = _Held(claim, row)
        self.held[row["id"]] = kept
        asyncio.get_running_loop().call_later(
            max(0.0, claim.until - time.time() - MARGIN), self._forget_kept, kept
        )

    def _forget_kept(self, kept: _Held) -> None:
        if self.held.get(kept.row["id"]) is kept:
            del self.held[kept.row["id"]]

    async def release_kept(self) -> None:
        """Give back the leases kept between PATCHes (at shutdown: another node, or this one
        restarted, need not wait for them to lapse)."""
        kept, self.held = list(self.held.values()), {}
        for one in kept:
            await self.db.run_volatile(_release, one.row["id"], one.claim.holder)

    async def _receive(
        self,
        request: web.Request,
        row: Row,
        claim: _Claim,
        checksum: tuple[str, bytes] | None,
        early: list[bytes] | None = None,
    ) -> Row:
        """Append the body at the upload's offset (``early``: its start, read already); return
        the row as it now stands."""
        early = list(reversed(early or []))
        start = row["received"]
        length = row["length"]
        values: dict[str, Any] = {}
        declared = _number(request, "Upload-Length")
        if declared is not None and declared != length:
            if length is not None:
                raise IntakeError("bad_request", "Upload-Length cannot change")
            if declared < start:
                raise IntakeError("bad_request", f"Upload-Length {declared} < offset {start}")
            if declared > self.settings.max_upload_bytes:
                raise TooLarge("upload.too_large", f"Upload-Length {declared}")
            length = values["length"] = declared
        limit, code = (
            (length, "tus.length_exceeded")
            if length is not None
            else (self.settings.max_upload_bytes, "upload.too_large")
        )
        if request.content_length is not None and start + request.content_length > limit:
            raise TooLarge(code, f"{start} + {request.content_length} > {limit}")
        if row["spool_name"] is not None:
            # Every byte is in and the file has moved to the spool: a repeated last PATCH
            # (its answer was lost) only needs the post.
            if early or await request.content.read(1):
                raise TooLarge(code, "the upload is complete")
            return row if row["post_id"] else await self._finish(row)
        if self.parts is not None:
            from relay.intake import tus_s3

            return await tus_s3.receive(
                self, request, row, claim, checksum, early[::-1], values, limit, code
            )
        hasher = CHECKSUMS[checksum[0]]() if checksum else None
        received = start
        interrupted = False
        threads = self.relay.spool.syncing()
        recorded = row["received"]  # what the row says, as progress is recorded below

        def on_record() -> int:
            return recorded

        async with _open_for_writing(self.dir / row["id"], threads, on_record) as (file, ahead):
            file.seek(start)
            renew_at = time.monotonic() + min(RENEW, claim.until - time.time() - MARGIN)
            while True:
                try:
                    if early:
                        chunk = early.pop()
                    else:
                        async with asyncio.timeout(IDLE):
                            chunk = await request.content.read(CHUNK)
                except (OSError, ClientPayloadError):  # the client went away, or went quiet
                    interrupted = True
                    break
                if not chunk:
                    break
                if received + len(chunk) > limit:
                    raise TooLarge(code, f"over {limit} bytes")
                if time.monotonic() >= renew_at:
                    # Never write on a lapsed claim; without a checksum to verify first, also
                    # record what is on disk so a long PATCH cut off loses little.
                    progress = {"received": received} if hasher is None else {}
                    if progress:
                        await ahead.wait()
                    if not await self._sync_and_renew(
                        file if progress else None, row["id"], claim, False, progress
                    ):
                        raise IntakeError("tus.locked", "claim lapsed")
                    row = {**row, **progress}
                    recorded = row["received"]
                    renew_at = time.monotonic() + RENEW
                file.write(chunk)
                received += len(chunk)
                received_bytes.inc(len(chunk))
                ahead.wrote(len(chunk))
                if hasher is not None:
                    hasher.update(chunk)
            if interrupted and hasher is not None:
                return row  # an unverifiable chunk is discarded; nobody hears the answer
            if hasher is not None and checksum and hasher.digest() != checksum[1]:
                raise RelayError("tus.checksum_mismatch")  # discarded: the offset stays
            await ahead.wait()
            file.truncate(received)  # drop bytes of a PATCH cut off before its answer
            values.update(
                received=received, expires_at=time.time() + self.settings.tus_expiry_seconds
            )
            finished = length is not None and received == length
            if finished and row["spool_name"] is None:
                values["spool_name"] = new_id()  # recorded before the move, so never lost
            # The lease stays while a post is to be made under it, and is kept for the next
            # PATCH of an unfinished upload; else it goes with the new offset.
            making_post = finished and row["post_id"] is None
            keep = not finished and not interrupted
            release = not (making_post or keep)
            lease_for = HOLD if keep else LEASE
            if not await self._sync_and_renew(file, row["id"], claim, release, values, lease_for):
                claim.held = False
                raise IntakeError("tus.locked", "claim lapsed")
            recorded = received
        claim.held = not release
        row = {**row, **values}
        if keep:
            self._keep(claim, row)
        if making_post:
            row = await self._finish(row)
        return row

    async def _sync_and_renew(
        self,
        file: BinaryIO | None,
        upload_id: str,
        claim: _Claim,
        release: bool,
        values: dict[str, Any],
        lease_for: float = LEASE,
    ) -> bool:
        """fsync ``file`` (if given), then ``_renew``: on one thread, in one trip off the loop,
        so the offset is recorded only once the bytes it counts are on disk."""
        if file is not None:
            file.flush()

        def work() -> bool:
            if file is not None:
                os.fsync(file.fileno())
            now = time.time()
            renewed = self.db.run_here(
                _renew, upload_id, claim.holder, now, release, lease_for, **values
            )
            if renewed:
                claim.until = now + lease_for
            return renewed

        return await asyncio.get_running_loop().run_in_executor(self.relay.spool.syncing(), work)

    async def _finish(self, row: Row) -> Row:
        """Spool a complete upload and make it a post; safe to run again after any crash."""
        spool = self.relay.spool
        name = row["spool_name"]
        source = self.dir / row["id"]
        in_store = False
        if self.parts is not None:
            from relay.intake import tus_s3

            in_store = await tus_s3.hand_over(self, row)
        if in_store:
            pass  # the spool took the completed object from the store
        elif source.exists():
            await asyncio.to_thread(spool.adopt, source, name)
        elif not spool.path(name).exists():
            raise RelayError("server.internal", f"upload {row['id']}: bytes missing")
        meta = parse_metadata(row["upload_metadata"])
        if WAIT in meta:  # becomes a post with others, when ``join`` is asked to
            return row
        mime = _text(meta, "filetype", "type") or None
        if mime and (len(mime) > 255 or "/" not in mime):
            mime = None
        filename = clean_filename(_text(meta, "filename", "name"), mime, 0)
        wanted = _post_fields(meta)
        post = await self.relay.acceptor.accept(
            row["user_id"],
            title=_text(meta, "title"),
            text=_text(meta, "text"),
            files=[SpooledFile(name, filename, mime, row["length"])],
            source="tus",
            private=wanted.private,
            draft=wanted.draft,
            publish_at=wanted.publish_at,
            tags=wanted.tags,
            alts=wanted.alts,
            only_destination=wanted.destinations,
            also=functools.partial(
                _mark_finished if self.parts is None else _mark_finished_in_store,
                upload_id=row["id"],
            ),
        )
        if self.parts is not None:
            await tus_s3.after_accept(self, row)
        self.relay.acceptor.took("tus", row["length"])
        log.info("tus upload %s became post %s", row["id"], post.id)
        return {**row, "post_id": post.id}

    async def _settle(self, row: Row) -> Row:
        """Finish an upload whose last byte landed but whose post a crash prevented."""
        if row["spool_name"] is None or row["post_id"] is not None:
            return row
        try:
            async with self._claimed(row["id"], row["user_id"]) as (fresh, _):
                return await self._finish(fresh) if fresh["post_id"] is None else fresh
        except Exception as exc:  # busy elsewhere, or the store is down: say what is known
            log.warning("tus upload %s not finished yet: %s", row["id"], exc)
            return row

    def _describe(self, row: Row, headers: dict[str, str]) -> None:
        if row["length"] is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(row["length"])
        if row["post_id"] is not None:
            headers["Relay-Post-Id"] = row["post_id"]
            headers["Relay-Post-Url"] = self.relay.page_url(row["post_id"])
        elif row["spool_name"] is None:
            headers["Upload-Expires"] = _http_date(row["expires_at"])

    # the sweep

    async def sweep(self) -> int:
        """Remove expired unfinished uploads (file, then row) and finish stuck ones."""
        now = time.time()
        gone, stuck = await self.db.read(_sweepable, now)
        if self.parts is not None and gone:
            gone = await self._discard_in_store(gone)
        for upload_id in gone:
            await asyncio.to_thread((self.dir / upload_id).unlink, missing_ok=True)
        removed = await self.db.run(_forget, gone, now) if gone else 0
        for row in stuck:
            if row["expires_at"] < now and WAIT in parse_metadata(row["upload_metadata"]):
                await self._drop_unjoined(row)
            else:
                await self._settle(row)
        if removed:
            log.info("tus: removed %d expired upload(s)", removed)
        return removed

    async def _discard_in_store(self, ids: list[str]) -> list[str]:
        """Abort the multipart uploads of expired uploads and remove their tails; the ids of
        those done (the others stay for the next sweep: the store may be back by then)."""
        done = []
        for upload_id, multipart_id, tail in await self.db.read(tus_parts.stored_objects, ids):
            try:
                await self.parts.discard(upload_id, multipart_id, tail)
            except RelayError as exc:
                log.warning("tus: upload %s not removed from the store yet: %s", upload_id, exc)
                continue
            done.append(upload_id)
        return done

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("tus sweep failed")
            await asyncio.sleep(self.settings.tus_cleanup_interval_seconds)

    # one post of several uploads (the web app's upload page)

    async def join(self, user_id: str, upload_ids: list[str], **post: Any) -> Post:
        """One post of the user's finished uploads marked ``wait``, one item each in the order
        given; ``post``: the post's fields, as ``accept`` takes them. Each upload is held while
        the post is committed and marked finished in the same transaction, so a second join
        (a form sent twice) finds them taken: ``upload.not_finished``, never a second post."""
        async with contextlib.AsyncExitStack() as held:
            rows = []
            for upload_id in dict.fromkeys(upload_ids):
                row, _ = await held.enter_async_context(self._claimed(upload_id, user_id))
                meta = parse_metadata(row["upload_metadata"])
                if row["spool_name"] is None or row["post_id"] is not None or WAIT not in meta:
                    raise RelayError("upload.not_finished", upload_id)
                rows.append(await self._finish(row))  # into the spool, if a crash stopped it
            if not rows:
                raise IntakeError("upload.no_file")

            mark = _mark_finished if self.parts is None else _mark_finished_in_store

            def mark_all(conn: Connection, made: Post) -> None:
                for row in rows:
                    mark(conn, made, upload_id=row["id"])

            made = await self.relay.acceptor.accept(
                user_id, files=[_spooled(row) for row in rows], source="tus", also=mark_all, **post
            )
            if self.parts is not None:  # the completed objects, now the spool's copies
                from relay.intake import tus_s3

                for row in rows:
                    await tus_s3.after_accept(self, row)
        self.relay.acceptor.took("tus", sum(row["length"] for row in rows))
        log.info("tus uploads %s became post %s", ",".join(r["id"] for r in rows), made.id)
        return made

    async def _drop_unjoined(self, row: Row) -> None:
        """A finished upload that waited to be joined and never was (the page was left): gone
        when it expires, as an unfinished one would be; its tombstone goes with the sweep."""
        try:
            async with self._claimed(row["id"], row["user_id"]) as (fresh, _):
                if fresh["post_id"] is None:
                    await asyncio.to_thread((self.dir / fresh["id"]).unlink, missing_ok=True)
                    self.relay.spool.remove(fresh["spool_name"])
                    await self.db.run(_set, fresh["id"], terminated_at=time.time())
        except Exception as exc:  # busy elsewhere: the next sweep tries again
            log.warning("tus upload %s not dropped yet: %s", row["id"], exc)


def _spooled(row: Row) -> SpooledFile:
    """A finished upload's file in the spool, named and typed as its metadata says."""
    meta = parse_metadata(row["upload_metadata"])
    mime = _text(meta, "filetype", "type") or None
    if mime and (len(mime) > 255 or "/" not in mime):
        mime = None
    filename = clean_filename(_text(meta, "filename", "name"), mime, 0)
    return SpooledFile(row["spool_name"], filename, mime, row["length"])


class _SyncAhead:
    """Flushes a file being written to disk on a thread every ``SYNC_AHEAD`` bytes, one flush
    at a time, so the disk writes while more bytes arrive."""

    def __init__(self, file: BinaryIO, threads: Executor) -> None:
        self.file = file
        self.threads = threads
        self.unsynced = 0
        self.flushing: asyncio.Future[None] | None = None

    async def settle(self) -> None:
        """The flush under way, done, whatever came of it (the final fsync still decides)."""
        if self.flushing is not None:
            await asyncio.gather(self.flushing, return_exceptions=True)

    def wrote(self, size: int) -> None:
        self.unsynced += size
        if self.unsynced >= SYNC_AHEAD and (self.flushing is None or self.flushing.done()):
            if self.flushing is not None and self.flushing.exception() is not None:
                return  # wait() raises it
            self.file.flush()
            self.flushing = asyncio.get_running_loop().run_in_executor(
                self.threads, os.fdatasync, self.file.fileno()
            )
            self.unsynced = 0

    async def wait(self) -> None:
        """The flush under way, done; an error it met is raised here."""
        if self.flushing is not None:
            await self.flushing


async def _read_ahead(stream: StreamReader, size: int, early: list[bytes]) -> None:
    """Up to ``size`` bytes of a body into ``early``, until cancelled (a read cancelled takes
    nothing from the stream); stops at the end, an error or silence, which the reader that
    takes over then meets itself."""
    total = 0
    with contextlib.suppress(OSError, ClientPayloadError):
        while total < size:
            async with asyncio.timeout(IDLE):
                chunk = await stream.read(min(CHUNK, size - total))
            if not chunk:
                break
            early.append(chunk)
            total += len(chunk)


def _set(conn: Connection, upload_id: str, **values: Any) -> None:
    conn.execute(update(uploads).where(uploads.c.id == upload_id).values(**values))


def _known(user_id: str | None) -> str:
    if user_id is None:
        raise AuthError()
    return user_id


def _check_visible(row: Row | None, user_id: str) -> Row:
    if row is None or row["user_id"] != user_id:
        raise NotFound()
    if row["terminated_at"] is not None:
        raise RelayError("tus.terminated")
    if row["spool_name"] is None and row["expires_at"] < time.time():
        raise RelayError("tus.expired")
    return row


def _require_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != VERSION:
        request[_HEADERS]["Tus-Version"] = VERSION
        raise RelayError("tus.unsupported_version")


def _checksum(request: web.Request) -> tuple[str, bytes] | None:
    header = request.headers.get("Upload-Checksum")
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise RelayError("tus.checksum_unsupported", algorithm)
    try:
        return algorithm, base64.b64decode(value.strip(), validate=True)
    except binascii.Error as exc:
        raise IntakeError("bad_request", "Upload-Checksum is not base64") from exc


@contextlib.asynccontextmanager
async def _open_for_writing(
    path: Path, threads: Executor, recorded: Callable[[], int]
) -> AsyncIterator[tuple[BinaryIO, _SyncAhead]]:
    """The upload's file, for writing; ``recorded``: the offset its row holds now."""
    # O_CREAT: the row is inserted before the file exists, so a crash between leaves no orphan.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with os.fdopen(fd, "r+b") as file:
            ahead = _SyncAhead(file, threads)
            try:
                yield file, ahead
            finally:
                await ahead.settle()  # never close the file under a flush
    except OSError as exc:
        if temporary_error(exc) is not None:
            # A full disk: bytes past the recorded offset are no one's (the client sends them
            # again from there); their space goes back now, once the file is closed.
            with contextlib.suppress(OSError):
                os.truncate(path, recorded())
        raise


# --- wiring -------------------------------------------------------------------------------------

TUS = web.AppKey("tus", TusDoor)


def _route(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler calling ``TusDoor.<name>``, with tus and CORS headers on every answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        request[_HEADERS] = {}
        try:
            response: web.StreamResponse = await getattr(request.app[TUS], name)(request)
        except Exception as exc:
            # A full disk or a lost database is said as such (507/503), with the tus headers.
            known = exc if isinstance(exc, RelayError) else temporary_error(exc)
            if known is None:
                raise
            if isinstance(known, AuthError):
                auth.failed(request)  # a PATCH looks its token up inside the claim
            response = relay_error_response(request, known)
        response.headers.update(request[_HEADERS])
        if name != "info":
            response.headers["Tus-Resumable"] = VERSION
        if "Origin" in request.headers:
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Expose-Headers"] = EXPOSE
        return response

    handler.__name__ = f"tus_{name}"
    return handler


async def tus_ctx(app: web.Application) -> AsyncIterator[None]:
    """The door and its periodic sweep; after the relay's own context, which it uses."""
    door = TusDoor(app[RELAY])
    app[TUS] = door
    task = asyncio.create_task(door.sweep_forever(), name="tus-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await door.release_kept()
    if door.parts is not None:
        door.parts.close()


def setup_routes(app: web.Application) -> None:
    app.router.add_route("OPTIONS", PREFIX, _route("options"))
    app.router.add_post(PREFIX, _route("create"))
    one = PREFIX + "{upload_id}"
    app.router.add_route("OPTIONS", one, _route("options"))
    app.router.add_route("HEAD", one, _route("head"))
    app.router.add_get(one, _route("info"), allow_head=False)
    app.router.add_patch(one, _route("patch"))
    app.router.add_delete(one, _route("terminate"))
    app.router.add_post(one, _route("override"))
