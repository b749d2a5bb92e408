"""The pipeline's steps run at once (storing a photo's original and renditions, adopting a mail's
parts) end together: a failure is raised as itself, once no step is still using the files that
its caller removes next."""

from __future__ import annotations

import asyncio

import pytest

from relay.errors import StorageError
from relay.pipeline import _all


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
