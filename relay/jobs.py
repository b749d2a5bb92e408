"""A job queue in the relay's own database, so that a job is enqueued in the same transaction
that creates its post (nothing acknowledged without its work recorded).

A worker claims one due job and holds a lease on it; a lease that runs out (the worker died) makes
the job claimable again, and that claim counts as an attempt. Failures retry with exponential
backoff and jitter until ``max_attempts``; then the job is ``dead`` and its last error is kept.
An outage of our own (``postpone``) spends no attempt: the job waits, however long it lasts.
PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers anyway.

Claiming is fair between users: each job has a place in line, ``fair_at``, a virtual clock per
owner (start-time fair queuing). A user's first job is placed at the time it is due; each further
job of the same user while earlier ones still wait is placed ``FAIR_SLOT`` seconds after that
user's last. Workers take the due job with the earliest place, so 100,000 parts from one user
are served one slot apart, and a photo another user sends meanwhile is placed at its own time:
among the first few jobs taken, not after the 100,000. One user alone is served as fast as
before: places order the work, they never make a worker wait. The claim stays one walk of the
``(status, fair_at)`` index, stopping at its first due row.

Every write that ends a claim (``complete``, ``retry_or_bury``, ``postpone``) is fenced: it
takes only while the job is still running under the claim the worker holds, told by ``claims``,
a counter each claim raises and nothing lowers. A worker cut off from the database for longer
than its lease comes back to a job another worker has claimed since (and perhaps finished);
its late write then changes nothing and raises ``LeaseLost``, which rolls back the rest of its
transaction (the item it would have marked) and tells the worker loop to drop the job.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Insert,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from relay.db.schema import deliveries, items, jobs, posts

QUEUED, RUNNING, DEAD = "queued", "running", "dead"

FAIR_SLOT = 60.0
"""Seconds between the places in line of one user's queued jobs. A user who queues later than
another is placed behind at most (later by) / FAIR_SLOT of the other's backlog; larger is fairer
to the newcomer, and costs nothing to a user alone."""


class LeaseLost(Exception):  # noqa: N818 - a state, not a bug; never shown to anyone
    """This worker no longer holds the job: another worker claimed it after our lease lapsed
    (or it is done and gone). Nothing was written; the job is the other worker's."""

    def __init__(self, job: Job, action: str) -> None:
        super().__init__(f"job {job.id} ({job.kind} {job.ref}): lease lost before {action}")
        self.job_id = job.id


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    ref: str
    attempts: int
    max_attempts: int
    claim: int | None = None
    """The job's ``claims`` when this worker claimed it: the fencing token of our writes.
    None only for a Job made by hand rather than by ``claim`` (tests, tools): unfenced."""
    place: float | None = None
    """Its place in line (``fair_at``) when claimed, for the jobs it hands on (``hand_on``)."""

    @property
    def exhausted(self) -> bool:
        return self.attempts >= self.max_attempts


def owner_of(conn: Connection, ref: str) -> str | None:
    """The user whose post the job's ``ref`` is, or is an item or a delivery of (ids are unique
    across tables); None for anything else."""
    return conn.execute(_OWNER_OF, {"ref": ref}).scalar()


# The statements of the hot path are built once, here: building one (its clauses, its cache
# key) cost more Python time than SQLite took to run it, for every job of every photo.
_REF = bindparam("ref")
_OWNER_OF = select(posts.c.user_id).where(
    posts.c.id
    == func.coalesce(
        select(posts.c.id).where(posts.c.id == _REF).scalar_subquery(),
        select(items.c.post_id).where(items.c.id == _REF).scalar_subquery(),
        select(deliveries.c.post_id).where(deliveries.c.id == _REF).scalar_subquery(),
    )
)


def _line_end(owner: Any) -> Select[Any]:
    """The owner's last place among waiting jobs: a backward walk of (owner, fair_at) that stops
    at the first waiting row."""
    return (
        select(jobs.c.fair_at)
        .where(jobs.c.owner == owner, jobs.c.status.in_((QUEUED, RUNNING)))
        .order_by(jobs.c.fair_at.desc())
        .limit(1)
    )


