"""The workers: claim a job by lease, dispatch it by its kind, keep the lease while it runs,
retry with backoff, bury it when its attempts run out.

Every kind of work registers here (``Workers.register``): the pipeline's items and mail, the
deliveries, the post's life (scheduled publishing, edits, retractions, purges) and the replies.
Any node may run any job. A job that meets our own storage or database away (``is_outage``) is
never at fault: it waits and comes back, with a ceiling on the wait and none on the tries.
Anything else is retried with backoff, and once the attempts run out the kind's ``give_up``
records the failure in the transaction that buries the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from relay import jobs, metrics
from relay.db import Database
from relay.errors import RelayError, StorageError, out_of_space

log = logging.getLogger("relay.worker")

JobRunner = Callable[[jobs.Job], Awaitable[None]]
GiveUp = Callable[[Connection, jobs.Job, str, str], None]


def is_outage(exc: BaseException) -> bool:
    """Our own store or database was unreachable or full, or our disk: never the job's fault."""
    return isinstance(exc, StorageError | OperationalError | InterfaceError) or out_of_space(exc)


class Workers:
    def __init__(
        self,
        db: Database,
        lease: float = 300.0,
        backoff_cap: float = 300.0,
        node: str | None = None,
    ) -> None:
        self.db = db
        self.lease = lease
        self.backoff_cap = backoff_cap
        self.outages = 0
        """Jobs in a row that met our storage or database away: the wait before the next."""
        self.tasks: list[asyncio.Task[None]] = []
        """The running workers (``relay.app`` starts them; ``/readyz`` looks at them)."""
        self.handlers: dict[str, tuple[JobRunner, GiveUp | None]] = {}
        self.wakeup = asyncio.Event()
        # Unique to this start (relay.node): a claim is never taken for another process's,
        # whatever host name and pid the two share (containers: pid 1 everywhere).
        self.node = node or secrets.token_hex(6)
        self.worker_prefix = self.node

    def wake(self) -> None:
        """Jobs were queued: an idle worker looks now rather than at its next poll."""
        self.wakeup.set()

    def register(self, kind: str, run: JobRunner, give_up: GiveUp | None = None) -> None:
        """Run jobs of ``kind`` with ``run``; ``give_up`` records the failure in the same
        transaction that buries a job whose attempts ran out."""
        self.handlers[kind] = (run, give_up)

    async def run(self, number: int, idle_poll: float = 1.0) -> None:
        """Claim and run jobs until cancelled. Nothing but cancellation ends this loop: an
        exception anywhere (the database cut, the disk full) is logged and the worker backs off
        and goes on; a worker that died used to stop all processing until a restart."""
        worker = f"{self.worker_prefix}:{number}"
        failures = 0
        while True:
            try:
                # A claim lost in a power cut harms nothing (the job is queued again, as when
                # a lease runs out): its commit need not wait for the disk, nor hold SQLite's
                # one writer through an fsync while a door waits to commit what it took.
                job = await self.db.run_volatile(jobs.claim, worker, self.lease)
                if job is None:
                    failures = 0
                    self.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wakeup.wait(), idle_poll)
                    continue
                await self._run_job(job, worker)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                delay = jobs.backoff(failures, base=idle_poll, cap=self.backoff_cap)
                log.exception("worker %s: a step failed; going on in %.1fs", worker, delay)
                await asyncio.sleep(delay)

    async def _run_job(self, job: jobs.Job, worker: str) -> None:
        keeper = asyncio.create_task(self._keep_lease(job, worker))
        try:
            found = self.handlers.get(job.kind)
            if found is None:
                log.error("unknown job kind %s; dropping job %s", job.kind, job.id)
                await self.db.run(jobs.complete, job)
            else:
                await found[0](job)
            self.outages = 0
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out and another worker takes the job
        except jobs.LeaseLost as lost:
            # Our lease lapsed (a long database outage) and another worker claimed the job:
            # our write rolled back, the job and its state are that worker's. Drop it.
            log.warning("dropping %s", lost)
        except Exception as exc:
            if is_outage(exc):
                log.warning("job %s (%s %s) waits: %s", job.id, job.kind, job.ref, exc)
            else:
                log.warning("job %s (%s %s) failed: %r", job.id, job.kind, job.ref, exc)
            metrics.job_retries.labels(job.kind).inc()
            # Recording the failure may fail too (the same outage): keep the lease and try
            # again until it is recorded, so the job is neither lost nor stuck until its lease
            # runs out.
            tries = 0
            while True:
                try:
                    await self._give_up_or_retry(job, exc)
                    break
                except jobs.LeaseLost as lost:  # taken over meanwhile: its failure is not ours
                    log.warning("dropping %s", lost)
                    break
                except Exception:
                    tries += 1
                    delay = jobs.backoff(tries, base=1.0, cap=self.backoff_cap)
                    log.exception(
                        "recording job %s's failure failed; trying again in %.1fs", job.id, delay
                    )
                    await asyncio.sleep(delay)
        finally:
            keeper.cancel()

    async def _keep_lease(self, job: jobs.Job, worker: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.db.run_volatile(jobs.extend, job, worker, self.lease)
            except Exception as exc:  # the database is away: try again at the next turn
                log.warning("extending the lease of job %s failed: %r", job.id, exc)

    async def _give_up_or_retry(self, job: jobs.Job, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if is_outage(exc):
            # Our own storage or database was away: not the item's fault. The job waits and
            # comes back, however long the outage lasts; only the wait is capped.
            self.outages += 1
            delay = jobs.backoff(self.outages, cap=self.backoff_cap)
            await self.db.run(jobs.postpone, job, delay, error)
            return
        if not job.exhausted:
            await self.db.run(jobs.retry_or_bury, job, error, self.backoff_cap)
            return
        code = exc.code if isinstance(exc, RelayError) else "media.failed"

        def bury(conn: Connection) -> None:
            jobs.retry_or_bury(conn, job, error)
            give_up = self.handlers.get(job.kind, (None, None))[1]
            if give_up is not None:
                give_up(conn, job, code, error)

        await self.db.run(bury)
