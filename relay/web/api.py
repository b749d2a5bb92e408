"""The API's reads, its error bodies and authentication, and the health endpoints."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay import jobs, metrics
from relay.context import RELAY
from relay.db import queries
from relay.errors import AuthError, NotFound, RelayError, public_error, temporary_error
from relay.web.auth import authenticate
from relay.web.present import item_json, post_json

log = logging.getLogger("relay.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "auth.invalid_token",
    404: "not_found",
    405: "method_not_allowed",
    413: "upload.too_large",
}


RETRY_AFTER = 30
"""Seconds a client is asked to wait on a 503/507 (the disk or the database is back, or not)."""


def error_response(
    status: int, body: dict[str, str], retry_after: int | None = None
) -> web.Response:
    response = web.json_response({"error": body}, status=status)
    if retry_after is None and status in (503, 507):
        retry_after = RETRY_AFTER
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def relay_error_response(request: web.Request, exc: RelayError) -> web.Response:
    """The JSON answer for a RelayError, logged (without a traceback) when it is the relay's
    fault; one place for the API's middleware and the tus door."""
    if exc.spec.http_status >= 500:
        log.error("%s %s: %s", request.method, request.path, exc)
    response = error_response(exc.spec.http_status, exc.public(), getattr(exc, "retry_after", None))
    if isinstance(exc, AuthError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="relay"'
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RelayError as exc:
        return relay_error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status not in _HTTP_CODES:
            raise
        return error_response(exc.status, public_error(_HTTP_CODES[exc.status]))
    except Exception as exc:
        known = temporary_error(exc)
        if known is not None:  # a full disk or a lost database: said, not a traceback
            return relay_error_response(request, known)
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, public_error("server.internal"))


async def get_post(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    post = await relay.db.read(queries.load_post, request.match_info["post_id"])
    if post is None or post.user_id != user_id:
        raise NotFound()
    return web.json_response(post_json(relay, post))


async def get_item(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    found = await relay.db.read(queries.load_item, request.match_info["item_id"])
    if found is None or found[1] != user_id:
        raise NotFound()
    return web.json_response(item_json(relay, found[0], private=found[2]))


async def list_posts(request: web.Request) -> web.Response:
    user_id = await authenticate(request)
    relay = request.app[RELAY]
    try:
        limit = min(200, max(1, int(request.query.get("limit", "50"))))
        before = float(request.query["before"]) if "before" in request.query else None
    except ValueError as exc:
        raise RelayError("bad_request", "limit/before must be numbers") from exc
    posts = await relay.db.read(queries.list_posts, user_id, limit, before)
    return web.json_response({"posts": [post_json(relay, p) for p in posts]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    checks: dict[str, str] = {}
    try:
        await relay.db.read(lambda conn: queries.post_row(conn, ""))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await relay.store.check()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {exc}"
    # A node whose workers ended takes uploads it will never process: not ready.
    tasks = relay.workers.tasks
    stopped = [task.get_name() for task in tasks if task.done()]
    if tasks:
        checks["workers"] = (
            f"error: not running: {', '.join(stopped)} of {len(tasks)}" if stopped else "ok"
        )
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    try:
        for status, n in (await relay.db.read(jobs.counts)).items():
            metrics.jobs_by_status.labels(status).set(n)
    except Exception:
        log.warning("could not count jobs for /metrics")
    body = generate_latest(metrics.registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


OPENAPI = Path(__file__).resolve().parent.parent / "openapi.json"


async def openapi(request: web.Request) -> web.FileResponse:
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/posts", list_posts)
    app.router.add_get("/api/v1/posts/{post_id}", get_post)
    app.router.add_get("/api/v1/items/{item_id}", get_item)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
