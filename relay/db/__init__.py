"""The database: one SQLAlchemy engine, used from the event loop through a small thread pool.

SQLite (the default) runs in WAL mode with ``synchronous=FULL`` so a commit survives power loss,
and write transactions start with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on
lock upgrade. PostgreSQL is used as it is.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.pool import SingletonThreadPool

from relay.db import migrations

if TYPE_CHECKING:
    from relay.sealed import Sealer

T = TypeVar("T")

log = logging.getLogger("relay.db")


def lock(conn: Connection, *name: str) -> None:
    """Serialise transactions that take the same ``name`` until they end (PostgreSQL's
    transaction-scoped advisory lock); SQLite's writers queue anyway (BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})


def lock_all(conn: Connection, names: list[tuple[str, ...]]) -> None:
    """``lock`` on each of ``names`` in one statement (one round trip on PostgreSQL), in the
    order of their keys, so that two transactions taking some of the same never deadlock."""
    if conn.dialect.name == "postgresql" and names:
        keys = sorted({_lock_key(name) for name in names})
        conn.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
            {"keys": keys},
        )


def _lock_key(name: tuple[str, ...]) -> int:
    return int(hashlib.sha256("\0".join(name).encode()).hexdigest()[:15], 16)


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, durable: bool = True, one_per_thread: bool = False) -> Engine:
    """``durable=False``: an engine whose commits do not wait for the disk (SQLite
    ``synchronous=NORMAL`` in WAL mode, PostgreSQL ``synchronous_commit=off``), still atomic
    and in order: a power cut may lose its last transactions, never corrupt them."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **({"poolclass": SingletonThreadPool} if one_per_thread else {}),
        )
        synchronous = "FULL" if durable else "NORMAL"

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("write", True) else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if durable:
        return _ping_when_idle(create_engine(url, pool_size=10, max_overflow=10))
    engine = _ping_when_idle(create_engine(url, pool_size=2, max_overflow=8))

    @event.listens_for(engine, "connect")
    def _on_connect_pg(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        dbapi_conn.commit()

    return engine


PING_IDLE_SECONDS = 2.0
"""A pooled PostgreSQL connection idle this long is pinged before it is used again."""


def _ping_when_idle(engine: Engine) -> Engine:
    """Ping a connection when it comes out of the pool only if it sat there a while, or if a
    connection was found cut since it went in.

    ``pool_pre_ping`` pinged at every checkout: a round trip before each transaction, 16% of
    the database threads' time when SMTP intake ran on PostgreSQL (an RCPT's lookup made two
    round trips instead of one). A connection used a moment ago, with no trouble seen since,
    is alive. A server restart or a firewall that drops idle connections is what the ping is
    for: those connections have been idle. When the database goes away under load, the first
    transaction that meets it fails (as it did with the ping); from then on every connection
    that was in the pool meanwhile is pinged before use, so none fails after the database is
    back."""
    trouble = [0.0]
    """When a connection of this engine was last found cut (or could not be made)."""

    @event.listens_for(engine, "handle_error")
    def _note_trouble(context: Any) -> None:
        if context.is_disconnect or isinstance(
            context.sqlalchemy_exception, exc.OperationalError | exc.InterfaceError
        ):
            trouble[0] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None:  # new: just connected
            return
        if since > trouble[0] and time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            trouble[0] = time.monotonic()
            # The pool drops this connection and checks out another (a new one if need be).
            raise exc.DisconnectionError(f"idle connection is gone: {error}") from error

    return engine


class Database:
    def __init__(self, url: str, threads: int = 4, sealer: Sealer | None = None) -> None:
        """``sealer`` seals and opens destinations' secrets (relay/db/destinations.py reads it
        from each connection's execution options); the relay and the CLI always give one
        (``Sealer.from_settings``). Without one, a secret can be neither stored nor read."""
        self.url = url
        self.sealer = sealer
        self.engine = make_engine(url)
        self.volatile = make_engine(url, durable=False)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # The event loop's own connection for read_by_key: never waits for one from the pool.
        self.inline = None if self.is_postgres else make_engine(url, one_per_thread=True)
        # PostgreSQL's read_by_key is one statement: without a transaction around it, psycopg
        # sends no BEGIN and no COMMIT, two of its four round trips (an SMTP RCPT's lookup).
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.single_reads = autocommit if self.is_postgres else None
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="relay-db")

    @contextmanager
    def begin(self, write: bool = True, engine: Engine | None = None) -> Iterator[Connection]:
        connection = (engine or self.engine).connect()
        options = connection.execution_options(write=write, sealer=self.sealer)
        with options as conn, conn.begin():
            yield conn

    def migrate(self) -> int:
        from relay.db import destinations

        with self.begin() as conn:
            # Several nodes may start at once: one migrates, the others wait and find it done.
            lock(conn, "migrate")
            found = migrations.migrate(conn)
            # Migration 8 seals the secrets it finds; this seals any written in clear since
            # (by a database opened without the key). Idempotent, and cheap: few rows.
            destinations.seal_clear_text(conn)
            return found

    def ping(self) -> None:
        with self.begin(write=False) as conn:
            conn.execute(text("SELECT 1"))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in one write transaction, off the event loop."""
        return await self._off_loop(True, None, fn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``run``, in a transaction that does not take SQLite's write lock."""
        return await self._off_loop(False, None, fn, *args, **kwargs)

    async def read_by_key(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``read`` for a lookup of a row or two by an indexed key, in the hot path. SQLite
        answers it from the page cache on this thread in ~0.1 ms, less than the event loop
        spends sending work to a thread and taking the answer back (readers never wait for the
        writer in WAL mode); PostgreSQL answers over the network, so there it runs on a
        database thread, outside a transaction (``fn`` makes one statement)."""
        if self.inline is None:
            return await self._off_loop(False, self.single_reads, fn, *args, **kwargs)
        return self._call(False, fn, *args, engine=self.inline, **kwargs)

    async def run_volatile(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run`` for a write whose loss in a power cut harms nothing (a lease, which a
        crash frees anyway): its commit does not wait for the disk, and the next durable
        commit makes it durable too. A tus PATCH took 2 ms to take its lease, durably."""
        return await self._off_loop(True, self.volatile, fn, *args, **kwargs)

    def run_here(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run`` on the calling thread, for work already off the event loop: a door that
        fsyncs a file and then records it makes one trip to a thread, not two."""
        return self._call(True, fn, *args, **kwargs)

    def read_here(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``read`` on the calling thread, for a thread that is not the event loop's and must
        answer at once: libsrt's listen callback checks a stream key this way (relay/intake/
        srt.py)."""
        return self._call(False, fn, *args, **kwargs)

    async def _off_loop(
        self, write: bool, engine: Engine | None, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        call = functools.partial(self._call, write, fn, *args, engine=engine, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _call(
        self,
        write: bool,
        fn: Callable[..., T],
        *args: Any,
        engine: Engine | None = None,
        **kwargs: Any,
    ) -> T:
        with self.begin(write=write, engine=engine) as conn:
            return fn(conn, *args, **kwargs)

    def close(self, last: Callable[[Connection], object] | None = None) -> None:
        """Stop the database threads (waiting for what they run), then ``last(conn)`` in one
        transaction, then the connections."""
        self._pool.shutdown(wait=True)
        if last is not None:
            try:
                with self.begin() as conn:
                    last(conn)
            except Exception as exc:  # the database is away: what ``last`` does waits for leases
                log.warning("the last step before closing the database failed: %s", exc)
        self.engine.dispose()
        self.volatile.dispose()
        if self.inline is not None:
            self.inline.dispose()
