"""Any S3-compatible bucket (AWS, MinIO, Ceph, R2, Garage) through boto3.

Keys live under the URL's prefix: ``s3://BUCKET/PREFIX`` and key ``post/item/original.jpg`` give
the object ``PREFIX/post/item/original.jpg``. boto3 blocks, so every call runs in a bounded thread
pool of our own, never on the event loop (and never in the loop's default pool, which the rest of
the relay shares). Uploads go through one shared transfer manager: files past the part size are
sent as multipart uploads straight from disk, a few parts at a time, so memory stays at a few
parts whatever the size of the file.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlparse

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from relay.errors import StorageError
from relay.storage import ObjectInfo, valid_key

if TYPE_CHECKING:
    from relay.config import Settings

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
T = TypeVar("T")

_MISSING = ("404", "NoSuchKey", "NotFound")
_DENIED = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_url: str | None = None,
        presign_seconds: int = 3600,
        addressing_style: str = "auto",
        checksum: str = "when_required",
        part_size: int = 16 * 1024 * 1024,
        concurrency: int = 4,
    ) -> None:
        self.bucket = bucket
        self.prefix = valid_key(prefix.strip("/")) if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url or None
        self.public_url = (public_url or "").rstrip("/") or None
        self.presign_seconds = presign_seconds
        config = Config(
            region_name=region or None,
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            request_checksum_calculation=checksum,
            response_checksum_validation=checksum,
            # Every pool thread and every transfer thread may hold a connection at once.
            max_pool_connections=2 * concurrency + 4,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
        )
        # A session of our own: boto3's default session is shared module state.
        self.client: Any = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=config
        )
        self._transfer = create_transfer_manager(
            self.client,
            TransferConfig(
                multipart_threshold=part_size,
                multipart_chunksize=part_size,
                max_concurrency=concurrency,
                use_threads=True,
            ),
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency + 4, thread_name_prefix="s3")

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> S3Store:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"RELAY_STORAGE_URL {url!r} names no bucket: use s3://BUCKET[/PREFIX]")
        return cls(
            parsed.netloc,
            parsed.path,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            public_url=settings.s3_public_url,
            presign_seconds=settings.s3_presign_seconds,
            addressing_style=settings.s3_addressing_style,
            checksum=settings.s3_checksum,
            part_size=settings.s3_part_size_bytes,
            concurrency=settings.s3_concurrency,
        )

    def close(self) -> None:
        self._transfer.shutdown()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def object_key(self, key: str) -> str:
        key = valid_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (
            f" at {self.endpoint_url}" if self.endpoint_url else ""
        )

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _error(self, exc: Exception, doing: str) -> StorageError:
        """A StorageError (retried by the job queue) that says what went wrong and, where we
        can tell, what to fix."""
        if isinstance(exc, EndpointConnectionError):
            return StorageError(
                detail=f"cannot reach endpoint {self.endpoint_url or 'AWS S3'} ({exc}): "
                "check RELAY_S3_ENDPOINT_URL"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                detail="no S3 credentials found: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        if isinstance(exc, ClientError):
            code, status = _code(exc), _status(exc)
            if code in ("NoSuchBucket",) or (doing == "check" and status == 404):
                return StorageError(
                    detail=f"bucket {self.bucket} does not exist: create it or fix "
                    "RELAY_STORAGE_URL"
                )
            if status == 403 or code in _DENIED:
                return StorageError(
                    detail=f"credentials rejected for bucket {self.bucket} ({code}): check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the "
                    "bucket's policy"
                )
            if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
                return StorageError(
                    detail=f"bucket {self.bucket} is in another region ({code}): set "
                    "RELAY_S3_REGION or AWS_DEFAULT_REGION to the bucket's region"
                )
            if code in ("XAmzContentSHA256Mismatch", "InvalidArgument", "NotImplemented"):
                return StorageError(
                    detail=f"{doing} on {self.where} refused ({code}: {exc}); S3-compatible "
                    "servers often need RELAY_S3_CHECKSUM=when_required"
                )
        return StorageError(detail=f"{doing} on {self.where}: {type(exc).__name__}: {exc}")

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        # Stored as given (the Store contract): the pipeline names the original's disposition;
        # renditions (images, video, audio the handlers made) carry none, which a bucket answers
        # with no header and a browser therefore shows inline.
        extra = {"ContentType": content_type}
        if content_disposition:
            extra["ContentDisposition"] = content_disposition
        if cache_control:
            extra["CacheControl"] = cache_control
        target = self.object_key(key)
        try:
            # The transfer manager streams the file from disk, in parts past the threshold;
            # waiting for it is what takes a pool thread.
            future = self._transfer.upload(str(path), self.bucket, target, extra_args=extra)
            try:
                await self._run(future.result)
            except asyncio.CancelledError:
                future.cancel()  # a stopping worker leaves no upload running behind it
                raise
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"upload of {target}") from exc
        except OSError as exc:
            raise StorageError(detail=f"upload of {target} from {path}: {exc}") from exc

    async def stat(self, key: str) -> ObjectInfo | None:
        target = self.object_key(key)
        try:
            head = await self._run(self.client.head_object, Bucket=self.bucket, Key=target)
        except ClientError as exc:
            if _code(exc) in _MISSING or _status(exc) == 404:
                return None
            raise self._error(exc, f"stat of {target}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"stat of {target}") from exc
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            content_type=head.get("ContentType") or "application/octet-stream",
            content_disposition=head.get("ContentDisposition"),
            cache_control=head.get("CacheControl"),
        )

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        target = self.object_key(key)
        if end is not None and end <= start:
            return
        params: dict[str, str] = {"Bucket": self.bucket, "Key": target}
        if start or end is not None:
            # HTTP ranges are inclusive; ours, like Python's slices, are not.
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await self._run(self.client.get_object, **params)
        except ClientError as exc:
            if _code(exc) == "InvalidRange" or _status(exc) == 416:
                return  # past the end: nothing, as a slice would give
            if _code(exc) in _MISSING:
                raise FileNotFoundError(f"{self.where}: no object {target}") from exc
            raise self._error(exc, f"read of {target}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"read of {target}") from exc
        body = response["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(READ_CHUNK)
        try:
            while True:
                try:
                    chunk = await self._run(next, chunks, b"")
                except (BotoCoreError, ClientError) as exc:
                    raise self._error(exc, f"read of {target}") from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        target = self.object_key(key)
        try:
            # DELETE of a missing key succeeds in S3, as unlink(missing_ok=True) does here.
            await self._run(self.client.delete_object, Bucket=self.bucket, Key=target)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, f"delete of {target}") from exc

    def url(self, key: str, *, private: bool = False) -> str | None:
        """A plain URL under RELAY_S3_PUBLIC_URL, else (and always for private media) a
        presigned GET. Signing is local computation, so it is fine on the event loop, and each
        call signs afresh, so a page or an API answer never hands out an expired link."""
        target = self.object_key(key)
        if self.public_url and not private:
            return f"{self.public_url}/{quote(target)}"
        try:
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": target},
                    ExpiresIn=self.presign_seconds,
                )
            )
        except BotoCoreError as exc:
            raise self._error(exc, f"signing a URL for {target}") from exc

    async def check(self) -> None:
        try:
            await self._run(self.client.head_bucket, Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, "check") from exc
