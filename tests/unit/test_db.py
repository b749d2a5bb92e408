"""The database layer and the job queue, on SQLite and (with RELAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, select, text, update

from relay import jobs
from relay.db import Database, migrations, queries
from relay.db.schema import addresses, tokens
from relay.db.schema import jobs as jobs_table
from relay.model import Item, ItemStatus, Post, PostStatus


def _user(db: Database, name: str = "anna") -> str:
    with db.begin() as conn:
        return queries.add_user(conn, name)


def test_migrate_is_versioned_and_idempotent(database: Database) -> None:
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
    assert database.migrate() == migrations.LATEST  # already there: nothing to do


def test_tokens_and_addresses_are_stored_only_as_hashes(database: Database) -> None:
    user_id = _user(database)
    with database.begin() as conn:
        token = queries.add_token(conn, user_id)
        secret = queries.add_address(conn, user_id)
        stored = [
            *conn.execute(select(tokens)).mappings(),
            *conn.execute(select(addresses)).mappings(),
        ]
    assert len(token) >= 26 and len(secret) >= 32  # ≥ 128 random bits either way
    for row in stored:
        assert token not in str(dict(row)) and secret not in str(dict(row))
    with database.begin() as conn:
        assert queries.user_for_token(conn, token) == user_id
        assert queries.user_for_address(conn, secret) == user_id
        assert queries.user_for_token(conn, token + "x") is None
        assert queries.revoke(conn, tokens, token)
        assert queries.user_for_token(conn, token) is None
        assert not queries.revoke(conn, tokens, token)


def test_duplicate_user_is_refused(database: Database) -> None:
    _user(database)
    with pytest.raises(queries.Conflict):
        _user(database)


def _post_with_items(db: Database, user_id: str, n: int) -> Post:
    post = Post(id=f"p{time.time_ns()}", user_id=user_id, title="t", text="")
    with db.begin() as conn:
        queries.insert_post(conn, post)
        for i in range(n):
            item = Item(
                id=f"{post.id}i{i}",
                post_id=post.id,
                position=i,
                filename=f"{i}.jpg",
                declared_mime=None,
            )
            queries.insert_item(conn, item, f"spool{i}")
            post.items.append(item)
    return post


def test_post_is_ready_only_when_every_item_is_final(database: Database) -> None:
    post = _post_with_items(database, _user(database), 2)
    with database.begin() as conn:
        queries.set_item(conn, post.items[0].id, status=ItemStatus.READY.value)
        assert not queries.settle_post(conn, post.id)
        queries.set_item(
            conn, post.items[1].id, status=ItemStatus.FAILED.value, error_code="media.corrupt"
        )
        assert queries.settle_post(conn, post.id)
        assert not queries.settle_post(conn, post.id)  # once
        loaded = queries.load_post(conn, post.id)
    assert loaded.status == PostStatus.READY
    assert loaded.items[1].error == {
        "code": "media.corrupt",
        "message": "The file is damaged or truncated and cannot be read.",
    }


def test_queue_claims_each_job_once(database: Database) -> None:
    with database.begin() as conn:
        for n in range(20):
            jobs.enqueue(conn, "process_item", f"ref{n}")
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            with database.begin() as conn:
                job = jobs.claim(conn, name, lease=60)
                if job is None:
                    return
                jobs.complete(conn, job)
            with lock:
                claimed.append(job.ref)

    threads = [threading.Thread(target=worker, args=(f"host:1:{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(f"ref{n}" for n in range(20))


def test_expired_lease_is_claimed_again_as_a_new_attempt(database: Database) -> None:
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "a", max_attempts=3)
        first = jobs.claim(conn, "host:1:0", lease=60)
        assert jobs.claim(conn, "host:1:1", lease=60) is None  # leased
        conn.execute(update(jobs_table).values(lease_until=time.time() - 1))
        again = jobs.claim(conn, "host:1:1", lease=60)
    assert (first.ref, first.attempts) == ("a", 1)
    assert (again.ref, again.attempts) == ("a", 2)


def test_retry_backs_off_then_buries_with_the_error(database: Database) -> None:
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "a", max_attempts=2)
        job = jobs.claim(conn, "w", lease=60)
        assert jobs.retry_or_bury(conn, job, "boom 1")
        assert jobs.claim(conn, "w", lease=60) is None  # not due yet: backoff
        conn.execute(update(jobs_table).values(run_at=time.time() - 1))
        job = jobs.claim(conn, "w", lease=60)
        assert job.attempts == 2 and job.exhausted
        assert not jobs.retry_or_bury(conn, job, "boom 2")
        row = conn.execute(select(jobs_table)).mappings().one()
    assert (row["status"], row["last_error"]) == ("dead", "boom 2")


def test_backoff_grows_and_is_capped() -> None:
    assert 1.0 <= jobs.backoff(1) <= 2.0
    assert 8.0 <= jobs.backoff(4) <= 16.0
    assert jobs.backoff(40) <= 300.0


def test_a_restarted_node_frees_its_own_jobs_and_never_another_nodes(database: Database) -> None:
    """Two containers share a host name and pid 1: only the id of the process's start
    (``relay.node``) says whose a claim is; another node's jobs wait for their leases."""
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "mine")
        jobs.enqueue(conn, "process_item", "theirs")
        jobs.claim(conn, "node-a:1111:0", lease=600)
        jobs.claim(conn, "node-b:2222:0", lease=600)
        released = jobs.release_node(conn, "node-a")
        again = jobs.claim(conn, "node-a:3333:0", lease=600)
        nothing = jobs.claim(conn, "node-a:3333:1", lease=600)
    assert released == 1
    assert again.ref == "mine"
    assert nothing is None


