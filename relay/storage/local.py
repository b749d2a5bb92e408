"""A folder on the relay's disk. Object metadata sits beside the tree in ``.meta/`` (JSON).

The relay serves these files itself (``/media/``): public media at a permanent URL, private and
draft posts' media only at a signed, expiring one (``MediaSigner``), as S3 presigns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlencode

from relay.errors import StorageError
from relay.storage import ObjectInfo, media, valid_key

CHUNK = 256 * 1024


def _umask() -> int:
    # Read, not set and set back: another thread's file made meanwhile would get ours.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # not Linux: at import, before the relay starts its threads
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()
"""What a copy gets (``open``'s default): a linked file is given it too, not its source's."""


def _linked(source: Path, tmp: Path) -> bool:
    tmp.unlink(missing_ok=True)  # a crash's leftover: a link never replaces a name
    try:
        os.link(source, tmp)
    except OSError:  # another filesystem, or one without hard links: the caller copies
        return False
    os.chmod(tmp, _NEW_FILE_MODE)
    return True


class LocalStore:
    def __init__(
        self, root: Path, *, public_url: str | None = None, signer: media.MediaSigner | None = None
    ) -> None:
        self.root = root
        self._meta = root / ".meta"
        self.public_url = public_url
        self.signer = signer

    def local_path(self, key: str) -> Path:
        return self.root / valid_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._meta / (valid_key(key) + ".json")

    def _put_sync(
        self, key: str, source: Path, info: dict[str, str | None], link: bool = False
    ) -> None:
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        if not (link and _linked(source, tmp)):
            shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta_tmp = meta.with_name(f".{meta.name}.tmp")
        meta_tmp.write_text(json.dumps(info))
        os.replace(meta_tmp, meta)
        os.replace(tmp, target)

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        await self._put(key, path, content_type, content_disposition, cache_control, link=False)

    async def adopt_file(
        self,
        key: str,
        path: Path,
        content_type: str,
        *,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> None:
        """A hard link to ``path`` when it is on the store's filesystem (the relay's defaults
        keep the spool, the work folder and the store under one data folder), else a copy.
        A photo's original and renditions were copied and then their sources removed: ~2 ms
        of a photo's CPU, and twice its megabytes in the page cache."""
        await self._put(key, path, content_type, content_disposition, cache_control, link=True)

    async def _put(
        self,
        key: str,
        path: Path,
        content_type: str,
        content_disposition: str | None,
        cache_control: str | None,
        link: bool,
    ) -> None:
        info = {
            "content_type": content_type,
            # As given (the Store contract); /media/ decides inline or attachment by type.
            "content_disposition": content_disposition,
            "cache_control": cache_control,
        }
        try:
            await asyncio.to_thread(self._put_sync, key, path, info, link)
        except OSError as exc:
            raise StorageError(detail=f"local store: {exc}") from exc

    def _stat_sync(self, key: str) -> ObjectInfo | None:
        try:
            size = self.local_path(key).stat().st_size
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            return None
        return ObjectInfo(
            key=key,
            size=size,
            content_type=meta.get("content_type") or "application/octet-stream",
            content_disposition=meta.get("content_disposition"),
            cache_control=meta.get("cache_control"),
        )

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat_sync, key)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.local_path(key)
        with open(path, "rb") as f:
            f.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = await asyncio.to_thread(f.read, CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def url(self, key: str, *, private: bool = False) -> str | None:
        """None for public media (the relay's permanent ``/media/`` URL); a signed, expiring
        ``/media/`` URL for private ones."""
        if not private or self.signer is None or self.public_url is None:
            # Without a signer (a bare store, as in tools) private media get the unsigned URL,
            # which the relay refuses: failing closed.
            return None
        query = urlencode(self.signer.sign(valid_key(key)))
        return f"{self.public_url}/media/{quote(key)}?{query}"

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            probe_file = self.root / ".ready-probe"
            probe_file.write_bytes(b"ok")
            probe_file.unlink()

        if self.signer is not None:
            try:
                await asyncio.to_thread(self.signer.load)
            except (OSError, ValueError) as exc:
                # Said at start, once: private media links cannot be signed without it.
                raise StorageError(
                    detail=f"cannot read or make the secret key: {exc}; set RELAY_SECRET_KEY "
                    "or let the relay's user write the data folder"
                ) from exc
        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            raise StorageError(
                detail=f"cannot write to {self.root}: {exc}; "
                "check RELAY_STORAGE_URL and permissions"
            ) from exc
