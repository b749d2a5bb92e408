"""What the SMTP door reads from a message before it is a post: its hash, its header block
(bounded), and the guard that slows down address guessing."""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from relay.intake.accept import mail_digest
from relay.intake.smtp import FailureGuard
from relay.intake.smtpdata import DataReader
from relay.mail.facts import scan_headers
from relay.spool import Spool


@pytest.mark.parametrize("size", [300, 300_000])  # kept in memory until commit, or streamed
def test_the_hash_and_head_are_of_the_unstuffed_message(tmp_path: Path, size: int) -> None:
    message = b"Subject: x\r\n\r\n.dotted\r\n" + b"y" * size + b"\r\n"
    wire = message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    spool = Spool(tmp_path)
    writer = spool.writer()
    writer.write(b"Received: from phone\r\n\tby the relay; now\r\n")  # as the door does
    reader = DataReader(writer, None, head_limit=1000)
    rng = random.Random(3)
    pos = 0
    while not reader.done:
        step = rng.randint(1, 70_000)
        reader.feed(wire[pos : pos + step])
        pos += step
    name = writer.commit_sync()
    # the message as its sender sent it: unstuffed, without what the door put before it
    assert mail_digest(spool.path(name)) == hashlib.sha256(message).hexdigest()
    assert bytes(reader.head) == message[:1000]


def test_received_fields_are_counted_and_folded_values_read() -> None:
    head = (
        b"Received: from a\r\n\tby b; Mon, 2 Jun 2025\r\n" * 31
        + b"From: =?utf-8?q?Anna_=C3=85?= <anna@example.org>\r\n"
        + b"Message-ID:\r\n <abc.123@example.org>\r\n"
        + b"\r\nReceived: in the body does not count\r\n"
    )
    facts = scan_headers(head)
    assert facts.received == 31
    assert facts.sender == "anna@example.org" and facts.from_count == 1
    assert facts.message_id == "abc.123@example.org"
    assert not facts.automatic


@pytest.mark.parametrize(
    ("fields", "automatic"),
    [
        (b"Auto-Submitted: auto-replied\r\n", True),
        (b"Auto-Submitted: no\r\n", False),
        (b"Precedence: bulk\r\n", True),
        (b"Precedence: list\r\n", True),
        (b"", False),
    ],
)
def test_automatic_mail_is_recognised(fields: bytes, automatic: bool) -> None:
    facts = scan_headers(b"From: a@example.org\r\n" + fields + b"\r\nbody")
    assert facts.automatic is automatic


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\r\n\r\n",
        b" continuation first\r\nFrom: a@example.org\r\n\r\n",
        b"no colon here\r\n",
        b"From: " + b"(" * 10_000 + b"a@example.org\r\n\r\n",
        b"From: \xff\xfe <a@\xc3\xa5.example>\r\nMessage-ID: <\x00\x01>\r\n\r\n",
        b"X: y\r\n" * 100_000,
        b"From: Undisclosed:;\r\n\r\n",
    ],
)
def test_hostile_header_blocks_give_facts_not_errors(head: bytes) -> None:
    facts = scan_headers(head)
    assert facts.received == 0
    assert facts.sender is None or "@" in facts.sender
    assert facts.message_id is None or facts.message_id.isprintable()


def test_a_message_without_header_block_has_no_sender() -> None:
    assert scan_headers(b" continuation first\r\nFrom: a@example.org\r\n\r\n").sender is None
    assert scan_headers(b"body text\r\nFrom: a@example.org\r\n\r\n").sender is None


def test_two_from_fields_are_counted() -> None:
    facts = scan_headers(b"From: a@example.org\r\nfrom: b@example.org\r\n\r\n")
    assert facts.from_count == 2 and facts.sender == "a@example.org"


def test_failure_guard_counts_per_ip_and_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("relay.intake.smtp.time.monotonic", lambda: now[0])
    guard = FailureGuard(window=60, max_entries=50)
    assert [guard.add("192.0.2.1") for _ in range(3)] == [1, 2, 3]
    assert guard.count("192.0.2.2") == 0
    now[0] += 61
    assert guard.count("192.0.2.1") == 0 and guard.add("192.0.2.1") == 1
    for n in range(200):
        guard.add(f"10.0.{n // 256}.{n % 256}")
    assert len(guard._seen) <= 50  # noqa: SLF001


