"""The spool in the object store: where bytes wait when several nodes share one S3 bucket.

A message or upload is streamed to ``spool/NAME`` in the bucket while it arrives: bytes wait in
memory up to one part (``PART`` bytes), then go as a part of a multipart upload on a thread of
their own, so a large message holds a part or two in memory, never the whole. ``commit`` sends
what is left (a single ``PUT`` for a message that fits in one part) and returns only when the
object is complete in the store: that is when a door may commit the post and answer. A node
that dies after that loses nothing: any node reads the spooled bytes back from the store.

The node keeps a copy of what passes through it in its data folder (``spool-cache/``): the
door reads the message it just took (its headers, DKIM) and a worker on the same node processes
it without a download. That copy is only a cache: a node whose folder is gone fetches the
object again (``local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import obstore
import obstore.exceptions
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.store import S3Store as ObjectStore

from relay.auth import new_id
from relay.errors import StorageError, TooLarge
from relay.storage.s3 import S3Store

log = logging.getLogger("relay.spool")

PART = 8 * 1024 * 1024
"""Bytes per multipart part (S3 wants at least 5 MiB but for the last)."""
THREADS = 32
"""As many as sessions commit at once: a thread waits on each PUT."""
GRACE = 3600.0
"""Seconds a spooled object no row names is kept at start-up: another node may be between its
PUT and its commit."""
PREFIX = "spool"
CACHE_AGE = 3600.0
"""Seconds a node keeps a copy nobody used: what it took in and another node processed would
otherwise stay for ever. Dropping one costs a download at most (the store has the bytes)."""


class S3SpoolWriter:
    """Streams one file into the bucket; ``write`` never blocks, ``commit`` is durable."""

    def __init__(self, spool: S3Spool, limit: int | None = None, code: str = "upload.too_large"):
        self.spool = spool
        self.name = new_id()
        self.limit = limit
        self.code = code
        self.size = 0
        # What waits for the next part, as the chunks it came in: joined once when it goes.
        # A bytearray grown chunk by chunk was copied again at each of its reallocations (the
        # main process's heap, not mmap): a quarter of the SMTP door's time on the S3 spool.
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._sent = 0  # bytes handed to part uploads
        self._started: Future[str] | None = None  # the multipart upload's id
        self._parts: list[Future[dict[str, Any]]] = []
        self._fd: int | None = None
        self._closed = False
        self.keep_copy = True
        """A copy in the node's cache, for a door that reads its message back (SMTP); an
        upload's bytes are fetched by whichever worker takes them."""

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise TooLarge(self.code, f"over {self.limit} bytes")
        for part in self._parts:  # a part that failed fails the message now, not at its end
            if part.done() and part.exception() is not None:
                self.abort()
                raise part.exception()  # type: ignore[misc]
        self._buffer.append(bytes(chunk))  # a view of the door's buffer is valid only now
        self._buffered += len(chunk)
        if self._buffered >= PART:
            self._send(self._take())

    def _take(self) -> bytes:
        """What is buffered, as one ``bytes``, and the buffer emptied."""
        buffered, self._buffer, self._buffered = self._buffer, [], 0
        return buffered[0] if len(buffered) == 1 else b"".join(buffered)

    def _send(self, data: bytes) -> None:
        pool = self.spool.threads()
        if self._started is None:
            self._started = pool.submit(self._start)
        number, offset = len(self._parts) + 1, self._sent
        self._sent += len(data)
        self._parts.append(pool.submit(self._upload_part, number, offset, data))

    def _start(self) -> str:
        """Opens the multipart upload and the node's cached copy (a file made on a thread:
        never on the event loop)."""
        if self.keep_copy:
            self._fd = os.open(self.spool.cache_tmp / self.name, os.O_WRONLY | os.O_CREAT, 0o600)
        answer = self.spool.call("start of", self.name, "create_multipart_upload")
        return str(answer["UploadId"])

    def _upload_part(self, number: int, offset: int, data: bytes) -> dict[str, Any]:
        assert self._started is not None
        upload_id = self._started.result()  # submitted first, so running or done by now
        if self._fd is not None:
            os.pwrite(self._fd, data, offset)  # any order: each part knows its place
        answer = self.spool.call(
            "part of", self.name, "upload_part", UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def commit_sync(self) -> str:
        if self._started is None:
            data = self._take()
            self.spool.put_object(self.name, data)
            if self.keep_copy:
                self.spool.keep(self.name, data)
            return self.name
        if self._buffered or not self._parts:
            self._send(self._take())
        try:
            upload_id = self._started.result()
            parts = [part.result() for part in self._parts]
            self.spool.call(
                "completion of",
                self.name,
                "complete_multipart_upload",
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.abort()
            raise
        self._close_cache()
        with contextlib.suppress(FileNotFoundError):  # trimmed meanwhile: only a cache
            os.replace(self.spool.cache_tmp / self.name, self.spool.path(self.name))
        return self.name

    async def commit(self) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self.spool.threads(), self.commit_sync
        )

    def _close_cache(self) -> None:
        if self._fd is not None and not self._closed:
            self._closed = True
            os.close(self._fd)

    def abort(self) -> None:
        """Drop what was sent: the multipart upload is aborted on a thread (a store that is
        down keeps it until the next start's sweep)."""
        self._buffer, self._buffered = [], 0
        started, self._started = self._started, None
        if started is None:
            return
        parts, self._parts = self._parts, []

        def drop() -> None:
            with contextlib.suppress(Exception):
                for part in parts:
                    part.exception()  # wait: a part sent after the abort would revive it
                self.spool.call(
                    "abort of", self.name, "abort_multipart_upload", UploadId=started.result()
                )
            with contextlib.suppress(OSError):
                self._close_cache()
            (self.spool.cache_tmp / self.name).unlink(missing_ok=True)

        self.spool.threads().submit(drop)


class S3Spool:
    """The spool under ``spool/`` in the store's bucket (and prefix)."""

    def __init__(self, store: S3Store, cache: Path) -> None:
        self.store = store
        self.root = cache
        self.cache_tmp = cache / "tmp"
        self.ready = cache / "ready"
        self.cache_tmp.mkdir(parents=True, exist_ok=True)
        self.ready.mkdir(parents=True, exist_ok=True)
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._object_store: Any = None
        # A client of its own, with a connection for each thread: the store's pool is sized
        # for its few transfer threads, and twenty sessions committing at once through it
        # opened (and dropped) a new connection for most PUTs.
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=store.endpoint_url,
            config=store.client.meta.config.merge(Config(max_pool_connections=THREADS + 4)),
        )

    @property
    def scratch(self) -> Path:
        """Where a job writes files it will then ``adopt``."""
        return self.cache_tmp

    def threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="relay-s3spool")
            return self._threads

    syncing = threads  # the local spool's name for the same thing (the tus door uses it)

    def close(self) -> None:
        """Wait for the deletes and aborts still running, then stop the threads."""
        with self._lock:
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=True)

    def key(self, name: str) -> str:
        return self.store.object_key(f"{PREFIX}/{_checked(name)}")

    def call(self, doing: str, name: str, method: str, **params: Any) -> Any:
        """One S3 request about ``name``'s object; a failure is a ``StorageError`` (the doors
        answer 451/503, the workers wait)."""
        target = self.key(name)
        try:
            return getattr(self.client, method)(Bucket=self.store.bucket, Key=target, **params)
        except (BotoCoreError, ClientError) as exc:
            raise self.store._error(exc, f"{doing} spool/{name}") from exc  # noqa: SLF001

    def put_object(self, name: str, data: bytes) -> None:
        """``data`` as the object ``name`` in one PUT, through object_store (obstore): what
        nearly every message and upload is (up to ``PART`` bytes).

        Why not boto3 here, as everywhere else: a door's answer waits on this PUT, and boto3
        spends ~3.3 ms of the relay's CPU on a 1 MB PUT (its request pipeline, in Python, under
        the GIL the doors need) where obstore, in Rust and without the GIL, spends ~1.3 ms
        (20 senders, moto's server on 127.0.0.1; bench/scenarios/nodes.py). Credentials come
        from boto3's own chain (``Boto3CredentialProvider``), the endpoint, region and
        addressing style from the store's boto3 client: one configuration for both."""
        try:
            obstore.put(self._fast(), self.key(name), data, use_multipart=False)
        except (obstore.exceptions.BaseError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise StorageError(
                detail=f"PUT of spool/{name} on {self.store.where}: {reason}"
            ) from exc

    def _fast(self) -> Any:
        """The spool's object_store client, made on first use (a store with no credentials
        then fails its PUTs with what to fix, as boto3's would, rather than the start)."""
        with self._lock:
            if self._object_store is None:
                self._object_store = _object_store_like(self.store)
            return self._object_store

    def writer(
        self, limit: int | None = None, code: str = "upload.too_large", *, reread: bool = True
    ) -> S3SpoolWriter:
        writer = S3SpoolWriter(self, limit, code)
        writer.keep_copy = reread
        return writer

    def put_bytes(self, data: bytes) -> str:
        writer = self.writer()
        writer.write(data)
        return writer.commit_sync()

    def keep(self, name: str, data: bytes) -> None:
        """The node's copy of what it just stored (not fsynced: the store holds the bytes)."""
        tmp = self.cache_tmp / name
        try:
            with open(tmp, "wb") as file:
                file.write(data)
            os.replace(tmp, self.path(name))
        except OSError:
            # Only a cache: a full scratch disk costs a download later, not the message.
            log.warning("could not keep a copy of spool/%s here", name, exc_info=True)
            tmp.unlink(missing_ok=True)

    def path(self, name: str) -> Path:
        """The node's copy; it exists on the node that took the bytes (``local`` fetches it
        elsewhere)."""
        return self.ready / _checked(name)

    def local_sync(self, name: str) -> Path:
        """A local copy of the spooled file, fetched from the store when this node has none.
        ``FileNotFoundError`` when the store has no such object either."""
        path = self.path(name)
        try:
            os.utime(path)  # in use: not for trim_cache
            return path
        except FileNotFoundError:
            pass
        tmp = self.cache_tmp / f"{name}.{new_id()}"
        try:
            try:
                self.client.download_file(self.store.bucket, self.key(name), str(tmp))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"no spool/{name} in {self.store.where}") from exc
                raise self.store._error(exc, f"fetch of spool/{name}") from exc  # noqa: SLF001
            except BotoCoreError as exc:
                raise self.store._error(exc, f"fetch of spool/{name}") from exc  # noqa: SLF001
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    async def local(self, name: str) -> Path:
        return await asyncio.get_running_loop().run_in_executor(
            self.threads(), self.local_sync, name
        )

    def adopt(self, source: Path, name: str) -> str:
        """Store a complete local file as ``name`` (multipart past the part size, from disk);
        the file becomes the node's copy."""
        try:
            self.client.upload_file(str(source), self.store.bucket, self.key(name))
        except (BotoCoreError, ClientError) as exc:
            raise self.store._error(exc, f"upload of spool/{name}") from exc  # noqa: SLF001
        try:
            os.replace(source, self.path(name))
        except OSError:
            shutil.move(source, self.path(name))
        return name

    async def adopt_object(self, key: str, name: str) -> None:
        """Take an object already in the store (a finished tus upload, ``key`` under the
        store's prefix) as ``name``: copied inside the store, so its bytes never pass through
        this node. The source stays for its owner to delete once the post is made, so a
        second call after a crash copies again instead of finding nothing."""
        source = {"Bucket": self.store.bucket, "Key": self.store.object_key(key)}

        def copy() -> None:
            try:
                # The managed copy: one CopyObject, or a multipart copy past its size limit.
                self.client.copy(source, self.store.bucket, self.key(name))
            except (BotoCoreError, ClientError) as exc:
                raise self.store._error(exc, f"copy of {key} to spool/{name}") from exc  # noqa: SLF001

        await asyncio.get_running_loop().run_in_executor(self.threads(), copy)

    async def adopt_async(self, source: Path, name: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self.threads(), self.adopt, source, name
        )

    def remove(self, name: str) -> None:
        """Delete the object (on a thread: callers are on the event loop) and the node's copy.
        A delete that fails leaves an object no row names, which a start-up sweep removes."""
        self.path(name).unlink(missing_ok=True)

        def delete() -> None:
            try:
                self.call("delete of", name, "delete_object")
            except StorageError as exc:
                log.warning("spool/%s stays in the store for now: %s", name, exc.detail)

        self.threads().submit(delete)

    def trim_cache(self, max_age: float = CACHE_AGE) -> int:
        """Drop the node's copies not used for ``max_age`` seconds; how many went."""
        cutoff = time.time() - max_age
        dropped = 0
        for folder in (self.cache_tmp, self.ready):
            for path in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        dropped += 1
        return dropped

    def recover(self, in_use: set[str], grace: float = GRACE) -> list[str]:
        """At start-up: the node's copies all go (a cache), and objects and multipart uploads
        under ``spool/`` that no row names and that are older than ``grace`` (never
        acknowledged: the door that sent them died before its commit). Returns the names
        removed from the store."""
        for folder in (self.cache_tmp, self.ready):
            for leftover in folder.iterdir():
                leftover.unlink(missing_ok=True)
        client, bucket = self.client, self.store.bucket
        prefix = self.store.object_key(PREFIX) + "/"
        cutoff = datetime.fromtimestamp(time.time() - grace, UTC)
        removed = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name not in in_use and obj["LastModified"] < cutoff:
                        client.delete_object(Bucket=bucket, Key=obj["Key"])
                        removed.append(name)
            uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
            for upload in uploads.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except (BotoCoreError, ClientError) as exc:
            # Leftovers cost space, not messages: the next start tries again.
            log.warning("sweeping spool/ in %s failed: %s", self.store.where, exc)
        return removed


def _checked(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad spool name {name!r}")
    return name


def _object_store_like(store: S3Store) -> Any:
    """An obstore S3 client for ``store``'s bucket, configured as its boto3 client is."""
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise ValueError(
            "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE)"
        )
    meta = store.client.meta
    endpoint = store.endpoint_url
    style = (meta.config.s3 or {}).get("addressing_style", "auto")
    # boto3's "auto" is virtual-hosted on AWS; against another endpoint (MinIO, Garage, Ceph)
    # the relay has always asked for path style unless told "virtual".
    virtual = style == "virtual" or (style == "auto" and endpoint is None)
    config: dict[str, Any] = {
        "region": meta.region_name or "us-east-1",
        "virtual_hosted_style_request": virtual,
    }
    if endpoint:
        config["endpoint"] = endpoint
    return ObjectStore(
        store.bucket,
        credential_provider=Boto3CredentialProvider(session),
        client_options={
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "connect_timeout": timedelta(seconds=5),
            "timeout": timedelta(seconds=60),
        },
        # As boto3's standard mode (three attempts), and never longer than a sender waits.
        retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=30)},
        **config,
    )
