"""Standard Webhooks: ``POST`` of ``{"type": "post.published", "post": …}`` signed with the
destination's ``whsec_`` secret. ``webhook-id`` is the delivery's idempotency key, the same on
every retry, so a receiver that saw it already can drop the repeat.

An edit sends ``{"type": "post.updated", "post": …}`` and a removal ``{"type": "post.deleted",
"post": {"id": …}}``, signed the same way, each with an id of its own (stable over its retries)."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import ClassVar

from standardwebhooks import Webhook

from relay.errors import PublishError
from relay.publish import Accepts, Destination, Outgoing, Published, Remote
from relay.publish.net import Http, raise_for_status


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookAdapter:
    type: ClassVar[str] = "webhook"
    accepts: ClassVar[Accepts] = Accepts(links_only=True)

    def __init__(self, destination: Destination, http: Http) -> None:
        if not destination.url:
            raise PublishError("publish.rejected", "a webhook destination needs --url")
        if not destination.secret:
            raise PublishError("publish.rejected", "a webhook destination needs a secret")
        self.url = destination.url
        self.signer = Webhook(destination.secret)
        self.http = http

    async def _send(self, message_id: str, payload: dict) -> tuple[int, str]:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(message_id, now, body),
        }
        response = await self.http.request("POST", self.url, data=body.encode(), headers=headers)
        async with response:
            return response.status, await response.text(errors="replace")

    async def publish(self, outgoing: Outgoing) -> Published:
        status, text = await self._send(
            outgoing.idempotency_key, {"type": "post.published", "post": outgoing.post}
        )
        raise_for_status(status, text, self.url)
        return Published(remote_url=None, remote_id=outgoing.idempotency_key)

    async def edit(self, outgoing: Outgoing, remote: Remote) -> Published:
        status, text = await self._send(
            remote.idempotency_key, {"type": "post.updated", "post": outgoing.post}
        )
        raise_for_status(status, text, self.url)
        return Published(remote_url=remote.remote_url, remote_id=remote.remote_id)

    async def retract(self, remote: Remote, post_id: str) -> None:
        status, text = await self._send(
            remote.idempotency_key, {"type": "post.deleted", "post": {"id": post_id}}
        )
        raise_for_status(status, text, self.url)

    async def check(self) -> str:
        probe_id = "msg_check_" + secrets.token_hex(8)
        status, text = await self._send(probe_id, {"type": "relay.check"})
        raise_for_status(status, text, self.url)
        return f"{self.url} answered {status}"
