"""The running relay's parts, built once from settings in ``relay.app`` and shared by the doors,
the pages and the workers through ``web.AppKey``s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from relay.config import Settings
from relay.db import Database
from relay.intake.accept import Acceptor
from relay.spool import SpoolBackend
from relay.storage import Store
from relay.worker import Workers
from relay.workpool import WorkPool

if TYPE_CHECKING:  # it is built after this dataclass, from its parts
    from relay.publish.deliver import Publisher


@dataclass(slots=True)
class Relay:
    settings: Settings
    db: Database
    spool: SpoolBackend
    store: Store
    pool: WorkPool
    workers: Workers
    acceptor: Acceptor
    publisher: Publisher | None = None
    node_lock: int | None = None
    """The descriptor that holds this process's lock (``relay.node``) while it runs."""
    gone: list[str] = field(default_factory=list)
    """Processes of the same data folder found gone at start: their jobs are freed at once."""
    """Set once built, right after the rest (it registers its jobs with the workers)."""

    def media_url(self, key: str, *, private: bool = False) -> str:
        """Where clients fetch a stored object: the store's own (public or presigned, signed
        afresh on each call) URL, else the relay's /media/ route."""
        url = self.store.url(key, private=private)
        return url or f"{self.settings.public_url}/media/{quote(key)}"

    def page_url(self, post_id: str) -> str:
        return f"{self.settings.public_url}/p/{post_id}"


RELAY = web.AppKey("relay", Relay)
USER = "relay.user_id"  # request key set by the auth check
