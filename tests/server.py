"""``RelayServer``: a real ``relay serve`` in a subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.media import jpeg_part

TERMINAL = ("ready",)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free now, all different: each socket is held until all are bound
    (two calls of one at a time could be given the same port, and a relay then found its HTTP
    and SMTP doors on one port)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def free_udp_port() -> int:
    """For SRT, which runs over UDP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RelayServer:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.http_port, self.smtp_port, self.rtmp_port = free_ports(3)
        self.srt_port = free_udp_port()
        self.env = {
            **os.environ,
            "RELAY_DATA_DIR": str(data_dir),
            "RELAY_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "RELAY_SMTP_LISTEN": f"127.0.0.1:{self.smtp_port}",
            "RELAY_RTMP_LISTEN": f"127.0.0.1:{self.rtmp_port}",
            "RELAY_SRT_LISTEN": f"127.0.0.1:{self.srt_port}",
            "RELAY_WORKERS": "2",
            **env,
        }
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.command = ["serve"]
        """What ``start`` runs: ``["serve", "--no-smtp"]``, ``["worker"]``…"""
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "relay", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def add_user(self, name: str) -> dict[str, str]:
        return json.loads(self.cli("user", "add", name, "--json").stdout)

    def add_destination(
        self,
        type_: str,
        url: str | None = None,
        token: str | None = None,
        *options: str,
        user: str = "anna",
    ) -> dict[str, Any]:
        """``relay destination add``: ``options`` are ``key=value`` for ``--set``; gives the
        parsed ``--json`` answer (``id``, ``type``, a webhook's ``secret``)."""
        args = ["destination", "add", "--user", user, "--type", type_]
        if url is not None:
            args += ["--url", url]
        if token is not None:
            args += ["--token", token]
        for option in options:
            args += ["--set", option]
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self) -> RelayServer:
        """Run it and wait until its doors answer. A port found free and then taken by another
        program before the relay bound it (another test's server, on a busy machine) is not
        the relay's fault: it starts again on new ports, up to twice."""
        for attempt in range(3):
            began = self.log.stat().st_size if self.log.exists() else 0
            try:
                return self._start()
            except RuntimeError:
                said = self.log.read_text(errors="replace")[began:] if self.log.exists() else ""
                if attempt == 2 or "address already in use" not in said.lower():
                    raise
                self._new_ports()
        raise AssertionError("unreachable")

    def _new_ports(self) -> None:
        """Other free ports for the doors this harness chose (not those a test set itself)."""
        old = (self.http_port, self.smtp_port, self.rtmp_port, self.srt_port)
        self.http_port, self.smtp_port, self.rtmp_port = free_ports(3)
        self.srt_port = free_udp_port()
        for name, before, after in zip(
            ("HTTP", "SMTP", "RTMP", "SRT"),
            old,
            (self.http_port, self.smtp_port, self.rtmp_port, self.srt_port),
            strict=True,
        ):
            if self.env.get(f"RELAY_{name}_LISTEN") == f"127.0.0.1:{before}":
                self.env[f"RELAY_{name}_LISTEN"] = f"127.0.0.1:{after}"
        self.url = f"http://127.0.0.1:{self.http_port}"

    def _start(self) -> RelayServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay", *self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        http = self.command[0] == "serve" and "--no-http" not in self.command
        smtp = self.command[0] == "serve" and "--no-smtp" not in self.command
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay serve exited: {self.log.read_text()}")
            try:
                if not http:  # a node without doors: up once it says so
                    if "relay: " in self.log.read_text():
                        return self
                elif httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    if not smtp:
                        return self
                    with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1):
                        return self
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"relay serve did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self) -> None:
        """kill -9, the whole process group (workers included)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_post(self, token: str, post_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(token) as client:
            while True:
                response = client.get(f"/api/v1/posts/{post_id}")
                if response.status_code == 200 and response.json()["status"] == "ready":
                    return response.json()
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"post {post_id} not ready: {response.text}\n{self.log.read_text()[-4000:]}"
                    )
                time.sleep(0.1)

    def wait_settled(self, token: str, post_id: str, timeout: float = 60) -> dict[str, Any]:
        """The post, once ready and its first delivery no longer pending."""
        deadline = time.monotonic() + timeout
        while True:
            post = self.wait_post(token, post_id)
            if post["deliveries"] and post["deliveries"][0]["status"] != "pending":
                return post
            assert time.monotonic() < deadline, post["deliveries"]
            time.sleep(0.2)

    def wait_delivery(self, token: str, post_id: str, timeout: float = 60) -> dict[str, Any]:
        """The post's first delivery, once settled (delivered or failed)."""
        return self.wait_settled(token, post_id, timeout)["deliveries"][0]

    def upload(
        self, token: str, *, file: tuple[str, bytes, str] | bool = True, **fields: str
    ) -> dict[str, Any]:
        """POST /api/v1/uploads with the form ``fields`` and ``file``: a (filename, bytes, type)
        part, True for a small upright photo or False for none. Asserts 202; gives the post."""
        part = jpeg_part() if file is True else file
        with self.client(token) as client:
            response = client.post(
                "/api/v1/uploads", files={"file": part} if part else None, data=fields
            )
        assert response.status_code == 202, response.text
        return response.json()

    def send_mail(self, to: str, message: bytes, sender: str = "anna@example.se") -> str:
        """One message over SMTP, each step asserted to be accepted; gives the queued post id."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            smtp.ehlo("phone.example.se")
            code, reply = smtp.docmd("MAIL", f"FROM:<{sender}>")
            assert code == 250, reply
            code, reply = smtp.docmd("RCPT", f"TO:<{to}>")
            assert code == 250, reply
            code, reply = smtp.data(message)
        assert code == 250, reply
        text = reply.decode()
        assert "queued as " in text
        return text.rsplit("queued as ", 1)[1].strip()


def crossposting_relay(start_relay: Callable[..., RelayServer]) -> tuple[RelayServer, str]:
    """A running relay that may deliver to destinations on 127.0.0.1, and the token of its user
    ``anna``."""
    server = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true")
    return server, server.add_user("anna")["token"]
