"""The failed-token throttle and the mapping of machine failures to stable codes."""

from __future__ import annotations

import errno
import ipaddress

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from relay.errors import temporary_error
from relay.web.auth import FailureThrottle, Throttled
from relay.web.client import parse_networks, resolve


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


# --- the client's address behind a reverse proxy (relay/web/client.py) ---------------------------

PROXIES = parse_networks("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8")


def test_no_trusted_proxy_means_the_peer_whatever_the_header_says() -> None:
    assert resolve("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"
    assert resolve("127.0.0.1", ["203.0.113.7"], parse_networks("")) == "127.0.0.1"


def test_an_untrusted_peer_is_the_client_and_its_header_is_ignored() -> None:
    assert resolve("198.51.100.4", ["203.0.113.7"], PROXIES) == "198.51.100.4"


def test_from_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() -> None:
    assert resolve("127.0.0.1", ["203.0.113.7"], PROXIES) == "203.0.113.7"
    # The client wrote the left-most entries itself (nginx appends with
    # $proxy_add_x_forwarded_for): never believed.
    assert resolve("127.0.0.1", ["1.1.1.1, 127.0.0.1, 203.0.113.7"], PROXIES) == "203.0.113.7"
    assert resolve("127.0.0.1", ["10.9.9.9", "203.0.113.7"], PROXIES) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    # client → CDN edge (10.1.2.3, trusted) → load balancer (10.0.0.2, trusted) → nginx (peer)
    chain = ["198.51.100.99, 203.0.113.7, 10.1.2.3, 10.0.0.2"]
    assert resolve("127.0.0.1", chain, PROXIES) == "203.0.113.7"
    # Several headers are one list, in the order received.
    assert resolve("127.0.0.1", ["198.51.100.99", "203.0.113.7, 10.1.2.3"], PROXIES) == (
        "203.0.113.7"
    )
    # Every hop trusted (a request from inside): the farthest one.
    assert resolve("127.0.0.1", ["10.0.0.5, 10.0.0.2"], PROXIES) == "10.0.0.5"
    assert resolve("127.0.0.1", [], PROXIES) == "127.0.0.1"  # no header: the proxy itself


def test_ipv6_peers_and_entries_with_brackets_ports_and_mapped_addresses() -> None:
    assert resolve("::1", ["2001:db8::7"], PROXIES) == "2001:db8::7"
    assert resolve("::ffff:127.0.0.1", ["2001:db8::7"], PROXIES) == "2001:db8::7"  # mapped peer
    assert resolve("::1", ["[2001:db8::7]:4711, fd00::1"], PROXIES) == "2001:db8::7"
    assert resolve("::1", ["203.0.113.7:4711"], PROXIES) == "203.0.113.7"
    assert resolve("::1", ["::ffff:203.0.113.7"], PROXIES) == "203.0.113.7"
    assert resolve("::1", ["2001:db8::1, ::ffff:10.0.0.2"], PROXIES) == "2001:db8::1"


def test_garbage_never_becomes_the_client_nor_lets_a_client_choose_its_key() -> None:
    # A garbled entry ends the walk at the trusted hop that sent it: an address, not a name a
    # client could vary to escape the throttle.
    assert resolve("127.0.0.1", ["unknown"], PROXIES) == "127.0.0.1"
    assert resolve("127.0.0.1", ["203.0.113.7, not-an-ip, 10.0.0.2"], PROXIES) == "10.0.0.2"
    assert resolve("127.0.0.1", ["'; DROP TABLE", "999.1.1.1"], PROXIES) == "127.0.0.1"
    assert resolve("127.0.0.1", ["203.0.113.7, , "], PROXIES) == "203.0.113.7"  # empty elements
    assert resolve("127.0.0.1", ["_hidden, 203.0.113.7"], PROXIES) == "203.0.113.7"
    assert resolve(None, ["203.0.113.7"], PROXIES) is None


def test_trusted_proxies_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay.config import load_settings

    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "127.0.0.1, nginx.local")
    with pytest.raises(ValidationError) as raised:
        load_settings()
    assert "trusted_proxies" in str(raised.value) and "nginx.local" in str(raised.value)
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8, ::1")
    assert parse_networks(load_settings().trusted_proxies) == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
