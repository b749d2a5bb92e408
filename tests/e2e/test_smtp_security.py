"""The SMTP door against people who guess addresses or forge senders, and the plus-address modes:
sender policies with DNS answered locally, STARTTLS and AUTH, limits, loops, duplicates."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
import trustme

from tests.dnsserver import DkimKey, FakeDns, dkim_key, dns_server
from tests.receivers import webhook_receiver
from tests.server import RelayServer
from tests.smtpclient import WEBHOOK, deliver, mail, queued


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return dkim_key()


@pytest.fixture(scope="module")
def fake_dns(key: DkimKey) -> Iterator[FakeDns]:
    with dns_server() as server:
        server.txt("sel._domainkey.example.org", key.record)
        server.txt("example.net", "v=spf1 ip4:127.0.0.1 -all")
        server.txt("elsewhere.example", "v=spf1 ip4:192.0.2.1 -all")
        yield server


def _tls_env(ca: trustme.CA, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(folder / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    return {
        "RELAY_SMTP_TLS_CERT": str(folder / "cert.pem"),
        "RELAY_SMTP_TLS_KEY": str(folder / "key.pem"),
    }


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, fake_dns: FakeDns, ca: trustme.CA
) -> Iterator[RelayServer]:
    data = tmp_path_factory.mktemp("relay")
    server = RelayServer(
        data,
        RELAY_DNS_SERVERS=fake_dns.address,
        RELAY_SMTP_FAILURE_DELAY_SECONDS="0.01",
        RELAY_ALLOW_PRIVATE_DESTINATIONS="true",
        **_tls_env(ca, data / "tls"),
    )
    server.start()
    server.anna = server.add_user("anna")  # type: ignore[attr-defined]
    server.bob = server.add_user("bob")  # type: ignore[attr-defined]
    yield server
    server.stop()


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def new_address(server: RelayServer, user: str = "anna") -> str:
    return json.loads(server.cli("address", "add", "--user", user, "--json").stdout)["address"]


def set_policy(server: RelayServer, address: str, policy: str, *allow: str) -> None:
    args = [a for sender in allow for a in ("--allow", sender)]
    server.cli("address", "policy", address, "--policy", policy, *args)


def post(server: RelayServer, post_id: str, user: str = "anna") -> dict:
    return server.wait_post(getattr(server, user)["token"], post_id)


# --- plus-address modes ---------------------------------------------------------------------


def test_plus_private_and_draft(relay: RelayServer) -> None:
    secret, domain = relay.anna["address"].split("@")
    private = post(
        relay, queued(deliver(relay, f"{secret}+private@{domain}", mail(message_id=None)))
    )
    assert (private["private"], private["draft"]) == (True, False)
    draft = post(relay, queued(deliver(relay, f"{secret}+draft@{domain}", mail(message_id=None))))
    assert (draft["private"], draft["draft"]) == (False, True)
    both = post(relay, queued(deliver(relay, f"{secret}+Private+draft@{domain}", mail(None))))
    assert (both["private"], both["draft"]) == (True, True)


def test_plus_destination_delivers_only_there(start_relay) -> None:
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    anna = server.add_user("anna")
    server.anna = anna  # type: ignore[attr-defined]
    with webhook_receiver() as one, webhook_receiver() as two:
        ids = [json.loads(server.cli(*WEBHOOK, r.url, "--json").stdout)["id"] for r in (one, two)]
        secret, domain = anna["address"].split("@")

        def destinations(to: str) -> list[str]:
            post_id = queued(deliver(server, to, mail(message_id=None)))
            deadline = time.monotonic() + 30
            while True:
                found = post(server, post_id)
                if all(d["status"] != "pending" for d in found["deliveries"]):
                    return sorted(d["destination"] for d in found["deliveries"])
                assert time.monotonic() < deadline, found
                time.sleep(0.1)

        assert destinations(f"{secret}+{ids[1]}@{domain}") == [ids[1]]
        assert destinations(f"{secret}+webhook@{domain}") == sorted(ids)  # by type: all webhooks
        # A mode that names nothing: as if sent to the plain address.
        assert destinations(f"{secret}+holiday@{domain}") == sorted(ids)
        assert len(one.requests) == 2 and len(two.requests) == 3


# --- the same message twice -----------------------------------------------------------------


def test_the_same_message_twice_is_one_post(relay: RelayServer) -> None:
    to = relay.anna["address"]
    message = mail(subject="Twice", message_id="twice.1@example.org")
    first = queued(deliver(relay, to, message))
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.ehlo("phone")
        second = queued(deliver(relay, to, message, smtp=smtp))
        third = queued(deliver(relay, to, message, smtp=smtp))
    assert first == second == third
    # Another body under the same Message-ID, and no Message-ID at all: new posts.
    edited = queued(deliver(relay, to, message.replace(b"square", b"park")))
    plain = mail(subject="No id", message_id=None)
    assert len({edited, queued(deliver(relay, to, plain)), queued(deliver(relay, to, plain))}) == 3
    assert edited != first
    for post_id in (first, edited):
        post(relay, post_id)  # unpacked: titles come from the message
    with relay.client(relay.anna["token"]) as client:
        titles = [p["title"] for p in client.get("/api/v1/posts").json()["posts"]]
    assert titles.count("Twice") == 2  # the first and the edited one
    assert post(relay, first)["title"] == "Twice"
    # Another user's copy is that user's post.
    assert queued(deliver(relay, relay.bob["address"], message)) != first


# --- sender policies ----------------------------------------------------------------------------


def test_allowlist_refuses_and_accepts(relay: RelayServer) -> None:
    address = new_address(relay)
    set_policy(relay, address, "allowlist", "anna@example.org", "@family.example")
    assert queued(deliver(relay, address, mail("anna@example.org", message_id=None)))
    assert queued(deliver(relay, address, mail("Dad@Family.example", message_id=None)))
    code, text = deliver(relay, address, mail("mallory@example.org", message_id=None))
    assert (code, text[:5]) == (550, "5.7.1"), text


def test_allowlist_needs_a_sender(relay: RelayServer) -> None:
    address = new_address(relay)
    refused = relay.cli("address", "policy", address, "--policy", "allowlist", check=False)
    assert refused.returncode != 0 and "--allow" in refused.stderr
    missing = relay.cli(
        "address", "policy", "nosuch@relay.localhost", "--policy", "dkim", check=False
    )
    assert missing.returncode != 0 and "no such live address" in missing.stderr


def test_dkim_pass_and_fail(relay: RelayServer, key: DkimKey) -> None:
    address = new_address(relay)
    set_policy(relay, address, "dkim")
    signed = key.sign(mail(subject="Signed", message_id="signed@example.org"), "example.org")
    post_id = queued(deliver(relay, address, signed))
    found = post(relay, post_id)
    assert found["title"] == "Signed"
    assert "dkim=pass header.d=example.org" in found["authentication_results"]
    code, text = deliver(relay, address, signed.replace(b"the square", b"elsewhere"))
    assert (code, text[:5]) == (550, "5.7.1")
    code, _ = deliver(relay, address, mail(message_id=None))  # unsigned
    assert code == 550


def test_spf_pass_and_fail(relay: RelayServer) -> None:
    address = new_address(relay)
    set_policy(relay, address, "spf")
    ok = mail("anna@example.net", message_id=None)
    post_id = queued(deliver(relay, address, ok, envelope_from="anna@example.net"))
    assert (
        "spf=pass smtp.mailfrom=anna@example.net" in post(relay, post_id)["authentication_results"]
    )
    other = mail("anna@elsewhere.example", message_id=None)
    code, text = deliver(relay, address, other, envelope_from="anna@elsewhere.example")
    assert (code, text[:5]) == (550, "5.7.1")


def test_anyone_records_that_nothing_was_checked(relay: RelayServer) -> None:
    post_id = queued(deliver(relay, relay.anna["address"], mail(message_id=None)))
    assert post(relay, post_id)["authentication_results"].endswith("; none")


# --- STARTTLS and AUTH --------------------------------------------------------------------------


def test_auth_only_after_starttls_and_it_passes_the_policy(
    relay: RelayServer, ca: trustme.CA
) -> None:
    address = new_address(relay)
    set_policy(relay, address, "dkim")
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.ehlo("laptop")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        code, reply = smtp.docmd("AUTH", "PLAIN AGFubmEAeA==")
        assert code == 538, reply
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("laptop")
        assert set(smtp.esmtp_features["auth"].split()) >= {"PLAIN", "LOGIN"}
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            smtp.login("anna", relay.bob["token"])  # a token of another user
        assert bad.value.smtp_code == 535
        smtp.login("anna", relay.anna["token"])
        unsigned = mail("anna@example.org", subject="Logged in", message_id=None)
        post_id = queued(deliver(relay, address, unsigned, smtp=smtp))
    found = post(relay, post_id)
    assert found["title"] == "Logged in"
    assert "auth=pass smtp.auth=anna" in found["authentication_results"]


def test_large_messages_over_starttls_arrive_byte_for_byte(
    relay: RelayServer, ca: trustme.CA
) -> None:
    """Messages of many reads each, through TLS, with lines that start with a dot (stuffed by
    the client) in the text and at the very end: every byte arrives, and the same connection
    goes on to the next message."""
    blobs = [os.urandom(3_000_000 + n) for n in range(2)]
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=60) as smtp:
        smtp.ehlo("laptop")
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("laptop")
        post_ids = []
        for n, blob in enumerate(blobs):
            message = EmailMessage()
            message["From"] = "anna@example.org"
            message["To"] = relay.anna["address"]
            message["Subject"] = f"Big {n}"
            message["Message-ID"] = f"<big-{n}@example.org>"
            message.set_content("".join(f".line {i}\n" for i in range(2000)) + ".")
            message.add_attachment(
                blob, maintype="application", subtype="octet-stream", filename="blob.bin"
            )
            post_ids.append(
                queued(
                    deliver(relay, relay.anna["address"], message.as_bytes(policy=SMTP), smtp=smtp)
                )
            )
    for n, (post_id, blob) in enumerate(zip(post_ids, blobs, strict=True)):
        found = post(relay, post_id)
        assert found["title"] == f"Big {n}"
        assert found["text"].splitlines()[:2] == [".line 0", ".line 1"]
        [item] = [i for i in found["items"] if i["filename"] == "blob.bin"]
        assert item["original"]["sha256"] == hashlib.sha256(blob).hexdigest()


def test_auth_login_as_another_user_does_not_pass_the_policy(
    relay: RelayServer, ca: trustme.CA
) -> None:
    address = new_address(relay)
    set_policy(relay, address, "dkim")
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("laptop")
        smtp.login("bob", relay.bob["token"])
        code, text = deliver(relay, address, mail(message_id=None), smtp=smtp)
    assert (code, text[:5]) == (550, "5.7.1")


def test_require_tls(start_relay, ca: trustme.CA, tmp_path: Path) -> None:
    server = start_relay(RELAY_SMTP_REQUIRE_TLS="true", **_tls_env(ca, tmp_path / "tls"))
    anna = server.add_user("anna")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("x")
        code, _ = smtp.docmd("MAIL", "FROM:<anna@example.org>")
        assert code == 530
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("x")
        server.anna = anna  # type: ignore[attr-defined]
        post_id = queued(deliver(server, anna["address"], mail(message_id=None), smtp=smtp))
    assert server.wait_post(anna["token"], post_id)["title"] == "Hej"


# --- limits and loops ---------------------------------------------------------------------------


def test_unknown_recipients_are_slowed_then_the_connection_closes(start_relay) -> None:
    server = start_relay(RELAY_SMTP_FAILURE_DELAY_SECONDS="0.05")
    anna = server.add_user("anna")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("guesser")
        smtp.docmd("MAIL", "FROM:<x@example.org>")
        waits = []
        for n in range(5):
            started = time.monotonic()
            code, reply = smtp.docmd("RCPT", f"TO:<guess{n}@relay.localhost>")
            waits.append(time.monotonic() - started)
            assert (code, reply[:5]) == (550, b"5.1.1")
        code, reply = smtp.docmd("RCPT", "TO:<guess5@relay.localhost>")
        assert (code, reply) == (421, b"4.7.0 Too many unknown recipients; closing")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.docmd("NOOP")
    assert waits[0] < waits[2] < waits[4] and waits[4] >= 0.7
    # A good address still works from a new connection.
    assert queued(deliver(server, anna["address"], mail(message_id=None)))


def test_an_ip_that_keeps_failing_is_cut_off_at_once(start_relay) -> None:
    server = start_relay(
        RELAY_SMTP_FAILURE_DELAY_SECONDS="0.01", RELAY_SMTP_MAX_FAILED_RECIPIENTS="1"
    )
    answers = []
    for _ in range(3):
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
            smtp.ehlo("guesser")
            smtp.docmd("MAIL", "FROM:<x@example.org>")
            for n in range(2):
                code, _ = smtp.docmd("RCPT", f"TO:<guess{n}@relay.localhost>")
                answers.append(code)
                if code == 421:
                    break
    assert answers == [550, 421, 550, 421, 421]


def test_failed_logins_count_too(relay: RelayServer, ca: trustme.CA) -> None:
    wrong = base64.b64encode(b"\0anna\0rly_wrong").decode()
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("x")
        codes = [smtp.docmd("AUTH", f"PLAIN {wrong}")[0] for _ in range(6)]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.docmd("NOOP")
    assert codes == [535] * 5 + [421]


def test_a_mail_loop_is_refused(relay: RelayServer) -> None:
    hops = b"".join(
        b"Received: from hop%d.example by hop%d.example; Mon, 2 Jun 2025 10:00:00 +0000\r\n"
        % (n, n + 1)
        for n in range(31)
    )
    code, text = deliver(relay, relay.anna["address"], hops + mail(message_id=None))
    assert (code, text) == (554, "5.4.6 Too many hops")
    within = hops.split(b"\r\n", 1)[1]  # 30 hops are fine
    assert queued(deliver(relay, relay.anna["address"], within + mail(message_id=None)))


def test_command_limits(relay: RelayServer) -> None:
    with socket.create_connection(("127.0.0.1", relay.smtp_port), timeout=30) as sock:
        sock.recv(1024)
        sock.sendall(b"EHLO x\r\n" + b"HELP\r\n" * 21)
        replies = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            replies += chunk
    assert replies.rstrip().endswith(b"421 4.7.0 HELP sent too many times")
