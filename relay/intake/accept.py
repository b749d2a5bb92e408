"""The one place where something becomes the relay's responsibility.

A door first streams bytes into the spool (durable), then calls ``accept``, which commits the
post, its items and their jobs in one transaction. Only when ``accept`` returns may the door say
``250``/``202``; if it raises, the door answers with a temporary error and the sender keeps the
message.

A mail message carries its Message-ID; when the same user already has a post with the same
Message-ID from the same bytes (a phone that sends again after a lost ``250``, a server that
retries), ``accept`` raises ``AlreadyAccepted`` with that post's id instead of making a second
post. The bytes are hashed only then: the new message's, and an earlier one's whose unpacking
job (which stores its hash) has not run yet. Hashing every message on arrival was a fifth of
the SMTP door's CPU at 1 MB a message. The check runs inside the committing transaction:
SQLite's writers queue (``BEGIN IMMEDIATE``) and PostgreSQL takes a transaction lock on the
user and Message-ID first, so two copies arriving at once still make one post.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select

from relay import jobs, lifecycle, metrics, pairing
from relay.auth import new_id
from relay.db import Database, life, lock_all, queries
from relay.db.schema import posts
from relay.doors_first import DoorsFirst
from relay.lifecycle import LIVE_TEXT as LIVE_TEXT  # re-exported: the live door's, via accept
from relay.lifecycle import live_ended as live_ended
from relay.lifecycle import settle
from relay.mail.facts import after_first_field
from relay.model import Item, Post, PostState, PostStatus
from relay.spool import SpoolBackend, sha256_file

log = logging.getLogger("relay.accept")

UNPACK_MAIL = "unpack_mail"
PROCESS_ITEM = "process_item"
PAIR_ITEMS = "pair_items"
"""A post's stills and MOVs, read for Live Photo pairs before they are processed
(relay/pairing.py)."""


@dataclass(frozen=True, slots=True)
class SpooledFile:
    spool_name: str
    filename: str
    declared_mime: str | None
    size: int


@dataclass(frozen=True, slots=True)
class MailMeta:
    """What the SMTP door learned about a message before it became a post."""

    message_id: str | None = None
    content_sha256: str | None = None
    """Of the message as received (``mail_digest``), when already known; compared only with a
    Message-ID (without one, nothing says that two equal messages are one message sent
    twice)."""
    digest: Callable[[], str] | None = None
    """Makes ``content_sha256`` when it is needed: only when the user has a post with the same
    Message-ID. Called on the database's thread."""
    sender: str | None = None
    auth_results: str | None = None
    reply: bool = False
    """Answer the sender once the post is delivered (a held ``reply`` job)."""


class AlreadyAccepted(Exception):
    def __init__(self, post_id: str) -> None:
        super().__init__(post_id)
        self.post_id = post_id


@dataclass(slots=True)
class _Later:
    """What a group commit writes once for all its mails (``Acceptor._commit_all``), and what
    it found of their Message-IDs."""

    earlier: dict[tuple[str, str], list[_Earlier]]
    """The posts with each mail's (user, Message-ID), read once for the group and added to as
    its mails are inserted, so that a copy in the same group finds the first."""
    posts: list[dict[str, Any]] = field(default_factory=list)
    """Mails' posts, inserted together: nothing else in the transaction reads them first."""
    events: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[tuple[str, str, int, str]] = field(default_factory=list)


class _Earlier(NamedTuple):
    """A post with a mail's Message-ID, as ``_SAME_MESSAGES`` reads it."""

    id: str
    created_at: float
    content_sha256: str | None
    spool_name: str | None


_Args = tuple[
    Post,
    list[tuple[SpooledFile, "pairing.Entry"]],
    str | None,
    Callable[[Connection, Post], None] | None,
    dict[str, Any],
    MailMeta | None,
]


