"""Reads and writes of users, credentials, posts, items and renditions.

Each function takes an open ``Connection`` (one transaction) so callers can group them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, bindparam, case, func, select, update

from relay import auth
from relay.db import lock
from relay.db.schema import (
    addresses,
    deliveries,
    items,
    jobs,
    posts,
    renditions,
    tokens,
    uploads,
    users,
)
from relay.errors import CATALOG
from relay.model import (
    Delivery,
    DeliveryStatus,
    Item,
    ItemStatus,
    Kind,
    Post,
    PostState,
    PostStatus,
    Rendition,
    StoredObject,
)


class Conflict(Exception):
    pass


# --- users and credentials -------------------------------------------------------------------


def add_user(conn: Connection, name: str) -> str:
    if conn.execute(select(users.c.id).where(users.c.name == name)).first():
        raise Conflict(f"user {name!r} exists")
    user_id = auth.new_id()
    conn.execute(users.insert().values(id=user_id, name=name, created_at=time.time()))
    return user_id


def user_id_by_name(conn: Connection, name: str) -> str | None:
    return conn.execute(select(users.c.id).where(users.c.name == name)).scalar()


def user_name(conn: Connection, user_id: str) -> str | None:
    return conn.execute(_USER_NAME, {"user_id": user_id}).scalar()


_USER_NAME = select(users.c.name).where(users.c.id == bindparam("user_id"))
_USER_TIMEZONE = select(users.c.timezone).where(users.c.id == bindparam("user_id"))


def _add_secret(conn: Connection, table: Any, hash_column: str, user_id: str, secret: str) -> str:
    conn.execute(
        table.insert().values(
            {
                "id": auth.new_id(),
                "user_id": user_id,
                hash_column: auth.digest(secret),
                "hint": auth.hint(secret),
                "created_at": time.time(),
            }
        )
    )
    return secret


def add_token(conn: Connection, user_id: str) -> str:
    return _add_secret(conn, tokens, "token_hash", user_id, auth.new_token())


def add_address(conn: Connection, user_id: str) -> str:
    return _add_secret(conn, addresses, "secret_hash", user_id, auth.new_address_secret())


def revoke(conn: Connection, table: Any, secret: str) -> bool:
    column = table.c.token_hash if table is tokens else table.c.secret_hash
    result = conn.execute(
        update(table)
        .where(column == auth.digest(secret), table.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return result.rowcount > 0


def _owner_query(table: Any, column: Any) -> Select[Any]:
    return (
        select(table.c.user_id, column)
        .join(users, users.c.id == table.c.user_id)
        .where(
            column == bindparam("wanted"),
            table.c.revoked_at.is_(None),
            users.c.disabled.is_(False),
        )
    )


_TOKEN_OWNER = _owner_query(tokens, tokens.c.token_hash)
_ADDRESS_OWNER = _owner_query(addresses, addresses.c.secret_hash)
"""Built once: every API request checks its token, and building a select cost more than
running it (a fifth of the upload door's time on the event loop)."""


def _live_owner(conn: Connection, query: Select[Any], secret: str) -> str | None:
    wanted = auth.digest(secret)
    row = conn.execute(query, {"wanted": wanted}).first()
    if row is None or not auth.same_digest(row[1], wanted):
        return None
    return row[0]


def user_for_token(conn: Connection, token: str) -> str | None:
    return _live_owner(conn, _TOKEN_OWNER, token)


def user_for_address(conn: Connection, secret: str) -> str | None:
    return _live_owner(conn, _ADDRESS_OWNER, secret)


_RECIPIENT = (
    select(
        addresses.c.id,
        addresses.c.user_id,
        addresses.c.secret_hash,
        addresses.c.sender_policy,
        addresses.c.allowed_senders,
        users.c.name,
        users.c.reply_to_sender,
    )
    .join(users, users.c.id == addresses.c.user_id)
    .where(
        addresses.c.secret_hash == bindparam("wanted"),
        addresses.c.revoked_at.is_(None),
        users.c.disabled.is_(False),
    )
)
"""Built once: every RCPT runs it, and building a select costs more than running it."""


def recipient(conn: Connection, secret: str) -> dict[str, Any] | None:
    """A live secret address with what the SMTP door needs: its owner, the owner's name and
    reply setting, and the address's sender policy."""
    wanted = auth.digest(secret)
    row = conn.execute(_RECIPIENT, {"wanted": wanted}).mappings().first()
    if row is None or not auth.same_digest(row["secret_hash"], wanted):
        return None
    found = dict(row)
    found["allowed_senders"] = json.loads(row["allowed_senders"] or "[]")
    return found


def set_address_policy(conn: Connection, secret: str, policy: str, allowed: list[str]) -> bool:
    result = conn.execute(
        update(addresses)
        .where(addresses.c.secret_hash == auth.digest(secret), addresses.c.revoked_at.is_(None))
        .values(sender_policy=policy, allowed_senders=json.dumps(allowed))
    )
    return result.rowcount > 0


def user_timezone(conn: Connection, user_id: str) -> str | None:
    """The user's own IANA time zone, or None for the relay's default."""
    return conn.execute(_USER_TIMEZONE, {"user_id": user_id}).scalar()


def set_user_timezone(conn: Connection, user_id: str, zone: str | None) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(timezone=zone))