_LINE_END = _line_end(bindparam("owner"))


def _placed_insert() -> Insert:
    """The job's insert with its place in line found by the database in the same statement:
    ``FAIR_SLOT`` behind the owner's last waiting job, or when it is due if that is later. One
    round trip, not a select and then an insert: on PostgreSQL each is a round trip, and a
    mail's commit made six in a row."""
    owner, run_at = bindparam("job_owner"), bindparam("job_run_at", type_=Float)
    last = _line_end(owner).scalar_subquery()
    behind = last + FAIR_SLOT
    columns = ("kind", "ref", "status", "attempts", "max_attempts", "created_at")
    return jobs.insert().values(
        **{name: bindparam(f"job_{name}") for name in columns},
        owner=owner,
        run_at=run_at,
        fair_at=case((last.is_(None), run_at), (behind < run_at, run_at), else_=behind),
    )


_INSERT_PLACED = _placed_insert()


def _row(
    kind: str, ref: str, max_attempts: int, run_at: float, now: float, owner: str | None
) -> dict[str, Any]:
    """A queued job's row, but for its place in line (``fair_at``)."""
    return {
        "kind": kind,
        "ref": ref,
        "status": QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": run_at,
        "created_at": now,
        "owner": owner,
    }


def enqueue(
    conn: Connection,
    kind: str,
    ref: str,
    max_attempts: int = 5,
    delay: float = 0,
    owner: str | None = None,
) -> int:
    """Queue a job; ``owner`` (found from ``ref`` when not given) places it fairly in line."""
    now = time.time()
    owner = owner or owner_of(conn, ref)
    row = _row(kind, ref, max_attempts, now + delay, now, owner)
    if owner is None:
        result = conn.execute(jobs.insert(), {**row, "fair_at": row["run_at"]})
    else:
        result = conn.execute(_INSERT_PLACED, {f"job_{k}": v for k, v in row.items()})
    return result.inserted_primary_key[0]


def hand_on(conn: Connection, job: Job, wanted: list[tuple[str, str]], owner: str | None) -> None:
    """Queue the jobs (kind, ref) that carry ``job``'s work on (a mail's parts, a post's paired
    items) in ``job``'s own place in line and one ``FAIR_SLOT`` apart after it, as if they had
    been queued with it, rather than behind every job its owner queued since.

    Behind them, 200 mails of one photo each were all unpacked before the first photo was
    processed: each photo waited for every later mail, and the short unpacking jobs, one after
    another, left the media processes idle a tenth of the time while the main process handed
    them out. Another user's job is still placed at its own time, so it waits for no more of
    this owner's work than before."""
    if not wanted:
        return
    if job.place is None or owner is None:  # made by hand, or no one's: placed as any other
        for kind, ref in wanted:
            enqueue(conn, kind, ref, job.max_attempts, owner=owner)
        return
    now = time.time()
    rows = [
        {
            **_row(kind, ref, job.max_attempts, now, now, owner),
            "fair_at": max(now, job.place + n * FAIR_SLOT),
        }
        for n, (kind, ref) in enumerate(wanted)
    ]
    conn.execute(jobs.insert(), rows)


def enqueue_many(conn: Connection, wanted: list[tuple[str, str, int, str]]) -> None:
    """Queue jobs (kind, ref, max_attempts, owner) due now, in one insert, each placed in line
    as ``enqueue`` places one: ``FAIR_SLOT`` behind its owner's last waiting job, counting the
    ones before it here. One query per owner for where their line ends."""
    now = time.time()
    ends: dict[str, float | None] = {}
    rows = []
    for kind, ref, max_attempts, owner in wanted:
        if owner not in ends:
            ends[owner] = conn.execute(_LINE_END, {"owner": owner}).scalar()
        end = ends[owner]
        place = now if end is None else max(now, end + FAIR_SLOT)
        ends[owner] = place
        rows.append({**_row(kind, ref, max_attempts, now, now, owner), "fair_at": place})
    if rows:
        conn.execute(jobs.insert(), rows)