class Acceptor:
    """Commits posts, several per transaction when they arrive together (group commit).

    SQLite has one writer and ``synchronous=FULL`` fsyncs its log at every commit, so one
    transaction per post capped SMTP intake at one post per fsync (~150-250 a second here, 20
    sessions). Accepts that arrive while a commit is in flight wait and go together in the
    next one. If one of them fails (``AlreadyAccepted``, the tus door's check), the transaction
    is rolled back and each is committed again alone, so only that one fails; a savepoint per
    accept would cost two statements each time for a case that is rare. Every caller still
    returns only after the transaction that holds its post has committed; a lone accept is
    committed at once, as before.
    """

    BATCH = 64

    def __init__(
        self,
        db: Database,
        max_attempts: int,
        wake: Callable[[], None],
        spool: SpoolBackend | None = None,
        doors_first: DoorsFirst | None = None,
    ) -> None:
        self.db = db
        self.spool = spool
        """Where a message not unpacked yet is read to hash it, when a copy arrives."""
        self.doors_first = doors_first or DoorsFirst(hold=0.0)
        """Told of every byte the doors accept, to hold media work during a burst."""
        self.max_attempts = max_attempts
        self.wake = wake
        self._waiting: list[tuple[_Args, asyncio.Future[bool]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def accept(
        self,
        user_id: str,
        *,
        title: str = "",
        text: str = "",
        files: list[SpooledFile] | None = None,
        mail_spool_name: str | None = None,
        source: str = "http",
        private: bool = False,
        draft: bool = False,
        only_destination: str | None = None,
        mail: MailMeta | None = None,
        also: Callable[[Connection, Post], None] | None = None,
        publish_at: float | None = None,
        tags: list[str] | None = None,
        alts: list[str | None] | None = None,
    ) -> Post:
        """Commit a post for spooled bytes: either files (one item each) or a raw message that
        a job unpacks into items later. ``also`` runs in the same transaction (the tus door
        marks its upload finished there, so a retry can never make a second post).
        ``only_destination``: deliver to that destination (id or type) alone. ``publish_at``
        (UNIX seconds): hold the post until then (a time past publishes now); ``alts``: the
        alt text of each file, in order."""
        post = Post(
            id=new_id(),
            user_id=user_id,
            title=title,
            text=text,
            source=source,
            private=private,
            draft=draft,
            tags=list(tags or []),
            created_at=datetime.fromtimestamp(time.time(), UTC),
        )
        # A clip's captions file is part of the clip's item; stills and MOVs may be Live Photos.
        entries = pairing.plan([(f.filename, f.spool_name) for f in files or []])
        chosen = [((files or [])[entry.index], entry) for entry in entries]
        for position, (spooled, entry) in enumerate(chosen):
            post.items.append(
                Item(
                    id=new_id(),
                    post_id=post.id,
                    position=position,
                    filename=spooled.filename,
                    declared_mime=spooled.declared_mime,
                    alt=(alts or [])[entry.index] if entry.index < len(alts or []) else None,
                )
            )
        state = lifecycle.initial_state(draft, publish_at)
        post.state = PostState(state)
        if state == PostState.SCHEDULED and publish_at is not None:
            post.publish_at = datetime.fromtimestamp(publish_at, UTC)
        extra: dict[str, Any] = {
            "only_destination": only_destination,
            "state": state,
            "publish_at": publish_at if state == "scheduled" else None,
        }
        if mail is not None:
            extra.update(
                message_id=mail.message_id,
                content_sha256=mail.content_sha256 if mail.message_id else None,
                sender=mail.sender,
                auth_results=mail.auth_results,
            )
        ready = await self._grouped((post, chosen, mail_spool_name, also, extra, mail))
        if ready:
            post.status = PostStatus.READY  # text alone is ready at once
        self.wake()
        return post

    def took(self, door: str, size: int) -> None:
        """``door`` acknowledged ``size`` bytes: counted, and told to the doors-first hold."""
        metrics.accepted_bytes.labels(door).inc(size)
        self.doors_first.took(size)

    async def attach(
        self,
        post_id: str,
        user_id: str,
        spooled: SpooledFile,
        also: Callable[[Connection], None] | None = None,
    ) -> str:
        """Add one spooled file to a post already made (a live broadcast's recording): the
        post is processing again until the item is done. ``also`` runs in the transaction.
        The new item's id."""
        item_id = new_id()

        def commit(conn: Connection) -> None:
            position = queries.item_count(conn, post_id)
            item = Item(
                id=item_id,
                post_id=post_id,
                position=position,
                filename=spooled.filename,
                declared_mime=spooled.declared_mime,
            )
            queries.insert_item(conn, item, spooled.spool_name)
            queries.set_post_processing(conn, post_id)
            jobs.enqueue(conn, PROCESS_ITEM, item_id, self.max_attempts, owner=user_id)
            if also is not None:
                also(conn)

        await self.db.run(commit)
        self.wake()
        return item_id

    async def _grouped(self, args: _Args) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.BATCH], self._waiting[self.BATCH :]
            calls = [args for args, _ in batch]
            outcomes: list[bool | Exception]
            try:
                try:
                    outcomes = await self.db.run(self._commit_all, calls)
                except Exception as exc:
                    if len(calls) == 1:
                        raise
                    # One of them failed and took the transaction with it: each goes again in
                    # a transaction of its own, so the failure stays its own.
                    log.info("group commit of %d failed (%r); one by one", len(calls), exc)
                    outcomes = [await self._commit_alone(args) for args in calls]
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                outcomes = [exc]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _commit_alone(self, args: _Args) -> bool | Exception:
        try:
            [outcome] = await self.db.run(self._commit_all, [args])
            return outcome
        except Exception as exc:
            return exc

    def _commit_all(self, conn: Connection, calls: list[_Args]) -> list[bool | Exception]:
        """The group's posts, then their mails' posts, events and unpack jobs in one statement
        each: on PostgreSQL every statement is a round trip, and each mail made five in a row. The
        mails' copies are looked for once for the group, under one lock (``_earlier``)."""
        later = _Later(self._earlier(conn, [(args[0].user_id, args[5]) for args in calls]))
        outcomes: list[bool | Exception] = [self._commit(conn, *args, later) for args in calls]
        queries.insert_posts(conn, later.posts)  # before the events that name them
        life.append_events(conn, later.events)
        jobs.enqueue_many(conn, later.jobs)
        return outcomes

    def _commit(
        self,
        conn: Connection,
        post: Post,
        files: list[tuple[SpooledFile, pairing.Entry]],
        mail_spool_name: str | None,
        also: Callable[[Connection, Post], None] | None,
        extra: dict[str, Any],
        mail: MailMeta | None,
        later: _Later,
    ) -> bool:
        """One post of ``_commit_all``'s group; a mail's event and unpack job are left in
        ``later`` for it to write."""
        extra = dict(extra)
        # A message to unpack: its unpack job makes its items and settles it.
        to_unpack = mail_spool_name is not None
        message_id = mail.message_id if mail is not None else None
        if mail is not None and message_id:
            existing = self._same_message(conn, post.user_id, mail, extra, later.earlier)
            if existing is not None:
                raise AlreadyAccepted(existing)  # rolls the transaction back: nothing written
        if also is not None:
            also(conn, post)
        if to_unpack and not files:
            # No item names the post and nothing here reads it back, so it goes in with the
            # group's others, one statement.
            later.posts.append(queries.post_values(post, spool_name=mail_spool_name, **extra))
        else:
            queries.insert_post(conn, post, spool_name=mail_spool_name, **extra)
        if message_id:
            later.earlier.setdefault((post.user_id, message_id), []).append(
                _Earlier(
                    post.id,
                    post.created_at.timestamp() if post.created_at else time.time(),
                    extra.get("content_sha256"),
                    mail_spool_name,
                )
            )
        # The first line of the post's record: who made it, through which door, in what state.
        # The owner made it (their token or their secret address); a mail's From line is
        # only a claim here, kept as such.
        lifecycle.created(
            conn,
            post.id,
            post.user_id,
            lifecycle.door_of(post.source),
            extra.get("state") or "published",
            extra.get("publish_at"),
            sender=mail.sender if mail is not None else None,
            # A mail's post is settled by its unpack job: its event may wait for the group's.
            later=later.events if to_unpack else None,
        )
        waiting = False
        for item, (spooled, entry) in zip(post.items, files, strict=True):
            queries.insert_item(conn, item, spooled.spool_name, entry.companions_json())
            if entry.waits:
                waiting = True  # the pairing job queues it
                continue
            # The owner is known here: no lookup from the ref on the door's commit.
            jobs.enqueue(conn, PROCESS_ITEM, item.id, self.max_attempts, owner=post.user_id)
        if waiting:
            jobs.enqueue(conn, PAIR_ITEMS, post.id, self.max_attempts, owner=post.user_id)
        if to_unpack:
            later.jobs.append((UNPACK_MAIL, post.id, self.max_attempts, post.user_id))
        if mail is not None and mail.reply:
            lifecycle.hold(conn, post.id, self.max_attempts)  # before settle, which may release it
        if to_unpack:
            # A post whose message is still to be unpacked is never ready (settle_post says
            # so from its spool_name); the unpack job settles it. Asking cost a query per mail.
            return False
        return settle(conn, post.id)

    @staticmethod
    def _earlier(
        conn: Connection, mails: list[tuple[str, MailMeta | None]]
    ) -> dict[tuple[str, str], list[_Earlier]]:
        """The posts that have the group's mails' (user, Message-ID) pairs, under a lock on
        each pair taken in one statement, so that two copies committing at once make one post:
        the second waits until the first is visible. The oldest is picked by the caller, not
        with ORDER BY: with it SQLite walked the (user, created_at) index, every post the user
        ever had, for each mail."""
        pairs = {(user, m.message_id) for user, m in mails if m and m.message_id}
        if not pairs:
            return {}
        lock_all(conn, [("message", user_id, message_id) for user_id, message_id in pairs])
        found: dict[tuple[str, str], list[_Earlier]] = {}
        users, message_ids = {user for user, _ in pairs}, {m for _, m in pairs}
        for row in conn.execute(_SAME_MESSAGES, {"users": users, "message_ids": message_ids}):
            pair = (row.user_id, row.message_id)
            if pair in pairs:  # not another user's Message-ID among the group's
                found.setdefault(pair, []).append(
                    _Earlier(row.id, row.created_at, row.content_sha256, row.spool_name)
                )
        return found

    def _same_message(
        self,
        conn: Connection,
        user_id: str,
        mail: MailMeta,
        extra: dict[str, Any],
        earlier: dict[tuple[str, str], list[_Earlier]],
    ) -> str | None:
        """The oldest post of this user with this Message-ID and these bytes, if any, from
        the group's reading (``_earlier``); the message's hash goes into ``extra`` when it had
        to be made."""
        same_id = earlier.get((user_id, mail.message_id or ""), [])
        if not same_id:
            return None
        digest = mail.content_sha256 or (mail.digest() if mail.digest else None)
        if digest is None:
            return None
        extra["content_sha256"] = digest
        same = [row for row in same_id if self._digest_of(conn, row) == digest]
        return min(same, key=lambda row: row.created_at).id if same else None

    def _digest_of(self, conn: Connection, row: _Earlier) -> str | None:
        if row.content_sha256 or not row.spool_name or self.spool is None:
            return row.content_sha256
        try:
            # Another node may have taken it: the object store has it then.
            return mail_digest(self.spool.local_sync(row.spool_name))
        except FileNotFoundError:  # unpacked meanwhile (PostgreSQL): its job stored the hash
            return conn.execute(_DIGEST, {"id": row.id}).scalar()


_SAME_MESSAGES = select(
    posts.c.id,
    posts.c.user_id,
    posts.c.message_id,
    posts.c.created_at,
    posts.c.content_sha256,
    posts.c.spool_name,
).where(
    # Two INs, not one IN of (user, Message-ID) pairs: SQLite walks the (user_id, message_id)
    # index for these, and scanned every post for the pairs.
    posts.c.user_id.in_(bindparam("users", expanding=True)),
    posts.c.message_id.in_(bindparam("message_ids", expanding=True)),
)
_DIGEST = select(posts.c.content_sha256).where(posts.c.id == bindparam("id"))


def mail_digest(path: Path) -> str:
    """The SHA-256 of a spooled message as its sender sent it: without the ``Received`` field
    the SMTP door put first. Blocking: call it off the event loop."""
    with open(path, "rb") as file:
        start = file.read(4096)
        return sha256_file(path, after_first_field(start))
