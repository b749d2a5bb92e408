"""What the three Meta adapters (facebook, instagram, threads) share: calling the Graph API and
reading its answers.

Every Graph error is ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``
(Graph API "Handling Errors"). Its ``code`` says what kind of failure it is, more than the HTTP
status, which is 400 for nearly all of them:

- 190 (and 102, and any ``OAuthException`` with subcode 458-467): the token expired or was
  revoked → ``destination.reconnect_needed``; the delivery marks the destination so, its next
  deliveries fail at once, and the channels page offers to connect it again.
- 10 and 200-299: a permission the token lacks → ``publish.unauthorized``.
- 4, 17, 32, 613, 80001-80014 and Instagram's/Threads' publishing limits: too many calls →
  ``publish.rate_limited``, retried with backoff.
- 1, 2, or ``is_transient: true``: Meta's own trouble → ``publish.unreachable``, retried.
- 9007 (subcode 2207027, "media not ready for publishing") and 9004/2207052 (Meta could not
  fetch the medium from the relay's URL, yet): retried.
- anything else (100 invalid parameter, 9004 media not fetched, 36003 aspect ratio, …):
  ``publish.rejected`` with Meta's message for the post's owner.

The ``fbtrace_id`` goes to the log only (it is Meta's, useless to the user).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from relay.errors import PublishError, TransientPublishError
from relay.publish import Published
from relay.publish.net import Http

log = logging.getLogger("relay.publish.graph")

# The token is dead (expired, revoked, password changed, app removed): only a new sign-in helps.
DEAD_TOKEN_CODES = frozenset({102, 190})
DEAD_TOKEN_SUBCODES = frozenset(range(458, 468))
AUTH_CODES = frozenset({10}) | frozenset(range(200, 300))
RATE_CODES = frozenset({4, 17, 32, 613}) | frozenset(range(80001, 80015))
TEMPORARY_CODES = frozenset({1, 2})
NOT_READY_CODE = 9007
# Meta's crawler could not fetch the medium from the relay's URL (yet): worth another try.
FETCH_FAILED = frozenset({(9004, 2207052)})
# A container that Meta still fetches or transcodes; polled with these pauses (seconds), about
# a minute in all, inside the delivery's own timeout; after that the delivery retries later.
POLL_DELAYS: tuple[float, ...] = (0.25, 0.5, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5)


def graph_error(status: int, body: str, path: str) -> PublishError:
    """The publish error for a Graph answer that is not a success."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        remote = body.strip()[:300]
        if status == 429:
            return TransientPublishError("publish.rate_limited", f"{path}: {status}", remote)
        if status >= 500:
            return TransientPublishError("publish.unreachable", f"{path}: {status}", remote)
        if status in (401, 403):
            return PublishError("publish.unauthorized", f"{path}: {status}", remote)
        return PublishError("publish.rejected", f"{path}: {status}", remote)
    code = error.get("code")
    message = str(error.get("error_user_msg") or error.get("message") or "")[:300]
    detail = (
        f"{path}: {status} code {code} subcode {error.get('error_subcode')}"
        f" trace {error.get('fbtrace_id')}"
    )
    oauth = error.get("type") == "OAuthException"
    if code in DEAD_TOKEN_CODES or (oauth and error.get("error_subcode") in DEAD_TOKEN_SUBCODES):
        return PublishError("destination.reconnect_needed", detail, message)
    if code in AUTH_CODES or (oauth and code is None):
        return PublishError("publish.unauthorized", detail, message)
    if code in RATE_CODES:
        return TransientPublishError("publish.rate_limited", detail, message)
    temporary = code in TEMPORARY_CODES or code == NOT_READY_CODE
    if temporary or (code, error.get("error_subcode")) in FETCH_FAILED or error.get("is_transient"):
        return TransientPublishError("publish.unreachable", detail, message)
    if status >= 500:
        return TransientPublishError("publish.unreachable", detail, message)
    return PublishError("publish.rejected", detail, message)


def is_gone(status: int, body: str) -> bool:
    """Whether Graph said the object does not exist (code 100 with subcode 33, or a 404); a
    bare code 100 is any invalid parameter, and must not pass for "already deleted"."""
    if status == 404:
        return True
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return False
    return error.get("code") == 100 and error.get("error_subcode") == 33


