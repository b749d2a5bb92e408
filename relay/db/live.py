"""Stream keys and broadcasts (live broadcasting, relay/intake/live.py).

A stream key is a secret like a secret address: only its SHA-256 is kept, and its first
characters as a hint to tell keys apart in a list.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, func, select, update

from relay import auth
from relay.db.schema import broadcasts, stream_keys, users

KEY_PREFIX = "live_"


def new_key() -> str:
    # Lowercase base32: a key typed into a phone app from a screen survives case folding.
    return KEY_PREFIX + base64.b32encode(secrets.token_bytes(20)).decode().lower()


def add_key(conn: Connection, user_id: str, title: str = "") -> tuple[str, str]:
    """A new stream key for the user: (row id, key). The key is not kept; show it now."""
    key = new_key()
    key_id = auth.new_id()
    conn.execute(
        stream_keys.insert().values(
            id=key_id,
            user_id=user_id,
            key_hash=auth.digest(key),
            hint=key[: len(KEY_PREFIX) + 4],
            title=title,
            created_at=time.time(),
        )
    )
    return key_id, key


def keys_of(conn: Connection, user_id: str) -> list[RowMapping]:
    """The user's keys not revoked, oldest first (id, hint, title, created_at)."""
    k = stream_keys.c
    query = (
        select(k.id, k.hint, k.title, k.created_at)
        .where(k.user_id == user_id, k.revoked_at.is_(None))
        .order_by(k.created_at)
    )
    return list(conn.execute(query).mappings())


def revoke_key(conn: Connection, key: str) -> bool:
    result = conn.execute(
        update(stream_keys)
        .where(stream_keys.c.key_hash == auth.digest(key), stream_keys.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return result.rowcount > 0


def revoke_own_key(conn: Connection, user_id: str, key_id: str) -> bool:
    result = conn.execute(
        update(stream_keys)
        .where(
            stream_keys.c.id == key_id,
            stream_keys.c.user_id == user_id,
            stream_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=time.time())
    )
    return result.rowcount > 0


@dataclass(frozen=True, slots=True)
class StreamKey:
    id: str
    user_id: str
    title: str


_KEY_OWNER = (
    select(stream_keys.c.id, stream_keys.c.user_id, stream_keys.c.title, stream_keys.c.key_hash)
    .join(users, users.c.id == stream_keys.c.user_id)
    .where(
        stream_keys.c.key_hash == bindparam("key_hash"),
        stream_keys.c.revoked_at.is_(None),
        users.c.disabled.is_(False),
        users.c.removed_at.is_(None),
    )
)


def live_key(conn: Connection, key: str) -> StreamKey | None:
    """The live key's row, or None for a wrong or revoked key or a disabled user."""
    wanted = auth.digest(key)
    row = conn.execute(_KEY_OWNER, {"key_hash": wanted}).first()
    if row is None or not auth.same_digest(row.key_hash, wanted):
        return None
    return StreamKey(row.id, row.user_id, row.title)


# --- broadcasts -------------------------------------------------------------------------------


def start_broadcast(conn: Connection, key: StreamKey, post_id: str, node: str) -> str:
    broadcast_id = auth.new_id()
    conn.execute(
        broadcasts.insert().values(
            id=broadcast_id,
            key_id=key.id,
            user_id=key.user_id,
            post_id=post_id,
            state="live",
            started_at=time.time(),
            node=node,
        )
    )
    return broadcast_id


def end_broadcast(conn: Connection, broadcast_id: str, reason: str, seconds: float) -> None:
    conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.state == "live")
        .values(state="ended", ended_at=time.time(), end_reason=reason, seconds=seconds)
    )


def end_orphans(conn: Connection, nodes: list[str]) -> int:
    """Broadcasts that processes known gone left live are over (their sender is gone)."""
    if not nodes:
        return 0
    result = conn.execute(
        update(broadcasts)
        .where(broadcasts.c.state == "live", broadcasts.c.node.in_(nodes))
        .values(state="ended", ended_at=time.time(), end_reason="live.interrupted")
    )
    return result.rowcount


def live_counts(conn: Connection, user_id: str, since: float) -> tuple[int, int]:
    """Broadcasts live now: (the user's, everyone's). Only those started after ``since``: one
    older than the longest a broadcast may last was left by a node that died elsewhere."""
    live = (broadcasts.c.state == "live") & (broadcasts.c.started_at > since)
    mine = conn.execute(
        select(func.count()).where(live, broadcasts.c.user_id == user_id)
    ).scalar_one()
    total = conn.execute(select(func.count()).where(live)).scalar_one()
    return mine, total


def broadcast_of_post(conn: Connection, post_id: str) -> dict[str, Any] | None:
    """The post's broadcast (the latest, if several): state, started_at, end_reason."""
    row = (
        conn.execute(
            select(broadcasts)
            .where(broadcasts.c.post_id == post_id)
            .order_by(broadcasts.c.started_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None
