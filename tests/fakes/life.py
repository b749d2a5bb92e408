"""Helpers for the edit and delete tests of every adapter: change a published post through the
relay's API and wait for the change to reach a fake."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.server import RelayServer


def wait_for(what: Callable[[], Any], describe: str, timeout: float = 60) -> Any:
    """Poll until ``what()`` is truthy; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, f"never: {describe}"
        time.sleep(0.1)


def post(server: RelayServer, token: str, post_id: str) -> dict[str, Any]:
    with server.client(token) as client:
        response = client.get(f"/api/v1/posts/{post_id}")
    assert response.status_code == 200, response.text
    return response.json()


def edit(server: RelayServer, token: str, post_id: str, **fields: Any) -> dict[str, Any]:
    with server.client(token) as client:
        response = client.patch(f"/api/v1/posts/{post_id}", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


def delete(server: RelayServer, token: str, post_id: str) -> None:
    with server.client(token) as client:
        response = client.delete(f"/api/v1/posts/{post_id}")
    assert response.status_code == 204, response.text


def delivery(server: RelayServer, token: str, post_id: str) -> dict[str, Any]:
    [found] = post(server, token, post_id)["deliveries"]
    return found


def retracted(server: RelayServer, token: str, post_id: str) -> dict[str, Any]:
    """The delivery once the relay has taken its copy down."""
    return wait_for(
        lambda: (d := delivery(server, token, post_id))["status"] == "retracted" and d,
        "the delivery retracted",
    )