def user_language(conn: Connection, user_id: str) -> str | None:
    """The user's own language for what the relay writes to them, or None for the default."""
    return conn.execute(select(users.c.language).where(users.c.id == user_id)).scalar()


def set_user_language(conn: Connection, user_id: str, lang: str | None) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(language=lang))


def set_reply_to_sender(conn: Connection, user_id: str, on: bool) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(reply_to_sender=on))


# --- posts and items ---------------------------------------------------------------------------


def insert_post(
    conn: Connection, post: Post, spool_name: str | None = None, **columns: Any
) -> None:
    """``columns``: more of the row (message_id, content_sha256, auth_results, …)."""
    # A plain insert() with the values as parameters: .values(...) built and cache-keyed a new
    # statement for every post, most of the Python time of an SMTP accept.
    conn.execute(posts.insert(), post_values(post, spool_name, **columns))


def post_values(post: Post, spool_name: str | None = None, **columns: Any) -> dict[str, Any]:
    """The row ``insert_post`` writes, for ``insert_posts``."""
    return {
        **columns,
        "id": post.id,
        "user_id": post.user_id,
        "title": post.title,
        "text": post.text,
        "status": post.status.value,
        "source": post.source,
        "spool_name": spool_name,
        "private": post.private,
        "draft": post.draft,
        "tags": json.dumps(post.tags),
        "created_at": post.created_at.timestamp() if post.created_at else time.time(),
    }


