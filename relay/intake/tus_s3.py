"""tus uploads in an S3 store, as tusd's s3store keeps them, so that any node continues any upload.

An upload is an S3 multipart upload, begun when the upload is created. A PATCH's bytes gather in
a buffer of ``PART_SIZE`` (S3's smallest part but the last); each full buffer becomes the next
part. Bytes past the last full part when a PATCH ends are kept as an object of their own, the
*tail*; the next PATCH, on whatever node, reads the tail back as the first bytes of its first
part. The row records the offset, the tail's key and the next part number; ``upload_parts``
records each part's number, ETag and size (relay/db/tus_parts.py), all under the writer's lease:
a writer whose lease was taken over records nothing. A PATCH answers once its bytes are parts
or a tail in the store and recorded, so an offset a client was told is durable and every node's
HEAD says it at once.

Finishing completes the multipart upload as ``tus/<id>`` in the store and hands it to the spool
(``hand_over``). Terminating and expiry abort the multipart upload and remove the
tail. Memory: one part buffer a PATCH, never the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError
from botocore.exceptions import BotoCoreError, ClientError

from relay.auth import new_id
from relay.db import tus_parts
from relay.db.tus_parts import Part
from relay.errors import IntakeError, RelayError, TooLarge
from relay.intake import tus
from relay.storage.s3 import S3Store

if TYPE_CHECKING:
    from relay.intake.tus import Row, TusDoor, _Claim

log = logging.getLogger("relay.tus")

PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part (all but the last); also the most a PATCH holds in memory."""
THREADS = 8
FETCH_CHUNK = 1024 * 1024
TAIL_CACHE = 32 * 1024 * 1024
"""Bytes of tails a node keeps in memory for the next PATCH of their uploads."""
T = TypeVar("T")


class TusParts:
    """The S3 calls of tus uploads kept in ``store``'s bucket, on threads of their own."""

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.client: Any = store.client
        self.bucket = store.bucket
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="tus-s3")
        self._tails: OrderedDict[str, io.BytesIO] = OrderedDict()
        """Tails this node stored lately, by key: a client's next PATCH mostly comes back here,
        and then need not read its tail back from the store. A key names one content for
        good (a new tail gets a new key), so what is kept here is never stale."""
        self._tails_size = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def final_key(upload_id: str) -> str:
        """The store key (under the store's prefix) the finished upload is completed as."""
        return f"tus/{upload_id}"

    async def _call(self, doing: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))
        except (BotoCoreError, ClientError) as exc:
            raise self.store._error(exc, doing) from exc

    async def begin(self, upload_id: str) -> str:
        key = self.store.object_key(self.final_key(upload_id))
        answer = await self._call(
            f"multipart upload of {key}",
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
        )
        return str(answer["UploadId"])

    async def upload_part(
        self, upload_id: str, multipart_id: str, number: int, data: io.BytesIO
    ) -> Part:
        key = self.store.object_key(self.final_key(upload_id))
        answer = await self._call(
            f"part {number} of {key}",
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=multipart_id,
            PartNumber=number,
            Body=_rewound(data),
        )
        return Part(number, str(answer["ETag"]), data.getbuffer().nbytes)

    async def put_tail(self, upload_id: str, number: int, data: io.BytesIO) -> str:
        """Keep ``data`` (less than a part) as a new tail object; its store key. A fresh key
        each time: a lapsed writer's late tail never replaces the one recorded."""
        key = f"tus/{upload_id}-tail-{number}-{new_id()[:12]}"
        await self._call(
            f"tail of {key}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.store.object_key(key),
            Body=_rewound(data),
        )
        self._keep_tail(key, data)  # the caller is done with it: no copy
        return key

    def _keep_tail(self, key: str, data: io.BytesIO) -> None:
        self._tails[key] = data
        self._tails_size += data.getbuffer().nbytes
        while self._tails_size > TAIL_CACHE:
            _, dropped = self._tails.popitem(last=False)
            self._tails_size -= dropped.getbuffer().nbytes

    async def read_tail(self, key: str, into: io.BytesIO) -> None:
        """Append the tail's bytes to ``into``: from memory if this node stored it."""
        kept = self._tails.pop(key, None)
        if kept is not None:
            self._tails_size -= kept.getbuffer().nbytes
            into.write(kept.getbuffer())
            return
        answer = await self._call(
            f"read of {key}",
            self.client.get_object,
            Bucket=self.bucket,
            Key=self.store.object_key(key),
        )
        body = answer["Body"]
        try:
            into.write(await self._call(f"read of {key}", body.read))
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self.store.delete(key)

    async def complete(self, upload_id: str, multipart_id: str, parts: list[Part]) -> None:
        """Complete the multipart upload; again after a crash, a completed one is left as is."""
        key = self.store.object_key(self.final_key(upload_id))
        try:
            await self._call(
                f"completing {key}",
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=multipart_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )
        except RelayError as exc:
            cause = exc.__cause__
            if not (
                isinstance(cause, ClientError)
                and _code(cause) == "NoSuchUpload"
                and await self.store.stat(self.final_key(upload_id)) is not None
            ):
                raise

    async def abort(self, upload_id: str, multipart_id: str) -> None:
        key = self.store.object_key(self.final_key(upload_id))
        try:
            await self._call(
                f"aborting {key}",
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=multipart_id,
            )
        except RelayError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "NoSuchUpload"):
                raise

    async def discard(self, upload_id: str, multipart_id: str | None, tail: str | None) -> None:
        """Everything of an unfinished upload in the store: its parts and its tail."""
        if multipart_id:
            await self.abort(upload_id, multipart_id)
        if tail:
            await self.delete(tail)

    async def fetch(self, upload_id: str, target: Path) -> None:
        """Download the finished object into ``target`` (fsynced, then renamed into place): what
        the local spool needs; the store's spool takes the object itself instead. One GET read
        on one thread straight into the file (boto3's transfer manager, four ranged GETs at
        once, took four times as long against moto)."""
        key = self.store.object_key(self.final_key(upload_id))
        partial = target.with_name(target.name + ".fetch")

        def download() -> None:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                with open(partial, "wb") as file:
                    for chunk in body.iter_chunks(FETCH_CHUNK):
                        file.write(chunk)
                    file.flush()
                    os.fsync(file.fileno())
            finally:
                body.close()
            os.replace(partial, target)

        await self._call(f"download of {key}", download)


