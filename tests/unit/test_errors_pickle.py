"""Errors cross the process pool as they were raised: class, code, detail and extra fields."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from relay import errors
from relay.errors import LimitExceeded, MediaError, PublishError, RelayError
from relay.workpool import WorkPool


def _every_error() -> list[RelayError]:
    found = []
    pending = [RelayError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.append(cls(None, f"detail of {cls.__name__}"))
    return found


@pytest.mark.parametrize("error", _every_error(), ids=lambda e: type(e).__name__)
def test_every_relay_error_survives_pickling(error: RelayError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (again.code, again.detail, str(again)) == (error.code, error.detail, str(error))
    assert again.public() == error.public()


def test_a_publish_errors_remote_answer_survives_pickling() -> None:
    error = errors.TransientPublishError("publish.rate_limited", "429", remote="slow down")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is errors.TransientPublishError
    assert again.remote == "slow down"
    assert again.public() == error.public()


def too_big(width: int, height: int) -> None:
    """Raised in a pool worker (run there by the test below)."""
    raise LimitExceeded("media.too_many_pixels", f"{width}x{height}")


def test_a_media_error_raised_in_the_pool_arrives_as_itself() -> None:
    async def run() -> MediaError:
        pool = WorkPool(1)
        try:
            with pytest.raises(LimitExceeded) as caught:
                await pool.run(too_big, 30000, 20000)
            return caught.value
        finally:
            pool.close()

    error = asyncio.run(run())
    assert (error.code, error.detail) == ("media.too_many_pixels", "30000x20000")


def test_publish_error_pickles_from_its_fields_not_its_text() -> None:
    error = PublishError("publish.unauthorized", "token expired", remote="401 invalid_token")
    assert pickle.loads(pickle.dumps(error)).public()["code"] == "publish.unauthorized"
