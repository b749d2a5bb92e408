"""The SMTP door on the wire: pipelining, smuggling attempts, dot-stuffing, clients that vanish."""

from __future__ import annotations

import socket
import time

from tests.server import RelayServer


def _converse(server: RelayServer, payload: bytes, expect_lines: int) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=30) as sock:
        sock.recv(1024)  # greeting
        sock.sendall(payload)
        replies = b""
        deadline = time.monotonic() + 30
        while replies.count(b"\r\n") < expect_lines and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            replies += chunk
    return replies.split(b"\r\n")[:-1]


def _post_ids(replies: list[bytes]) -> list[str]:
    return [r.decode().rsplit(" ", 1)[1] for r in replies if b"queued as" in r]


def test_pipelined_messages_in_one_packet(relay: RelayServer) -> None:
    to = relay.anna["address"]
    one = f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()
    payload = (
        b"EHLO client\r\n"
        + one
        + b"Subject: first\r\n\r\n..dotted\r\n.\r\n"
        + one
        + b"Subject: second\r\n\r\nplain\r\n.\r\nQUIT\r\n"
    )
    replies = _converse(relay, payload, expect_lines=20)
    ids = _post_ids(replies)
    assert len(ids) == 2, replies
    first = relay.wait_post(relay.anna["token"], ids[0])
    second = relay.wait_post(relay.anna["token"], ids[1])
    assert (first["title"], first["text"]) == ("first", ".dotted")
    assert (second["title"], second["text"]) == ("second", "plain")
    assert replies[-1].startswith(b"221")


def test_smuggled_second_message_stays_inside_the_first(relay: RelayServer) -> None:
    to = relay.anna["address"]
    for separator in (b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n"):
        smuggled = (
            b"Subject: outer\r\n\r\nhello"
            + separator
            + f"MAIL FROM:<evil@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()
            + b"Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n"
        )
        payload = (
            b"EHLO client\r\n"
            + f"MAIL FROM:<a@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()
            + smuggled
        )
        replies = _converse(relay, payload, expect_lines=12)
        ids = _post_ids(replies)
        assert len(ids) == 1, (separator, replies)
        post = relay.wait_post(relay.anna["token"], ids[0])
        assert post["title"] == "outer"


def test_a_client_that_vanishes_mid_data_leaves_nothing(relay: RelayServer) -> None:
    to = relay.anna["address"]
    with relay.client(relay.anna["token"]) as client:
        before = len(client.get("/api/v1/posts").json()["posts"])
    payload = (
        f"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()
        + b"Subject: cut\r\n\r\n"
        + b"x" * 100_000
    )
    with socket.create_connection(("127.0.0.1", relay.smtp_port), timeout=30) as sock:
        sock.recv(1024)
        sock.sendall(payload)
        time.sleep(0.3)
    time.sleep(0.5)
    with relay.client(relay.anna["token"]) as client:
        assert len(client.get("/api/v1/posts").json()["posts"]) == before
    assert list((relay.data_dir / "spool" / "tmp").iterdir()) == []