class Graph:
    """One Graph host and one access token. The token goes in the ``Authorization`` header,
    never in a URL (URLs end up in logs and errors)."""

    def __init__(self, http: Http, base: str, token: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.token = token

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        response = await self.http.request(method, self.base + path, headers=headers, **kwargs)
        async with response:
            usage = response.headers.get("X-Business-Use-Case-Usage") or response.headers.get(
                "X-App-Usage"
            )
            if usage:
                log.debug("%s %s: usage %s", method, path, usage)
            return response.status, await response.text(errors="replace")

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.call(method, path, **kwargs)
        if status >= 300:
            raise graph_error(status, body, path)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientPublishError(
                "publish.unreachable", f"{path}: not JSON", body[:300]
            ) from exc

    async def delete(self, object_id: str) -> bool:
        """Delete a Graph object; False when it was already gone (a repeat is success)."""
        path = f"/{object_id}"
        status, body = await self.call("DELETE", path)
        if status < 300:
            return True
        if is_gone(status, body):
            return False
        raise graph_error(status, body, path)

    async def wait_finished(
        self, container_id: str, field: str, delays: Sequence[float] = POLL_DELAYS
    ) -> None:
        """Poll a container (Instagram ``status_code``, Threads ``status``) until FINISHED.
        ERROR and EXPIRED are the channel's refusal of the medium; still IN_PROGRESS after the
        last poll is a retry later (the container stays valid for a day)."""
        path = f"/{container_id}"
        for delay in delays:
            container = await self.json("GET", path, params={"fields": f"id,{field},error_message"})
            state = str(container.get(field) or "")
            if state in ("FINISHED", "PUBLISHED"):
                return
            if state in ("ERROR", "EXPIRED"):
                reason = container.get("error_message") or state.lower()
                raise PublishError("publish.rejected", f"{path}: {state}", str(reason)[:300])
            await asyncio.sleep(delay)
        raise TransientPublishError(
            "publish.unreachable", f"{path}: still processing after {sum(delays)} s"
        )

    async def quota_left(self, path: str) -> int | None:
        """What ``content_publishing_limit`` / ``threads_publishing_limit`` leaves for today;
        None when the channel does not say."""
        answer = await self.json("GET", path, params={"fields": "quota_usage,config"})
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data:
            return None
        usage = data[0].get("quota_usage")
        total = (data[0].get("config") or {}).get("quota_total")
        if not isinstance(usage, int) or not isinstance(total, int):
            return None
        return total - usage

    async def require_quota(self, path: str, channel: str) -> None:
        """Refuse for now (retried later) when the day's publishing quota is used up."""
        left = await self.quota_left(path)
        if left is not None and left <= 0:
            raise TransientPublishError(
                "publish.rate_limited",
                f"{channel.lower()}: publishing quota used up",
                f"{channel}: the limit of posts a day is reached; the relay posts when it allows",
            )

    async def already_posted(self, edge: str, text_field: str, outgoing: Any) -> Published | None:
        """On a retry, what a first try made before its answer was lost (``posted_with``), as
        the delivery's result; None on a first try or when nothing was made."""
        if outgoing.attempt <= 1:
            return None
        found = await self.posted_with(edge, text_field, outgoing.page_url)
        if found is None:
            return None
        log.info("delivery %s: already posted as %s", outgoing.delivery_id, found["id"])
        return Published(found.get("permalink"), str(found["id"]))

    async def posted_with(self, edge: str, text_field: str, page_url: str) -> dict[str, Any] | None:
        """Among the newest posts of ``edge`` (``/{id}/media``, ``/{id}/threads``), the one whose
        text holds the post's page link: what a first try made before its answer was lost."""
        answer = await self.json(
            "GET", edge, params={"fields": f"id,{text_field},permalink", "limit": "25"}
        )
        for found in answer.get("data") or []:
            if page_url in str(found.get(text_field) or ""):
                return dict(found)
        return None


def hashtags(text: str) -> int:
    return sum(1 for word in text.split() if word.startswith("#") and len(word) > 1)
