"""Posts and items as the JSON objects of shared/CONTRACT.md."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from relay.context import Relay
from relay.model import Delivery, Item, Post
from relay.storage import hls


def item_json(relay: Relay, item: Item, private: bool = False) -> dict[str, Any]:
    """``private``: the item's post is private, so its links are always signed."""
    original = None
    if item.original is not None:
        served = item.error is None  # a failed item's bytes are kept, not served
        original = {
            "url": relay.media_url(item.original.key, private=private) if served else None,
            "mime": item.original.mime,
            "bytes": item.original.bytes,
            "sha256": item.original.sha256,
        }
    return {
        "id": item.id,
        "post_id": item.post_id,
        "filename": item.filename,
        "alt": item.alt,
        "kind": item.kind.value if item.kind else None,
        "status": item.status.value,
        "progress": item.progress,
        "error": item.error,
        "original": original,
        "renditions": [
            {
                "name": r.name,
                "url": _rendition_url(relay, r.name, r.key, private),
                "mime": r.mime,
                "bytes": r.bytes,
                "width": r.width,
                "height": r.height,
                "duration": r.duration,
                "lang": r.lang,
                "loudness": r.loudness,
                "pages": r.pages,
            }
            for r in item.renditions
        ],
    }


def _rendition_url(relay: Relay, name: str, key: str, private: bool) -> str:
    """A public ladder's master playlist at /hls/, whose playlists name the store's URLs of
    their files on any store (a presigned S3 link would lose a relative URI's signature)."""
    if name == hls.HLS and not private:
        return f"{relay.settings.public_url}/hls/{quote(key)}"
    return relay.media_url(key, private=private)


def post_json(relay: Relay, post: Post) -> dict[str, Any]:
    return {
        "id": post.id,
        "title": post.title,
        "text": post.text,
        "url": relay.page_url(post.id),
        "status": post.status.value,
        "source": post.source,
        "private": post.private,
        "draft": post.draft,
        "tags": post.tags,
        "state": post.state.value,
        "publish_at": post.publish_at.isoformat() if post.publish_at else None,
        "deleted_at": post.deleted_at.isoformat() if post.deleted_at else None,
        "created_at": post.created_at.isoformat() if post.created_at else None,
        "authentication_results": post.auth_results,
        # A draft is not public yet: its links are signed like a private post's.
        "items": [item_json(relay, item, post.private or post.draft) for item in post.items],
        "deliveries": [delivery_json(d) for d in post.deliveries],
    }


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "destination": delivery.destination_id,
        "status": delivery.status.value,
        "remote_url": delivery.remote_url,
        "attempts": delivery.attempts,
        "error": delivery.error,
    }
