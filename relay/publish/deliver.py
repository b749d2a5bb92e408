"""Deliveries: when a post becomes ready, one ``deliver`` job per destination; each job runs
the destination's adapter once and records the outcome on the delivery.

A transient failure (network, 5xx, 429) is retried by the job queue with backoff until the
attempts or ``RELAY_DELIVERY_MAX_AGE_SECONDS`` run out; a permanent one (401, 4xx) stops at once.
The delivery id is the idempotency key, so an adapter can make a retry after a lost answer land
on the same remote post instead of a second one.

Instagram's padded photo (``fit_instagram``: a photo narrower than 4:5 or wider than 1.91:1 on
bands of its own edge colour) is made here, by the first Instagram delivery that needs it, from
the stored "large" in the worker pool; it is then stored and listed with the item's other
renditions like them, so a retry or a second Instagram channel finds it made. Photos of people
without an Instagram channel never pay for it. The preview says what it will be without
making it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

import handlers
from relay import jobs, lifecycle, notice
from relay.db import Database, destinations, queries
from relay.errors import PublishError, TransientPublishError
from relay.lifecycle import ATTEMPTS, BACKOFF_CAP, DELIVER, settle
from relay.model import DeliveryStatus, Item, ItemStatus, Kind, Post, Rendition
from relay.publish import (
    Captions,
    Destination,
    Editor,
    Media,
    Outgoing,
    Remote,
    Retractor,
    adapter_for,
    renew,
    x,
)
from relay.publish.instagram import FIT_INSTAGRAM, InstagramAdapter
from relay.publish.net import Http
from relay.storage import Store
from relay.storage.media import IMMUTABLE
from relay.workpool import WorkPool

log = logging.getLogger("relay.publish")

RECONNECT = "destination.reconnect_needed"

__all__ = ["ATTEMPTS", "BACKOFF_CAP", "DELIVER", "Publisher", "settle"]
"""``settle`` and the job kinds live in relay/lifecycle.py now; names kept for old imports."""


def destination_from_row(row: Any) -> Destination:
    """The adapter's view of a destination row; raises ``destination.secret_unreadable`` when
    a secret of the row did not open (relay/db/destinations.py), rather than let the adapter
    go on without it and blame the channel."""
    import json

    unreadable = row.get(destinations.UNREADABLE)
    if unreadable:
        # Names the fields, never a value: this detail is logged.
        raise PublishError(
            "destination.secret_unreadable",
            f"destination {row['id']}: cannot open its {', '.join(unreadable)} with this key",
        )
    return Destination(
        id=row["id"],
        user_id=row["user_id"],
        type=row["type"],
        url=row["url"],
        secret=row["secret"],
        token=row["token"],
        config=json.loads(row["config"] or "{}"),
    )


# Which rendition stands for an item when an adapter sends media rather than links.
CAPTIONS = "captions"
"""A clip's WebVTT rendition (relay/pairing.py)."""
_SENT_RENDITION = {Kind.IMAGE: ("large", "medium"), Kind.VIDEO: ("mp4",), Kind.AUDIO: ("audio",)}
# Documents sent as their original (LinkedIn's document posts).
_SENT_DOCUMENTS = ("application/pdf",)
PADDING_FAILED = "publish.padding_failed"
"""Instagram's padded photo could not be made (or stored): the delivery retries."""


def _sent(item: Item) -> Rendition | None:
    """The rendition that stands for ``item`` when an adapter sends media."""
    if item.kind not in _SENT_RENDITION:
        return None
    by_name = {r.name: r for r in item.renditions}
    return next((by_name[n] for n in _SENT_RENDITION[item.kind] if n in by_name), None)


def _to_pad(item: Item) -> tuple[Rendition, tuple[int, int]] | None:
    """A ready photo Instagram refuses for its shape and has no ``fit_instagram`` yet: the
    rendition it is padded from (the one sent) and the size it will have; None otherwise."""
    if item.status != ItemStatus.READY or item.kind != Kind.IMAGE:
        return None
    if any(r.name == FIT_INSTAGRAM for r in item.renditions):
        return None
    chosen = _sent(item)
    if chosen is None or not chosen.width or not chosen.height:
        return None
    size = handlers.instagram_size(chosen.width, chosen.height)
    return None if size is None else (chosen, size)