def insert_posts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Several ``post_values`` rows, one statement for each set of columns (on PostgreSQL one
    round trip: SQLAlchemy sends an executemany of inserts as one multi-row INSERT)."""
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(frozenset(row), []).append(row)
    for same in by_columns.values():
        conn.execute(posts.insert(), same)


# Statements of every photo's path, built once: building one (its clauses, its cache key) cost
# more Python time than SQLite took to run it. An UPDATE's SET comes from the parameters' keys.
_POST_ID = bindparam("post_id")
_ITEM_ID = bindparam("item_id")
_UPDATE_POST = update(posts).where(posts.c.id == _POST_ID)
_UPDATE_ITEM = update(items).where(items.c.id == _ITEM_ID)
_POST_ROW = select(posts).where(posts.c.id == _POST_ID)
_ITEM_ROW = select(items).where(items.c.id == _ITEM_ID)
_DELETE_RENDITIONS = renditions.delete().where(renditions.c.item_id == _ITEM_ID)


def update_post_text(conn: Connection, post_id: str, **values: Any) -> None:
    conn.execute(_UPDATE_POST, {"post_id": post_id, **values})


def insert_item(
    conn: Connection, item: Item, spool_name: str, companions: str | None = None
) -> None:
    """``companions``: the JSON of the files that are part of this one (relay/pairing.py)."""
    now = time.time()
    conn.execute(
        items.insert(),
        {
            "id": item.id,
            "post_id": item.post_id,
            "position": item.position,
            "filename": item.filename,
            "declared_mime": item.declared_mime,
            "alt": item.alt,
            "spool_name": spool_name,
            "companions": companions,
            "status": item.status.value,
            "created_at": now,
            "updated_at": now,
        },
    )


def item_count(conn: Connection, post_id: str) -> int:
    return conn.execute(
        select(func.count()).select_from(items).where(items.c.post_id == post_id)
    ).scalar_one()


def set_post_processing(conn: Connection, post_id: str) -> None:
    """A ready post that got another item (a live broadcast's recording) waits for it."""
    conn.execute(
        update(posts).where(posts.c.id == post_id).values(status=PostStatus.PROCESSING.value)
    )


def item_row(conn: Connection, item_id: str) -> RowMapping | None:
    return conn.execute(_ITEM_ROW, {"item_id": item_id}).mappings().first()


def item_rows_of_post(conn: Connection, post_id: str) -> list[RowMapping]:
    """The post's item rows, in their order (relay/pairing.py reads the queued ones)."""
    query = select(items).where(items.c.post_id == post_id).order_by(items.c.position)
    return list(conn.execute(query).mappings().all())


def delete_queued_item(conn: Connection, item_id: str) -> None:
    """An item that never began (a Live Photo's MOV folded into its still): no rendition, no
    job, nothing stored refers to it yet."""
    conn.execute(
        items.delete().where(items.c.id == item_id, items.c.status == ItemStatus.QUEUED.value)
    )


def post_row(conn: Connection, post_id: str) -> RowMapping | None:
    return conn.execute(_POST_ROW, {"post_id": post_id}).mappings().first()


def set_item(conn: Connection, item_id: str, **values: Any) -> None:
    conn.execute(_UPDATE_ITEM, {"updated_at": time.time(), **values, "item_id": item_id})


def _rendition_values(item_id: str, r: Rendition) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "name": r.name,
        "key": r.key,
        "mime": r.mime,
        "bytes": r.bytes,
        "width": r.width,
        "height": r.height,
        "duration": r.duration,
        "lang": r.lang,
        "loudness": json.dumps(r.loudness) if r.loudness is not None else None,
        "pages": r.pages,
    }


def replace_renditions(conn: Connection, item_id: str, found: list[Rendition]) -> None:
    conn.execute(_DELETE_RENDITIONS, {"item_id": item_id})
    if found:
        conn.execute(renditions.insert(), [_rendition_values(item_id, r) for r in found])


_RENDITION_NAMED = select(renditions.c.id).where(
    renditions.c.item_id == _ITEM_ID, renditions.c.name == bindparam("name")
)


def add_rendition(conn: Connection, item_id: str, found: Rendition) -> bool:
    """One more rendition of an item, beside the ones it has (Instagram's padded photo, made
    when a delivery needs it: relay/publish/deliver.py). False, and nothing written, when the
    item has one of that name already: two nodes, or a retry after a crash, may make the same
    one twice, and the item must still list it once."""
    # Two nodes' checks must not both see none: on PostgreSQL the second waits here for the
    # first's commit (SQLite's writers queue anyway).
    lock(conn, "rendition", item_id, found.name)
    if conn.execute(_RENDITION_NAMED, {"item_id": item_id, "name": found.name}).first():
        return False
    conn.execute(renditions.insert(), _rendition_values(item_id, found))
    return True


