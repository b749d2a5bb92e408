"""What the two Meta sign-ins (Facebook Login, relay/web/app/connect/meta.py, and Threads'
own, connect/threads.py) share: whether the operator set the app up, the app secret's value,
and one call to a Graph host whose answer is JSON or Graph's error body."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import SecretStr

from relay.publish.graph import graph_error
from relay.web.app import connect


def configured(app_id: str, secret: SecretStr | None) -> bool:
    """The operator set both the app's id and its secret (else the Connect button is hidden
    and its routes answer 404)."""
    return bool(app_id and secret is not None and secret.get_secret_value())


def secret_value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


async def call(
    request: web.Request, base: str, method: str, path: str, **kwargs: Any
) -> dict[str, Any]:
    """One call to ``base + path``; a non-200 or non-object answer is Graph's error. Errors
    name the path only: a query may hold a secret where the API takes it nowhere else."""
    status, answer, text = await connect.read_json(
        connect.http(request), method, base.rstrip("/") + path, **kwargs
    )
    if status != 200 or not isinstance(answer, dict):
        raise graph_error(status, text, path)
    return answer