def _due(now):  # noqa: ANN001, ANN202 - a time or a bind parameter; a SQLAlchemy clause
    return or_(
        and_(jobs.c.status == QUEUED, jobs.c.run_at <= now),
        and_(jobs.c.status == RUNNING, jobs.c.lease_until < now),
    )


_NOW = bindparam("now")
# Two ordered walks of the (status, run_at) index, each stopping at its first row: the OR of
# both in one query made SQLite sort every due job at every claim, O(backlog) each.
# Lapsed leases first: they are the oldest work and their worker is gone.
# Queued jobs in their fair order (see above): a job's place is never before it is due, so the
# walk skips only jobs waiting for a retry.
_CLAIM_WALKS = (
    (and_(jobs.c.status == RUNNING, jobs.c.lease_until < _NOW), jobs.c.run_at),
    # "run_at + 0": a filter, not an index range. Given the range, SQLite walked the
    # (status, run_at) index and sorted every due job by place: 50 ms with 100k queued.
    (and_(jobs.c.status == QUEUED, jobs.c.run_at + 0 <= _NOW), jobs.c.fair_at),
)
_CLAIM_SELECTS = tuple(
    select(jobs.c.id).where(due).order_by(order, jobs.c.id).limit(1) for due, order in _CLAIM_WALKS
)
_CLAIM_SELECTS_PG = tuple(query.with_for_update(skip_locked=True) for query in _CLAIM_SELECTS)
_CLAIM = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"), _due(_NOW))
    .values(
        status=RUNNING,
        attempts=jobs.c.attempts + 1,
        lease_until=bindparam("new_lease_until"),
        locked_by=bindparam("worker"),
        claims=jobs.c.claims + 1,
    )
    .returning(
        jobs.c.id,
        jobs.c.kind,
        jobs.c.ref,
        jobs.c.attempts,
        jobs.c.max_attempts,
        jobs.c.claims,
        jobs.c.fair_at,
    )
)


def claim(
    conn: Connection, worker: str, lease: float, kinds: list[str] | None = None
) -> Job | None:
    now = time.time()
    job_id = None
    postgres = conn.dialect.name == "postgresql"
    queries = _CLAIM_SELECTS_PG if postgres else _CLAIM_SELECTS
    if kinds:
        queries = tuple(query.where(jobs.c.kind.in_(kinds)) for query in queries)
    for query in queries:
        job_id = conn.execute(query, {"now": now}).scalar()
        if job_id is not None:
            break
    if job_id is None:
        return None
    claimed = conn.execute(
        _CLAIM, {"job_id": job_id, "now": now, "new_lease_until": now + lease, "worker": worker}
    ).first()
    return Job(*claimed) if claimed else None


def extend(conn: Connection, job: Job, worker: str, lease: float) -> bool:
    """Renew our lease; False once another worker has claimed the job (fenced by ``claims``,
    not by the worker's name)."""
    held = _held(job) if job.claim is not None else jobs.c.id == job.id
    result = conn.execute(
        update(jobs)
        .where(held, jobs.c.locked_by == worker, jobs.c.status == RUNNING)
        .values(lease_until=time.time() + lease)
    )
    return result.rowcount > 0


def _held(job: Job):  # noqa: ANN202 - a SQLAlchemy clause
    """The job's row while it still runs under our claim (a lapsed lease that no one claimed
    since is still ours: finishing it is right)."""
    return and_(jobs.c.id == job.id, jobs.c.status == RUNNING, jobs.c.claims == job.claim)


def _fenced(conn: Connection, statement, job: Job, action: str) -> None:  # noqa: ANN001
    if job.claim is None:
        conn.execute(statement.where(jobs.c.id == job.id))
        return
    if conn.execute(statement.where(_held(job))).rowcount == 0:
        raise LeaseLost(job, action)


