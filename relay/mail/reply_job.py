"""The ``mail_command`` job: a reply to the relay's confirmation mail, read in the worker pool,
carried out through the post's life when its sender is proven and is the post's own sender (see
``relay.mail.replies`` for the signed address and the reading). Kept apart from the reading so
that the SMTP door, which reads reply addresses, never imports the post's life."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from sqlalchemy import Connection

from relay import jobs, lifecycle
from relay.db import Database, queries
from relay.errors import RelayError
from relay.mail.replies import Reply, read_reply
from relay.model import PostState
from relay.spool import SpoolBackend, remove_spooled
from relay.workpool import WorkPool

log = logging.getLogger("relay.mail.replies")


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip().lower() == b.strip().lower()  # type: ignore[union-attr]


def apply(conn: Connection, job: jobs.Job, post_id: str, auth_results: str, reply: Reply) -> str:
    """Check the sender and carry out the command, in one transaction; what happened."""
    from relay.reply import reply_address  # relay.reply imports lifecycle, which imports jobs

    jobs.complete(conn, job)
    row = queries.post_row(conn, post_id)
    if row is None:
        return "no such post"
    owner = queries.user_name(conn, row["user_id"]) or ""
    proven = reply_address(reply.sender, auth_results, owner)
    original = reply_address(row["sender"], row["auth_results"], owner)
    if proven is None:
        return "sender not proven"
    if not _same(proven, original):
        return "not the sender of the post"
    if row["state"] == PostState.DELETED.value:
        return "post deleted"
    actor = proven.strip().lower()
    if reply.delete:
        # A [delete] takes the post down and keeps it (and its record) on the relay.
        if row["state"] == PostState.SCHEDULED.value:
            lifecycle.unschedule(conn, post_id, actor, "mail")
            return "unscheduled"
        done = lifecycle.retract(conn, post_id, actor, "mail", reason="[delete] by mail")
        return "retracted" if done else "not published"
    change = lifecycle.Change(text=reply.text or None)
    if reply.edit and reply.title:
        change.title = reply.title
    if change.text is None and change.title is None:
        return "nothing to change"
    changed = lifecycle.edit(conn, post_id, actor, "mail", change)
    return f"edited ({changed} field(s))"


class MailCommands:
    """Runs ``mail_command`` jobs."""

    def __init__(self, db: Database, spool: SpoolBackend, pool: WorkPool) -> None:
        self.db = db
        self.spool = spool
        self.pool = pool

    async def run(self, job: jobs.Job) -> None:
        message, _, meta = job.ref.partition(".")
        try:
            # Fetched from the object store when another node took the mail.
            facts: dict[str, Any] = json.loads((await self.spool.local(meta)).read_bytes())
            path = str(await self.spool.local(message))
        except (OSError, ValueError):
            log.warning("mail command %s: its spooled files are gone", job.ref)
            await self.db.run(jobs.complete, job)
            return
        reply = await self.pool.run(read_reply, path)
        post_id = str(facts.get("post", ""))
        if reply is None:
            outcome = "unreadable"
            await self.db.run(jobs.complete, job)
        else:
            try:
                outcome = await self.db.run(
                    apply, job, post_id, str(facts.get("auth_results", "")), reply
                )
            except RelayError as exc:  # the post went meanwhile (post.gone)
                outcome = exc.code
                await self.db.run(jobs.complete, job)
        log.info("post %s: reply by mail: %s", post_id, outcome)
        await remove_spooled(self.spool, message, meta)

    def give_up(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        log.warning("mail command %s given up: %s", job.ref, detail[:300])
        message, _, meta = job.ref.partition(".")
        for name in (message, meta):
            with contextlib.suppress(ValueError):  # a ref that names no spool file
                self.spool.remove(name)
