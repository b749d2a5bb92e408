"""Claiming is fair between users: one user's backlog does not hold another's photo behind it.
On SQLite and (with RELAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, select, text

from relay import jobs
from relay.db import Database, migrations, queries
from relay.db.schema import jobs as jobs_table
from relay.model import Item, Post


def _post_with_items(db: Database, name: str, n: int) -> list[str]:
    with db.begin() as conn:
        user_id = queries.add_user(conn, name)
        post = Post(id=f"post-{name}", user_id=user_id, title="t", text="")
        queries.insert_post(conn, post)
        ids = [f"item-{name}-{i}" for i in range(n)]
        for i, item_id in enumerate(ids):
            item = Item(item_id, post.id, i, f"{i}.jpg", None)
            queries.insert_item(conn, item, f"spool-{name}-{i}")
    return ids


def test_a_later_users_job_is_claimed_before_most_of_a_backlog(database: Database) -> None:
    backlog = _post_with_items(database, "anna", 300)
    photo = _post_with_items(database, "bert", 1)
    with database.begin() as conn:
        for item_id in backlog:  # anna's 300 parts, as one mail of them enqueues them
            jobs.enqueue(conn, "process_item", item_id)
    with database.begin() as conn:  # later: bert's one photo
        jobs.enqueue(conn, "process_item", photo[0])

    claimed = []
    while (job := database.run_here(jobs.claim, "w:1:0", 60.0)) is not None:
        claimed.append(job.ref)
        database.run_here(jobs.complete, job)
    assert len(claimed) == 301
    assert claimed.index(photo[0]) <= 2, claimed[:5]
    assert [ref for ref in claimed if ref != photo[0]] == backlog  # anna's stay in order


def _claim_all(database: Database, hand_on: dict[str, list[str]]) -> list[str]:
    """Claim until none is left; a claimed job whose ref is in ``hand_on`` hands its work on
    to process_item jobs for those refs, as unpacking a mail does."""
    claimed = []
    while (job := database.run_here(jobs.claim, "w:1:0", 60.0)) is not None:
        claimed.append(job.ref)
        with database.begin() as conn:
            owner = jobs.owner_of(conn, job.ref)
            wanted = [("process_item", ref) for ref in hand_on.get(job.ref, [])]
            jobs.hand_on(conn, job, wanted, owner)
            jobs.complete(conn, job)
    return claimed


def test_a_mails_photos_keep_the_mails_place_in_line(database: Database) -> None:
    mails = []
    for number in range(3):  # anna's three mails of two photos each
        [first, second] = _post_with_items(database, f"anna{number}", 2)
        mails.append((f"post-anna{number}", [first, second]))
    with database.begin() as conn:
        owner = queries.add_user(conn, "anna")
        for post_id, _ in mails:
            conn.execute(
                text("UPDATE posts SET user_id = :u WHERE id = :p"), {"u": owner, "p": post_id}
            )
        for post_id, _ in mails:
            jobs.enqueue(conn, "unpack_mail", post_id)

    claimed = _claim_all(database, dict(mails))
    # Each mail's photos before the mails sent after it, not behind all of them: the first
    # photo is ready after one mail's unpacking, not after every mail's.
    (m0, (a, b)), (m1, (c, d)), (m2, (e, f)) = mails
    assert claimed.index(a) < claimed.index(m1)
    assert claimed.index(c) < claimed.index(m2)
    assert sorted(claimed) == sorted([m0, a, b, m1, c, d, m2, e, f])


def test_a_later_users_job_goes_before_the_photos_of_a_backlog_of_mails(
    database: Database,
) -> None:
    mails = [(f"post-anna{n}", _post_with_items(database, f"anna{n}", 1)) for n in range(50)]
    photo = _post_with_items(database, "bert", 1)
    with database.begin() as conn:
        owner = queries.add_user(conn, "anna")
        for post_id, _ in mails:
            conn.execute(
                text("UPDATE posts SET user_id = :u WHERE id = :p"), {"u": owner, "p": post_id}
            )
            jobs.enqueue(conn, "unpack_mail", post_id)
    first = database.run_here(jobs.claim, "w:1:0", 60.0)
    with database.begin() as conn:  # anna's first mail unpacked; then bert sends his photo
        jobs.hand_on(conn, first, [("process_item", mails[0][1][0])], owner)
        jobs.complete(conn, first)
        jobs.enqueue(conn, "process_item", photo[0])

    claimed = _claim_all(database, dict(mails))
    assert len(claimed) == 50 - 1 + 50 + 1
    assert claimed.index(photo[0]) <= 2, claimed[:5]


def test_jobs_know_their_owner_from_their_ref(database: Database) -> None:
    [item_id] = _post_with_items(database, "anna", 1)
    with database.begin() as conn:
        item_job = jobs.enqueue(conn, "process_item", item_id)
        post_job = jobs.enqueue(conn, "unpack_mail", "post-anna")
        stray = jobs.enqueue(conn, "other", "no-such-ref")
        owners = dict(conn.execute(select(jobs_table.c.id, jobs_table.c.owner)).all())
        anna = queries.post_row(conn, "post-anna")["user_id"]
    assert owners == {item_job: anna, post_job: anna, stray: None}


def test_a_version_3_jobs_table_is_made_fair_and_keeps_its_jobs(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    database.migrate()
    with database.begin() as conn:  # back to the landed version 3 jobs table, with a job
        conn.execute(text("DROP TABLE jobs"))
        conn.execute(
            text(
                "CREATE TABLE jobs (id INTEGER NOT NULL PRIMARY KEY, kind VARCHAR(32) NOT NULL,"
                " ref VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,"
                " attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,"
                " run_at FLOAT NOT NULL, lease_until FLOAT, locked_by VARCHAR(64),"
                " last_error TEXT, created_at FLOAT NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX ix_jobs_claim ON jobs (status, run_at)"))
        conn.execute(
            text(
                "INSERT INTO jobs (kind, ref, status, attempts, max_attempts, run_at, created_at)"
                " VALUES ('process_item', 'old-item', 'queued', 0, 5, 1.0, 1.0)"
            )
        )
        conn.execute(text("UPDATE relay_schema_version SET version = 3"))
    assert database.migrate() == 3
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        names = {index["name"] for index in inspect(conn).get_indexes("jobs")}
        new = jobs.enqueue(conn, "process_item", "new-item")
    assert {"ix_jobs_claim", "ix_jobs_fair", "ix_jobs_owner"} <= names
    first = database.run_here(jobs.claim, "w:1:0", 60.0)
    second = database.run_here(jobs.claim, "w:1:0", 60.0)
    assert (first.ref, second.id) == ("old-item", new)
    database.close()
