"""Where originals and renditions live.

``Store`` is the small core every backend implements; optional capabilities are their own small
protocols (``LocalPaths`` lets the relay hand a file to the kernel with sendfile; ``Adopter``
takes a file its caller is done with without copying it). One module per backend;
``tests/contract/`` is the conformance suite every backend passes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlparse

if TYPE_CHECKING:
    from relay.config import Settings


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    content_disposition: str | None = None
    cache_control: str | None = None


class Store(Protocol):
    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> None: ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``key`` from ``start`` up to, not including, ``end``."""
        ...

    async def delete(self, key: str) -> None: ...

    def url(self, key: str, *, private: bool = False) -> str | None:
        """A URL where clients fetch the object directly, or None if the relay serves it.
        ``private`` media never get a permanent public link (a store signs one instead)."""
        ...

    async def check(self) -> None:
        """Raise ``StorageError`` with what to fix when the store cannot be used."""
        ...


@runtime_checkable
class LocalPaths(Protocol):
    def local_path(self, key: str) -> Path: ...


@runtime_checkable
class Adopter(Protocol):
    async def adopt_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        """``put_file`` for a file its caller will neither change nor write again (it may
        remove its own name for it): the store may keep those very bytes rather than a copy."""
        ...


async def put_done_file(
    store: Store,
    key: str,
    path: Path,
    content_type: str,
    *,
    content_disposition: str | None = None,
    cache_control: str | None = None,
) -> None:
    """``adopt_file`` where ``store`` can, ``put_file`` elsewhere."""
    put = store.adopt_file if isinstance(store, Adopter) else store.put_file
    await put(
        key,
        path,
        content_type,
        content_disposition=content_disposition,
        cache_control=cache_control,
    )


def valid_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"bad storage key {key!r}")
    if any(p.startswith(".") for p in parts):
        raise ValueError(f"bad storage key {key!r}")
    return key


def open_store(url: str, settings: Settings | None = None) -> Store:
    """The store behind ``url``; ``settings`` tune the S3 client (defaults and env when None)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from relay.storage.local import LocalStore

        if settings is None:
            return LocalStore(Path(parsed.path))
        from functools import partial

        from relay.config import secret_key
        from relay.storage.media import MediaSigner

        signer = MediaSigner(partial(secret_key, settings), settings.private_media_seconds)
        return LocalStore(Path(parsed.path), public_url=settings.public_url, signer=signer)
    if parsed.scheme == "s3":
        from relay.config import Settings
        from relay.storage.s3 import S3Store

        return S3Store.from_url(url, settings or Settings())
    raise ValueError(
        f"unsupported RELAY_STORAGE_URL scheme {parsed.scheme!r} (file:// or s3://BUCKET[/PREFIX])"
    )
