"""The pipeline's steps run at once (storing a photo's original and renditions, adopting a mail's
parts) end together: a failure is raised as itself, once no step is still using the files that
its caller removes next."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.errors import StorageError
from relay.pipeline import Pipeline, _all


def test_the_first_failure_is_raised_once_every_step_has_ended() -> None:
    ended: list[str] = []

    async def slow_put() -> str:
        await asyncio.sleep(0.2)
        ended.append("slow")
        return "stored"

    async def failing_put() -> str:
        ended.append("failed")
        raise StorageError(detail="store away")

    with pytest.raises(StorageError):  # not an ExceptionGroup: the workers wait out an outage
        asyncio.run(_all(slow_put(), failing_put()))
    assert ended == ["failed", "slow"]


def test_answers_come_in_the_order_of_the_steps() -> None:
    async def after(seconds: float, answer: str) -> str:
        await asyncio.sleep(seconds)
        return answer

    assert asyncio.run(_all(after(0.05, "original"), after(0, "large"))) == ["original", "large"]


class _Progress:
    """The database as the progress reporter sees it: the writes it was asked for."""

    def __init__(self) -> None:
        self.written: list[tuple[str, float, bool]] = []

    async def run(self, fn: object, item_id: str, progress: float) -> None:
        self.written.append((item_id, progress, True))

    async def run_volatile(self, fn: object, item_id: str, progress: float) -> None:
        self.written.append((item_id, progress, False))


def test_a_short_job_writes_no_progress_and_a_long_one_writes_it_now_and_then() -> None:
    db = _Progress()
    pipeline = Pipeline(db, None, None, None, Path("."), None, lambda: None)  # type: ignore[arg-type]

    async def job() -> None:
        short = pipeline._progress_reporter("photo", every=0.1)
        short(0.0)
        short(1.0)  # a photo: done within the first interval
        long = pipeline._progress_reporter("clip", every=0.1)
        long(0.0)
        for step in (0.3, 0.6):
            await asyncio.sleep(0.12)
            long(step)
            long(step + 0.01)  # within the interval: not written
        await asyncio.sleep(0.01)  # the writes are tasks of their own

    asyncio.run(job())
    # Written without waiting for the disk: a fraction lost in a power cut harms nothing.
    assert db.written == [("clip", 0.3, False), ("clip", 0.6, False)]
