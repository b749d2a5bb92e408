"""Copies a running broadcast's HLS to the shared store (relay/storage/live.py), beside the RTMP
door and never in its way.

ffmpeg writes a segment, then rewrites the playlist to list it (``temp_file``: each file appears
whole, by a rename). The local playlist is therefore the queue of finished work: each round reads
it, stores the segments it lists that are not stored yet (in order), and then stores that same
text as the playlist, so the stored playlist never lists a segment the store lacks. A slow or
failing store delays the stored playlist and drops nothing: the next round starts where the last
one stopped. A post deleted while it is live (its purge may have run already) stops the copying,
and what was stored goes. What this task holds is a set of names and one playlist text (bounded
by the broadcast's limit on duration), and it takes no part in the RTMP door's reading or
ffmpeg's writing; uploads run on the store's own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from relay.errors import StorageError
from relay.storage import Store
from relay.storage import live as stored

log = logging.getLogger("relay.live")

ROUND_SECONDS = 0.5
"""How often the local playlist is looked at (segments are 2 s long)."""
RETRY_SECONDS = 2.0
"""After a store error, the wait before the next round."""
FINAL_ATTEMPTS = 5
"""Rounds after the broadcast's end to get its last segments and ``#EXT-X-ENDLIST`` stored."""


class LiveUploader:
    def __init__(
        self,
        store: Store,
        post_id: str,
        folder: Path,
        playlist: str,
        deleted: Callable[[], Awaitable[bool]],
    ) -> None:
        self.store = store
        self.deleted = deleted
        self.post_id = post_id
        self.folder = folder
        self.playlist = folder / playlist
        self.snapshot = folder / "stored.m3u8"
        """The text being stored (ffmpeg replaces the playlist at any moment)."""
        self.stored: set[str] = set()
        self.stored_text = ""
        self.withdrawn = False
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"live-upload-{self.post_id}")

    async def finish(self) -> None:
        """ffmpeg has ended the playlist: store the rest, then stop."""
        self._ended.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._ended.is_set():
            wait = ROUND_SECONDS if await self._round() else RETRY_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), wait)
        for _ in range(FINAL_ATTEMPTS):
            if await self._round():
                return
            await asyncio.sleep(RETRY_SECONDS)
        log.warning("live %s: the end of the broadcast was not stored", self.post_id)

    async def _round(self) -> bool:
        """One pass; False when the store failed (the next pass tries again)."""
        if self.withdrawn:
            return True
        try:
            text = await asyncio.to_thread(self._read)
            if text is None or text == self.stored_text:
                return True
            if await self.deleted():
                await stored.remove(self.store, self.post_id)
                self.withdrawn = True
                log.info(
                    "live %s: the post is deleted: its live HLS is no longer stored", self.post_id
                )
                return True
            for name in stored.segment_names(text):
                if name in self.stored:
                    continue
                await self.store.put_file(
                    stored.key_of(self.post_id, name),
                    self.folder / name,
                    stored.SEGMENT_MIME,
                    cache_control=stored.SEGMENT_CACHE,
                )
                self.stored.add(name)
            await asyncio.to_thread(self.snapshot.write_text, text)
            await self.store.put_file(
                stored.key_of(self.post_id, stored.PLAYLIST),
                self.snapshot,
                stored.hls.PLAYLIST_MIME,
                cache_control=stored.PLAYLIST_CACHE,
            )
            self.stored_text = text
            return True
        except (StorageError, OSError) as exc:
            log.warning("live %s: storing the live HLS: %s", self.post_id, exc)
            return False
        except Exception:  # the database away, say: the next round tries again
            log.exception("live %s: storing the live HLS", self.post_id)
            return False

    def _read(self) -> str | None:
        try:
            return self.playlist.read_text("utf-8", "replace")
        except FileNotFoundError:
            return None