def _rewound(data: io.BytesIO) -> io.BytesIO:
    """The buffer as a body to send: boto3 reads a file object from where it stands (and
    rewinds it itself to retry), so no copy of the part is made."""
    data.seek(0)
    return data


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def hand_over(door: TusDoor, row: Row) -> bool:
    """Make the finished upload's bytes the spool's ``row["spool_name"]``; True when the spool
    took the object from the store, False when they are now a file in the tus folder (or
    already in the local spool) for ``Spool.adopt``.

    A spool that keeps its files in the object store says so with ``adopt_object(key, name)``
    (a coroutine taking the store key the upload was completed as, safe to call again): it
    copies the object inside the store, and the bytes never pass through this node; the
    completed object is deleted once the post is made (``after_accept``). The local spool
    gets a copy, streamed into the tus folder and moved in as an upload kept there would be.
    """
    parts: TusParts = door.parts  # type: ignore[assignment]
    spool = door.relay.spool
    name = row["spool_name"]
    adopt_object = getattr(spool, "adopt_object", None)
    local = door.dir / row["id"]
    if adopt_object is None and (local.exists() or spool.path(name).exists()):
        return False  # fetched before a crash: the rest is the local store's way
    if not row["length"]:
        # S3 has no empty multipart upload: an empty file, and nothing left in the store.
        if row["multipart_id"]:
            await parts.abort(row["id"], row["multipart_id"])
        local.touch()
        return False
    numbered = await door.db.read(tus_parts.parts_of, row["id"])
    await parts.complete(row["id"], row["multipart_id"], numbered)
    if adopt_object is not None:
        await adopt_object(parts.final_key(row["id"]), name)
        return True
    await parts.fetch(row["id"], local)
    return False


async def after_accept(door: TusDoor, row: Row) -> None:
    """The completed object, once the post has its copy in the spool (a copy in the store,
    or the node's file)."""
    if row["length"]:
        parts: TusParts = door.parts  # type: ignore[assignment]
        with contextlib.suppress(RelayError):  # a leftover object harms nothing but space
            await parts.delete(parts.final_key(row["id"]))