class Publisher:
    def __init__(
        self,
        db: Database,
        store: Store,
        http: Http,
        present: Callable[[Post], dict[str, Any]],
        max_age: float,
        timeout: float = 120.0,
        linkedin_app: renew.OAuthApp | None = None,
        x_client: x.XClient | None = None,
        pool: WorkPool | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.pool = pool
        """Where Instagram's padded photo is made (the pipeline's pool); None: a thread."""
        self.work_dir = work_dir
        """Scratch for it (the pipeline's work folder); None: the system's temporary folder."""
        self.x_client = x_client
        """The relay's X app, to renew X channels' two-hour tokens (relay/publish/renew.py)."""
        self.db = db
        self.store = store
        self.http = http
        self.present = present
        self.max_age = max_age
        self.timeout = timeout
        self.linkedin_app = linkedin_app
        """The LinkedIn app that renews LinkedIn tokens (relay/publish/renew.py)."""

    def _media(self, post: Post, post_json: dict[str, Any], planned: bool = False) -> list[Media]:
        """``planned``: for the preview, a photo still to be padded for Instagram gets a stand-in
        variant with the size it will have (``_variants``)."""
        found = []
        urls = {i["id"]: {r["name"]: r["url"] for r in i["renditions"]} for i in post_json["items"]}
        urls_original = {i["id"]: (i.get("original") or {}).get("url") for i in post_json["items"]}
        for item in post.items:
            if item.status == ItemStatus.READY and item.kind == Kind.DOCUMENT:
                document = self._document(item, urls_original.get(item.id))
                if document is not None:
                    found.append(document)
                continue
            if item.status != ItemStatus.READY or item.kind not in _SENT_RENDITION:
                continue
            chosen = _sent(item)
            if chosen is None:
                continue
            found.append(
                Media(
                    item_id=item.id,
                    kind=item.kind.value,
                    mime=chosen.mime,
                    bytes=chosen.bytes,
                    url=urls[item.id][chosen.name],
                    width=chosen.width,
                    height=chosen.height,
                    duration=chosen.duration,
                    alt=item.alt or "",
                    read=lambda key=chosen.key: self.store.read(key),
                    variants=self._variants(item, chosen, urls[item.id], post_json, planned),
                    read_from=lambda start, key=chosen.key: self.store.read(key, start),
                    captions=self._captions(item, post_json),
                )
            )
        return found

    def _variants(
        self,
        item: Item,
        chosen: Rendition,
        urls: dict[str, str],
        post_json: dict[str, Any],
        planned: bool = False,
    ) -> dict[str, Media]:
        """A video's original and poster, for channels that take them (YouTube); a photo's
        ``fit_instagram``, padded to a shape Instagram takes (handlers/image.py).

        ``planned`` (the preview): a photo that an Instagram delivery will pad but none has yet
        gets a stand-in ``fit_instagram`` of the size the padding will have, so the preview
        says "padded to 4:5" before the file exists. Its URL and bytes are those of the
        rendition it will be made from: nothing fetches or reads it, and a delivery never gets
        it (the delivery makes the real one first)."""
        by_name = {r.name: r for r in item.renditions}
        to_pad = _to_pad(item) if planned else None
        if to_pad is not None:
            source, (width, height) = to_pad
            return {
                FIT_INSTAGRAM: Media(
                    item.id,
                    "image",
                    "image/jpeg",
                    source.bytes,
                    urls[source.name],
                    width,
                    height,
                    None,
                    item.alt or "",
                    lambda key=source.key: self.store.read(key),
                )  # fmt: skip
            }
        if item.kind == Kind.IMAGE and FIT_INSTAGRAM in by_name:
            fitted = by_name[FIT_INSTAGRAM]
            return {
                FIT_INSTAGRAM: Media(
                    item.id,
                    "image",
                    fitted.mime,
                    fitted.bytes,
                    urls[FIT_INSTAGRAM],
                    fitted.width,
                    fitted.height,
                    None,
                    item.alt or "",
                    lambda key=fitted.key: self.store.read(key),
                )  # fmt: skip
            }
        if item.kind != Kind.VIDEO:
            return {}
        found: dict[str, Media] = {}
        poster = by_name.get("poster")
        if poster is not None:
            found["poster"] = Media(
                item.id, "image", poster.mime, poster.bytes, urls["poster"], poster.width,
                poster.height, None, item.alt or "", lambda key=poster.key: self.store.read(key),
            )  # fmt: skip
        original = item.original
        shown = next((i.get("original") for i in post_json["items"] if i["id"] == item.id), None)
        if original is not None and shown and shown.get("url"):
            found["original"] = Media(
                item.id, "video", original.mime, original.bytes, shown["url"], chosen.width,
                chosen.height, chosen.duration, item.alt or "",
                lambda key=original.key: self.store.read(key),
            )  # fmt: skip
        # Channels that take one captions file (YouTube, LinkedIn) get the first track.
        for track in self._captions(item, post_json)[:1]:
            found["captions"] = Media(
                item.id, "captions", track.mime, track.bytes, track.url, None, None, None, "",
                track.read,
            )  # fmt: skip
        return found

    def _document(self, item: Item, url: str | None) -> Media | None:
        """A PDF goes as itself (its original): LinkedIn makes a document post of it; the other
        channels leave documents out and link the page."""
        original = item.original
        if original is None or original.mime not in _SENT_DOCUMENTS or not url:
            return None
        return Media(
            item_id=item.id,
            kind=Kind.DOCUMENT.value,
            mime=original.mime,
            bytes=original.bytes,
            url=url,
            width=None,
            height=None,
            duration=None,
            alt=item.alt or "",
            read=lambda key=original.key: self.store.read(key),
            pages=next((r.pages for r in item.renditions if r.pages is not None), None),
        )

    async def fresh_row(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The destination row, a token that ends soon renewed first (publish/renew.py)."""
        return await renew.fresh(self.db, self.http, row, self.linkedin_app, self.x_client)

    def _captions(self, item: Item, post_json: dict[str, Any]) -> tuple[Captions, ...]:
        """The clip's captions tracks, with the links the post object gives them."""
        shown = next((i for i in post_json["items"] if i["id"] == item.id), {"renditions": []})
        return tuple(
            Captions(
                lang=r.lang or "",
                mime=r.mime,
                bytes=r.bytes,
                url=link["url"],
                read=lambda key=r.key: self.store.read(key),
            )
            for r, link in zip(item.renditions, shown["renditions"], strict=False)
            if r.name == CAPTIONS
        )

    async def deliver(self, job: jobs.Job) -> None:
        delivery = await self.db.read(destinations.delivery_row, job.ref)
        if delivery is None or delivery["status"] != DeliveryStatus.PENDING:
            await self.db.run(jobs.complete, job)
            return
        row = await self.db.read(destinations.destination_row, delivery["destination_id"])
        post = await self.db.read(queries.load_post, delivery["post_id"])
        if row is None or not row["active"] or post is None:
            await self._finish(job, error=PublishError("publish.rejected", "destination removed"))
            return
        if not await self.db.read(lifecycle.still_published, post.id):
            # Retracted or deleted before this went out: nothing to send, nothing to take down.
            await self._finish(job, error=PublishError("publish.cancelled"), cancelled=True)
            return
        if destinations.needs_reconnect(row):
            # The service said this sign-in is dead: asking again would only repeat that.
            await self._finish(job, error=PublishError(RECONNECT, "marked reconnect needed"))
            return
        try:
            row = await self.fresh_row(row)
            adapter = adapter_for(destination_from_row(row), self.http)
            if row["type"] == InstagramAdapter.type:
                post = await self._pad_for_instagram(post)
            attempt = delivery["attempts"] + 1
            outgoing = self._outgoing(post, delivery["id"], delivery["id"], attempt)
            published = await asyncio.wait_for(
                adapter.publish(outgoing), self._timeout(adapter, outgoing)
            )
        except TimeoutError:
            error: PublishError = TransientPublishError("publish.unreachable", "timed out")
        except PublishError as exc:
            error = exc
        except Exception as exc:  # an adapter bug must not lose the delivery: retry it
            log.exception("adapter %s failed on delivery %s", row["type"], delivery["id"])
            error = TransientPublishError("publish.unreachable", repr(exc))
        else:
            await self._finish(job, remote_url=published.remote_url, remote_id=published.remote_id)
            return
        if error.code == RECONNECT:
            # The first delivery to find the sign-in dead tells the user, once (relay/notice.py).
            await self.db.run(notice.flag_and_notify, row["id"])
        too_old = time.time() - delivery["created_at"] > self.max_age
        if isinstance(error, TransientPublishError) and not job.exhausted and not too_old:
            await self._retry(job, error)
        else:
            if isinstance(error, TransientPublishError) and too_old:
                error = PublishError("publish.expired", error.detail, error.remote)
            await self._finish(job, error=error)

    async def _pad_for_instagram(self, post: Post) -> Post:
        """The post, each of its photos that Instagram refuses for its shape padded first
        (stored, and listed as the item's ``fit_instagram``); as it was when none needs it.
        A failure is ``publish.padding_failed``, which the delivery retries."""
        wanted = [(item, found) for item in post.items if (found := _to_pad(item)) is not None]
        if not wanted:
            return post
        try:
            for item, (source, _) in wanted:
                # Bounded as a publish is: the job's lease must not run out on a stuck worker.
                made = await asyncio.wait_for(self._padded(post.id, item.id, source), self.timeout)
                if made is not None:
                    await self.db.run(queries.add_rendition, item.id, made)
            reread = await self.db.read(queries.load_post, post.id)
        except Exception as exc:  # the store, the disk, the pool, a damaged "large", too slow
            log.warning("post %s: padding a photo for Instagram failed: %r", post.id, exc)
            raise TransientPublishError(PADDING_FAILED, repr(exc)) from exc
        return reread if reread is not None else post

    async def _padded(self, post_id: str, item_id: str, source: Rendition) -> Rendition | None:
        """``source`` (a stored photo rendition) padded for Instagram and stored where the
        pipeline would have stored it; None when its file turns out to need no padding."""
        if self.work_dir is not None:
            await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
        # A folder of its own: the pipeline clears ``work/<item id>`` when it (re)processes one.
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, "", "instagram-", self.work_dir))
        try:
            local = scratch / f"{source.name}{Path(source.key).suffix}"
            with local.open("wb") as out:
                async for chunk in self.store.read(source.key):
                    await asyncio.to_thread(out.write, chunk)
            run = self.pool.run if self.pool is not None else asyncio.to_thread
            made = await run(handlers.fit_instagram_file, local, source.mime, scratch)
            if made is None:
                return None
            key = f"{post_id}/{item_id}/{FIT_INSTAGRAM}{made.path.suffix}"
            await self.store.put_file(key, made.path, made.mime, cache_control=IMMUTABLE)
            return Rendition(
                name=FIT_INSTAGRAM,
                key=key,
                mime=made.mime,
                bytes=made.path.stat().st_size,
                width=made.width,
                height=made.height,
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    def _timeout(self, adapter: Any, outgoing: Outgoing) -> float:
        """The publish's time limit: an adapter that uploads big media (a Page video) may ask
        for more than the default with ``timeout_for(outgoing)``."""
        asked = getattr(adapter, "timeout_for", None)
        wanted = asked(outgoing) if callable(asked) else None
        return max(self.timeout, float(wanted)) if wanted else self.timeout

    def _outgoing(
        self, post: Post, delivery_id: str, key: str, attempt: int, planned: bool = False
    ) -> Outgoing:
        post_json = self.present(post)
        return Outgoing(
            delivery_id=delivery_id,
            idempotency_key=key,
            attempt=attempt,
            post=post_json,
            page_url=post_json["url"],
            title=post.title,
            text=post.text,
            media=self._media(post, post_json, planned),
        )

    def preview(self, post: Post) -> Outgoing:
        """The post as a delivery would send it now (the web app's preview of each channel),
        with the photos an Instagram delivery will pad shown at their padded size."""
        return self._outgoing(post, "preview", "preview", 1, planned=True)

    # --- edits and removals on channels (jobs ``edit`` and ``retract`` of relay/lifecycle) --

    async def edit(self, job: jobs.Job) -> None:
        """Job ``edit``, ref ``DELIVERY_ID:EVENT_ID``: send the post as it is now."""
        delivery_id, _, event_id = job.ref.partition(":")
        await self._change(job, delivery_id, f"{delivery_id}.updated.{event_id}", editing=True)

    async def retract(self, job: jobs.Job) -> None:
        """Job ``retract``, ref the delivery: delete the remote copy, after an in-flight
        delivery has finished (never a copy left behind)."""
        await self._change(job, job.ref, f"{job.ref}.deleted", editing=False)

    async def _change(self, job: jobs.Job, delivery_id: str, key: str, editing: bool) -> None:
        delivery = await self.db.read(destinations.delivery_row, delivery_id)
        if delivery is not None and delivery["status"] == DeliveryStatus.PENDING:
            # In flight (or about to be): wait for its outcome. A copy sent with the old text
            # is then edited, and one sent at all is then removed: never one left behind.
            await self.db.run(jobs.postpone, job, lifecycle.WAIT_SECONDS)
            return
        if delivery is None or delivery["status"] != DeliveryStatus.DELIVERED:
            await self.db.run(jobs.complete, job)  # never went out, or already taken down
            return
        row = await self.db.read(destinations.destination_row, delivery["destination_id"])
        post = await self.db.read(queries.load_post, delivery["post_id"])
        if row is None or post is None:
            await self.db.run(jobs.complete, job)
            return
        remote = Remote(
            delivery_id=delivery_id,
            remote_id=delivery["remote_id"],
            remote_url=delivery["remote_url"],
            idempotency_key=key,
        )
        error: PublishError | None = None
        edited = None
        try:
            if destinations.needs_reconnect(row):
                # As for deliveries: the service said this sign-in is dead; do not ask again.
                raise PublishError(RECONNECT, "marked reconnect needed")
            row = await self.fresh_row(row)
            adapter = adapter_for(destination_from_row(row), self.http)
            if editing and isinstance(adapter, Editor):
                outgoing = self._outgoing(post, delivery_id, key, job.attempts)
                edited = await asyncio.wait_for(adapter.edit(outgoing, remote), self.timeout)
            elif not editing and isinstance(adapter, Retractor):
                await asyncio.wait_for(adapter.retract(remote, post.id), self.timeout)
            else:
                error = PublishError("publish.cannot_edit" if editing else "publish.cannot_retract")
        except TimeoutError:
            error = TransientPublishError("publish.unreachable", "timed out")
        except PublishError as exc:
            error = exc
        except Exception as exc:  # an adapter bug: retry rather than lose the change
            log.exception("adapter %s failed on %s of %s", row["type"], job.kind, delivery_id)
            error = TransientPublishError("publish.unreachable", repr(exc))
        if error is not None and error.code == RECONNECT:
            await self.db.run(notice.flag_and_notify, row["id"])
        if isinstance(error, TransientPublishError) and not job.exhausted:
            await self._retry(job, error, delivery_id)
            return

        def record(conn: Connection) -> None:
            values: dict[str, Any] = {}
            if error is not None:
                values.update(error_code=error.code, error_message=error.public()["message"])
            else:
                values.update(error_code=None, error_message=None)
            if edited is not None:
                # An edit may leave a new copy (Bluesky's delete and post again): track that one.
                values.update(remote_id=edited.remote_id, remote_url=edited.remote_url)
            if not editing and (error is None or error.code == "publish.cannot_retract"):
                # Taken down, or told it cannot be: either way no longer a live copy we track.
                values["status"] = DeliveryStatus.RETRACTED.value
            destinations.set_delivery(conn, delivery_id, **values)
            jobs.complete(conn, job)

        if error is not None:
            log.warning("%s of delivery %s: %s", job.kind, delivery_id, error)
        await self.db.run(record)

    async def _retry(
        self, job: jobs.Job, error: PublishError, delivery_id: str | None = None
    ) -> None:
        log.info("delivery %s: %s; will retry", job.ref, error)

        def record(conn: Connection) -> None:
            destinations.set_delivery(
                conn,
                delivery_id or job.ref,
                **({} if delivery_id else {"attempts": job.attempts}),
                error_code=error.code,
                error_message=error.public()["message"],
            )
            jobs.retry_or_bury(conn, job, str(error), cap=BACKOFF_CAP)

        await self.db.run(record)

    async def _finish(
        self,
        job: jobs.Job,
        *,
        error: PublishError | None = None,
        remote_url: str | None = None,
        remote_id: str | None = None,
        cancelled: bool = False,
    ) -> None:
        def record(conn: Connection) -> None:
            if error is None:
                values: dict[str, Any] = dict(
                    status=DeliveryStatus.DELIVERED.value,
                    remote_url=remote_url,
                    remote_id=remote_id,
                    error_code=None,
                    error_message=None,
                )
            else:
                status = DeliveryStatus.CANCELLED if cancelled else DeliveryStatus.FAILED
                values = dict(
                    status=status.value,
                    error_code=error.code,
                    error_message=error.public()["message"],
                )
            destinations.set_delivery(conn, job.ref, attempts=job.attempts, **values)
            jobs.complete(conn, job)
            _release_reply(conn, job.ref)

        if error is not None:
            log.warning("delivery %s failed: %s", job.ref, error)
        await self.db.run(record)

    def give_up(self, conn: Connection, job: jobs.Job, code: str, detail: str) -> None:
        destinations.set_delivery(
            conn,
            job.ref,
            status=DeliveryStatus.FAILED.value,
            attempts=job.attempts,
            error_code="publish.unreachable",
            error_message=detail[:300],
        )
        _release_reply(conn, job.ref)


def _release_reply(conn: Connection, delivery_id: str) -> None:
    row = destinations.delivery_row(conn, delivery_id)
    if row is not None:
        lifecycle.release(conn, row["post_id"])