_OPEN = (ItemStatus.QUEUED.value, ItemStatus.PROCESSING.value)
_OPEN_ITEMS = (
    select(func.count())
    .select_from(items)
    .where(items.c.post_id == _POST_ID, items.c.status.in_(_OPEN))
)
# One statement for all of settle_post's conditions (it was three round trips and the state a
# fourth): not ready yet, not a mail still to be unpacked (its spool_name is set), no open item.
_SETTLE = (
    update(posts)
    .where(
        posts.c.id == _POST_ID,
        posts.c.status != PostStatus.READY.value,
        posts.c.spool_name.is_(None),
        ~select(items.c.id)
        .where(items.c.post_id == posts.c.id, items.c.status.in_(_OPEN))
        .exists(),
    )
    .values(status=PostStatus.READY.value, ready_at=bindparam("ready_at"))
    .returning(posts.c.state)
)


def open_items(conn: Connection, post_id: str) -> int:
    """The post's items still queued or being processed."""
    return conn.execute(_OPEN_ITEMS, {"post_id": post_id}).scalar()


def settle_post(conn: Connection, post_id: str) -> bool:
    """Mark the post ready when none of its items is still open; True if this call did it."""
    return settle_post_state(conn, post_id) is not None


def settle_post_state(conn: Connection, post_id: str) -> str | None:
    """``settle_post``, giving the post's state (published, draft…) when this call made it
    ready, None when it did not."""
    return conn.execute(_SETTLE, {"post_id": post_id, "ready_at": time.time()}).scalar()


def _item_from_rows(row: RowMapping, rendition_rows: list[RowMapping]) -> Item:
    error = None
    if row["error_code"]:
        spec = CATALOG.get(row["error_code"])
        error = {
            "code": row["error_code"],
            "message": spec.message if spec else row["error_code"],
        }
    original = None
    if row["original_key"]:
        original = StoredObject(
            key=row["original_key"],
            mime=row["original_mime"],
            bytes=row["original_bytes"],
            sha256=row["original_sha256"],
        )
    return Item(
        id=row["id"],
        post_id=row["post_id"],
        position=row["position"],
        filename=row["filename"],
        declared_mime=row["declared_mime"],
        status=ItemStatus(row["status"]),
        kind=Kind(row["kind"]) if row["kind"] else None,
        error=error,
        original=original,
        progress=row["progress"],
        alt=row["alt"],
        renditions=[
            Rendition(
                name=r["name"],
                key=r["key"],
                mime=r["mime"],
                bytes=r["bytes"],
                width=r["width"],
                height=r["height"],
                duration=r["duration"],
                lang=r["lang"],
                loudness=json.loads(r["loudness"]) if r["loudness"] else None,
                pages=r["pages"],
            )
            for r in rendition_rows
        ],
    )


def load_items(conn: Connection, post_ids: list[str]) -> dict[str, list[Item]]:
    if not post_ids:
        return {}
    item_rows = (
        conn.execute(select(items).where(items.c.post_id.in_(post_ids)).order_by(items.c.position))
        .mappings()
        .all()
    )
    by_item: dict[str, list[RowMapping]] = {row["id"]: [] for row in item_rows}
    if by_item:
        for r in (
            conn.execute(
                select(renditions)
                .where(renditions.c.item_id.in_(list(by_item)))
                .order_by(renditions.c.id)
            )
            .mappings()
            .all()
        ):
            by_item[r["item_id"]].append(r)
    found: dict[str, list[Item]] = {post_id: [] for post_id in post_ids}
    for row in item_rows:
        found[row["post_id"]].append(_item_from_rows(row, by_item[row["id"]]))
    return found


def load_deliveries(conn: Connection, post_ids: list[str]) -> dict[str, list[Delivery]]:
    found: dict[str, list[Delivery]] = {post_id: [] for post_id in post_ids}
    if not post_ids:
        return found
    rows = conn.execute(
        select(deliveries)
        .where(deliveries.c.post_id.in_(post_ids))
        .order_by(deliveries.c.created_at)
    ).mappings()
    for row in rows:
        error = None
        if row["error_code"]:
            error = {
                "code": row["error_code"],
                "message": row["error_message"] or row["error_code"],
            }
        found[row["post_id"]].append(
            Delivery(
                id=row["id"],
                post_id=row["post_id"],
                destination_id=row["destination_id"],
                status=DeliveryStatus(row["status"]),
                remote_url=row["remote_url"],
                attempts=row["attempts"],
                error=error,
            )
        )
    return found


