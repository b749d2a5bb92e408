"""The fast paths the benchmarks called for keep their slow twins' results: group commit of
accepts, the one-pass DATA reader, the bounded header scan, base64 parts in one call."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import random

import pytest
from sqlalchemy import Connection, func, select

from relay.db import Database, queries
from relay.db.schema import jobs as jobs_table
from relay.db.schema import posts
from relay.errors import RelayError
from relay.intake.accept import Acceptor
from relay.intake.smtpdata import DataReader
from relay.mail.facts import scan_headers
from relay.mail.parse import parse_message
from relay.model import Post
from tests.unit.test_smtpdata import Sink, aiosmtpd_data

# --- group commit ------------------------------------------------------------------------------


def _user(db: Database) -> str:
    with db.begin() as conn:
        return queries.add_user(conn, "anna")


def _count(db: Database, table) -> int:  # noqa: ANN001 - a SQLAlchemy table
    with db.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


class CountingDatabase(Database):
    """Counts write transactions."""

    writes = 0

    def _call(self, write: bool, fn, *args, **kwargs):  # noqa: ANN001, ANN202
        if write:
            self.writes += 1
        return super()._call(write, fn, *args, **kwargs)


@pytest.fixture
def counting(tmp_path) -> CountingDatabase:  # noqa: ANN001
    db = CountingDatabase(f"sqlite:///{tmp_path / 'relay.db'}")
    db.migrate()
    yield db
    db.close()


def test_accepts_arriving_together_share_transactions(counting: CountingDatabase) -> None:
    user_id = _user(counting)
    acceptor = Acceptor(counting, 5, lambda: None)

    async def many() -> list[Post]:
        return await asyncio.gather(
            *(acceptor.accept(user_id, mail_spool_name=f"s{n}", source="smtp") for n in range(20))
        )

    before = counting.writes
    made = asyncio.run(many())
    assert len({post.id for post in made}) == 20
    assert _count(counting, posts) == 20 and _count(counting, jobs_table) == 20
    # All 20 are queued before the committer first runs: one transaction, not twenty.
    assert counting.writes - before <= 2


def test_a_failure_in_a_group_is_its_own(database: Database) -> None:
    user_id = _user(database)
    acceptor = Acceptor(database, 5, lambda: None)

    def refuse(conn: Connection, post: Post) -> None:
        raise RelayError("server.unavailable", "finished twice")

    async def mixed() -> list[object]:
        calls = [
            acceptor.accept(
                user_id, mail_spool_name=f"s{n}", source="smtp", also=refuse if n == 3 else None
            )
            for n in range(8)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(mixed())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(results[3], RelayError)
    assert _count(database, posts) == 7
    with database.begin() as conn:
        for n, result in enumerate(results):
            if n != 3:
                assert queries.post_row(conn, result.id) is not None  # type: ignore[union-attr]


def test_a_lone_failure_raises_as_before(database: Database) -> None:
    user_id = _user(database)
    acceptor = Acceptor(database, 5, lambda: None)

    def refuse(conn: Connection, post: Post) -> None:
        raise RelayError("server.unavailable", "finished twice")

    with pytest.raises(RelayError):
        asyncio.run(acceptor.accept(user_id, source="http", text="x", also=refuse))
    assert _count(database, posts) == 0


# --- DATA in one pass --------------------------------------------------------------------------

ALPHABET = [b"\r\n", b".", b"\r", b"\n", b"x", b"..", b"\r\n.", b"\r\n.\r", b"y" * 300]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("misses", [0, 2, 64])  # when the dot-by-dot search gives way to re
def test_one_pass_reader_matches_aiosmtpd_with_any_chunking(
    seed: int, misses: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.intake import smtpdata

    monkeypatch.setattr(smtpdata, "_MISSES", misses)
    rng = random.Random(seed)
    for _ in range(300):
        body = b"".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        wire = body + b"\r\n.\r\nQUIT\r\n"
        try:
            expected = aiosmtpd_data(wire)
        except ValueError:
            continue  # no CRLF.CRLF at all: not a message
        for largest in (2, 7, 64, 100_000):
            sink = Sink()
            reader = DataReader(sink, None)
            pos, rest = 0, b""
            while not reader.done:
                size = rng.randint(1, largest)
                rest = reader.feed(wire[pos : pos + size])
                pos += size
            assert (bytes(sink.data), rest + wire[pos:]) == expected, (wire, largest)


def test_header_scan_reads_the_block_only() -> None:
    head = (
        b"Received: from a\r\nReceived: from b\r\nFrom: Anna <anna@example.org>\r\n"
        b"Message-ID: <m1@example.org>\r\n\r\n" + b"From: mallory@example.org\r\n" * 5000
    )
    facts = scan_headers(head)
    assert (facts.received, facts.from_count) == (2, 1)
    assert (facts.sender, facts.message_id) == ("anna@example.org", "m1@example.org")
    bare = scan_headers(b"From: anna@example.org\n\nFrom: x@example.org\n")
    assert (bare.from_count, bare.sender) == (1, "anna@example.org")


# --- base64 parts --------------------------------------------------------------------------------


def _attachment_mail(body: bytes) -> bytes:
    return (
        b"From: anna@example.se\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/octet-stream; name=a.bin\r\n"
        b"Content-Disposition: attachment; filename=a.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n--b--\r\n"
    )


@pytest.mark.parametrize(
    "body",
    [
        "lines of 76",
        "one long line",
        "bare LF line ends",
        "stray characters",
        "spaces and tabs",
        "missing padding",
        "data after padding",
        "empty",
    ],
)
def test_base64_parts_decode_as_the_stdlib_decodes_them(body: str) -> None:
    # parse_message decodes base64 in one C call; the stdlib's decoder (with its repairs of
    # damaged input) is the reference for every shape of body mailers and attackers send.
    data = random.Random(7).randbytes(5000)
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    bodies = {
        "lines of 76": b"\r\n".join(lines),
        "one long line": encoded,
        "bare LF line ends": b"\n".join(lines),
        "stray characters": b"\r\n".join(line[:30] + b"*-!" + line[30:] for line in lines),
        "spaces and tabs": b"\r\n".join(b" \t" + line + b" " for line in lines),
        "missing padding": base64.b64encode(data[:4999]).rstrip(b"="),
        "data after padding": base64.b64encode(data[:4999]) + b"QUJD",
        "empty": b"",
    }
    raw = _attachment_mail(bodies[body])
    reference = email.message_from_bytes(raw, policy=email.policy.default)
    expected = next(reference.iter_attachments()).get_payload(decode=True)
    parts = parse_message(raw).parts
    assert [part.payload for part in parts] == ([expected] if expected else [])
