"""The SQL of tus uploads kept in an S3 store (relay/intake/tus_s3.py): their parts, and the
one write that records a writer's progress under its lease.

The lease is the upload row's ``locked_by``: a fresh random token each time a writer takes it
(relay/intake/tus.py ``_claim``). Progress is recorded only by an UPDATE guarded by that token,
and parts are inserted only when that UPDATE found the row: a writer whose lease lapsed and was
taken over (its token replaced) records nothing, whatever it still sends to S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, delete, select, update

from relay.db.schema import upload_parts, uploads


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int


def record(
    conn: Connection,
    upload_id: str,
    holder: str,
    lease: dict[str, Any],
    parts: list[Part],
    **values: Any,
) -> bool:
    """Record ``parts`` and ``values`` (offset, tail, next part number...) and set the lease
    columns to ``lease``, if ``holder`` still holds the lease; False (and nothing recorded)
    if not."""
    held = (
        conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.locked_by == holder)
            .values(**lease, **values)
        ).rowcount
        == 1
    )
    if held and parts:
        # A part number may have been sent before by a writer whose PATCH was not recorded
        # (a checksum mismatch): the one recorded now is the one the object store holds.
        numbers = [part.number for part in parts]
        conn.execute(
            delete(upload_parts).where(
                upload_parts.c.upload_id == upload_id, upload_parts.c.number.in_(numbers)
            )
        )
        conn.execute(
            upload_parts.insert(),
            [
                {"upload_id": upload_id, "number": p.number, "etag": p.etag, "size": p.size}
                for p in parts
            ],
        )
    return held


def parts_of(conn: Connection, upload_id: str) -> list[Part]:
    rows = conn.execute(
        select(upload_parts.c.number, upload_parts.c.etag, upload_parts.c.size)
        .where(upload_parts.c.upload_id == upload_id)
        .order_by(upload_parts.c.number)
    )
    return [Part(number, etag, size) for number, etag, size in rows]


def skip_part_on_takeover() -> Any:
    """The ``next_part`` a claim sets: one past where it was when the lease it takes lapsed
    rather than was given back. The lapsed writer may still send the part it was writing,
    under the number it knew; the new writer then never records that number, so a late
    overwrite cannot change a recorded part."""
    return case(
        (uploads.c.locked_by.is_not(None), uploads.c.next_part + 1), else_=uploads.c.next_part
    )


def stored_objects(conn: Connection, ids: list[str]) -> list[tuple[str, str | None, str | None]]:
    """(id, multipart upload, tail object) of the uploads ``ids``."""
    rows = conn.execute(
        select(uploads.c.id, uploads.c.multipart_id, uploads.c.tail_key).where(
            uploads.c.id.in_(ids)
        )
    )
    return [(upload_id, multipart, tail) for upload_id, multipart, tail in rows]


def forget_parts(conn: Connection, upload_id: str) -> None:
    conn.execute(delete(upload_parts).where(upload_parts.c.upload_id == upload_id))


def forget_orphan_parts(conn: Connection, ids: list[str]) -> None:
    """Parts of those of ``ids`` whose upload row is gone."""
    present = select(uploads.c.id).where(uploads.c.id.in_(ids))
    conn.execute(
        delete(upload_parts).where(
            upload_parts.c.upload_id.in_(ids), upload_parts.c.upload_id.not_in(present)
        )
    )