def _post_from_row(row: RowMapping, post_items: list[Item]) -> Post:
    from datetime import UTC, datetime

    return Post(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        text=row["text"],
        status=PostStatus(row["status"]),
        source=row["source"],
        private=bool(row["private"]),
        draft=bool(row["draft"]),
        tags=json.loads(row["tags"] or "[]"),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        items=post_items,
        auth_results=row["auth_results"],
        state=PostState(row["state"]),
        publish_at=_when(row["publish_at"]),
        deleted_at=_when(row["deleted_at"]),
    )


def _when(value: float | None) -> Any:
    from datetime import UTC, datetime

    return None if value is None else datetime.fromtimestamp(value, UTC)


def load_post(conn: Connection, post_id: str) -> Post | None:
    row = post_row(conn, post_id)
    if row is None:
        return None
    post = _post_from_row(row, load_items(conn, [post_id])[post_id])
    post.deliveries = load_deliveries(conn, [post_id])[post_id]
    return post


def load_item(conn: Connection, item_id: str) -> tuple[Item, str, bool] | None:
    """The item, its post's owner, and whether the post is private."""
    row = item_row(conn, item_id)
    if row is None:
        return None
    rendition_rows = (
        conn.execute(
            select(renditions).where(renditions.c.item_id == item_id).order_by(renditions.c.id)
        )
        .mappings()
        .all()
    )
    owner, private = conn.execute(
        select(posts.c.user_id, posts.c.private).where(posts.c.id == row["post_id"])
    ).one()
    return _item_from_rows(row, list(rendition_rows)), owner, bool(private)


def post_visibility(conn: Connection, post_id: str) -> tuple[bool, bool] | None:
    """(private, draft) of a post, or None when there is no such post: what ``/media/`` checks
    before it serves a stored object of the post."""
    row = conn.execute(select(posts.c.private, posts.c.draft).where(posts.c.id == post_id)).first()
    return None if row is None else (bool(row.private), bool(row.draft))


def list_posts(
    conn: Connection,
    user_id: str,
    limit: int = 50,
    before: float | None = None,
    *,
    public: bool = False,
) -> list[Post]:
    """The user's posts, newest first; ``public``: only ready ones neither private nor drafts
    (the feed)."""
    query = select(posts).where(posts.c.user_id == user_id)
    if public:
        query = query.where(
            posts.c.private.is_(False),
            posts.c.status == PostStatus.READY.value,
            posts.c.state == PostState.PUBLISHED.value,
        )
    if before is not None:
        query = query.where(posts.c.created_at < before)
    rows = conn.execute(query.order_by(posts.c.created_at.desc()).limit(limit)).mappings().all()
    return _posts_from_rows(conn, rows)


def _posts_from_rows(conn: Connection, rows: Sequence[RowMapping]) -> list[Post]:
    """Posts with their items and deliveries: two queries for the lot, not two per post."""
    ids = [r["id"] for r in rows]
    post_items = load_items(conn, ids)
    post_deliveries = load_deliveries(conn, ids)
    found = [_post_from_row(r, post_items[r["id"]]) for r in rows]
    for post in found:
        post.deliveries = post_deliveries[post.id]
    return found


def spool_names_in_use(conn: Connection) -> set[str]:
    names = set(
        conn.execute(select(items.c.spool_name).where(items.c.spool_name.is_not(None))).scalars()
    )
    names.update(
        conn.execute(select(posts.c.spool_name).where(posts.c.spool_name.is_not(None))).scalars()
    )
    # captions and Live Photo clips waiting with their item (relay/pairing.py)
    for found in conn.execute(
        select(items.c.companions).where(
            items.c.companions.is_not(None), items.c.spool_name.is_not(None)
        )
    ).scalars():
        names.update(companion["spool_name"] for companion in json.loads(found))
    # a reply by mail and its verdict, waiting for their job (relay/mail/replies.py)
    for ref in conn.execute(select(jobs.c.ref).where(jobs.c.kind == "mail_command")).scalars():
        names.update(ref.split("."))
    # a tus upload between its last byte and its post (relay/intake/tus.py finishes it later)
    names.update(
        conn.execute(
            select(uploads.c.spool_name).where(
                uploads.c.spool_name.is_not(None), uploads.c.post_id.is_(None)
            )
        ).scalars()
    )
    return names


