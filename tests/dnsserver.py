"""A DNS server on 127.0.0.1 that answers from a dict, and DKIM keys to publish in it: sender
checks are tested with real lookups and no network."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dkim
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class FakeDns:
    address: str
    """``127.0.0.1:PORT``, for RELAY_DNS_SERVERS."""
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(name without the final dot, type) → values; a TXT value is its text."""
    asked: list[tuple[str, str]] = field(default_factory=list)

    def txt(self, name: str, value: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), "TXT"), []).append(value)


def _quoted(text: str) -> str:
    # A TXT string holds at most 255 bytes; longer records are several strings.
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, max(len(text), 1), 255))


@contextmanager
def dns_server() -> Iterator[FakeDns]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    state = FakeDns(address=f"127.0.0.1:{sock.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            qtype = dns.rdatatype.to_text(question.rdtype)
            state.asked.append((name, qtype))
            response = dns.message.make_response(query)
            values = state.records.get((name, qtype))
            if values:
                texts = [_quoted(v) if qtype == "TXT" else v for v in values]
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", qtype, *texts))
            elif not any(key[0] == name for key in state.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    record: str
    """The TXT record that publishes the public key."""

    def sign(self, message: bytes, domain: str, selector: str = "sel", **options: object) -> bytes:
        signature = dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            self.private_pem,
            include_headers=[b"from", b"to", b"subject", b"message-id", b"date"],
            **options,
        )
        return signature + message


def dkim_key() -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(private_pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public_der).decode()}")
