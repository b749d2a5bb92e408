"""A worker whose lease lapsed (a database outage longer than the lease) and whose job another
worker claimed since cannot overwrite that worker's state: its late complete, retry, bury or
postpone writes nothing and raises LeaseLost, and the worker loop drops the job. On SQLite and
(with RELAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, select, text

from relay import jobs
from relay.db import Database, migrations
from relay.db.schema import jobs as jobs_table
from relay.worker import Workers

LAPSED = -1.0
"""A lease that ran out at once: the next claim takes the job, no clock to wait for."""


def _row(database: Database, job_id: int) -> dict | None:
    with database.begin() as conn:
        found = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).mappings()
        row = found.first()
    return dict(row) if row else None


def _taken_over(database: Database, max_attempts: int = 5) -> tuple[jobs.Job, jobs.Job]:
    """A job claimed by worker A, whose lease lapsed, then claimed by worker B."""
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "item-1", max_attempts=max_attempts)
    first = database.run_here(jobs.claim, "host-a:1:0", LAPSED)
    second = database.run_here(jobs.claim, "host-b:2:0", 60.0)
    assert first is not None and second is not None and first.id == second.id
    assert (first.claim, second.claim) == (1, 2)
    return first, second


@pytest.mark.parametrize(
    "late",
    [
        lambda conn, job: jobs.complete(conn, job),
        lambda conn, job: jobs.retry_or_bury(conn, job, "late failure"),
        lambda conn, job: jobs.postpone(conn, job, 5.0, "late outage"),
    ],
    ids=["complete", "retry", "postpone"],
)
def test_a_late_write_of_the_first_worker_changes_nothing(database: Database, late) -> None:  # noqa: ANN001
    first, second = _taken_over(database)
    before = _row(database, first.id)
    with pytest.raises(jobs.LeaseLost):
        database.run_here(late, first)
    assert _row(database, first.id) == before  # still B's: running, B's lease and attempts
    assert before is not None and before["locked_by"] == "host-b:2:0"
    database.run_here(jobs.complete, second)  # the holder's own write takes
    assert _row(database, first.id) is None


def test_a_late_bury_of_an_exhausted_job_changes_nothing(database: Database) -> None:
    first, second = _taken_over(database, max_attempts=1)
    assert first.exhausted
    with pytest.raises(jobs.LeaseLost):
        database.run_here(jobs.retry_or_bury, first, "late failure")
    row = _row(database, first.id)
    assert row is not None and (row["status"], row["last_error"]) == ("running", None)


def test_a_lapsed_lease_no_one_claimed_is_still_ours(database: Database) -> None:
    with database.begin() as conn:
        jobs.enqueue(conn, "process_item", "item-1")
    job = database.run_here(jobs.claim, "host-a:1:0", LAPSED)
    assert database.run_here(jobs.retry_or_bury, job, "boom")
    row = _row(database, job.id)
    assert row is not None and row["status"] == "queued"


def test_a_postponement_does_not_reuse_the_fencing_token(database: Database) -> None:
    # B postpones (giving back its attempt, so attempts alone would repeat), C claims: B's
    # stale complete must not delete C's job.
    _first, second = _taken_over(database)
    database.run_here(jobs.postpone, second, 0.0, "store away")
    with database.begin() as conn:
        conn.execute(jobs_table.update().values(run_at=0.0))
    third = database.run_here(jobs.claim, "host-c:3:0", 60.0)
    assert third is not None and third.attempts == second.attempts and third.claim == 3
    with pytest.raises(jobs.LeaseLost):
        database.run_here(jobs.complete, second)
    assert _row(database, third.id) is not None


def test_the_worker_loop_logs_and_drops_a_job_taken_over_and_rolls_back_its_writes(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _taken_over(database)
    workers = Workers(database)

    async def run(job: jobs.Job) -> None:
        def record(conn: Connection) -> None:
            # What a runner does: its result and the job's end in one transaction.
            conn.execute(jobs_table.update().where(jobs_table.c.id == job.id).values(ref="late"))
            jobs.complete(conn, job)

        await database.run(record)

    workers.register("process_item", run)
    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        asyncio.run(workers._run_job(first, "host-a:1:0"))
    row = _row(database, first.id)
    assert row is not None and row["ref"] == "item-1"  # A's write rolled back with its complete
    assert row["locked_by"] == "host-b:2:0" and row["status"] == "running"
    assert any("lease lost before complete" in r.getMessage() for r in caplog.records)
    # Not counted as a failure of the job: no retry was recorded over B's claim.
    assert row["last_error"] is None

    async def fail(job: jobs.Job) -> None:
        raise RuntimeError("the stale worker's run failed")

    workers.register("process_item", fail)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        asyncio.run(workers._run_job(first, "host-a:1:0"))  # its retry is refused: dropped
    assert _row(database, first.id) == row
    assert any("lease lost before retry" in r.getMessage() for r in caplog.records)
    database.run_here(jobs.complete, second)


def test_a_version_5_jobs_table_gets_claims_and_keeps_its_jobs(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    database.migrate()
    with database.begin() as conn:  # back to the landed version 5 jobs table, with a job
        conn.execute(text("DROP TABLE jobs"))
        conn.execute(
            text(
                "CREATE TABLE jobs (id INTEGER NOT NULL PRIMARY KEY, kind VARCHAR(32) NOT NULL,"
                " ref VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL,"
                " attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,"
                " run_at FLOAT NOT NULL, lease_until FLOAT, locked_by VARCHAR(64),"
                " last_error TEXT, created_at FLOAT NOT NULL, owner VARCHAR(32),"
                " fair_at FLOAT)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (kind, ref, status, attempts, max_attempts, run_at,"
                " created_at, fair_at) VALUES ('process_item', 'old-item', 'running', 1, 5,"
                " 1.0, 1.0, 1.0)"
            )
        )
        conn.execute(text("UPDATE jobs SET lease_until = 0.0, locked_by = 'old:1:0'"))
        conn.execute(text("UPDATE relay_schema_version SET version = 5"))
    assert database.migrate() == 5
    with database.begin() as conn:
        assert migrations.current_version(conn) == migrations.LATEST
        assert "claims" in {column["name"] for column in inspect(conn).get_columns("jobs")}
    # The job a worker held before the upgrade is claimed anew, fenced from then on.
    job = database.run_here(jobs.claim, "new:2:0", 60.0)
    assert (job.ref, job.attempts, job.claim) == ("old-item", 2, 1)
    database.run_here(jobs.complete, job)
    assert _row(database, job.id) is None
    database.close()
