"""One item: sniff → handler → store.

``process_item``: sniff → pick the handler for the kind → run it under limits → store the
served original and the renditions → mark the item ``ready`` (or ``failed`` with a code) and
settle the post, all in one transaction. ``unpack_mail``: turn a spooled message into items.
A ``MediaError`` is final for the item. Anything else raised here goes to the workers
(``relay.worker``): an outage of our own storage or database waits, anything else is retried and
the item becomes ``failed`` (``fail_item``) once the attempts run out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping

from handlers import extra_renditions, handler_for
from relay import detect, jobs, lifecycle, metrics, pairing
from relay.db import Database, queries
from relay.doors_first import DoorsFirst
from relay.errors import MediaError
from relay.intake.accept import PAIR_ITEMS, PROCESS_ITEM, UNPACK_MAIL
from relay.lifecycle import settle
from relay.model import (
    Companion,
    HandlerInput,
    ItemStatus,
    Kind,
    Limits,
    Rendition,
    RenditionFile,
    StoredObject,
)
from relay.spool import SpoolBackend, remove_spooled, sha256_file
from relay.storage import Store, hls, put_done_file
from relay.storage.media import IMMUTABLE, content_disposition, safe_extension
from relay.worker import Workers
from relay.workpool import WorkPool

log = logging.getLogger("relay.pipeline")

MEDIA_TOOLS = ("ffmpeg", "ffprobe")

_FOLDER_PUTS_AT_ONCE = 8


def missing_media_tools() -> list[str]:
    """The video/audio tools not on PATH (what handlers/ffmpeg.py would fail to find)."""
    return [tool for tool in MEDIA_TOOLS if shutil.which(tool) is None]


@dataclass(slots=True)
class Outcome:
    kind: Kind
    original: StoredObject | None
    renditions: list[Rendition]
    error_code: str | None = None
    error_detail: str | None = None
    left_out: list[Companion] = field(default_factory=list)
    """Companions that became no rendition: each becomes an item of its own."""


class Pipeline:
    """One item at a time: ``process_item`` and ``unpack_mail``, the two kinds of job that turn
    what a door accepted into items; ``relay.app`` registers them with the workers."""

    def __init__(
        self,
        db: Database,
        spool: SpoolBackend,
        store: Store,
        pool: WorkPool,
        work_dir: Path,
        limits: Limits,
        wake: Callable[[], None],
        options: dict[str, Any] | None = None,
        media_slots: int = 1,
        doors_first: DoorsFirst | None = None,
    ) -> None:
        self.db = db
        self.spool = spool
        self.store = store
        self.pool = pool
        self.work_dir = work_dir
        self.limits = limits
        self.wake = wake
        """Called when unpacking a mail queued its items' jobs."""
        self.options = options or {}
        self.media_slots = asyncio.Semaphore(max(1, media_slots))
        """Jobs in their handler at once (libvips in the pool, ffmpeg as a child): as many as
        the pool has processes, while the relay runs one job loop more (relay.app) to store
        and commit one job as the next one's media work runs."""
        self.doors_first = doors_first or DoorsFirst(hold=0.0)
        """Media work (a handler, a mail's unpacking) waits while the doors take in a burst."""
        self._background: set[asyncio.Task[None]] = set()

    def register(self, workers: Workers) -> None:
        workers.register(PROCESS_ITEM, self.process_item, self.fail_item)
        workers.register(UNPACK_MAIL, self.unpack_mail, self.unpacked_nothing)

    def fail_item(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        row = queries.item_row(conn, job.ref)
        if row is None:
            return
        queries.set_item(
            conn, job.ref, status=ItemStatus.FAILED.value, error_code=code, error_detail=detail
        )
        settle(conn, row["post_id"])

    def unpacked_nothing(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        queries.update_post_text(conn, job.ref, spool_name=None)
        settle(conn, job.ref)

    # --- process_item ---------------------------------------------------------------------------

    async def process_item(self, job: jobs.Job) -> None:
        # Volatile: an item marked processing, or a done job's row gone, that a power cut
        # loses is found again as it was (the job runs again and finds its item).
        row = await self.db.run_volatile(self._start_item, job)
        if row is None:
            return
        # From the object store when another node took it (or died before processing it).
        source = await self.spool.local(row["spool_name"])
        companions = await self._companions(row)
        started = time.monotonic()
        workdir = self.work_dir / row["id"]
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            outcome = await self._process(row, source, workdir, companions)
        finally:
            # Off the event loop, like the spool's removals (remove_spooled): freeing a photo's
            # megabytes took ~2 ms a file there, while the doors waited.
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        metrics.processing_seconds.labels(outcome.kind.value).observe(time.monotonic() - started)

        def record(conn: Connection) -> None:
            values: dict[str, object] = {"kind": outcome.kind.value, "spool_name": None}
            if outcome.original is not None:
                values.update(
                    original_key=outcome.original.key,
                    original_mime=outcome.original.mime,
                    original_bytes=outcome.original.bytes,
                    original_sha256=outcome.original.sha256,
                )
            if outcome.error_code:
                values.update(
                    status=ItemStatus.FAILED.value,
                    error_code=outcome.error_code,
                    error_detail=outcome.error_detail,
                )
            else:
                values.update(status=ItemStatus.READY.value, progress=1.0)
            queries.set_item(conn, row["id"], **values)
            queries.replace_renditions(conn, row["id"], outcome.renditions)
            self._keep_apart(conn, row, [stored[c.path] for c in outcome.left_out], job)
            settle(conn, row["post_id"])
            jobs.complete(conn, job)

        stored = {c.path: entry for c, entry in zip(companions, self._entries(row), strict=True)}
        await self.db.run(record)
        kept = {stored[c.path]["spool_name"] for c in outcome.left_out}
        await remove_spooled(
            self.spool,
            row["spool_name"],
            *(e["spool_name"] for e in self._entries(row) if e["spool_name"] not in kept),
        )
        if outcome.left_out:
            self.wake()
        status = "failed" if outcome.error_code else "ready"
        metrics.items_processed.labels(outcome.kind.value, status).inc()

    @staticmethod
    def _start_item(conn: Connection, job: jobs.Job) -> RowMapping | None:
        """The item to process, marked processing; None (and the job done) when it is done
        already. One transaction, not two: each was a commit (an fsync) per photo."""
        row = queries.item_row(conn, job.ref)
        if row is None or row["status"] in (ItemStatus.READY, ItemStatus.FAILED):
            jobs.complete(conn, job)
            return None
        queries.set_item(conn, job.ref, status=ItemStatus.PROCESSING.value)
        return row

    @staticmethod
    def _entries(row: RowMapping) -> list[dict[str, Any]]:
        return json.loads(row["companions"] or "[]")

    @staticmethod
    def _keep_apart(
        conn: Connection, row: RowMapping, entries: list[dict[str, Any]], job: jobs.Job
    ) -> None:
        """Companions that became no rendition (captions that are not, a clip that would not
        transcode, or all of them when the item failed) become items of their own."""
        if not entries:
            return
        from relay.auth import new_id
        from relay.model import Item

        post = queries.post_row(conn, row["post_id"])
        owner = post["user_id"] if post is not None else None
        position = len(queries.item_rows_of_post(conn, row["post_id"]))
        handed_on = []
        for n, entry in enumerate(entries):
            item = Item(
                id=new_id(),
                post_id=row["post_id"],
                position=position + n,
                filename=entry["filename"],
                declared_mime=None,
            )
            queries.insert_item(conn, item, entry["spool_name"])
            handed_on.append((PROCESS_ITEM, item.id))
        jobs.hand_on(conn, job, handed_on, owner)

    async def _companions(self, row: RowMapping) -> list[Companion]:
        """The files sent with the item that are part of it (relay/pairing.py); a captions
        file that names no language is in its owner's."""
        found = json.loads(row["companions"] or "[]")
        if not found:
            return []
        language = None
        if any(c.get("lang") is None for c in found):
            language = await self.db.read(_owner_language, row["post_id"])
        default = str(self.options.get("default_language") or "en")
        return [
            Companion(
                role=c["role"],
                path=await self.spool.local(c["spool_name"]),
                filename=c["filename"],
                lang=c.get("lang") or language or default,
            )
            for c in found
        ]

    async def _process(  # noqa: ANN001
        self, row, source: Path, workdir: Path, companions: list[Companion] | None = None
    ) -> Outcome:
        mime = await asyncio.to_thread(detect.sniff, source)
        kind = detect.kind_of(mime)
        size = source.stat().st_size
        prefix = f"{row['post_id']}/{row['id']}"
        filename = row["filename"]
        if size == 0:
            return Outcome(kind, None, [], "media.empty", "zero bytes", list(companions or []))

        progress = self._progress_reporter(row["id"])

        job_input = HandlerInput(
            source=source,
            mime=mime,
            filename=filename,
            workdir=workdir,
            limits=self.limits,
            run_blocking=self.pool.run,
            progress=progress,
            options=self.options,
            companions=companions or [],
        )
        try:
            if kind in (Kind.VIDEO, Kind.AUDIO) and (missing := missing_media_tools()):
                # The operator's to fix, not the item's; retrying would only loop until it is.
                raise MediaError("media.ffmpeg_missing", f"{', '.join(missing)} not on PATH")
            async with self.media_slots:
                await self.doors_first.wait()
                output = await asyncio.wait_for(
                    handler_for(kind).process(job_input), self.limits.timeout
                )
                # Captions, a Live Photo's or a Motion Photo's clip: never at the item's cost.
                made, left_out = await asyncio.wait_for(
                    extra_renditions(job_input, kind), self.limits.timeout
                )
            output.renditions += made
        except MediaError as exc:
            # Keep the bytes (nothing acknowledged is lost) but serve nothing we could not check.
            original = await self._put_original(
                f"{prefix}/unchecked{safe_extension(filename, mime)}", source, mime, filename
            )
            return Outcome(kind, original, [], exc.code, exc.detail, list(job_input.companions))
        except TimeoutError:
            return Outcome(
                kind,
                None,
                [],
                "media.timeout",
                f"over {self.limits.timeout}s",
                list(job_input.companions),
            )

        served = output.served_original or source
        served_mime = output.served_original_mime or mime
        # The original and every rendition go to the store at once: one after the other, their
        # copies and fsyncs kept this job's media process idle for ~14 ms of a photo's ~200.
        original, *renditions = await _all(
            self._put_original(
                f"{prefix}/original{safe_extension(filename, served_mime)}",
                served,
                served_mime,
                filename,
                output.served_original_sha256 if output.served_original else None,
            ),
            *(self._put_rendition(prefix, r) for r in output.renditions),
        )
        return Outcome(kind, original, renditions, left_out=left_out)

    async def _put_rendition(self, prefix: str, made: RenditionFile) -> Rendition:
        tagged = f"{made.name}.{made.lang}" if made.lang else made.name  # captions, per language
        key = f"{prefix}/{tagged}{safe_extension(made.path.name, made.mime)}"
        size = made.path.stat().st_size
        if made.files:
            key, size = await self._put_folder(f"{prefix}/{made.name}", made.path, made.files)
        else:
            # Made in the work folder, which goes when the job ends: the store may keep it.
            await put_done_file(self.store, key, made.path, made.mime, cache_control=IMMUTABLE)
        return Rendition(
            name=made.name,
            key=key,
            mime=made.mime,
            bytes=size,
            width=made.width,
            height=made.height,
            duration=made.duration,
            lang=made.lang,
            loudness=made.loudness,
            pages=made.pages,
        )

    async def _put_folder(
        self, folder: str, main: Path, files: tuple[Path, ...]
    ) -> tuple[str, int]:
        """A rendition of many files (an HLS ladder): each under ``folder`` by its path relative
        to ``main``'s folder, ``main`` (the master playlist) last, so a stored master means a
        whole ladder. Returns ``main``'s key and the bytes of them all. An hour's ladder is
        thousands of segments: into an object store, a few go at once."""
        at_once = asyncio.Semaphore(_FOLDER_PUTS_AT_ONCE)

        async def put(path: Path) -> str:
            relative = path.relative_to(main.parent).as_posix()
            cache = hls.PLAYLIST_CACHE if hls.is_playlist(relative) else IMMUTABLE
            async with at_once:
                await put_done_file(
                    self.store,
                    f"{folder}/{relative}",
                    path,
                    hls.mime_of(relative),
                    cache_control=cache,
                )
            return f"{folder}/{relative}"

        await _all(*(put(path) for path in files))
        key = await put(main)
        return key, sum(path.stat().st_size for path in (*files, main))

    def _progress_reporter(self, item_id: str, every: float = 1.0) -> Callable[[float], None]:
        """A callback that writes the fraction done to the item, at most once per ``every``
        seconds and not in the first, without making the handler wait for the database. A
        photo (a fifth of a second) writes none: its handler's "0%" cost every photo a commit
        of its own, holding SQLite's one writer while a door waited to commit what it took.
        Lost in a power cut, a fraction harms nothing: it is written without waiting for the
        disk."""
        last = [time.monotonic()]

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < every:
                return
            last[0] = now
            value = max(0.0, min(1.0, float(fraction)))
            task = asyncio.get_running_loop().create_task(
                self.db.run_volatile(queries.set_item, item_id, progress=value)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        return report

    async def _put_original(
        self, key: str, path: Path, mime: str, filename: str, sha256: str | None = None
    ) -> StoredObject:
        """``sha256``: the file's, when its maker knew it; else it is read for it."""
        # The spooled file (removed once the item is recorded) or one in the work folder.
        put = put_done_file(
            self.store,
            key,
            path,
            mime,
            content_disposition=content_disposition(mime, filename),
            cache_control=IMMUTABLE,
        )
        if sha256 is None:
            _, sha256 = await _all(put, asyncio.to_thread(sha256_file, path))
        else:
            await put
        return StoredObject(key=key, mime=mime, bytes=path.stat().st_size, sha256=sha256)

    # --- unpack_mail ----------------------------------------------------------------------------

    async def unpack_mail(self, job: jobs.Job) -> None:
        from relay.mail.unpack import unpack_to_folder

        post = await self.db.read(queries.post_row, job.ref)  # no write lock for a look
        if post is None or post["spool_name"] is None:
            await self.db.run(jobs.complete, job)
            return
        source = await self.spool.local(post["spool_name"])
        scratch = self.spool.scratch
        await self.doors_first.wait()
        unpacked = await self.pool.run(unpack_to_folder, str(source), str(scratch))
        try:
            # At once: into the object store, each part is a request of its own.
            await _all(
                *(
                    self.spool.adopt_async(scratch / part.spool_name, part.spool_name)
                    for part in unpacked.parts
                )
            )
        except BaseException:
            # Retried from the message: the parts go, in the spool or not yet.
            for part in unpacked.parts:
                (scratch / part.spool_name).unlink(missing_ok=True)
                self.spool.remove(part.spool_name)
            raise

        def record(conn: Connection) -> None:
            import json

            from relay.auth import new_id
            from relay.mail.commands import merge_tags
            from relay.model import Item

            # The mail's commands add to what the address already set (SECRET+private@):
            # a private or draft post never becomes public here.
            current = queries.post_row(conn, post["id"]) or post
            queries.update_post_text(
                conn,
                post["id"],
                title=unpacked.title,
                text=unpacked.text,
                # The door's reading of the Message-ID stays: copies are found by it.
                message_id=current["message_id"] or unpacked.message_id,
                content_sha256=current["content_sha256"] or unpacked.content_sha256,
                sender=unpacked.sender,
                spool_name=None,
                tags=json.dumps(merge_tags(json.loads(current["tags"] or "[]"), unpacked.tags)),
                private=bool(current["private"]) or unpacked.private,
                draft=bool(current["draft"]) or unpacked.draft,
            )
            # [draft], [delay 2h], [publish 2026-12-24 09:00]: the post's life decides.
            lifecycle.mailed(
                conn,
                post["id"],
                draft=unpacked.draft,
                local=unpacked.publish_at,
                delay=unpacked.delay,
                default_zone=self.options.get("timezone", "UTC"),
            )
            # A clip's captions file is part of the clip's item; stills and MOVs may be Live
            # Photos, read by the pairing job before they are processed.
            entries = pairing.plan([(part.filename, part.spool_name) for part in unpacked.parts])
            handed_on: list[tuple[str, str]] = []
            for position, entry in enumerate(entries):
                part = unpacked.parts[entry.index]
                item = Item(
                    id=new_id(),
                    post_id=post["id"],
                    position=position,
                    filename=part.filename,
                    declared_mime=part.content_type,
                    alt=part.alt,
                )
                queries.insert_item(conn, item, part.spool_name, entry.companions_json())
                if not entry.waits:
                    handed_on.append((PROCESS_ITEM, item.id))
            if any(entry.waits for entry in entries):
                handed_on.append((PAIR_ITEMS, post["id"]))
            jobs.hand_on(conn, job, handed_on, post["user_id"])
            settle(conn, post["id"])
            jobs.complete(conn, job)

        await self.db.run(record)
        self.wake()
        await remove_spooled(self.spool, post["spool_name"])


async def _all(*steps: Awaitable[Any]) -> list[Any]:
    """Each of ``steps`` at once, their answers in order; the first failure is raised once all
    have ended, so that none is still reading a file its caller then removes (the work folder,
    the unpacked parts) or fails later with no one to hear it."""
    ended = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, BaseException):
            raise outcome
    return ended


def _owner_language(conn: Connection, post_id: str) -> str | None:
    post = queries.post_row(conn, post_id)
    return queries.user_language(conn, post["user_id"]) if post is not None else None
