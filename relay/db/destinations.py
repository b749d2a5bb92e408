"""Destinations (where a user's posts go) and deliveries (one post to one destination).

A destination's secrets (its ``secret`` and ``token``, and each ``config`` value whose key names
a secret) are sealed at rest (relay/sealed.py) with the sealer the ``Database`` was opened with:
these functions seal what they write and open what they read, so callers see clear values. A
value that does not open (``RELAY_SECRET_KEY`` changed) reads as None, and its field is named in
the row's ``unreadable_secrets``; delivering to it then fails with
``destination.secret_unreadable`` (relay/publish/deliver.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, select, update

from relay.auth import new_id
from relay.db.schema import deliveries, destinations, posts
from relay.model import DeliveryStatus
from relay.sealed import PREFIX, Sealer, Unreadable, is_sealed

SEALED_COLUMNS = ("secret", "token")
# A config value is a secret when its key says so (client_secret, refresh_token, app_password).
_SECRET_WORDS = ("password", "secret", "token", "credential")
UNREADABLE = "unreadable_secrets"
"""Key of a read row: the fields (``token``, ``config.client_secret``) that did not open."""


def sealer_of(conn: Connection) -> Sealer | None:
    """The sealer of the ``Database`` this connection came from (an execution option)."""
    return conn.get_execution_options().get("sealer")


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _context(destination_id: str, field: str) -> str:
    # Associated data: a sealed value opens only in the row and field it was sealed for.
    return f"destination/{destination_id}/{field}"


def _is_clear(value: Any) -> bool:
    """A secret in clear text: a non-empty string without the sealed prefix."""
    return isinstance(value, str) and bool(value) and not is_sealed(value)


def _seal(conn: Connection, destination_id: str, field: str, value: Any) -> Any:
    # What a caller gives is sealed whatever it looks like: a value pasted with a "v1:" in
    # front is stored sealed too, not taken for one (it would open nowhere).
    if not isinstance(value, str) or not value:
        return value  # nothing to hide
    sealer = sealer_of(conn)
    if sealer is None:
        raise RuntimeError(
            "the database was opened without the relay's key (Database(..., sealer=...)): "
            "a destination's secret cannot be stored"
        )
    return sealer.seal(value, _context(destination_id, field))


def _sealed_config(
    conn: Connection, destination_id: str, config: Mapping[str, Any], only_clear: bool = False
) -> str:
    """The config as stored: values under secret keys sealed (``only_clear``: those not sealed
    yet, for a config read back from the database)."""
    return json.dumps(
        {
            key: _seal(conn, destination_id, f"config.{key}", value)
            if _is_secret_key(key) and (_is_clear(value) or not only_clear)
            else value
            for key, value in config.items()
        }
    )


def _opened(conn: Connection, row: RowMapping) -> dict[str, Any]:
    """The row with its secrets opened, and ``unreadable_secrets`` naming those that did not."""
    found = dict(row)
    sealer = sealer_of(conn)
    unreadable: list[str] = []

    def open_(field: str, value: Any) -> Any:
        if not isinstance(value, str) or not is_sealed(value):
            return value  # clear text from before sealing, or nothing
        try:
            if sealer is None:
                raise Unreadable("no key")
            return sealer.open(value, _context(found["id"], field))
        except Unreadable:
            unreadable.append(field)
            return None

    for column in SEALED_COLUMNS:
        if column in found:
            found[column] = open_(column, found[column])
    if "config" in found and _has_sealed_value(found["config"]):
        config = json.loads(found["config"])
        found["config"] = json.dumps(
            {key: open_(f"config.{key}", value) for key, value in config.items()}
        )
    found[UNREADABLE] = unreadable
    return found


def _has_sealed_value(config_json: str | None) -> bool:
    # A cheap test before parsing: every sealed value in the JSON starts with this.
    return bool(config_json) and f'"{PREFIX}' in str(config_json)


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
            secret=_seal(conn, destination_id, "secret", secret),
            token=_seal(conn, destination_id, "token", token),
            config=_sealed_config(conn, destination_id, config),
            active=True,
            created_at=time.time(),
        )
    )
    return destination_id


def destination_row(conn: Connection, destination_id: str) -> Mapping[str, Any] | None:
    row = (
        conn.execute(select(destinations).where(destinations.c.id == destination_id))
        .mappings()
        .first()
    )
    return None if row is None else _opened(conn, row)


def list_destinations(conn: Connection, user_id: str) -> list[Mapping[str, Any]]:
    return [_opened(conn, row) for row in _active_rows(conn, user_id)]


def _active_rows(conn: Connection, user_id: str) -> list[RowMapping]:
    return list(conn.execute(_ACTIVE_ROWS, {"user_id": user_id}).mappings())


# Built once: create_deliveries runs when every post is ready, and building a statement (its
# clauses, its cache key) cost more Python time than the database took to answer it.
_ACTIVE_ROWS = (
    select(destinations)
    .where(destinations.c.user_id == bindparam("user_id"), destinations.c.active.is_(True))
    .order_by(destinations.c.created_at)
)
_POST_TO_DELIVER = select(
    posts.c.user_id, posts.c.private, posts.c.draft, posts.c.only_destination
).where(posts.c.id == bindparam("post_id"))
# A copy taken down (retracted, or cancelled before it went) may go again when the post is
# published again: as a new delivery, with a new idempotency key.
_DELIVERED_TO = select(deliveries.c.destination_id).where(
    deliveries.c.post_id == bindparam("post_id"),
    deliveries.c.status.not_in([DeliveryStatus.RETRACTED.value, DeliveryStatus.CANCELLED.value]),
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
    post = conn.execute(_POST_TO_DELIVER, {"post_id": post_id}).first()
    if post is None or post.private or post.draft:
        return []
    active = _active_rows(conn, post.user_id)  # ids and types: nothing to open
    if not active:
        return []  # most users: no channel, and nothing to compare
    existing = set(conn.execute(_DELIVERED_TO, {"post_id": post_id}).scalars())
    created = []
    now = time.time()
    for destination in active:
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


# --- secrets at rest: changing them, sealing old clear text, finding those that do not open ---


_UNCHANGED: Any = object()


def update_destination(
    conn: Connection,
    destination_id: str,
    *,
    url: str | None = _UNCHANGED,
    secret: str | None = _UNCHANGED,
    token: str | None = _UNCHANGED,
    config: Mapping[str, Any] = _UNCHANGED,
) -> bool:
    """Change what is given (a channel connected again gets its new token), sealed as
    ``add_destination`` seals; False when there is no such active destination."""
    values: dict[str, Any] = {}
    if url is not _UNCHANGED:
        values["url"] = url
    for column, value in (("secret", secret), ("token", token)):
        if value is not _UNCHANGED:
            values[column] = _seal(conn, destination_id, column, value)
    if config is not _UNCHANGED:
        values["config"] = _sealed_config(conn, destination_id, config)
    active = (destinations.c.id == destination_id) & destinations.c.active.is_(True)
    if not values:
        return conn.execute(select(destinations.c.id).where(active)).first() is not None
    return conn.execute(update(destinations).where(active).values(**values)).rowcount > 0


RECONNECT = "reconnect_needed"
"""Config flag of a destination whose service declared its sign-in dead (an expired or revoked
token): its deliveries fail at once until the channel is connected again, which writes a new
config without it."""


def needs_reconnect(row: Mapping[str, Any]) -> bool:
    return bool(json.loads(row["config"] or "{}").get(RECONNECT))


def mark_reconnect_needed(conn: Connection, destination_id: str) -> bool:
    """Flag the destination; True only for the call that set the flag (it owes the user the
    one notice), False when it was flagged already or is gone (or its config no longer opens:
    the delivery already says so).

    A compare-and-set on the stored config: of deliveries that find the token dead at once,
    on one node or several, exactly one sees True. Sealed values stay as they were stored."""
    row = destination_row(conn, destination_id)
    if row is None or not row["active"] or row.get(UNREADABLE):
        return False
    stored = conn.execute(
        select(destinations.c.config).where(destinations.c.id == destination_id)
    ).scalar_one_or_none()
    config = json.loads(stored or "{}")
    if config.get(RECONNECT):
        return False
    flagged = json.dumps({**config, RECONNECT: True})
    same = destinations.c.config.is_(None) if stored is None else destinations.c.config == stored
    changed = conn.execute(
        update(destinations)
        .where((destinations.c.id == destination_id) & destinations.c.active.is_(True) & same)
        .values(config=flagged)
    )
    return changed.rowcount == 1


def seal_clear_text(conn: Connection) -> int:
    """Seal every secret still in clear text (written before migration 8, or by a database
    opened without the key); removed destinations too, as their tokens may still work.
    Idempotent: a sealed value is left as it is. Returns how many rows changed."""
    if sealer_of(conn) is None:
        return 0
    changed = 0
    rows = conn.execute(
        select(
            destinations.c.id, destinations.c.secret, destinations.c.token, destinations.c.config
        )
    ).all()
    for row in rows:
        values: dict[str, Any] = {}
        for column in SEALED_COLUMNS:
            value = getattr(row, column)
            if _is_clear(value):
                values[column] = _seal(conn, row.id, column, value)
        config = json.loads(row.config or "{}")
        if any(_is_secret_key(k) and _is_clear(v) for k, v in config.items()):
            values["config"] = _sealed_config(conn, row.id, config, only_clear=True)
        if values:
            conn.execute(update(destinations).where(destinations.c.id == row.id).values(**values))
            changed += 1
    return changed


def unreadable_destinations(conn: Connection) -> list[Mapping[str, Any]]:
    """Active destinations with a secret that does not open with this key (``relay doctor``):
    their ``id``, ``user_id``, ``type`` and the fields, never a value."""
    rows = conn.execute(select(destinations).where(destinations.c.active.is_(True))).mappings()
    found = []
    for row in rows:
        opened = _opened(conn, row)
        if opened[UNREADABLE]:
            found.append({k: opened[k] for k in ("id", "user_id", "type", UNREADABLE)})
    return found