# --- the fast paths give the stdlib parser's answers -------------------------------------------

CORPORA = Path(os.environ.get("RELAY_TEST_CORPORA", "/work/shared/corpora"))
MAIL = Path(__file__).resolve().parents[1] / "corpus" / "mail"

_TOKENS = [
    "Anna",
    " ",
    "\t",
    '"',
    "\\",
    "<",
    ">",
    "@",
    ".",
    ",",
    ";",
    ":",
    "(",
    ")",
    "[",
    "]",
    "a",
    "b.c",
    "x@y.example",
    "<a@b.example>",
    "=?utf-8?q?=C3=85?=",
    "'",
    "é",
    "!#$%&*+/=?^_`{|}~-",
    "SIZE=10",
    "..",
    "@[127.0.0.1]",
]


def _random_values(seed: int, count: int = 3000) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 8))) for _ in range(count)]


def _corpus_fields(name: str) -> list[str]:
    found = []
    for path in sorted(CORPORA.rglob("*")) + sorted(MAIL.rglob("*")):
        if path.is_file() and path.stat().st_size < 5_000_000:
            value = scan_headers(path.read_bytes()[:262_144]).values.get(name)
            if value:
                found.append(value)
    return found


def _without(monkeypatch: pytest.MonkeyPatch, module: object, pattern: str) -> None:
    monkeypatch.setattr(module, pattern, re.compile(r"(?!)"))  # matches nothing


@pytest.mark.parametrize("source", ["corpus", "random"])
def test_from_and_message_id_fast_paths_agree_with_the_stdlib(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.mail import facts

    for field, read, pattern in (
        ("from", facts._sender, "_PLAIN_FROM"),  # noqa: SLF001
        ("message-id", facts._message_id, "_PLAIN_ID"),  # noqa: SLF001
    ):
        values = _corpus_fields(field) if source == "corpus" else _random_values(len(field))
        fast = [read(value) for value in values]
        with monkeypatch.context() as patched:
            _without(patched, facts, pattern)
            slow = [read(value) for value in values]
        assert fast == slow
        if source == "corpus":  # most real fields take the fast path
            taken = sum(bool(getattr(facts, pattern).fullmatch(value)) for value in values)
            assert taken > 0.8 * len(values) >= 10


def test_mail_and_rcpt_argument_fast_path_agrees_with_aiosmtpd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiosmtpd.handlers import Sink

    from relay.intake import smtp

    server = smtp.RelaySMTP.__new__(smtp.RelaySMTP)
    server.local_part_limit = 64
    values = _random_values(7) + [
        "<bench@example.org>",
        "<bench@example.org> SIZE=1000 BODY=8BITMIME",
        " <a.b@c.d>\tSIZE=1",
        "<a@b>(comment) SIZE=1",
        f"<{'x' * 65}@example.org>",
    ]

    def outcomes(read: Callable[[str], object]) -> list[object]:
        found: list[object] = []
        for value in values:
            try:
                found.append(read(value))
            except Exception as exc:  # the stdlib parser raises more than HeaderParseError
                found.append(type(exc))
        return found

    fast = outcomes(server._getaddr)  # noqa: SLF001
    with monkeypatch.context() as patched:
        _without(patched, smtp, "_PLAIN_PATH")
        slow = outcomes(server._getaddr)  # noqa: SLF001
    stock = smtp.SMTP(Sink())
    stock.local_part_limit = 64
    assert fast == slow == outcomes(stock._getaddr)  # noqa: SLF001
    assert fast[-5:] == [
        ("bench@example.org", ""),
        ("bench@example.org", "SIZE=1000 BODY=8BITMIME"),
        ("a.b@c.d", "SIZE=1"),
        ("a@b", "SIZE=1"),
        (None, None),
    ]
