"""The SMTP door under a full disk, a failing database, a client with many connections at once,
and a debug log: temporary answers, no command run from inside a message, no secret logged."""

from __future__ import annotations

import base64
import os
import smtplib
import socket
import sqlite3
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from tests.server import RelayServer
from tests.smtpclient import mail

MB = 1024 * 1024


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` at ``path``: a full disk without pretending. Mounting
    needs root (CI runs as root); elsewhere the test is skipped, it cannot run."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_spool(tmp_path: Path) -> Iterator[tuple[RelayServer, Path]]:
    """A running relay whose spool is a 3 MB filesystem, with a user ``anna``."""
    data = tmp_path / "relay"
    with small_tmpfs(data / "spool", "3m") as spool:
        server = RelayServer(data)
        try:
            server.start()
            server.anna = server.add_user("anna")  # type: ignore[attr-defined]
            yield server, spool
        finally:
            server.stop()


def _posts(server: RelayServer) -> list[dict]:
    with server.client(server.anna["token"]) as client:  # type: ignore[attr-defined]
        return client.get("/api/v1/posts").json()["posts"]


def _send(smtp: smtplib.SMTP, to: str, message: bytes) -> tuple[int, str]:
    code, reply = smtp.docmd("MAIL", "FROM:<anna@example.org>")
    assert code == 250, reply
    code, reply = smtp.docmd("RCPT", f"TO:<{to}>")
    assert code == 250, reply
    code, reply = smtp.data(message)
    return code, reply.decode()


def test_a_full_disk_mid_message_is_452_and_the_body_is_never_run_as_commands(
    full_spool: tuple[RelayServer, Path],
) -> None:
    server, spool = full_spool
    to = server.anna["address"]  # type: ignore[attr-defined]
    line = b"x" * 78 + b"\r\n"
    filler = line * (8 * MB // len(line) + 1)
    # Past 8 MB (where the spool moves the message from memory to the 3 MB disk and fails),
    # the body holds a whole second transaction. Read as commands, it would be a second post.
    smuggled = (
        f"RSET\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode()
        + b"Subject: smuggled\r\n\r\nevil\r\n"
    )
    body = (
        b"Subject: big\r\n\r\n" + filler + smuggled * (2 * MB // len(smuggled) + 1) + b"the end\r\n"
    )
    assert len(body) > 10 * MB
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=120) as smtp:
        smtp.ehlo("phone.example.org")
        code, reply = _send(smtp, to, body)
        assert (code, reply.split(" ", 1)[0]) == (452, "4.3.1"), (code, reply)
        assert _posts(server) == []
        assert list((spool / "tmp").iterdir()) == []  # the part written was removed
        # Space is free again: the same connection takes the next message.
        code, reply = _send(smtp, to, mail(subject="after"))
        assert code == 250 and "queued as " in reply, (code, reply)
        post_id = reply.rsplit(" ", 1)[1]
    assert [post["id"] for post in _posts(server)] == [post_id]
    assert server.wait_post(server.anna["token"], post_id)["title"] == "after"  # type: ignore[attr-defined]
    assert "500 Error" not in server.log.read_text()


def test_a_full_disk_at_commit_is_452_and_leaves_nothing(
    full_spool: tuple[RelayServer, Path],
) -> None:
    server, spool = full_spool
    to = server.anna["address"]  # type: ignore[attr-defined]
    ballast = spool / "ballast"
    ballast.write_bytes(b"\0" * (2 * MB))  # 1 MB left: a 2 MB message fits in memory only
    message = b"Subject: two\r\n\r\n" + (b"y" * 998 + b"\r\n") * (2 * MB // 1000)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.ehlo("phone.example.org")
        code, reply = _send(smtp, to, message)
        assert (code, reply.split(" ", 1)[0]) == (452, "4.3.1"), (code, reply)
        assert list((spool / "tmp").iterdir()) == []
        assert list((spool / "ready").iterdir()) == []
        ballast.unlink()
        code, reply = _send(smtp, to, message)
        assert code == 250 and "queued as " in reply, (code, reply)
    assert len(_posts(server)) == 1


def test_a_database_failure_at_commit_is_451_and_the_message_can_come_again(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    to = server.anna["address"]  # type: ignore[attr-defined]
    db = sqlite3.connect(server.data_dir / "relay.db", isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as smtp:
        smtp.ehlo("phone.example.org")
        # A real failure of the committing transaction: the database refuses the new post.
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON posts BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        code, reply = _send(smtp, to, mail(subject="again"))
        assert (code, reply.split(" ", 1)[0]) == (451, "4.3.0"), (code, reply)
        assert list((server.data_dir / "spool" / "ready").iterdir()) == []
        db.execute("DROP TRIGGER refuse")
        code, reply = _send(smtp, to, mail(subject="again"))
        assert code == 250 and "queued as " in reply, (code, reply)
    db.close()
    post_id = reply.rsplit(" ", 1)[1]
    assert [post["id"] for post in _posts(server)] == [post_id]
    assert server.wait_post(server.anna["token"], post_id)["title"] == "again"  # type: ignore[attr-defined]


def _greeting(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        answer += chunk
    return answer


def _connect(server: RelayServer, source: str) -> socket.socket:
    """A connection from ``source``, an address of the loopback network other than the one
    ``RelayServer.start`` probes from (its probe may not be counted out yet)."""
    return socket.create_connection(("127.0.0.1", server.smtp_port), 30, (source, 0))


def test_connections_per_client_are_capped_at_connect(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay(RELAY_SMTP_MAX_CONNECTIONS_PER_CLIENT="3")
    held = [_connect(server, "127.0.0.2") for _ in range(3)]
    try:
        for sock in held:
            assert _greeting(sock).startswith(b"220 "), "the first three are served"
        with _connect(server, "127.0.0.2") as fourth:
            assert _greeting(fourth) == b"421 4.7.0 Too many connections from your address\r\n"
            assert fourth.recv(1024) == b""  # and closed
        with _connect(server, "127.0.0.3") as other:  # the limit is per client address
            assert _greeting(other).startswith(b"220 ")
        # One ends (the server has counted it out once the client sees the close) ...
        held[0].sendall(b"QUIT\r\n")
        assert _greeting(held[0]).startswith(b"221")
        assert held[0].recv(1024) == b""
        # ... and there is room for one more, which is served in full.
        with _connect(server, "127.0.0.2") as again:
            assert _greeting(again).startswith(b"220 ")
            again.sendall(b"EHLO phone.example.org\r\n")
            assert _greeting(again).startswith(b"250")
    finally:
        for sock in held:
            sock.close()


def test_no_secret_address_or_token_reaches_a_debug_log(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay(RELAY_LOG_LEVEL="debug")
    anna = server.add_user("anna")
    secret = anna["address"].split("@")[0]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("phone.example.org")
        assert _send(smtp, anna["address"], mail())[0] == 250
        # Every form a recipient can take on the wire, known and unknown to the relay.
        for form in (f"<{secret}+private@relay.localhost>", f'<"{secret}"@relay.localhost>'):
            code, reply = smtp.docmd("MAIL", "FROM:<anna@example.org>")
            assert code == 250, reply
            smtp.docmd("RCPT", f"TO:{form}")
            smtp.rset()
    log = server.log.read_text()
    assert "RCPT" in log and "DEBUG" in log  # the log is on, at its most talkative
    assert secret not in log
    assert secret.lower() not in log.lower()


def test_no_auth_credential_reaches_a_debug_log(
    start_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server = start_relay(
        RELAY_LOG_LEVEL="debug",
        RELAY_SMTP_TLS_CERT=str(tmp_path / "cert.pem"),
        RELAY_SMTP_TLS_KEY=str(tmp_path / "key.pem"),
    )
    anna = server.add_user("anna")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    plain = base64.b64encode(f"\0anna\0{anna['token']}".encode()).decode()
    login = [base64.b64encode(part.encode()).decode() for part in ("anna", anna["token"])]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo("phone.example.org")
        # The answers to AUTH's challenges, which aiosmtpd logs at DEBUG as they come.
        assert smtp.docmd("AUTH", "PLAIN")[0] == 334
        assert smtp.docmd(plain)[0] == 235
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo("phone.example.org")
        assert smtp.docmd("AUTH", "LOGIN")[0] == 334
        assert smtp.docmd(login[0])[0] == 334
        assert smtp.docmd(login[1])[0] == 235
    log = server.log.read_text()
    assert "AUTH" in log and "DEBUG" in log
    for secret in (anna["token"], plain, *login):
        assert secret not in log
