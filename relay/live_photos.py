"""The ``pair_items`` job (relay/pairing.py says why): a post's stills and MOVs read for their
content identifiers, each matching pair folded into one item, then all of them queued."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from handlers import content_identifier
from relay import jobs
from relay.db import Database, queries
from relay.intake.accept import PAIR_ITEMS, PROCESS_ITEM
from relay.model import ItemStatus
from relay.pairing import MOTION, STILL_EXTENSIONS, is_candidate, suffix
from relay.spool import SpoolBackend
from relay.workpool import WorkPool

log = logging.getLogger("relay.pairing")


class LivePhotos:
    """The ``pair_items`` job: a post's stills and MOVs, paired by content identifier."""

    def __init__(
        self,
        db: Database,
        spool: SpoolBackend,
        pool: WorkPool,
        wake: Callable[[], None],
        options: dict[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.db = db
        self.spool = spool
        self.pool = pool
        self.wake = wake
        self.options = options or {}
        self.timeout = timeout

    def register(self, workers: Any) -> None:  # noqa: ANN401 - relay.worker.Workers
        workers.register(PAIR_ITEMS, self.pair, self.give_up)

    async def pair(self, job: jobs.Job) -> None:
        rows = [
            row for row in await self.db.read(queries.item_rows_of_post, job.ref) if _waiting(row)
        ]
        stills: dict[str, str] = {}
        clips: dict[str, str] = {}
        for row in rows:
            path = await self.spool.local(row["spool_name"])
            role = "still" if suffix(row["filename"]) in STILL_EXTENSIONS else "clip"
            found = await content_identifier(
                path, role, self.pool.run, timeout=self.timeout, options=self.options
            )
            if found is None:
                continue
            into = stills if role == "still" else clips
            into.setdefault(found, row["id"])  # a second copy of the same still stays apart
        pairs = {stills[key]: clips[key] for key in stills.keys() & clips.keys()}
        by_id = {row["id"]: row for row in rows}

        def record(conn: Connection) -> None:
            for still_id, clip_id in pairs.items():
                clip = by_id[clip_id]
                companions = [
                    {"role": MOTION, "spool_name": clip["spool_name"], "filename": clip["filename"]}
                ]
                queries.set_item(conn, still_id, companions=json.dumps(companions))
                queries.delete_queued_item(conn, clip_id)
            merged = set(pairs.values())
            post = queries.post_row(conn, job.ref)
            owner = post["user_id"] if post is not None else None
            wanted = [(PROCESS_ITEM, row["id"]) for row in rows if row["id"] not in merged]
            jobs.hand_on(conn, job, wanted, owner)
            jobs.complete(conn, job)

        await self.db.run(record)
        if pairs:
            log.info("post %s: %d Live Photo pair(s) made one item each", job.ref, len(pairs))
        self.wake()

    def give_up(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        """Pairing failed for good: each file is processed as an item of its own."""
        post = queries.post_row(conn, job.ref)
        owner = post["user_id"] if post is not None else None
        wanted = [
            (PROCESS_ITEM, row["id"])
            for row in queries.item_rows_of_post(conn, job.ref)
            if _waiting(row)
        ]
        jobs.hand_on(conn, job, wanted, owner)


def _waiting(row: Any) -> bool:  # noqa: ANN401 - a RowMapping
    return (
        row["status"] == ItemStatus.QUEUED.value
        and row["spool_name"] is not None
        and not row["companions"]
        and is_candidate(row["filename"])
    )