# --- tus quotas ------------------------------------------------------------------------------


def open_uploads(conn: Connection, user_id: str, now: float, deferred: int) -> tuple[int, int]:
    """The user's unfinished tus uploads that still count (not expired, terminated or past
    their last byte): how many, and the bytes they reserve (their length; ``deferred`` for
    one whose length is not said yet, as that is what it may still grow to).

    On PostgreSQL it first takes a transaction lock on the user's uploads, so two creations
    at once cannot both see room for one (SQLite's writers queue anyway)."""
    lock(conn, "tus-quota", user_id)
    reserved = func.coalesce(uploads.c.length, deferred)
    count, total = conn.execute(
        select(func.count(), func.coalesce(func.sum(reserved), 0)).where(
            uploads.c.user_id == user_id,
            uploads.c.post_id.is_(None),
            uploads.c.spool_name.is_(None),
            uploads.c.terminated_at.is_(None),
            uploads.c.expires_at >= now,
        )
    ).one()
    return int(count), int(total)


# --- the web app: passwords, sessions, the posts page ----------------------------------------


def set_password(conn: Connection, user_id: str, password_hash: str) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def set_admin(conn: Connection, user_id: str, admin: bool) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(admin=admin))


def user_login(conn: Connection, name: str) -> tuple[str, str | None, int] | None:
    """(id, password hash, session generation) of the user with that name, unless disabled."""
    row = conn.execute(
        select(users.c.id, users.c.password_hash, users.c.session_gen).where(
            users.c.name == name, users.c.disabled.is_(False)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


def user_session(conn: Connection, user_id: str) -> tuple[str, int, bool, bool] | None:
    """(name, session generation, admin, has a password) of a signed-in user (None once an
    admin disabled them: their cookies end at once)."""
    row = conn.execute(
        select(users.c.name, users.c.session_gen, users.c.admin, users.c.password_hash).where(
            users.c.id == user_id, users.c.disabled.is_(False)
        )
    ).first()
    return (row[0], row[1], bool(row[2]), row[3] is not None) if row else None


def end_sessions(conn: Connection, user_id: str) -> None:
    """Sign out everywhere: every cookie carries the generation it was issued under."""
    conn.execute(
        update(users).where(users.c.id == user_id).values(session_gen=users.c.session_gen + 1)
    )


POST_FILTERS = ("draft", "scheduled", "failed")


def posts_page(
    conn: Connection,
    user_id: str,
    limit: int,
    after: str | None = None,
    show: str | None = None,
) -> list[Post]:
    """One page of the user's posts for the web app, newest first, by keyset: ``after`` is the
    id of the last post of the previous page (its time is looked up, exactly as stored), so a
    page costs the same however deep it is. ``show``: only drafts, only scheduled ones, or only
    those with a failed item or delivery. Deleted posts are not listed."""
    query = select(posts).where(
        posts.c.user_id == user_id, posts.c.state != PostState.DELETED.value
    )
    if show in ("draft", "scheduled"):
        query = query.where(posts.c.state == show)
    elif show == "failed":
        failed_item = select(items.c.id).where(
            items.c.post_id == posts.c.id, items.c.status == ItemStatus.FAILED.value
        )
        failed_delivery = select(deliveries.c.id).where(
            deliveries.c.post_id == posts.c.id, deliveries.c.status == DeliveryStatus.FAILED.value
        )
        query = query.where(failed_item.exists() | failed_delivery.exists())
    if after is not None:
        at = (
            select(posts.c.created_at)
            .where(posts.c.id == after, posts.c.user_id == user_id)
            .scalar_subquery()
        )
        query = query.where(
            (posts.c.created_at < at) | ((posts.c.created_at == at) & (posts.c.id < after))
        )
    query = query.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit)
    rows = conn.execute(query).mappings().all()
    return _posts_from_rows(conn, rows)


def posts_by_ids(conn: Connection, user_id: str, ids: list[str]) -> list[Post]:
    """The user's posts among ``ids`` (the posts page polls the ones it shows)."""
    if not ids:
        return []
    rows = (
        conn.execute(select(posts).where(posts.c.user_id == user_id, posts.c.id.in_(ids)))
        .mappings()
        .all()
    )
    return _posts_from_rows(conn, rows)


def destination_labels(conn: Connection, user_id: str) -> dict[str, tuple[str, str | None]]:
    """id → (type, url) of the user's destinations, removed ones included (old deliveries name
    them); secrets and tokens are not read."""
    from relay.db.schema import destinations  # here: this part is appended by the web app

    rows = conn.execute(
        select(destinations.c.id, destinations.c.type, destinations.c.url).where(
            destinations.c.user_id == user_id
        )
    )
    return {row[0]: (row[1], row[2]) for row in rows}


# --- the web app's settings and admin pages (relay/web/app/settings.py, admin.py) -------------


def live_addresses(conn: Connection, user_id: str) -> list[RowMapping]:
    """The user's secret addresses still taking mail, oldest first: id, hint (the secret's
    first characters; the database keeps no more), sender policy and allowed senders."""
    return list(
        conn.execute(
            select(
                addresses.c.id,
                addresses.c.hint,
                addresses.c.sender_policy,
                addresses.c.allowed_senders,
                addresses.c.created_at,
            )
            .where(addresses.c.user_id == user_id, addresses.c.revoked_at.is_(None))
            .order_by(addresses.c.created_at, addresses.c.id)
        ).mappings()
    )


def live_tokens(conn: Connection, user_id: str) -> list[RowMapping]:
    """The user's API tokens not revoked, oldest first: id, hint, created_at."""
    return list(
        conn.execute(
            select(tokens.c.id, tokens.c.hint, tokens.c.created_at)
            .where(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
            .order_by(tokens.c.created_at, tokens.c.id)
        ).mappings()
    )


def revoke_own(conn: Connection, table: Any, user_id: str, row_id: str) -> bool:
    """Revoke the user's own address or token by its id (the secret is not kept to name it)."""
    result = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.user_id == user_id, table.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return result.rowcount > 0


def set_own_address_policy(
    conn: Connection, user_id: str, address_id: str, policy: str, allowed: list[str]
) -> bool:
    result = conn.execute(
        update(addresses)
        .where(
            addresses.c.id == address_id,
            addresses.c.user_id == user_id,
            addresses.c.revoked_at.is_(None),
        )
        .values(sender_policy=policy, allowed_senders=json.dumps(allowed))
    )
    return result.rowcount > 0


def password_hash(conn: Connection, user_id: str) -> str | None:
    return conn.execute(select(users.c.password_hash).where(users.c.id == user_id)).scalar()


def list_users(conn: Connection) -> list[RowMapping]:
    """Every user not removed, by name: id, name, admin, disabled, whether they have a web
    password, created_at."""
    return list(
        conn.execute(
            select(
                users.c.id,
                users.c.name,
                users.c.admin,
                users.c.disabled,
                users.c.password_hash.is_not(None).label("has_password"),
                users.c.created_at,
            )
            .where(users.c.removed_at.is_(None))
            .order_by(users.c.name)
        ).mappings()
    )


def set_disabled(conn: Connection, user_id: str, disabled: bool) -> bool:
    """Disable (or enable) a user; disabling also ends their sessions."""
    values: dict[str, Any] = {"disabled": disabled}
    if disabled:
        values["session_gen"] = users.c.session_gen + 1
    result = conn.execute(
        update(users).where(users.c.id == user_id, users.c.removed_at.is_(None)).values(**values)
    )
    return result.rowcount > 0


def live_post_ids(conn: Connection, user_id: str) -> list[str]:
    """The user's posts not deleted (an admin removing the user deletes them)."""
    return list(
        conn.execute(
            select(posts.c.id).where(
                posts.c.user_id == user_id, posts.c.state != PostState.DELETED.value
            )
        ).scalars()
    )


def remove_user(conn: Connection, user_id: str) -> bool:
    """Take a user away: no sign-in, tokens, addresses or channels any more, gone from the list,
    the name free again. The row stays, since the record of their (deleted) posts names it."""
    from relay.db.schema import destinations

    now = time.time()
    for table in (tokens, addresses):
        conn.execute(
            update(table)
            .where(table.c.user_id == user_id, table.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    conn.execute(update(destinations).where(destinations.c.user_id == user_id).values(active=False))
    result = conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.removed_at.is_(None))
        .values(
            name="removed:" + user_id,  # a colon: no name `relay user add` is asked for
            password_hash=None,
            admin=False,
            disabled=True,
            removed_at=now,
            session_gen=users.c.session_gen + 1,
        )
    )
    return result.rowcount > 0


def queue_health(conn: Connection, now: float) -> dict[str, int]:
    """Jobs due now (waiting for a worker), waiting for a later time, running, and failed
    (dead: out of attempts)."""
    due = func.sum(case(((jobs.c.status == "queued") & (jobs.c.run_at <= now), 1), else_=0))
    later = func.sum(case(((jobs.c.status == "queued") & (jobs.c.run_at > now), 1), else_=0))
    running = func.sum(case((jobs.c.status == "running", 1), else_=0))
    dead = func.sum(case((jobs.c.status == "dead", 1), else_=0))
    row = conn.execute(select(due, later, running, dead)).one()
    return {
        "due": int(row[0] or 0),
        "later": int(row[1] or 0),
        "running": int(row[2] or 0),
        "failed": int(row[3] or 0),
    }


def failed_jobs(conn: Connection, limit: int) -> list[RowMapping]:
    """The newest dead jobs, with their last error."""
    return list(
        conn.execute(
            select(jobs.c.id, jobs.c.kind, jobs.c.ref, jobs.c.attempts, jobs.c.last_error)
            .where(jobs.c.status == "dead")
            .order_by(jobs.c.id.desc())
            .limit(limit)
        ).mappings()
    )


def stored_bytes(conn: Connection) -> int:
    """Bytes of the originals and renditions of posts not deleted, as recorded when stored."""
    live = posts.c.state != PostState.DELETED.value
    originals = conn.execute(
        select(func.coalesce(func.sum(items.c.original_bytes), 0))
        .select_from(items.join(posts, posts.c.id == items.c.post_id))
        .where(live)
    ).scalar()
    copies = conn.execute(
        select(func.coalesce(func.sum(renditions.c.bytes), 0))
        .select_from(
            renditions.join(items, items.c.id == renditions.c.item_id).join(
                posts, posts.c.id == items.c.post_id
            )
        )
        .where(live)
    ).scalar()
    return int(originals or 0) + int(copies or 0)


def reply_settings(conn: Connection, user_id: str) -> Any:
    """A user's name, whether replies go to the sender, and language (notices: relay/notice.py)."""
    return conn.execute(
        select(users.c.name, users.c.reply_to_sender, users.c.language).where(users.c.id == user_id)
    ).first()


def recent_senders(conn: Connection, user_id: str, limit: int) -> list[Any]:
    """The senders (and their Authentication-Results) of a user's newest mailed posts."""
    return list(
        conn.execute(
            select(posts.c.sender, posts.c.auth_results)
            .where((posts.c.user_id == user_id) & posts.c.sender.is_not(None))
            .order_by(posts.c.created_at.desc())
            .limit(limit)
        ).all()
    )