def test_a_lease_is_renewed_only_by_the_claim_that_holds_it(database: Database) -> None:
    """A worker whose lease lapsed and was claimed since renews nothing, even under the same
    name (the fencing token decides)."""
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "x")
        first = jobs.claim(conn, "node:run:0", lease=-1)  # lapsed at once
        second = jobs.claim(conn, "node:run:0", lease=600)
        assert first is not None and second is not None
        assert not jobs.extend(conn, first, "node:run:0", 600)
        assert jobs.extend(conn, second, "node:run:0", 600)


def test_a_volatile_write_is_a_write_that_does_not_wait_for_the_disk(database: Database) -> None:
    """Leases go through ``run_volatile``: seen by every later transaction like any write, on a
    connection whose commits skip the disk flush (the next durable commit covers them)."""

    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")

    def rename(conn: Connection) -> str:
        conn.execute(text("UPDATE users SET name = 'anna2' WHERE id = :id"), {"id": user_id})
        if database.is_postgres:
            return conn.execute(text("SHOW synchronous_commit")).scalar_one()
        return str(conn.execute(text("PRAGMA synchronous")).scalar_one())

    assert asyncio.run(database.run_volatile(rename)) in ("off", "1")  # 1: NORMAL
    with database.begin(write=False) as conn:
        assert queries.user_id_by_name(conn, "anna2") == user_id
        durable = conn.execute(
            text("SHOW synchronous_commit" if database.is_postgres else "PRAGMA synchronous")
        ).scalar_one()
    assert str(durable) in ("on", "2")  # 2: FULL, what every other transaction gets


def test_a_lookup_by_key_sees_every_commit_and_on_sqlite_skips_the_thread_trip(
    database: Database,
) -> None:
    """``read_by_key`` answers from the event loop's own connection on SQLite (no pool to wait
    for, no thread), through a thread on PostgreSQL; either way it sees the latest commit."""
    caller = threading.get_ident()
    seen: list[int] = []

    def owner(conn: Connection, name: str) -> str | None:
        seen.append(threading.get_ident())
        return queries.user_id_by_name(conn, name)

    async def lookups() -> list[str | None]:
        found = [await database.read_by_key(owner, "anna")]
        with database.begin() as conn:  # another connection commits meanwhile
            user_id = queries.add_user(conn, "anna")
        found.append(await database.read_by_key(owner, "anna"))
        assert found[1] == user_id
        return found

    assert asyncio.run(lookups())[0] is None
    assert (caller in seen) is (not database.is_postgres)


