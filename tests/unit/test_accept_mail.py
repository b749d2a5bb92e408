"""``accept`` for mail: a message taken twice is one post (also when both copies commit at once),
what the door learned is stored, and a held reply is released when the deliveries settle. On
SQLite and (with RELAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from relay import reply
from relay.db import Database, destinations, queries
from relay.db.schema import jobs as jobs_table
from relay.db.schema import posts
from relay.intake.accept import Acceptor, AlreadyAccepted, MailMeta, mail_digest
from relay.model import DeliveryStatus
from relay.publish.deliver import settle
from relay.spool import Spool

META = MailMeta(
    message_id="m1@example.org",
    content_sha256="ab" * 32,
    sender="anna@example.org",
    auth_results="relay.example; dkim=pass header.d=example.org",
)


def _user(db: Database, name: str = "anna") -> str:
    with db.begin() as conn:
        return queries.add_user(conn, name)


def _count(db: Database) -> int:
    with db.begin() as conn:
        return conn.execute(select(func.count()).select_from(posts)).scalar_one()


def test_the_same_message_twice_is_one_post(database: Database) -> None:
    user_id = _user(database)
    acceptor = Acceptor(database, 5, lambda: None)

    async def twice() -> list[object]:
        return await asyncio.gather(
            *(
                acceptor.accept(user_id, mail_spool_name=f"s{n}", source="smtp", mail=META)
                for n in range(4)
            ),
            return_exceptions=True,
        )

    results = asyncio.run(twice())
    made = [r for r in results if not isinstance(r, BaseException)]
    repeats = [r for r in results if isinstance(r, AlreadyAccepted)]
    assert len(made) == 1 and len(repeats) == 3
    assert {r.post_id for r in repeats} == {made[0].id}  # type: ignore[union-attr]
    assert _count(database) == 1
    with database.begin() as conn:
        row = queries.post_row(conn, made[0].id)  # type: ignore[union-attr]
    assert row is not None
    assert (row["message_id"], row["content_sha256"], row["sender"]) == (
        "m1@example.org",
        "ab" * 32,
        "anna@example.org",
    )
    assert row["auth_results"] == META.auth_results


def test_copies_of_other_users_or_without_message_id_are_new_posts(database: Database) -> None:
    anna, bob = _user(database, "anna"), _user(database, "bob")
    acceptor = Acceptor(database, 5, lambda: None)
    no_id = MailMeta(content_sha256="cd" * 32)

    async def run() -> None:
        await acceptor.accept(anna, mail_spool_name="a", source="smtp", mail=META)
        await acceptor.accept(bob, mail_spool_name="b", source="smtp", mail=META)
        await acceptor.accept(anna, mail_spool_name="c", source="smtp", mail=no_id)
        await acceptor.accept(anna, mail_spool_name="d", source="smtp", mail=no_id)

    asyncio.run(run())
    assert _count(database) == 4


def test_a_group_commit_finds_earlier_copies_and_its_own(database: Database) -> None:
    """Mails that arrive together are committed together, their Message-IDs looked for once:
    a copy of a post stored before, and a copy of a mail of the same group, each find theirs;
    the rest (another user's, another Message-ID, none) are new posts."""
    anna, bob = _user(database, "anna"), _user(database, "bob")
    acceptor = Acceptor(database, 5, lambda: None)
    other = MailMeta(message_id="m2@example.org", content_sha256="ef" * 32)
    no_id = MailMeta(content_sha256="cd" * 32)

    async def together(group: list[tuple[str, str, MailMeta]]) -> list[object]:
        return await asyncio.gather(
            *(
                acceptor.accept(user, mail_spool_name=name, source="smtp", mail=mail)
                for user, name, mail in group
            ),
            return_exceptions=True,
        )

    async def run() -> tuple[str, list[object], list[object]]:
        first = await acceptor.accept(anna, mail_spool_name="a", source="smtp", mail=META)
        # A copy of ``first``, another user's mail with its Message-ID, a new one, none.
        stored = await together(
            [(anna, "b", META), (bob, "c", META), (anna, "d", other), (anna, "e", no_id)]
        )
        # A new Message-ID and its copy in the same group.
        third = MailMeta(message_id="m3@example.org", content_sha256="12" * 32)
        same_group = await together([(anna, "f", third), (anna, "g", third)])
        return first.id, stored, same_group

    first, stored, same_group = asyncio.run(run())
    copy_of_first, *new = stored
    assert isinstance(copy_of_first, AlreadyAccepted) and copy_of_first.post_id == first
    assert not any(isinstance(made, BaseException) for made in new), new
    made, copy = same_group
    assert isinstance(copy, AlreadyAccepted) and copy.post_id == made.id  # type: ignore[union-attr]
    assert _count(database) == 5


def test_modes_are_stored(database: Database) -> None:
    user_id = _user(database)
    acceptor = Acceptor(database, 5, lambda: None)
    post = asyncio.run(
        acceptor.accept(
            user_id, mail_spool_name="x", source="smtp", draft=True, only_destination="mastodon"
        )
    )
    with database.begin() as conn:
        row = queries.post_row(conn, post.id)
    assert row is not None and row["draft"] and row["only_destination"] == "mastodon"


def _reply_run_at(db: Database, post_id: str) -> float | None:
    with db.begin() as conn:
        return conn.execute(
            select(jobs_table.c.run_at).where(
                jobs_table.c.kind == reply.REPLY, jobs_table.c.ref == post_id
            )
        ).scalar()


@pytest.mark.parametrize("with_destination", [False, True])
def test_a_held_reply_goes_when_the_deliveries_settle(
    database: Database, with_destination: bool
) -> None:
    user_id = _user(database)
    if with_destination:
        with database.begin() as conn:
            destinations.add_destination(conn, user_id, "webhook", "http://x", "s", None, {})
    acceptor = Acceptor(database, 5, lambda: None)
    meta = MailMeta(message_id="r@example.org", content_sha256="ef" * 32, reply=True)
    post = asyncio.run(acceptor.accept(user_id, mail_spool_name="m", source="smtp", mail=meta))
    held = _reply_run_at(database, post.id)
    assert held is not None and held > time.time() + 3600
    with database.begin() as conn:
        queries.update_post_text(conn, post.id, spool_name=None)  # as the unpacking job does
        settle(conn, post.id)
    if with_destination:
        assert _reply_run_at(database, post.id) == held  # a delivery is pending
        with database.begin() as conn:
            [delivery] = queries.load_deliveries(conn, [post.id])[post.id]
            destinations.set_delivery(conn, delivery.id, status=DeliveryStatus.DELIVERED.value)
            assert reply.release(conn, post.id)
    released = _reply_run_at(database, post.id)
    assert released is not None and released <= time.time()


def _spooled_mail(spool: Spool, body: bytes) -> str:
    """A message as the SMTP door spools it: its own Received field first."""
    return spool.put_bytes(b"Received: from phone ([10.0.0.1])\r\n\tby relay; now\r\n" + body)


def test_copies_are_found_by_message_id_and_hashed_only_then(
    database: Database, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    user_id = _user(database)
    acceptor = Acceptor(database, 5, lambda: None, spool)
    hashed: list[str] = []
    body = b"Message-ID: <lazy@example.org>\r\n\r\nhello\r\n"

    def accept(message: bytes, message_id: str = "lazy@example.org") -> object:
        name = _spooled_mail(spool, message)

        def digest() -> str:
            hashed.append(name)
            return mail_digest(spool.path(name))

        meta = MailMeta(message_id=message_id, digest=digest)
        try:
            return asyncio.run(
                acceptor.accept(user_id, mail_spool_name=name, source="smtp", mail=meta)
            )
        except AlreadyAccepted as already:
            return already

    first = accept(body)
    assert hashed == []  # no other post has its Message-ID: nothing to compare, no hash made
    again = accept(body)  # the first is not unpacked yet: its spool file is hashed too
    assert isinstance(again, AlreadyAccepted) and again.post_id == first.id
    edited = accept(body.replace(b"hello", b"hej"))
    assert not isinstance(edited, AlreadyAccepted)
    # Once unpacked, the first's spool file is gone and its job stored the hash.
    with database.begin() as conn:
        queries.update_post_text(
            conn,
            first.id,
            spool_name=None,
            content_sha256=hashlib.sha256(body).hexdigest(),
        )
    later = accept(body)
    assert isinstance(later, AlreadyAccepted) and later.post_id == first.id
    other_id = accept(body, message_id="other@example.org")
    assert not isinstance(other_id, AlreadyAccepted)
    assert _count(database) == 3
