"""The database work of one mailed photo, alone: CPU per photo in the calling process.

The same calls, in the same transactions, as the SMTP door's commit, the unpacking job and the
item job make for a mail with one photo (a user with no channels, nothing else queued). The
relay's main process runs all of these; ``photos-mail`` showed half of its Python time building
statements here. No media, no sockets: what moves this figure is the SQL layer's own cost.

    python -m bench.db_photo [N] [DATABASE_URL]     # default 400 photos on a fresh SQLite file
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from relay import jobs, lifecycle
from relay.auth import new_id
from relay.db import Database, queries
from relay.model import Item, Post, Rendition
from relay.pipeline import PROCESS_ITEM, UNPACK_MAIL, Pipeline


def one_photo(db: Database, user_id: str, n: int) -> None:
    post = Post(id=new_id(), user_id=user_id, title="", text="", source="smtp")

    def door(conn) -> None:  # noqa: ANN001 - AcceptDoor._commit's calls for a mail
        queries.insert_post(conn, post, spool_name=f"m{n}", message_id=f"<{n}@bench>")
        lifecycle.created(conn, post.id, user_id, "mail", "published", None, sender="a@b.c")
        jobs.enqueue(conn, UNPACK_MAIL, post.id, 5, owner=user_id)

    db.run_here(door)
    job = db.run_here(jobs.claim, "bench:1:0", 300.0)
    item = Item(id=new_id(), post_id=post.id, position=0, filename="p.jpg", declared_mime="")

    def unpack(conn) -> None:  # noqa: ANN001 - Pipeline.unpack_mail's record
        current = queries.post_row(conn, post.id)
        queries.update_post_text(
            conn, post.id, title="t", text="x", message_id=current["message_id"], spool_name=None
        )
        lifecycle.mailed(conn, post.id, draft=False, local=None, delay=None, default_zone="UTC")
        queries.insert_item(conn, item, f"s{n}")
        jobs.enqueue(conn, PROCESS_ITEM, item.id, 5, owner=user_id)
        lifecycle.settle(conn, post.id)
        jobs.complete(conn, job)

    db.run_here(unpack)
    job = db.run_here(jobs.claim, "bench:1:0", 300.0)
    assert db.run_here(Pipeline._start_item, job) is not None
    found = [
        Rendition(name=name, key=f"{post.id}/{name}", mime="image/jpeg", bytes=1, width=1, height=1)
        for name in ("thumb", "medium", "large")
    ]

    def record(conn) -> None:  # noqa: ANN001 - Pipeline.process_item's record
        queries.set_item(conn, item.id, kind="image", spool_name=None, status="ready", progress=1.0)
        queries.replace_renditions(conn, item.id, found)
        lifecycle.settle(conn, post.id)
        jobs.complete(conn, job)

    db.run_here(record)
    assert db.run_here(jobs.claim, "bench:1:0", 300.0) is None  # the idle worker's look


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(folder) / 'bench.db'}"
        db = Database(url)
        db.migrate()
        user_id = db.run_here(queries.add_user, f"bench{time.time_ns()}")
        for n in range(20):  # warm: SQLAlchemy's caches, SQLite's pages
            one_photo(db, user_id, n)
        started = time.process_time()
        for n in range(count):
            one_photo(db, user_id, 100 + n)
        cpu = time.process_time() - started
        db.close()
    print(f"{cpu / count * 1000:.2f} ms CPU per photo ({count} photos, {url.split(':')[0]})")


if __name__ == "__main__":
    main()
