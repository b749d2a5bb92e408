"""``queries.add_rendition``: Instagram's padded photo joins an item's renditions when a delivery
makes it, beside the others, and is listed once however many times it is made (a retry after a
crash, two nodes at once), on SQLite and (with RELAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import Connection, func, select, text

from relay.auth import new_id
from relay.db import Database, queries
from relay.db.schema import renditions
from relay.model import Item, Post, Rendition

FITTED = Rendition("fit_instagram", "p/i/fit_instagram.jpg", "image/jpeg", 90_000, 960, 1200)


def _photo(database: Database) -> str:
    """A processed photo's item with its three renditions; its id."""
    with database.begin() as conn:
        anna = queries.add_user(conn, "anna")
        post = Post(id=new_id(), user_id=anna, title="", text="")
        queries.insert_post(conn, post, spool_name=None, state="published")
        item = Item(id=new_id(), post_id=post.id, position=0, filename="a.jpg", declared_mime=None)
        queries.insert_item(conn, item, "spool-a")
        queries.replace_renditions(
            conn,
            item.id,
            [
                Rendition(name, f"p/i/{name}.jpg", "image/jpeg", 1000, width, height)
                for name, width, height in (
                    ("large", 900, 1200),
                    ("medium", 768, 1024),
                    ("small", 240, 320),
                )
            ],
        )
    return item.id


def _listed(database: Database, item_id: str) -> list[tuple[str, int | None, int | None]]:
    with database.begin() as conn:
        found = queries.load_item(conn, item_id)
    assert found is not None
    return [(r.name, r.width, r.height) for r in found[0].renditions]


def test_the_padded_photo_joins_the_others_once(database: Database) -> None:
    item_id = _photo(database)
    with database.begin() as conn:
        assert queries.add_rendition(conn, item_id, FITTED) is True
    with database.begin() as conn:  # a retry after a crash, or another node, makes it again
        assert queries.add_rendition(conn, item_id, FITTED) is False
    assert _listed(database, item_id) == [
        ("large", 900, 1200),
        ("medium", 768, 1024),
        ("small", 240, 320),
        ("fit_instagram", 960, 1200),
    ]


def test_two_nodes_adding_it_at_once_list_it_once(database: Database) -> None:
    """The second node's transaction starts before the first's commits: it waits (PostgreSQL's
    advisory lock; SQLite's writers queue) and then finds the row."""
    item_id = _photo(database)
    second: list[bool] = []

    def other_node() -> None:
        with database.begin() as conn:
            second.append(queries.add_rendition(conn, item_id, FITTED))

    with database.begin() as conn:
        assert queries.add_rendition(conn, item_id, FITTED) is True
        node = threading.Thread(target=other_node)
        node.start()
        if database.is_postgres:
            _wait_until_blocked(database, node)
    node.join()
    assert second == [False]
    with database.begin() as conn:
        assert _count(conn, item_id) == 1


def _count(conn: Connection, item_id: str) -> int:
    query = select(func.count()).where(
        renditions.c.item_id == item_id, renditions.c.name == "fit_instagram"
    )
    return conn.execute(query).scalar_one()


def _wait_until_blocked(database: Database, node: threading.Thread) -> None:
    """Until the other node's transaction waits on the advisory lock (so the test shows the
    lock, not a lucky order), or has ended without waiting (and found no row: the test fails)."""
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    with database.engine.connect() as watcher:
        while node.is_alive() and not watcher.execute(waiting).scalar_one():
            watcher.rollback()  # a fresh snapshot of pg_locks on the next look