def test_a_version_2_database_gets_posts_indexed_by_message_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = Database(url)
    database.migrate()
    with database.begin() as conn:  # back to version 2: the index by content hash
        conn.execute(text("DROP INDEX ix_posts_user_message"))
        conn.execute(text("CREATE INDEX ix_posts_user_content ON posts (user_id, content_sha256)"))
        conn.execute(text("UPDATE relay_schema_version SET version = 2"))
    assert database.migrate() == 2
    with database.begin() as conn:
        names = {index["name"] for index in inspect(conn).get_indexes("posts")}
    assert "ix_posts_user_message" in names and "ix_posts_user_content" not in names
    database.close()


def test_a_start_finds_the_processes_of_its_data_folder_that_are_gone(tmp_path: Path) -> None:
    """The kernel drops a dead process's lock: a start takes it and frees that one's jobs;
    a running one's lock it cannot take, and leaves alone."""
    import subprocess
    import sys

    from relay.node import start_node, stop_node

    script = (
        "import sys, time; from pathlib import Path; from relay.node import start_node;"
        "node, fd, gone = start_node(Path(sys.argv[1])); print(node, flush=True);"
        "time.sleep(600)"
    )
    dead = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
    alive = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert dead.stdout is not None and alive.stdout is not None
        dead_id = dead.stdout.readline().decode().strip()
        alive_id = alive.stdout.readline().decode().strip()
        dead.kill()
        dead.wait()
        node, fd, gone = start_node(tmp_path)
        assert gone == [dead_id]
        assert sorted(p.stem for p in (tmp_path / "nodes").glob("*.lock")) == sorted(
            [alive_id, node]
        )
        stop_node(tmp_path, node, fd)
    finally:
        alive.kill()
        alive.wait()


def test_postgres_connections_cut_while_idle_are_replaced_unseen(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection idle past ``PING_IDLE_SECONDS`` is pinged before use: one the
    server cut meanwhile (a restart, an idle timeout) is replaced and the caller never sees it.
    One in steady use is not pinged: each ping was a round trip before every transaction."""
    import relay.db as db_module

    database = Database(postgres)
    database.migrate()
    dialect = database.engine.dialect
    pings: list[object] = []
    ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    try:
        _user(database)

        def backend() -> int:
            with database.begin(write=False) as conn:
                return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

        first = backend()
        assert backend() == first  # the same pooled connection, in steady use
        assert pings == []
        with Database(postgres).engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            other.commit()
        monkeypatch.setattr(db_module, "PING_IDLE_SECONDS", 0.0)  # as if it sat idle a while
        assert backend() != first  # the dead one was dropped, a new one taken, no error
        assert pings
        with database.begin(write=False) as conn:
            assert queries.user_id_by_name(conn, "anna") is not None
    finally:
        database.close()


def test_posts_inserted_together_keep_each_its_own_columns(database: Database) -> None:
    """A group commit writes its mails' posts in one statement per set of columns: a mail with
    a Message-ID and one without, in one call, each keep what they were given."""
    user_id = _user(database)
    with_id = Post(id="p-with", user_id=user_id, title="a", text="")
    without = Post(id="p-without", user_id=user_id, title="b", text="")
    rows = [
        queries.post_values(with_id, "mail-1", message_id="<1@example.se>", sender="a@b.se"),
        queries.post_values(without, "mail-2"),
    ]
    with database.begin() as conn:
        queries.insert_posts(conn, rows)
        queries.insert_posts(conn, [])  # a group with no mail
    with database.begin(write=False) as conn:
        first, second = queries.post_row(conn, "p-with"), queries.post_row(conn, "p-without")
    assert first is not None and second is not None
    assert (first["message_id"], first["sender"], first["spool_name"]) == (
        "<1@example.se>",
        "a@b.se",
        "mail-1",
    )
    assert (second["message_id"], second["sender"], second["spool_name"]) == (
        None,
        None,
        "mail-2",
    )