async def receive(
    door: TusDoor,
    request: web.Request,
    row: Row,
    claim: _Claim,
    checksum: tuple[str, bytes] | None,
    early: list[bytes],
    values: dict[str, Any],
    limit: int,
    code: str,
) -> Row:
    """``TusDoor._receive`` for the S3 store: append the body as parts and a tail."""
    parts: TusParts = door.parts  # type: ignore[assignment]
    upload_id = row["id"]
    length = values.get("length", row["length"])
    hasher = tus.CHECKSUMS[checksum[0]]() if checksum else None
    old_tail: str | None = row["tail_key"]
    # The part being gathered: a file object boto3 sends as it is (a copy would double it).
    buffer = io.BytesIO()
    if old_tail:
        await parts.read_tail(old_tail, buffer)
    tail_in_buffer = bool(old_tail)
    received = row["received"]
    next_part = row["next_part"]
    unrecorded: list[Part] = []  # sent, recorded only once the checksum is known good
    interrupted = False
    renew_at = time.monotonic() + min(tus.RENEW, claim.until - time.time() - tus.MARGIN)
    pending = list(reversed(early))

    async def record(done: list[Part], release: bool = False, **more: Any) -> None:
        """Record ``done`` and ``more``, renewing the lease (or giving it back)."""
        now = time.time()
        lease = (
            {"locked_until": None, "locked_by": None}
            if release
            else {"locked_until": now + tus.LEASE}
        )
        if not await door.db.run(tus_parts.record, upload_id, claim.holder, lease, done, **more):
            claim.held = False
            raise IntakeError("tus.locked", "claim lapsed")
        claim.until = now + tus.LEASE
        if done is unrecorded:
            unrecorded.clear()

    if row["multipart_id"] is None and length != 0:
        if row["received"]:
            # Begun while the store was local (before RELAY_STORAGE_URL became s3://): its
            # bytes are on some node's disk, out of reach. The client starts again.
            raise RelayError("tus.expired", "begun before the store was S3")
        multipart_id = await parts.begin(upload_id)
        try:
            await record([], multipart_id=multipart_id)
        except IntakeError:
            await parts.abort(upload_id, multipart_id)
            raise
        row = {**row, "multipart_id": multipart_id}

    while True:
        room = PART_SIZE - buffer.tell()
        try:
            if pending:
                chunk = pending.pop()
                if len(chunk) > room:  # read ahead in larger pieces than the part has room for
                    pending.append(chunk[room:])
                    chunk = chunk[:room]
            else:
                async with asyncio.timeout(tus.IDLE):
                    chunk = await request.content.read(min(tus.CHUNK, room))
        except (OSError, ClientPayloadError):  # the client went away, or went quiet
            interrupted = True
            break
        if not chunk:
            break
        if received + len(chunk) > limit:
            raise TooLarge(code, f"over {limit} bytes")
        buffer.write(chunk)
        received += len(chunk)
        tus.received_bytes.inc(len(chunk))
        if hasher is not None:
            hasher.update(chunk)
        if buffer.tell() >= PART_SIZE:
            unrecorded.append(
                await parts.upload_part(upload_id, row["multipart_id"], next_part, buffer)
            )
            buffer = io.BytesIO()
            next_part += 1
            if hasher is None:  # the part is the upload's now: recorded, the old tail goes
                await record(unrecorded, received=received, next_part=next_part, tail_key=None)
                row = {**row, "received": received, "next_part": next_part, "tail_key": None}
                renew_at = time.monotonic() + tus.RENEW
                if tail_in_buffer and old_tail:
                    await _forget_object(parts, old_tail)
                tail_in_buffer = False
                old_tail = None
        if time.monotonic() >= renew_at:
            await record([])  # never send on a lapsed claim: renew it while bytes flow
            renew_at = time.monotonic() + tus.RENEW
    if interrupted and hasher is not None:
        return row  # an unverifiable chunk is discarded; nobody hears the answer
    if hasher is not None and checksum and hasher.digest() != checksum[1]:
        raise RelayError("tus.checksum_mismatch")  # discarded: the offset stays
    finished = length is not None and received == length
    new_tail: str | None = old_tail if not tail_in_buffer else None
    gathered = buffer.tell()
    if finished and gathered:
        unrecorded.append(
            await parts.upload_part(upload_id, row["multipart_id"], next_part, buffer)
        )
        next_part += 1
    elif gathered and received != row["received"]:
        new_tail = await parts.put_tail(upload_id, next_part, buffer)
    elif gathered:
        new_tail = old_tail  # nothing came: the tail read back stays what it was
    values.update(
        received=received,
        next_part=next_part,
        tail_key=None if finished else new_tail,
        expires_at=time.time() + door.settings.tus_expiry_seconds,
    )
    if finished and row["spool_name"] is None:
        values["spool_name"] = new_id()  # recorded with the last part, so never lost
    # Unlike the local store, the lease is never kept between PATCHes: the next one may come
    # to another node behind the balancer, which must not wait for it to lapse.
    making_post = finished and row["post_id"] is None
    try:
        await record(unrecorded, release=not making_post, **values)
    except IntakeError:
        if new_tail and new_tail != old_tail:
            await _forget_object(parts, new_tail)
        raise
    claim.held = making_post
    if old_tail and old_tail != values["tail_key"]:
        await _forget_object(parts, old_tail)
    row = {**row, **values}
    if making_post:
        row = await door._finish(row)
    return row


async def _forget_object(parts: TusParts, key: str) -> None:
    try:
        await parts.delete(key)
    except RelayError as exc:  # only space: expiry takes it later with the upload
        log.warning("tus: could not remove %s: %s", key, exc)
