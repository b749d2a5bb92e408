"""Renewing X channels' two-hour tokens before a delivery (relay/publish/renew.py) against the
strict X fake, whose refresh tokens are single-use: one renewal for deliveries at once, the new
refresh token kept (sealed), a stale row followed to the saved one, a refused one left alone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from relay.db import Database, destinations, queries
from relay.db.schema import destinations as destinations_table
from relay.publish import renew
from relay.publish.net import Http
from relay.publish.x import XClient
from tests.fakes.x import FakeX


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX() as running:
        yield running


def _channel(database: Database, fake: FakeX, ends_in: float) -> str:
    def add(conn):  # type: ignore[no-untyped-def]
        user_id = queries.add_user(conn, "anna")
        config = {"refresh_token": fake.refresh, "token_expires_at": int(time.time() + ends_in)}
        return destinations.add_destination(conn, user_id, "x", fake.url, None, fake.token, config)

    return _run(database, add)


def _run(database: Database, step):  # type: ignore[no-untyped-def]
    return asyncio.run(database.run(step))


def _fresh_many(database: Database, fake: FakeX, destination_id: str, count: int) -> list:
    client = XClient(fake.client_id, fake.client_secret, fake.url)

    async def go() -> list:
        http = Http(allow_private=True)
        try:
            row = await database.read(destinations.destination_row, destination_id)
            return list(
                await asyncio.gather(
                    *(renew.fresh(database, http, row, x_client=client) for _ in range(count))
                )
            )
        finally:
            await http.close()

    return asyncio.run(go())


def test_deliveries_at_once_renew_once_and_keep_the_new_refresh_token_sealed(
    database: Database, fake: FakeX
) -> None:
    destination_id = _channel(database, fake, ends_in=60)
    first_refresh = fake.refresh
    rows = _fresh_many(database, fake, destination_id, 3)
    assert fake.refreshed == 1 and len(fake.calls("oauth.token")) == 1  # one spend, not three
    assert {row["token"] for row in rows} == {fake.token}
    config = json.loads(rows[0]["config"])
    assert config["refresh_token"] == fake.refresh != first_refresh
    assert config["token_expires_at"] > time.time() + 7000

    def raw(conn):  # type: ignore[no-untyped-def]
        query = select(destinations_table).where(destinations_table.c.id == destination_id)
        return dict(conn.execute(query).mappings().one())

    stored = _run(database, raw)
    assert fake.refresh not in stored["config"] and fake.token not in stored["token"]


def test_a_token_far_from_its_end_is_not_renewed(database: Database, fake: FakeX) -> None:
    destination_id = _channel(database, fake, ends_in=3600)
    [row] = _fresh_many(database, fake, destination_id, 1)
    assert fake.refreshed == 0 and row["token"] == fake.token


def test_a_refused_refresh_token_leaves_the_channel_as_it_was(
    database: Database, fake: FakeX
) -> None:
    destination_id = _channel(database, fake, ends_in=-10)
    old_token, old_refresh = fake.token, fake.refresh
    fake.revoke_refresh(old_refresh)
    [row] = _fresh_many(database, fake, destination_id, 1)
    assert row["token"] == old_token
    assert json.loads(row["config"])["refresh_token"] == old_refresh
    assert len(fake.calls("oauth.token")) == 1
