"""Destinations (where a user's posts go) and deliveries (one post to one destination)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, RowMapping, select, update

from relay.auth import new_id
from relay.db.schema import deliveries, destinations, posts
from relay.model import DeliveryStatus


def add_destination(
    conn: Connection,
    user_id: str,
    type_: str,
    url: str | None,
    secret: str | None,
    token: str | None,
    config: dict[str, Any],
) -> str:
    destination_id = new_id()
    conn.execute(
        destinations.insert().values(
            id=destination_id,
            user_id=user_id,
            type=type_,
            url=url,
            secret=secret,
            token=token,
            config=json.dumps(config),
            active=True,
            created_at=time.time(),
        )
    )
    return destination_id


def destination_row(conn: Connection, destination_id: str) -> RowMapping | None:
    return (
        conn.execute(select(destinations).where(destinations.c.id == destination_id))
        .mappings()
        .first()
    )


def list_destinations(conn: Connection, user_id: str) -> list[RowMapping]:
    return list(
        conn.execute(
            select(destinations)
            .where(destinations.c.user_id == user_id, destinations.c.active.is_(True))
            .order_by(destinations.c.created_at)
        ).mappings()
    )


def remove_destination(conn: Connection, destination_id: str) -> bool:
    result = conn.execute(
        update(destinations)
        .where(destinations.c.id == destination_id, destinations.c.active.is_(True))
        .values(active=False)
    )
    return result.rowcount > 0


def create_deliveries(conn: Connection, post_id: str) -> list[str]:
    """One pending delivery per active destination of the post's owner (or only the one the
    post names); none for a private or draft post, and none twice for the same destination."""
    post = conn.execute(
        select(posts.c.user_id, posts.c.private, posts.c.draft, posts.c.only_destination).where(
            posts.c.id == post_id
        )
    ).first()
    if post is None or post.private or post.draft:
        return []
    # A copy taken down (retracted, or cancelled before it went) may go again when the post is
    # published again: as a new delivery, with a new idempotency key.
    existing = set(
        conn.execute(
            select(deliveries.c.destination_id).where(
                deliveries.c.post_id == post_id,
                deliveries.c.status.not_in(
                    [DeliveryStatus.RETRACTED.value, DeliveryStatus.CANCELLED.value]
                ),
            )
        ).scalars()
    )
    created = []
    now = time.time()
    for destination in list_destinations(conn, post.user_id):
        if destination["id"] in existing:
            continue
        wanted = post.only_destination.split(",") if post.only_destination else None
        if wanted and destination["id"] not in wanted and destination["type"] not in wanted:
            continue  # mailed to SECRET+DESTINATION@: only there
        delivery_id = "msg_" + new_id()
        conn.execute(
            deliveries.insert().values(
                id=delivery_id,
                post_id=post_id,
                destination_id=destination["id"],
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
        created.append(delivery_id)
    return created


def delivery_row(conn: Connection, delivery_id: str) -> RowMapping | None:
    return conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings().first()


def set_delivery(conn: Connection, delivery_id: str, **values: Any) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(updated_at=time.time(), **values)
    )


def delivery_ids(conn: Connection, post_id: str, *statuses: DeliveryStatus) -> list[str]:
    """The post's deliveries in these states, oldest first."""
    return list(
        conn.execute(
            select(deliveries.c.id)
            .where(
                deliveries.c.post_id == post_id,
                deliveries.c.status.in_([s.value for s in statuses]),
            )
            .order_by(deliveries.c.created_at)
        ).scalars()
    )