_DELETE = jobs.delete().where(jobs.c.id == bindparam("job_id"))
_DELETE_HELD = _DELETE.where(jobs.c.status == RUNNING, jobs.c.claims == bindparam("claim"))


def complete(conn: Connection, job: Job) -> None:
    """Done: the job goes. LeaseLost (nothing deleted) if another worker holds it now."""
    if job.claim is None:
        conn.execute(_DELETE, {"job_id": job.id})
    elif conn.execute(_DELETE_HELD, {"job_id": job.id, "claim": job.claim}).rowcount == 0:
        raise LeaseLost(job, "complete")


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before the next try: exponential, capped, with full jitter on the upper half."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_or_bury(conn: Connection, job: Job, error: str, cap: float = 300.0) -> bool:
    """Schedule another try, or mark the job dead; True if it will run again. LeaseLost
    (nothing written) if another worker holds the job now."""
    if job.exhausted:
        _fenced(
            conn,
            update(jobs).values(status=DEAD, last_error=error[:4000], lease_until=None),
            job,
            "bury",
        )
        return False
    _fenced(
        conn,
        update(jobs).values(
            status=QUEUED,
            last_error=error[:4000],
            lease_until=None,
            locked_by=None,
            run_at=(run_at := time.time() + backoff(job.attempts, cap=cap)),
            fair_at=run_at,  # back in line when due again, never before
        ),
        job,
        "retry",
    )
    return True


def postpone(conn: Connection, job: Job, delay: float, error: str | None = None) -> None:
    """Put the job back to wait ``delay`` seconds without spending an attempt: what failed was
    ours (the store or the database away, with ``error``), or the job is waiting for something
    (a delivery still in flight, a reply's deliveries), and neither may bury it. LeaseLost
    (nothing written) if another worker holds the job now."""
    values: dict[str, object] = dict(
        status=QUEUED,
        attempts=jobs.c.attempts - 1,  # the claim counted one; give it back
        lease_until=None,
        locked_by=None,
        run_at=(run_at := time.time() + delay),
        fair_at=run_at,
    )
    if error is not None:
        values["last_error"] = error[:4000]
    _fenced(conn, update(jobs).values(**values), job, "postpone")


def queued_id(conn: Connection, kind: str, ref: str) -> int | None:
    """The id of a queued (not yet claimed) job of this kind and ref, if there is one."""
    return conn.execute(_QUEUED_ID, {"kind": kind, "ref": ref}).scalar()


_QUEUED_ID = select(jobs.c.id).where(
    jobs.c.kind == bindparam("kind"), jobs.c.ref == bindparam("ref"), jobs.c.status == QUEUED
)


def make_due(conn: Connection, job_id: int) -> None:
    """A held job runs now rather than at its time."""
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_at=time.time()))


def drop_queued(conn: Connection, kind: str, refs: list[str]) -> list[str]:
    """Remove the queued jobs of this kind for these refs; the refs whose job was removed. A job a
    worker claimed meanwhile is RUNNING, not QUEUED, and stays."""
    dropped = []
    for ref in refs:
        gone = conn.execute(
            jobs.delete().where(jobs.c.kind == kind, jobs.c.ref == ref, jobs.c.status == QUEUED)
        ).rowcount
        if gone:
            dropped.append(ref)
    return dropped


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
    return {status: n for status, n in rows}


def release_node(conn: Connection, node: str) -> int:
    """Free the jobs a process that is gone held (a crash or kill -9; ``relay.node`` knows it
    is gone), so a restart picks them up at once instead of when their leases run out. Jobs of
    processes not known gone are never touched here: theirs lapse, or they finish them."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.status == RUNNING, jobs.c.locked_by.like(f"{node}:%"))
        .values(lease_until=0.0)
    )
    return result.rowcount


def release_worker(conn: Connection, prefix: str) -> int:
    """Free the jobs this process holds (on a clean shutdown)."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.status == RUNNING, jobs.c.locked_by.like(f"{prefix}:%"))
        .values(lease_until=0.0)
    )
    return result.rowcount
