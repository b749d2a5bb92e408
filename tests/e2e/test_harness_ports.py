"""The test harness's own promise: a relay whose port was taken between the harness choosing
it and the relay binding it starts again on free ports, instead of failing the test."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.server import RelayServer


def test_a_port_taken_before_the_relay_binds_it_is_chosen_again(tmp_path: Path) -> None:
    server = RelayServer(tmp_path / "relay")
    taken = server.http_port
    with socket.socket() as other:  # another program on the port the harness chose
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", taken))
        other.listen()
        server.start()
        try:
            assert server.http_port != taken
            assert "address already in use" in server.log.read_text()
            assert httpx.get(server.url + "/healthz").status_code == 200
        finally:
            server.stop()
