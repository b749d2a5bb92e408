"""Mail commands that hold a post: ``[delay 2h]`` and ``[publish 2026-12-24 09:00]``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relay import lifecycle
from relay.mail import commands


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("2h", 7200),
        ("30m", 1800),
        ("90 min", 5400),
        ("1h30m", 5400),
        ("1d", 86400),
        ("2 hours", 7200),
    ],
)
def test_delay_durations(written: str, seconds: float) -> None:
    found = commands.extract(f"Hej [delay {written}] där")
    assert (found.delay, found.text) == (seconds, "Hej där")


@pytest.mark.parametrize("written", ["soon", "2x", "-1h", "1h and more", "9999d"])
def test_an_unreadable_delay_stays_in_the_text(written: str) -> None:
    found = commands.extract(f"[delay {written}]")
    assert found.delay is None and found.text == f"[delay {written}]"


def test_publish_times_and_zones() -> None:
    found = commands.extract("Subject [publish 2026-12-24 09:00]\nrest")
    assert found.publish_at == "2026-12-24T09:00" and "publish" not in found.text
    assert commands.extract("[PUBLISH 2026-02-30 09:00]").publish_at is None  # no such day
    assert commands.extract("[publish tomorrow]").text == "[publish tomorrow]"
    stockholm = lifecycle.mail_time("2026-12-24T09:00", None, 0, "Europe/Stockholm")
    assert stockholm == datetime(2026, 12, 24, 8, 0, tzinfo=UTC).timestamp()
    with_offset = lifecycle.mail_time("2026-12-24T09:00+02:00", None, 0, "Europe/Stockholm")
    assert with_offset == datetime(2026, 12, 24, 7, 0, tzinfo=UTC).timestamp()
    assert lifecycle.mail_time(None, 7200, 1000.0, "UTC") == 8200.0
    assert lifecycle.mail_time(None, None, 1000.0, "UTC") is None
