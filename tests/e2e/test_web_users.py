"""``relay user add NAME --password [--admin]`` and ``relay user password NAME`` against a real
``relay serve``: the password comes on stdin (never argv), is checked, and changing it ends the
sessions signed in with the old one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx

from tests.server import RelayServer


def _cli(server: RelayServer, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env=server.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sign_in(server: RelayServer, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    token = client.get("/").cookies["relay_csrf"]
    answer = client.post("/signin", data={"csrf_token": token, "name": name, "password": password})
    assert answer.status_code == 303, answer.text
    return client


def test_passwords_from_stdin_and_a_new_one_ends_old_sessions(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay()
    short = _cli(server, "user", "add", "cecilia", "--password", password="short")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr
    assert server.cli("user", "password", "cecilia", check=False).returncode != 0  # not made

    made = _cli(
        server,
        "user",
        "add",
        "cecilia",
        "--password",
        "--admin",
        "--json",
        password="första lösenordet",
    )
    assert made.returncode == 0, made.stderr
    assert "första" not in made.stdout + made.stderr
    old = _sign_in(server, "cecilia", "första lösenordet")
    assert "Your posts" in old.get("/").text

    changed = _cli(server, "user", "password", "cecilia", password="andra lösenordet")
    assert changed.returncode == 0, changed.stderr
    assert "Sign in" in old.get("/").text and "Your posts" not in old.get("/").text
    refused = httpx.Client(base_url=server.url)
    token = refused.get("/").cookies["relay_csrf"]
    wrong = refused.post(
        "/signin", data={"csrf_token": token, "name": "cecilia", "password": "första lösenordet"}
    )
    assert wrong.status_code == 401
    assert "Your posts" in _sign_in(server, "cecilia", "andra lösenordet").get("/").text
    # Neither password, nor any session cookie, ever reaches the log.
    log = server.log.read_text()
    assert "lösenordet" not in log and "relay_session" not in log


def test_a_user_without_a_password_cannot_sign_in(start_relay: Callable[..., RelayServer]) -> None:
    server = start_relay()
    server.add_user("dan")  # API token and address only
    with httpx.Client(base_url=server.url) as client:
        token = client.get("/").cookies["relay_csrf"]
        for password in ("", "anything at all"):
            answer = client.post(
                "/signin", data={"csrf_token": token, "name": "dan", "password": password}
            )
            assert answer.status_code == 401


def test_the_web_apps_forms_answer_bad_bodies_with_pages(
    start_relay: Callable[..., RelayServer],
) -> None:
    server = start_relay()
    with httpx.Client(base_url=server.url) as client:
        garbled = client.post(
            "/signin", content=b"garbage", headers={"Content-Type": "multipart/form-data"}
        )
        assert garbled.status_code == 400
        assert garbled.headers["content-type"].startswith("text/html")
        assert "This form could not be read" in garbled.text
        huge = client.post(
            "/signin",
            content=b"name=" + b"a" * (2 << 20),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413
        assert huge.headers["content-type"].startswith("text/html")
        assert client.get("/healthz").status_code == 200  # and the server is still there
