"""The post's life in the database: guarded state changes, the append-only record, and what a
deleted post leaves behind. ``relay.lifecycle`` decides; this module only reads and writes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from relay.db.schema import items, post_events, posts, renditions
from relay.model import PostState


def event_row(
    post_id: str, kind: str, actor: str | None, door: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """An event of the post's record as its row."""
    return {
        "post_id": post_id,
        "at": time.time(),
        "kind": kind,
        "actor": actor,
        "door": door,
        "detail": json.dumps(detail, ensure_ascii=False, default=str),
    }


def append_event(
    conn: Connection, post_id: str, kind: str, actor: str | None, door: str, detail: dict[str, Any]
) -> int:
    """One event at the end of the post's record (nothing updates or deletes it); its id."""
    result = conn.execute(post_events.insert(), event_row(post_id, kind, actor, door, detail))
    return result.inserted_primary_key[0]


def append_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Events of ``event_row`` in one statement, in order."""
    if rows:
        conn.execute(post_events.insert(), rows)


def events(conn: Connection, post_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(post_events).where(post_events.c.post_id == post_id).order_by(post_events.c.id)
    ).mappings()
    return [
        {
            "id": row["id"],
            "at": datetime.fromtimestamp(row["at"], UTC).isoformat(),
            "kind": row["kind"],
            "actor": row["actor"],
            "door": row["door"],
            "detail": json.loads(row["detail"] or "{}"),
        }
        for row in rows
    ]


def state_of(conn: Connection, post_id: str) -> str | None:
    return conn.execute(select(posts.c.state).where(posts.c.id == post_id)).scalar()


def set_state(conn: Connection, post_id: str, old: str, new: str, **values: Any) -> bool:
    """The guarded transition: only from ``old``, so that two callers at once change it once."""
    result = conn.execute(
        update(posts)
        .where(posts.c.id == post_id, posts.c.state == old)
        .values(state=new, draft=new == PostState.DRAFT.value, **values)
    )
    return result.rowcount > 0


def set_scheduled(conn: Connection, post_id: str, when: float) -> None:
    conn.execute(
        update(posts)
        .where(posts.c.id == post_id)
        .values(state=PostState.SCHEDULED.value, draft=False, publish_at=when)
    )


def item_alt(conn: Connection, post_id: str, item_id: str) -> tuple[str | None] | None:
    """``(alt,)`` of the post's item, None if the post has no such item."""
    row = conn.execute(
        select(items.c.alt).where(items.c.id == item_id, items.c.post_id == post_id)
    ).first()
    return None if row is None else (row[0],)


def originals(conn: Connection, post_id: str) -> list[dict[str, Any]]:
    """What a deletion keeps of each item: its name and the SHA-256 of its original."""
    return [
        {"item": r.id, "filename": r.filename, "sha256": r.original_sha256}
        for r in conn.execute(
            select(items.c.id, items.c.filename, items.c.original_sha256)
            .where(items.c.post_id == post_id)
            .order_by(items.c.position)
        )
    ]


def media_keys(conn: Connection, post_id: str) -> list[str]:
    """The store keys of the post's originals and renditions."""
    keys = [
        k
        for k in conn.execute(
            select(items.c.original_key).where(items.c.post_id == post_id)
        ).scalars()
        if k
    ]
    keys += conn.execute(
        select(renditions.c.key).where(
            renditions.c.item_id.in_(select(items.c.id).where(items.c.post_id == post_id))
        )
    ).scalars()
    return keys


def forget_media(conn: Connection, post_id: str) -> None:
    """The media left the store: drop the renditions and the originals' keys. The SHA-256, type
    and size of each original stay, the record of what was there."""
    conn.execute(
        renditions.delete().where(
            renditions.c.item_id.in_(select(items.c.id).where(items.c.post_id == post_id))
        )
    )
    conn.execute(update(items).where(items.c.post_id == post_id).values(original_key=None))
