"""The relay's database as the bench sees it: a PostgreSQL database of its own for one relay run,
and one reader of the posts for SQLite and PostgreSQL alike.

The PostgreSQL server is ``BENCH_DATABASE_URL`` (any database on it: the bench only connects to
create and drop its own), by default the one of the test suite, ``postgresql://root@127.0.0.1/test``.
Each relay run gets a fresh ``bench_<random>`` database, dropped afterwards, so two runs never
count each other's posts. No server answering makes the scenario "not available", not an error.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Unavailable

DEFAULT_SERVER = "postgresql://root@127.0.0.1/test"


def server_url(default: str | None = DEFAULT_SERVER) -> str | None:
    """The PostgreSQL server to make databases on: ``BENCH_DATABASE_URL``, else ``default``."""
    return os.environ.get("BENCH_DATABASE_URL") or default


def _shown(url: str) -> str:
    """``url`` without its password: it goes into notes and errors."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def postgres_database(server: str | None = None, prefix: str = "bench") -> Iterator[str]:
    """A new database on ``server`` (see ``server_url``), dropped with its connections when
    done; yields its URL. ``Unavailable`` when the server does not answer."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from relay.db import normalise_url

    server = server or server_url()
    assert server is not None
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:
            reason = str(exc.orig or exc).splitlines()[0][:200]
            raise Unavailable(f"no PostgreSQL at {_shown(server)}: {reason}") from None
        try:
            yield server.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def relay_database_url(data_dir: Path, env: dict[str, str]) -> str:
    """The database a ``relay serve`` on ``data_dir`` with ``env`` uses: its
    ``RELAY_DATABASE_URL`` or the embedded SQLite file."""
    return env.get("RELAY_DATABASE_URL") or f"sqlite:///{data_dir / 'relay.db'}"


class PostsReader:
    """The relay's posts and items, read through SQLAlchemy on either database. SQLite is opened
    read-only (WAL: the reader never blocks the relay's writer); one connection, kept."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        from relay.db import normalise_url

        if url.startswith("sqlite:///"):
            url = f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
        self.engine = create_engine(normalise_url(url), pool_size=1, max_overflow=0)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> PostsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scalar(self, sql: str) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)

    def ready_at(self, post_ids: list[str]) -> dict[str, float]:
        """``ready_at`` (Unix seconds) of those of ``post_ids`` that are ready."""
        from sqlalchemy import text

        wanted = set(post_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, ready_at FROM posts WHERE ready_at IS NOT NULL"))
            return {post_id: at for post_id, at in rows if post_id in wanted}

    def posts(self) -> int:
        """How many posts there are: what a door committed before its ``250``/``202``."""
        return self._scalar("SELECT count(*) FROM posts")

    def items_not_ready(self) -> int:
        return self._scalar("SELECT count(*) FROM items WHERE status != 'ready'")
