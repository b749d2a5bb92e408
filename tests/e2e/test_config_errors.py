"""A mistake in the settings stops ``relay serve`` with one line naming the variable to fix.

Real ``relay serve`` subprocesses; each case sets a password somewhere (database URL, outbound
SMTP) and checks it never reaches the output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import free_port, free_udp_port

PASSWORD = "Hunter2-Sekret-Pw"


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", "serve"],
        env={
            **base,
            "RELAY_DATA_DIR": str(tmp_path / "data"),
            "RELAY_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "RELAY_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
            "RELAY_RTMP_LISTEN": f"127.0.0.1:{free_port()}",
            "RELAY_SRT_LISTEN": f"127.0.0.1:{free_udp_port()}",
            "RELAY_OUTBOUND_SMTP_PASSWORD": PASSWORD,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str], variable: str) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_listen_without_host_names_the_variable_and_hides_the_database_password(
    tmp_path: Path,
) -> None:
    result = _serve(
        tmp_path,
        RELAY_HTTP_LISTEN="8080",
        RELAY_DATABASE_URL=f"postgresql://relay:{PASSWORD}@db.example.org/relay",
    )
    line = _assert_one_line(result, "RELAY_HTTP_LISTEN")
    assert "host:port" in line


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RELAY_LOG_LEVEL": "LOUD"}, "RELAY_LOG_LEVEL"),
        ({"RELAY_WORKERS": "-1"}, "RELAY_WORKERS"),
        ({"RELAY_WORKERS": "many"}, "RELAY_WORKERS"),
        ({"RELAY_SMTP_LISTEN": "localhost"}, "RELAY_SMTP_LISTEN"),
        ({"RELAY_SMTP_TLS_CERT": "/etc/ssl/relay.pem"}, "RELAY_SMTP_TLS_KEY"),
        ({"RELAY_CONFIG": "/nonexistent/relay.toml"}, "RELAY_CONFIG"),
        ({"RELAY_SECRET_KEY": "too-short"}, "RELAY_SECRET_KEY"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    _assert_one_line(_serve(tmp_path, **env), variable)


def test_an_http_port_in_use_names_the_variable(tmp_path: Path, busy_port: int) -> None:
    line = _assert_one_line(
        _serve(tmp_path, RELAY_HTTP_LISTEN=f"127.0.0.1:{busy_port}"), "RELAY_HTTP_LISTEN"
    )
    assert str(busy_port) in line and "in use" in line


def test_an_smtp_port_in_use_names_the_variable(tmp_path: Path, busy_port: int) -> None:
    line = _assert_one_line(
        _serve(tmp_path, RELAY_SMTP_LISTEN=f"127.0.0.1:{busy_port}"), "RELAY_SMTP_LISTEN"
    )
    assert str(busy_port) in line and "in use" in line


def test_an_rtmp_port_in_use_names_the_variable(tmp_path: Path, busy_port: int) -> None:
    line = _assert_one_line(
        _serve(tmp_path, RELAY_RTMP_LISTEN=f"127.0.0.1:{busy_port}"), "RELAY_RTMP_LISTEN"
    )
    assert str(busy_port) in line and "in use" in line


def test_an_srt_port_in_use_names_the_variable(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        line = _assert_one_line(
            _serve(tmp_path, RELAY_SRT_LISTEN=f"127.0.0.1:{port}"), "RELAY_SRT_LISTEN"
        )
    assert str(port) in line and "in use" in line


def test_a_database_that_is_down_names_the_variable_and_hides_its_password(
    tmp_path: Path,
) -> None:
    # A free port: nothing listens, so the connection is refused at once.
    url = f"postgresql://relay:{PASSWORD}@127.0.0.1:{free_port()}/relay"
    line = _assert_one_line(_serve(tmp_path, RELAY_DATABASE_URL=url), "RELAY_DATABASE_URL")
    assert "127.0.0.1" in line
