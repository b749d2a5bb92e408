"""The one place where something becomes the relay's responsibility.

A door first streams bytes into the spool (durable), then calls ``accept``, which commits the
post, its items and their jobs in one transaction. Only when ``accept`` returns may the door say
``250``/``202``; if it raises, the door answers with a temporary error and the sender keeps the
message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from relay import jobs
from relay.auth import new_id
from relay.db import Database, queries
from relay.model import Item, Post, PostStatus
from relay.publish.deliver import settle

UNPACK_MAIL = "unpack_mail"
PROCESS_ITEM = "process_item"


@dataclass(frozen=True, slots=True)
class SpooledFile:
    spool_name: str
    filename: str
    declared_mime: str | None
    size: int


class Acceptor:
    def __init__(self, db: Database, max_attempts: int, wake: Callable[[], None]) -> None:
        self.db = db
        self.max_attempts = max_attempts
        self.wake = wake

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
        also: Callable[[Connection, Post], None] | None = None,
    ) -> Post:
        """Commit a post for spooled bytes: either files (one item each) or a raw message that
        a job unpacks into items later. ``also`` runs in the same transaction (the tus door
        marks its upload finished there, so a retry can never make a second post)."""
        post = Post(
            id=new_id(),
            user_id=user_id,
            title=title,
            text=text,
            source=source,
            private=private,
            created_at=datetime.fromtimestamp(time.time(), UTC),
        )
        for position, spooled in enumerate(files or []):
            post.items.append(
                Item(
                    id=new_id(),
                    post_id=post.id,
                    position=position,
                    filename=spooled.filename,
                    declared_mime=spooled.declared_mime,
                )
            )
        if await self.db.run(self._commit, post, files or [], mail_spool_name, also):
            post.status = PostStatus.READY  # text alone is ready at once
        self.wake()
        return post

    def _commit(
        self,
        conn: Connection,
        post: Post,
        files: list[SpooledFile],
        mail_spool_name: str | None,
        also: Callable[[Connection, Post], None] | None = None,
    ) -> bool:
        if also is not None:
            also(conn, post)
        queries.insert_post(conn, post, spool_name=mail_spool_name)
        for item, spooled in zip(post.items, files, strict=True):
            queries.insert_item(conn, item, spooled.spool_name)
            jobs.enqueue(conn, PROCESS_ITEM, item.id, self.max_attempts)
        if mail_spool_name is not None:
            jobs.enqueue(conn, UNPACK_MAIL, post.id, self.max_attempts)
        return settle(conn, post.id)
