"""The failed-token throttle and the mapping of machine failures to stable codes."""

from __future__ import annotations

import errno

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from relay.errors import temporary_error
from relay.web.auth import FailureThrottle, Throttled


def test_an_address_is_throttled_after_its_failures_until_the_window_ends() -> None:
    throttle = FailureThrottle(max_failures=3, window=60)
    for now in (0.0, 1.0, 2.0):
        throttle.check("192.0.2.1", now)
        throttle.failed("192.0.2.1", now)
    with pytest.raises(Throttled) as raised:
        throttle.check("192.0.2.1", 10.0)
    assert raised.value.code == "auth.throttled" and raised.value.retry_after == 50
    throttle.check("192.0.2.2", 10.0)  # another address is never slowed
    throttle.check("192.0.2.1", 60.0)  # the window is over: a fresh start
    throttle.failed("192.0.2.1", 60.0)
    throttle.check("192.0.2.1", 61.0)


def test_ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    throttle = FailureThrottle(max_failures=2, window=60)
    throttle.failed("2001:db8::1", 0.0)
    throttle.failed("2001:db8::ffff:2", 0.0)  # same /64, another host part
    with pytest.raises(Throttled):
        throttle.check("2001:db8::3", 1.0)
    throttle.check("2001:db8:0:1::1", 1.0)
    throttle.failed("::ffff:192.0.2.9", 0.0)
    throttle.failed("192.0.2.9", 0.0)
    with pytest.raises(Throttled):
        throttle.check("192.0.2.9", 1.0)


def test_a_full_disk_and_a_lost_database_have_stable_codes(tmp_path) -> None:  # noqa: ANN001
    assert temporary_error(OSError(errno.ENOSPC, "No space left")).code == "storage.full"
    assert temporary_error(OSError(errno.EDQUOT, "Quota exceeded")).code == "storage.full"
    assert temporary_error(OSError(errno.EACCES, "denied")) is None
    assert temporary_error(ValueError("x")) is None
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    with pytest.raises(OperationalError) as raised, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    found = temporary_error(raised.value)
    assert found is not None and found.code == "server.unavailable"
    assert found.spec.http_status == 503
