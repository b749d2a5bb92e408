"""The post's life: its states, the transitions between them, the job kinds that carry them out,
and the post's record.

States (``posts.state``)::

    draft ──publish──▶ published ──retract──▶ draft
      │                   ▲  │
      └─schedule─▶ scheduled  └──delete──▶ deleted (from any state; final)

``status`` (processing → ready) is apart: it says whether the media are done. A post's
deliveries open when it is both ready and published (:func:`settle`, :func:`publish`), so a
draft or a scheduled post is processed at once but goes nowhere until it is published.

Everything that happens later is a job in the database queue, never a timer in memory:
``publish`` (ref: post id, run_at = publish_at) publishes a scheduled post, so a relay that was
down at that time publishes at once on start, and exactly once (the transition is a guarded
UPDATE); ``edit`` and ``retract`` (ref: delivery id) carry a change to one channel
(relay/publish/deliver.py runs them); ``purge`` (ref: post id) takes a deleted post's media out
of the store.

Every transition appends to ``post_events`` in the same transaction: what changed, when, by whom
(a user id or a verified sender address) and through which door. Nothing updates or deletes that
table (the database refuses it). A deleted post keeps its row, its record and the SHA-256 of
each original; its media leave the store.

Every door (API, CLI, mail, web app) changes posts through these functions and nothing else.
Each takes an open ``Connection``: the caller owns the transaction.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from relay import jobs
from relay.db import Database, destinations, life, lock, queries
from relay.errors import NotFound, RelayError, StorageError
from relay.model import DeliveryStatus, PostState, PostStatus
from relay.storage import Store, hls
from relay.storage import live as live_store

log = logging.getLogger("relay.lifecycle")

# Job kinds of the post's life.
DELIVER = "deliver"
PUBLISH = "publish"
EDIT = "edit"
RETRACT = "retract"
PURGE = "purge"
LIVE_REPLAY = "live_replay"

ATTEMPTS = 25  # deliveries, edits and retractions: with backoff capped at 15 min, ~14 hours
BACKOFF_CAP = 900.0
WAIT_SECONDS = 5.0
"""A retraction waits this long for an in-flight delivery to finish, a purge for media work."""

DOORS = ("api", "cli", "mail", "web", "system")


def door_of(source: str) -> str:
    """The door a post came in by, as the record names it (``source`` is the intake's name)."""
    return "mail" if source in ("smtp", "mail", "mms") else "api"


# --- the record -------------------------------------------------------------------------------


def record(
    conn: Connection,
    post_id: str,
    kind: str,
    actor: str | None,
    door: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one event to the post's record; its id."""
    assert door in DOORS, door
    return life.append_event(conn, post_id, kind, actor, door, detail or {})


events = life.events


# --- creation ----------------------------------------------------------------------------------


def initial_state(draft: bool, publish_at: float | None, now: float | None = None) -> str:
    if draft:
        return PostState.DRAFT.value
    if publish_at is not None and publish_at > (now or time.time()):
        return PostState.SCHEDULED.value
    return PostState.PUBLISHED.value


def created(
    conn: Connection,
    post_id: str,
    actor: str | None,
    door: str,
    state: str,
    publish_at: float | None,
    sender: str | None = None,
    later: list[dict[str, Any]] | None = None,
) -> None:
    """A door's ``accept`` made the post: record it and, if it waits for a time, queue that.
    ``sender``: a mail's From address, as claimed (the SMTP door checked what its policy asks).
    ``later``: the event goes there, for the caller to write with others in one statement."""
    detail: dict[str, Any] = {"state": state}
    if sender:
        detail["sender"] = sender
    if publish_at is not None:
        detail["publish_at"] = _iso(publish_at)
    if later is None:
        record(conn, post_id, "created", actor, door, detail)
    else:
        assert door in DOORS, door  # as record() asserts
        later.append(life.event_row(post_id, "created", actor, door, detail))
    if state == PostState.SCHEDULED.value and publish_at is not None:
        _enqueue_at(conn, PUBLISH, post_id, publish_at)


def _enqueue_at(conn: Connection, kind: str, ref: str, when: float) -> None:
    jobs.enqueue(conn, kind, ref, ATTEMPTS, delay=max(0.0, when - time.time()))


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat()


def mail_time(local: str | None, delay: float | None, received: float, zone: str) -> float | None:
    """When a mailed ``[publish …]`` (a local time in ``zone`` unless it names its offset) or
    ``[delay …]`` (after the mail came) asks the post to go out; None: at once."""
    from zoneinfo import ZoneInfo

    if local:
        when = datetime.fromisoformat(local)
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(zone))
        return when.timestamp()
    if delay is not None:
        return received + delay
    return None


def user_zone(conn: Connection, user_id: str, default: str) -> str:
    return queries.user_timezone(conn, user_id) or default


def mailed(
    conn: Connection,
    post_id: str,
    *,
    draft: bool,
    local: str | None,
    delay: float | None,
    default_zone: str,
) -> None:
    """The mail's own commands, read when it is unpacked (before its post can be ready):
    ``[draft]`` keeps it a draft, ``[delay …]``/``[publish …]`` schedule it."""
    row = queries.post_row(conn, post_id)
    if row is None or row["state"] != PostState.PUBLISHED.value:
        return  # the address made it a draft already, or it is gone
    # The record names the sender only when the mail proved it (DKIM/SPF aligned, SMTP AUTH).
    from relay.reply import reply_address  # reply imports this module

    owner = queries.user_name(conn, row["user_id"]) or ""
    actor = reply_address(row["sender"], row["auth_results"], owner) or row["user_id"]
    if draft:
        life.set_state(conn, post_id, row["state"], PostState.DRAFT.value)
        record(conn, post_id, "drafted", actor, "mail", {"command": "[draft]"})
        return
    zone = user_zone(conn, row["user_id"], default_zone)
    when = mail_time(local, delay, row["created_at"], zone)
    if when is None or when <= time.time():
        return
    life.set_scheduled(conn, post_id, when)
    command = f"[publish {local}]" if local else f"[delay {int(delay or 0)}s]"
    detail = {"command": command, "publish_at": _iso(when), "zone": zone}
    record(conn, post_id, "scheduled", actor, "mail", detail)
    _enqueue_at(conn, PUBLISH, post_id, when)


# --- the held reply to a mailed post (relay/reply.py sends it) ---------------------------------

REPLY = "reply"
HOLD_SECONDS = 3 * 86400.0
"""Longer than a post takes to process and deliver (deliveries give up after a day)."""


def hold(conn: Connection, post_id: str, max_attempts: int) -> None:
    """Queue the reply to a mailed post, held until :func:`release` makes it due."""
    jobs.enqueue(conn, REPLY, post_id, max_attempts, delay=HOLD_SECONDS)


def release(conn: Connection, post_id: str) -> bool:
    """Make the post's held reply due if none of its deliveries is pending; True if it did."""
    held = jobs.queued_id(conn, REPLY, post_id)
    if held is None:
        return False  # most posts: no reply wanted
    # Two deliveries of one post finishing at once: each would see the other still pending and
    # neither release. With the lock the second one sees the first committed.
    lock(conn, "reply", post_id)
    if destinations.delivery_ids(conn, post_id, DeliveryStatus.PENDING):
        return False
    jobs.make_due(conn, held)
    return True


# --- readiness and publishing ------------------------------------------------------------------


def settle(conn: Connection, post_id: str, max_attempts: int = ATTEMPTS) -> bool:
    """Mark the post ready if all its items are done; a published post's deliveries open then.
    True if this call made it ready."""
    state = queries.settle_post_state(conn, post_id)
    if state is None:
        return False
    if state == PostState.PUBLISHED.value:
        _open_deliveries(conn, post_id, max_attempts)
    release(conn, post_id)  # with no deliveries, a held reply to the sender goes now
    return True


def _open_deliveries(conn: Connection, post_id: str, max_attempts: int = ATTEMPTS) -> None:
    for delivery_id in destinations.create_deliveries(conn, post_id):
        jobs.enqueue(conn, DELIVER, delivery_id, max_attempts)


def _row(conn: Connection, post_id: str) -> Any:
    row = queries.post_row(conn, post_id)
    if row is None:
        raise NotFound()
    if row["state"] == PostState.DELETED.value:
        raise RelayError("post.gone")
    return row


def publish(conn: Connection, post_id: str, actor: str | None, door: str) -> bool:
    """Publish a draft or a scheduled post now; True if it changed (False: already published)."""
    row = _row(conn, post_id)
    if row["state"] == PostState.PUBLISHED.value:
        return False
    if not life.set_state(conn, post_id, row["state"], PostState.PUBLISHED.value, publish_at=None):
        return False
    record(conn, post_id, "published", actor, door, {"from": row["state"]})
    if row["status"] == PostStatus.READY.value:
        _open_deliveries(conn, post_id)
    return True


def schedule(conn: Connection, post_id: str, when: float, actor: str | None, door: str) -> bool:
    """Hold a draft (or move a scheduled post) until ``when``; a time past publishes now."""
    row = _row(conn, post_id)
    if when <= time.time():
        return publish(conn, post_id, actor, door)
    if row["state"] == PostState.PUBLISHED.value:
        raise RelayError("post.conflict", "a published post cannot be scheduled; retract it")
    life.set_scheduled(conn, post_id, when)
    detail = {"from": row["state"], "publish_at": _iso(when)}
    record(conn, post_id, "scheduled", actor, door, detail)
    # The job of an earlier time finds publish_at moved and does nothing (run_publish_job).
    _enqueue_at(conn, PUBLISH, post_id, when)
    return True


def unschedule(conn: Connection, post_id: str, actor: str | None, door: str) -> bool:
    """A scheduled post back to a draft."""
    row = _row(conn, post_id)
    if row["state"] != PostState.SCHEDULED.value:
        return False
    life.set_state(conn, post_id, row["state"], PostState.DRAFT.value, publish_at=None)
    record(conn, post_id, "unscheduled", actor, door, {})
    return True


def run_publish_job(conn: Connection, job: jobs.Job) -> bool:
    """The ``publish`` job: a scheduled post whose time has come is published, once."""
    row = queries.post_row(conn, job.ref)
    due = (
        row is not None
        and row["state"] == PostState.SCHEDULED.value
        and row["publish_at"] is not None
        and row["publish_at"] <= time.time() + 0.5
    )
    published = False
    if due:
        published = publish(conn, job.ref, None, "system")
    jobs.complete(conn, job)
    return published


# --- edits -------------------------------------------------------------------------------------

EDITABLE = ("title", "text", "tags", "private")


@dataclass(slots=True)
class Change:
    """A request to change a post; None: leave as it is. ``items``: ``[(item_id, alt)]``."""

    title: str | None = None
    text: str | None = None
    tags: list[str] | None = None
    private: bool | None = None
    items: list[tuple[str, str | None]] | None = None
    draft: bool | None = None
    publish_at: float | None = None
    publish_at_given: bool = False
    """``publish_at: null`` (unschedule) differs from no ``publish_at`` at all."""


def edit(conn: Connection, post_id: str, actor: str | None, door: str, content: Change) -> int:
    """Change the post's content (title, text, tags, private, alt texts); a published post's
    delivered copies get an ``edit`` job each. The number of fields changed."""
    row = _row(conn, post_id)
    changed: dict[str, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    for name in EDITABLE:
        new = getattr(content, name)
        if new is None:
            continue
        old: Any = row[name]
        if name == "tags":
            old = json.loads(old or "[]")
        elif name == "private":
            old = bool(old)
        if new != old:
            changed[name] = {"from": old, "to": new}
            values[name] = json.dumps(new) if name == "tags" else new
    if values:
        queries.update_post_text(conn, post_id, **values)
    for item_id, alt in content.items or []:
        old_alt = life.item_alt(conn, post_id, item_id)
        if old_alt is None:
            raise RelayError("request.invalid", f"no item {item_id} in this post")
        if old_alt[0] != alt:
            changed[f"items.{item_id}.alt"] = {"from": old_alt[0], "to": alt}
            queries.set_item(conn, item_id, alt=alt)
    if not changed:
        return 0
    event_id = record(conn, post_id, "edited", actor, door, {"changed": changed})
    if row["state"] == PostState.PUBLISHED.value:
        for delivery_id in destinations.delivery_ids(conn, post_id, DeliveryStatus.DELIVERED):
            jobs.enqueue(conn, EDIT, f"{delivery_id}:{event_id}", ATTEMPTS)
    return len(changed)


def change(conn: Connection, post_id: str, actor: str | None, door: str, wanted: Change) -> None:
    """One PATCH: the content first, then the state it asks for."""
    edit(conn, post_id, actor, door, wanted)
    row = _row(conn, post_id)
    state = row["state"]
    if wanted.draft is True:
        if state == PostState.PUBLISHED.value:
            retract(conn, post_id, actor, door)
        elif state == PostState.SCHEDULED.value:
            unschedule(conn, post_id, actor, door)
        return
    if wanted.publish_at_given:
        if wanted.publish_at is None:
            unschedule(conn, post_id, actor, door)
        else:
            schedule(conn, post_id, wanted.publish_at, actor, door)
        return
    if wanted.draft is False:
        publish(conn, post_id, actor, door)


# --- live broadcasts -----------------------------------------------------------------------

LIVE_TEXT = "Live now."
REPLAY_TEXT = "Replay of a live broadcast."


def live_ended(conn: Connection, post_id: str, reason: str, seconds: float) -> None:
    """A broadcast is over (its recording, if any, is an item now): record why, and queue the
    ``live_replay`` job that turns the post's text into the replay's once the video is ready,
    which sends the change to the channels that take edits."""
    record(conn, post_id, "live_ended", None, "system", {"reason": reason, "seconds": seconds})
    jobs.enqueue(conn, LIVE_REPLAY, post_id, ATTEMPTS, delay=1.0)


def run_live_replay(conn: Connection, job: jobs.Job) -> bool:
    """The ``live_replay`` job; False while the recording is still being processed."""
    from relay.db import live
    from relay.errors import CATALOG

    row = queries.post_row(conn, job.ref)
    if row is not None and row["state"] != PostState.DELETED.value:
        if row["status"] != PostStatus.READY.value:
            return False
        broadcast = live.broadcast_of_post(conn, job.ref) or {}
        reason = broadcast.get("end_reason") or "ended"
        text = REPLAY_TEXT
        if reason in CATALOG:
            text += f" It was ended early: {CATALOG[reason].message}"
        if row["text"] == LIVE_TEXT:  # the owner's own words stay
            edit(conn, job.ref, None, "system", Change(text=text))
    jobs.complete(conn, job)
    return True


# --- taking down -------------------------------------------------------------------------------


def _take_down(conn: Connection, post_id: str) -> int:
    """Every copy on a channel goes: a delivery not started yet is cancelled here; one in flight
    finishes and then its ``retract`` job (which waits for it) deletes the remote copy."""
    pending = destinations.delivery_ids(conn, post_id, DeliveryStatus.PENDING)
    # A delivery whose job a worker claimed meanwhile is in flight: its job stays.
    for delivery_id in jobs.drop_queued(conn, DELIVER, pending):
        destinations.set_delivery(
            conn,
            delivery_id,
            status=DeliveryStatus.CANCELLED.value,
            error_code="publish.cancelled",
            error_message="The post was taken down before it was delivered.",
        )
    remaining = destinations.delivery_ids(
        conn, post_id, DeliveryStatus.PENDING, DeliveryStatus.DELIVERED
    )
    for delivery_id in remaining:
        jobs.enqueue(conn, RETRACT, delivery_id, ATTEMPTS)
    return len(remaining)


def retract(
    conn: Connection, post_id: str, actor: str | None, door: str, reason: str | None = None
) -> bool:
    """Take a published post down everywhere; it stays on the relay as a draft."""
    row = _row(conn, post_id)
    if row["state"] != PostState.PUBLISHED.value:
        return False
    if not life.set_state(conn, post_id, row["state"], PostState.DRAFT.value):
        return False
    record(conn, post_id, "retracted", actor, door, {"reason": reason} if reason else {})
    _take_down(conn, post_id)
    return True


def delete(
    conn: Connection, post_id: str, actor: str | None, door: str, reason: str | None = None
) -> None:
    """Delete the post: its page answers 410, its copies on channels are deleted where the
    channel allows, its media leave the store (a ``purge`` job). The row and its record stay,
    with the SHA-256 of each original."""
    row = _row(conn, post_id)
    originals = life.originals(conn, post_id)
    now = time.time()
    if not life.set_state(conn, post_id, row["state"], PostState.DELETED.value, deleted_at=now):
        raise RelayError("post.gone")
    detail: dict[str, Any] = {"from": row["state"], "originals": originals}
    if reason:
        detail["reason"] = reason
    record(conn, post_id, "deleted", actor, door, detail)
    _take_down(conn, post_id)
    jobs.enqueue(conn, PURGE, post_id, ATTEMPTS)


def still_published(conn: Connection, post_id: str) -> bool:
    """For a delivery about to go out: is its post still meant to be on channels?"""
    return life.state_of(conn, post_id) == PostState.PUBLISHED.value


# --- the jobs that need more than the database -------------------------------------------------


def _purge_plan(conn: Connection, post_id: str) -> list[str] | None:
    """The store keys of a deleted post's media; None while an item is still being processed
    (its worker would store more after the purge)."""
    if queries.open_items(conn, post_id):
        return None
    return life.media_keys(conn, post_id)


def _purged(conn: Connection, job: jobs.Job) -> None:
    life.forget_media(conn, job.ref)
    jobs.complete(conn, job)


class Jobs:
    """The job runners of the post's life that the database alone cannot do."""

    def __init__(self, db: Database, store: Store) -> None:
        self.db = db
        self.store = store

    async def publish(self, job: jobs.Job) -> None:
        if await self.db.run(run_publish_job, job):
            log.info("post %s: published at its time", job.ref)

    async def purge(self, job: jobs.Job) -> None:
        keys = await self.db.read(_purge_plan, job.ref)
        if keys is None:
            await self.db.run(jobs.postpone, job, WAIT_SECONDS)
            return
        # An HLS ladder is one key in the database; its playlists name the rest.
        keys = await hls.expand(self.store, keys)
        if live_store.shared(self.store) is not None:  # a broadcast's live HLS, if any left
            keys += await live_store.live_keys(self.store, job.ref)
        for key in keys:
            await self.store.delete(key)  # idempotent: a repeat after a crash is safe
        await self.db.run(_purged, job)
        log.info("post %s: %d stored object(s) removed", job.ref, len(keys))

    async def live_replay(self, job: jobs.Job) -> None:
        if not await self.db.run(run_live_replay, job):
            await self.db.run(jobs.postpone, job, WAIT_SECONDS)
            return
        # The replay is ready: the broadcast's live HLS in a shared store has done its part.
        if live_store.shared(self.store) is not None:
            try:
                removed = await live_store.remove(self.store, job.ref)
            except StorageError as exc:  # the post's purge removes them in the end
                log.warning("post %s: removing the live HLS: %s", job.ref, exc)
                return
            log.info("post %s: the live HLS's %d stored object(s) removed", job.ref, removed)
