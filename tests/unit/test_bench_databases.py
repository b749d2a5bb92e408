"""bench/databases.py: the one reader of the relay's posts that the bench uses on SQLite and on
PostgreSQL alike, and the PostgreSQL databases it makes for a run and drops after it."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import create_engine, text

from bench.databases import PostsReader, postgres_database
from bench.harness import Unavailable
from relay.db import Database, normalise_url, queries
from relay.model import Item, ItemStatus, Post
from tests.server import free_port


def _photo_post(db: Database, user_id: str, name: str) -> Post:
    post = Post(id=f"{name}{time.time_ns()}", user_id=user_id, title=name, text="")
    item = Item(id=f"{post.id}i", post_id=post.id, position=0, filename="p.jpg", declared_mime=None)
    with db.begin() as conn:
        queries.insert_post(conn, post)
        queries.insert_item(conn, item, f"spool-{name}")
    post.items.append(item)
    return post


def test_reader_counts_the_posts_and_sees_which_are_ready(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
    done, waiting = _photo_post(database, user_id, "done"), _photo_post(database, user_id, "wait")
    with database.begin() as conn:
        queries.set_item(conn, done.items[0].id, status=ItemStatus.READY.value)
        assert queries.settle_post(conn, done.id)
    with PostsReader(database.url) as posts:
        ready = posts.ready_at([done.id, waiting.id])
        assert list(ready) == [done.id] and ready[done.id] > 0
        assert posts.posts() == 2
        assert posts.items_not_ready() == 1  # the waiting post's photo


def test_no_server_makes_the_scenario_unavailable_without_its_password() -> None:
    server = f"postgresql://bench:Pw-0f-bench@127.0.0.1:{free_port()}/test"
    with pytest.raises(Unavailable) as caught, postgres_database(server):
        pass
    assert "no PostgreSQL at" in str(caught.value) and "Pw-0f-bench" not in str(caught.value)


def test_a_database_of_its_own_is_dropped_afterwards() -> None:
    server = os.environ.get("RELAY_TEST_DATABASE_URL")
    if not server:
        pytest.skip("RELAY_TEST_DATABASE_URL is not set")
    admin = create_engine(normalise_url(server))
    try:
        with postgres_database(server) as url:
            name = url.rsplit("/", 1)[1]
            with PostsReader(url) as posts, posts.engine.connect() as conn:
                assert conn.execute(text("SELECT current_database()")).scalar() == name
        with admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            assert found.first() is None
    finally:
        admin.dispose()
