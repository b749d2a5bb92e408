"""The reply to the sender, through an outbound SMTP server (an aiosmtpd sink here): after the
deliveries, in reply to the original, and never to a sender nobody proved."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.dnsserver import DkimKey, FakeDns, dkim_key, dns_server
from tests.e2e.test_post_life import events, wait_for
from tests.receivers import Receiver, webhook_receiver
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


# --- replies to the confirmation (issue 14, item 4) ----------------------------------------------
# [delete] from the proven sender of the post retracts it, new text replaces its text; anyone
# else changes nothing, and a reply address without a valid signature is refused at RCPT.

QUOTE = (
    "\r\n\r\nOn Mon, 2 Jun 2025 at 10:05, Relay <posts@relay.localhost>\r\nwrote:\r\n"
    "> Your post is online: http://example/p/x\r\n> [delete]\r\n"
)


def reply_mail(
    subject: str, body: str, sender: str = "anna@example.org", message_id: str = "r@example.org"
) -> bytes:
    return (
        f"From: Anna <{sender}>\r\nTo: posts@relay.localhost\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Mon, 2 Jun 2025 10:10:00 +0000\r\n"
        f"In-Reply-To: <orig@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def _posted(
    server: RelayServer, outbound: Sink, key: DkimKey, receiver: Receiver
) -> tuple[str, str]:
    """A proven mailed post, delivered, and its confirmation's Reply-To."""
    anna = server.anna  # type: ignore[attr-defined]
    server.cli(*WEBHOOK, receiver.url, "--json")
    signed = key.sign(mail(subject="Typo", message_id="orig@example.org"), "example.org")
    post_id = queued(deliver(server, anna["address"], signed))
    outbound.wait(1)
    _, _, confirmation = outbound.messages[0]
    reply_to = confirmation["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith(f"reply+{post_id}.") and reply_to.endswith("@relay.localhost")
    assert "[delete]" in confirmation.get_body().get_content()
    return post_id, reply_to


def _types(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["type"] for r in receiver.requests]


def _outcomes(server: RelayServer, post_id: str) -> list[str]:
    marker = f"post {post_id}: reply by mail: "
    return [
        line.split(marker, 1)[1].strip()
        for line in server.log.read_text().splitlines()
        if marker in line
    ]


def test_delete_by_reply_only_from_the_proven_sender(
    start_relay: Any, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    with webhook_receiver() as receiver:
        post_id, reply_to = _posted(server, outbound, key, receiver)
        wait_for(lambda: _types(receiver) == ["post.published"], "post.published")

        # Anna's From line without proof, and a proven sender who is not Anna: nothing happens.
        unproven = reply_mail("Re: Typo", "[delete]" + QUOTE, message_id="u@example.org")
        assert queued(deliver(server, reply_to, unproven)) == post_id
        other = key.sign(
            reply_mail("Re: Typo", "[delete]", "bob@example.org", "b@example.org"), "example.org"
        )
        assert queued(deliver(server, reply_to, other, envelope_from="bob@example.org")) == post_id
        wait_for(lambda: len(_outcomes(server, post_id)) == 2, "both replies handled")
        assert sorted(_outcomes(server, post_id)) == [
            "not the sender of the post",
            "sender not proven",
        ]
        assert [e["kind"] for e in events(server, anna["token"], post_id)] == ["created"]
        assert server.wait_post(anna["token"], post_id)["state"] == "published"

        # Anna's out-of-office answering the confirmation: taken and dropped at the door.
        away = reply_mail("Re: Typo", "Away until Monday.", message_id="ooo@example.org")
        away = away.replace(b"In-Reply-To:", b"Auto-Submitted: auto-replied\r\nIn-Reply-To:")
        assert queued(deliver(server, reply_to, key.sign(away, "example.org"))) == post_id

        proven = key.sign(reply_mail("Re: Typo", "[delete]" + QUOTE), "example.org")
        assert queued(deliver(server, reply_to, proven)) == post_id
        wait_for(lambda: "post.deleted" in _types(receiver), "post.deleted")
    assert _types(receiver) == ["post.published", "post.deleted"]
    retracted = events(server, anna["token"], post_id)[-1]
    assert (retracted["kind"], retracted["door"], retracted["actor"]) == (
        "retracted",
        "mail",
        "anna@example.org",
    )
    # Taken down, kept: the post and its record stay on the relay as a draft.
    assert server.wait_post(anna["token"], post_id)["state"] == "draft"
    assert [e["kind"] for e in events(server, anna["token"], post_id)] == ["created", "retracted"]
    assert "automatic mail or a bounce" in server.log.read_text()
    assert len(outbound.messages) == 1  # no answer to any reply: no backscatter


def test_forged_reply_addresses_are_refused_at_rcpt(
    start_relay: Any, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    with webhook_receiver() as receiver:
        post_id, reply_to = _posted(server, outbound, key, receiver)
    local, _, domain = reply_to.partition("@")
    signature = local.rsplit(".", 1)[1]
    flipped = signature[:-1] + ("a" if signature[-1] != "a" else "b")
    forged = [
        f"reply+{post_id}.{flipped}@{domain}",  # one character off
        f"reply+{post_id}@{domain}",  # no signature
        f"reply+zzzzzzzzzzzzzzzzzzzz.{signature}@{domain}",  # another post, this signature
        f"reply+{post_id}.{signature}@elsewhere.example",  # not our domain
    ]
    message = key.sign(reply_mail("Re: Typo", "[delete]"), "example.org")
    for address in forged:
        code, answer = deliver(server, address, message)
        assert code == 550 and "5.1.1" in answer, (address, code, answer)
    # The valid one, in another case (some systems fold it), still works.
    assert queued(deliver(server, reply_to.upper(), message)) == post_id


def test_reply_with_new_text_edits_the_post(
    start_relay: Any, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    with webhook_receiver() as receiver:
        post_id, reply_to = _posted(server, outbound, key, receiver)
        wait_for(lambda: _types(receiver) == ["post.published"], "post.published")

        # New text without [edit]: the text changes, the title stays.
        # New text without [edit]: the quoted confirmation (with its "[delete]") is not read.
        body = "From the square, corrected." + QUOTE
        plain = key.sign(reply_mail("Re: Typo", body, message_id="e1@example.org"), "example.org")
        assert queued(deliver(server, reply_to, plain)) == post_id
        wait_for(lambda: "post.updated" in _types(receiver), "post.updated")
        post = server.wait_post(anna["token"], post_id)
        assert (post["title"], post["text"]) == ("Typo", "From the square, corrected.")

        # [edit] in the subject: the title changes too. Outlook's quote goes.
        outlook = (
            "Second try.\r\n\r\n-----Original Message-----\r\nFrom: Relay\r\n"
            "Your post is online\r\n"
        )
        edit = key.sign(
            reply_mail("SV: [edit] No typo", outlook, message_id="e2@example.org"), "example.org"
        )
        assert queued(deliver(server, reply_to, edit)) == post_id
        wait_for(lambda: _types(receiver).count("post.updated") == 2, "second post.updated")
    post = server.wait_post(anna["token"], post_id)
    assert (post["title"], post["text"], post["state"]) == ("No typo", "Second try.", "published")
    updated = json.loads(receiver.requests[-1].body)
    assert updated["post"]["text"] == "Second try."
    edited = [e for e in events(server, anna["token"], post_id) if e["kind"] == "edited"]
    assert [(e["door"], e["actor"]) for e in edited] == [("mail", "anna@example.org")] * 2
    assert edited[0]["detail"]["changed"]["text"]["to"] == "From the square, corrected."
    assert set(edited[1]["detail"]["changed"]) == {"title", "text"}


def test_a_reply_acknowledged_before_a_crash_is_carried_out_after_it(
    start_relay: Any, sink: tuple[Sink, int], fake_dns: FakeDns, key: DkimKey
) -> None:
    outbound, port = sink
    server = _relay(start_relay, port, fake_dns)
    anna = server.anna  # type: ignore[attr-defined]
    with webhook_receiver() as receiver:
        post_id, reply_to = _posted(server, outbound, key, receiver)
        wait_for(lambda: _types(receiver) == ["post.published"], "post.published")
        # No workers: the reply is only spooled and queued when the relay dies (kill -9).
        server.stop()
        server.env["RELAY_WORKERS"] = "0"
        server.start()
        proven = key.sign(reply_mail("Re: Typo", "[delete]" + QUOTE), "example.org")
        assert queued(deliver(server, reply_to, proven)) == post_id
        server.kill()
        server.env["RELAY_WORKERS"] = "2"
        server.start()
        wait_for(lambda: "post.deleted" in _types(receiver), "post.deleted after the restart")
    assert server.wait_post(anna["token"], post_id)["state"] == "draft"
    assert _outcomes(server, post_id) == ["retracted"]
