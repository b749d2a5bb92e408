"""The reply to the sender, through an outbound SMTP server (an aiosmtpd sink here): after the
deliveries, in reply to the original, and never to a sender nobody proved."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from tests.dnsserver import DkimKey, FakeDns, dkim_key, dns_server
from tests.receivers import webhook_receiver
from tests.server import RelayServer, free_port
from tests.smtpclient import WEBHOOK, deliver, mail, queued


@dataclass
class Sink:
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def wait(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} replies, wanted {count}"
            time.sleep(0.1)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


@pytest.fixture
def fake_dns(key: DkimKey) -> Iterator[FakeDns]:
    with dns_server() as server:
        server.txt("sel._domainkey.example.org", key.record)
        yield server


def _relay(start_relay, sink_port: int, fake_dns: FakeDns) -> RelayServer:
    server = start_relay(
        RELAY_DNS_SERVERS=fake_dns.address,
        RELAY_OUTBOUND_SMTP_HOST="127.0.0.1",
        RELAY_OUTBOUND_SMTP_PORT=str(sink_port),
        RELAY_OUTBOUND_SMTP_STARTTLS="false",
        RELAY_REPLY_FROM="posts@relay.localhost",
        RELAY_ALLOW_PRIVATE_DESTINATIONS="true",
    )
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    server.cli("user", "reply", "anna", "--on")
    return server


HOSTILE = "=?utf-8?q?Hi=0D=0ABcc=3A_victim=40example=2Eorg?="


def test_reply_after_delivery_in_reply_to_the_original(
    start_relay, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    with webhook_receiver() as receiver:
        added = server.cli(*WEBHOOK, receiver.url, "--json")
        destination_id = json.loads(added.stdout)["id"]
        signed = key.sign(mail(subject=HOSTILE, message_id="orig.1@example.org"), "example.org")
        post_id = queued(deliver(server, anna["address"], signed))
        outbound.wait(1)
        assert len(receiver.requests) == 1  # delivered before the reply went
    sender, recipients, reply = outbound.messages[0]
    assert (sender, recipients) == ("posts@relay.localhost", ["anna@example.org"])
    assert reply["In-Reply-To"] == "<orig.1@example.org>"
    assert reply["References"] == "<orig.1@example.org>"
    assert reply["Subject"].startswith("Re: Hi") and "\n" not in reply["Subject"]
    assert reply["Bcc"] is None and reply["Auto-Submitted"] == "auto-replied"
    body = reply.get_body().get_content()
    assert f"{server.url}/p/{post_id}" in body
    assert f"webhook {destination_id}: delivered" in body


def test_no_reply_to_an_unproven_sender_nor_when_off(
    start_relay, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    # Anyone may post here, but a forged From must not make the relay write to its owner.
    forged = queued(deliver(server, anna["address"], mail("victim@example.org", message_id=None)))
    unsigned = queued(deliver(server, anna["address"], mail(message_id=None)))
    bounce = key.sign(mail(message_id="b@example.org"), "example.org")
    from_bounce = queued(deliver(server, anna["address"], bounce, envelope_from=""))
    for post_id in (forged, unsigned, from_bounce):
        server.wait_post(anna["token"], post_id)
    signed = key.sign(mail(subject="Proven", message_id="p@example.org"), "example.org")
    queued(deliver(server, anna["address"], signed))
    outbound.wait(1)
    time.sleep(1.5)  # room for any wrong reply to arrive too
    assert [(r, m["Subject"]) for _, r, m in outbound.messages] == [
        (["anna@example.org"], "Re: Proven")
    ]
    server.cli("user", "reply", "anna", "--off")
    off = key.sign(mail(subject="Off", message_id="off@example.org"), "example.org")
    server.wait_post(anna["token"], queued(deliver(server, anna["address"], off)))
    time.sleep(1.5)
    assert len(outbound.messages) == 1
