"""Flagging a channel "reconnect needed" (relay/db/destinations.py) and its one notice
(relay/notice.py), on SQLite and PostgreSQL: only the first flagging queues a notice, the
channel's sealed secrets survive the flag, and connecting again lets a later death be told."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from relay.db import Database, destinations, queries
from relay.db.schema import jobs as jobs_table
from relay.notice import RECONNECT_NOTICE, build_notice, flag_and_notify


def _notices(database: Database) -> int:
    with database.begin(write=False) as conn:
        return conn.execute(
            select(func.count()).where(jobs_table.c.kind == RECONNECT_NOTICE)
        ).scalar_one()


def test_only_the_first_flagging_queues_a_notice(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        config = {"threads_user_id": "25", "account": "@kommunen", "app_secret": "s3cret-value"}
        made = destinations.add_destination(
            conn, user_id, "threads", "https://t", None, "THAA-token", config
        )
    for _ in range(3):  # three deliveries finding the token dead
        with database.begin() as conn:
            flag_and_notify(conn, made)
    assert _notices(database) == 1
    with database.begin(write=False) as conn:
        row = destinations.destination_row(conn, made)
    assert destinations.needs_reconnect(row)
    # the flag did not disturb the sealed values around it
    assert row["token"] == "THAA-token" and row[destinations.UNREADABLE] == []
    assert json.loads(row["config"])["app_secret"] == "s3cret-value"

    # connected again (a fresh config without the flag), then dead again: told again, once
    with database.begin() as conn:
        destinations.update_destination(conn, made, token="THAA-new", config=config)
    for _ in range(2):
        with database.begin() as conn:
            flag_and_notify(conn, made)
    assert _notices(database) == 2


def test_a_removed_channel_is_not_flagged_nor_told(database: Database) -> None:
    with database.begin() as conn:
        user_id = queries.add_user(conn, "anna")
        made = destinations.add_destination(conn, user_id, "facebook", None, None, "t", {})
        destinations.remove_destination(conn, made)
        assert not flag_and_notify(conn, made)
    assert _notices(database) == 0


def test_the_notice_speaks_the_users_language_and_keeps_headers_single_line() -> None:
    notice = build_notice(
        sender="posts@relay.example",
        to="anna@example.org",
        service="Threads",
        account="@kommunen\r\nBcc: victim@example.org",
        channels_url="https://relay.example/channels",
        domain="relay.example",
        lang="sv",
    )
    assert notice["Subject"] == "Anslut Threads igen: @kommunen Bcc: victim@example.org"
    assert notice["Bcc"] is None
    body = notice.get_content()
    assert "Öppna Kanaler i reläet och välj Anslut igen: https://relay.example/channels" in body
