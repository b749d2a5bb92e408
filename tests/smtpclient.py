"""SMTP conversations for the end-to-end tests: a message, a delivery, the post id."""

from __future__ import annotations

import smtplib

from tests.server import RelayServer

WEBHOOK = ("destination", "add", "--user", "anna", "--type", "webhook", "--url")


def mail(
    sender: str = "anna@example.org", subject: str = "Hej", message_id: str | None = "m@x"
) -> bytes:
    head = f"From: Anna <{sender}>\r\nTo: someone@relay.localhost\r\nSubject: {subject}\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    return (head + "Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\nFrom the square.\r\n").encode()


def deliver(
    server: RelayServer,
    to: str,
    message: bytes,
    envelope_from: str = "anna@example.org",
    smtp: smtplib.SMTP | None = None,
) -> tuple[int, str]:
    """MAIL, RCPT, DATA; returns the last answer (RCPT's when it was refused)."""
    own = smtp is None
    smtp = smtp or smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
    try:
        if own:
            smtp.ehlo("phone.example.org")
        code, reply = smtp.docmd("MAIL", f"FROM:<{envelope_from}>")
        assert code == 250, reply
        code, reply = smtp.docmd("RCPT", f"TO:<{to}>")
        if code != 250:
            smtp.rset()
            return code, reply.decode()
        code, reply = smtp.data(message)
        return code, reply.decode()
    finally:
        if own:
            smtp.quit()


def queued(answer: tuple[int, str]) -> str:
    code, text = answer
    assert code == 250 and "queued as " in text, answer
    return text.rsplit(" ", 1)[1]
