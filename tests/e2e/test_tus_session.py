"""The tus door for the web app's upload page: a browser's session cookie counts only with the
CSRF token in ``X-CSRF-Token`` (a cookie alone is what a cross-site request carries too), and
uploads marked ``wait`` become one post only when the upload form joins them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.server import RelayServer

PASSWORD = "correct horse battery"


def _signed_in(server: RelayServer, name: str) -> tuple[httpx.Client, str]:
    """A client holding ``name``'s session cookie, and the CSRF token a page of theirs has."""
    subprocess.run(
        [sys.executable, "-m", "relay", "user", "password", name],
        env=server.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    client = httpx.Client(base_url=server.url, timeout=30)
    csrf = client.get("/").cookies["relay_csrf"]
    answer = client.post("/signin", data={"csrf_token": csrf, "name": name, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    assert "relay_session" in client.cookies
    return client, csrf


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(client: httpx.Client, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(
        "/api/v1/tus/",
        content=body,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(body)),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


def test_a_session_cookie_needs_the_csrf_header_on_the_tus_door(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay()
    anna = server.add_user("anna")
    client, csrf = _signed_in(server, "anna")
    try:
        meta = {"Upload-Metadata": _metadata(filename="a.txt", wait="1")}
        refused = _create(client, b"hello", meta)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "auth.session_invalid"
        wrong = _create(client, b"hello", {**meta, "X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 401

        made = _create(client, b"hello", {**meta, "X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
        assert made.headers["Upload-Offset"] == "5"
        assert "Relay-Post-Id" not in made.headers  # it waits to be joined
        url = made.headers["Location"]
        # PATCH and HEAD with the session and the header too.
        second = client.post(
            "/api/v1/tus/",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "6",
                "Upload-Metadata": _metadata(filename="b.txt", wait="1"),
                "X-CSRF-Token": csrf,
            },
        )
        assert second.status_code == 201
        patch_headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        patch_url = second.headers["Location"]
        assert client.patch(patch_url, content=b"world!", headers=patch_headers).status_code == 401
        patched = client.patch(
            patch_url, content=b"world!", headers={**patch_headers, "X-CSRF-Token": csrf}
        )
        assert patched.status_code == 204, patched.text
        head = client.head(url, headers={"Tus-Resumable": "1.0.0", "X-CSRF-Token": csrf})
        assert head.status_code == 200 and head.headers["Upload-Offset"] == "5"

        # Nobody made a post of them yet; the form joins both into one.
        assert server.client(anna["token"]).get("/api/v1/posts").json()["posts"] == []
        ids = ",".join(u.rsplit("/", 1)[1] for u in (url, patch_url))
        form = {"csrf_token": csrf, "uploads": ids, "title": "Two files", "alt": ["first", ""]}
        sent = client.post("/upload", files={"x": (None, "")}, data=form)
        assert sent.status_code == 303, sent.text
        [post] = server.client(anna["token"]).get("/api/v1/posts").json()["posts"]
        assert post["title"] == "Two files"
        assert [i["filename"] for i in post["items"]] == ["a.txt", "b.txt"]
        assert post["items"][0]["alt"] == "first"
        # Sent twice (a double click): still one post.
        again = client.post("/upload", files={"x": (None, "")}, data=form)
        assert again.status_code == 409
        assert len(server.client(anna["token"]).get("/api/v1/posts").json()["posts"]) == 1
    finally:
        client.close()

    # Someone else's session cannot touch anna's uploads; bearer tokens still work alone.
    bo = server.add_user("bo")
    other, other_csrf = _signed_in(server, "bo")
    try:
        head = other.head(url, headers={"Tus-Resumable": "1.0.0", "X-CSRF-Token": other_csrf})
        assert head.status_code == 404
    finally:
        other.close()
    with server.client(bo["token"]) as scripted:
        made = _create(scripted, b"by token", {"Upload-Metadata": _metadata(filename="c.txt")})
        assert made.status_code == 201 and made.headers["Relay-Post-Id"]


def test_an_upload_that_waits_and_is_never_joined_goes_when_it_expires(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay(RELAY_TUS_EXPIRY_SECONDS="1", RELAY_TUS_CLEANUP_INTERVAL_SECONDS="0.2")
    anna = server.add_user("anna")
    body = os.urandom(64)

    def stored() -> list[Path]:
        return [p for p in server.data_dir.rglob("*") if p.is_file() and p.read_bytes() == body]

    with server.client(anna["token"]) as client:
        made = _create(client, body, {"Upload-Metadata": _metadata(filename="left.bin", wait="1")})
        assert made.status_code == 201 and "Relay-Post-Id" not in made.headers
        assert len(stored()) == 1  # in the spool, waiting to be joined
        deadline = time.monotonic() + 30
        while stored():  # the page was left: nobody joins it
            assert time.monotonic() < deadline, "a waiting upload was never removed"
            time.sleep(0.1)
        assert client.head(
            made.headers["Location"], headers={"Tus-Resumable": "1.0.0"}
        ).status_code in (404, 410)
        assert client.get("/api/v1/posts").json()["posts"] == []
