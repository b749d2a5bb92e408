"""deploy/nginx/relay.conf, run for real: nginx (TLS with a trustme certificate) in front of a
real ``relay serve``; a post page, uploads large and streamed, and forwarded headers through it.

nginx comes from Debian (`nginx-light`); scripts/test.sh installs it when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.server import RelayServer, free_port

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "relay.conf"
TUS = {"Tus-Resumable": "1.0.0"}
MiB = 1024 * 1024


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    assert found, "nginx not found: scripts/test.sh installs Debian's nginx-light"
    return found


def _rewrite(text: str, **values: str) -> str:
    """The example with this machine's ports and files; each replaced text must be there, so
    the test breaks when the example changes shape rather than testing something else."""
    replacements = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{values['relay_port']};",
        "listen 80;": f"listen 127.0.0.1:{values['http_port']};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{values['https_port']} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/letsencrypt/live/relay.example.org/fullchain.pem": values["cert"],
        "/etc/letsencrypt/live/relay.example.org/privkey.pem": values["key"],
        "/var/www/letsencrypt": values["webroot"],
    }
    for old, new in replacements.items():
        assert old in text, f"{old!r} no longer in {CONFIG}"
        text = text.replace(old, new)
    return text


class Proxy:
    def __init__(self, url: str, http_url: str, ca: trustme.CA) -> None:
        self.url = url
        self.http_url = http_url
        self.ca = ca

    def client(self, token: str | None = None, source: str | None = None) -> httpx.Client:
        """A client of nginx; ``source`` is the local address it connects from (any 127.x.y.z
        on Linux's loopback), so that nginx sees several clients."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        transport = httpx.HTTPTransport(verify=context, local_address=source) if source else None
        return httpx.Client(
            base_url=self.url, headers=headers, verify=context, timeout=60, transport=transport
        )


@pytest.fixture
def proxied(
    start_proxy: Callable[..., tuple[RelayServer, Proxy]],
) -> tuple[RelayServer, Proxy]:
    return start_proxy()


@pytest.fixture
def start_proxy(
    start_relay: Callable[..., RelayServer], tmp_path: Path
) -> Iterator[Callable[..., tuple[RelayServer, Proxy]]]:
    """A factory: ``start_proxy(**env)`` gives a relay started with ``env`` behind nginx."""
    with contextlib.ExitStack() as stack:

        def start(**env: str) -> tuple[RelayServer, Proxy]:
            return stack.enter_context(_proxied(start_relay, tmp_path, **env))

        yield start


@contextlib.contextmanager
def _proxied(
    start_relay: Callable[..., RelayServer], tmp_path: Path, **env: str
) -> Iterator[tuple[RelayServer, Proxy]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path / "nginx"
    folder.mkdir()
    cert.cert_chain_pems[0].write_to_path(str(folder / "fullchain.pem"))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(folder / "fullchain.pem"), append=True)
    cert.private_key_pem.write_to_path(str(folder / "privkey.pem"))
    http_port, https_port = free_port(), free_port()
    public = f"https://127.0.0.1:{https_port}"
    relay = start_relay(RELAY_PUBLIC_URL=public, RELAY_MAX_UPLOAD_BYTES=str(64 * MiB), **env)
    site = _rewrite(
        CONFIG.read_text(),
        relay_port=str(relay.http_port),
        http_port=str(http_port),
        https_port=str(https_port),
        cert=str(folder / "fullchain.pem"),
        key=str(folder / "privkey.pem"),
        webroot=str(folder / "webroot"),
    )
    (folder / "relay.conf").write_text(site)
    # As root nginx's workers would run as nobody, who cannot enter pytest's 0700 folders.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {folder / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    access_log {folder / "access.log"};
{temp}
    include {folder / "relay.conf"};
}}
"""
    )
    nginx = _nginx()
    check = subprocess.run(
        [nginx, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = Proxy(public, f"http://127.0.0.1:{http_port}", ca)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (folder / "error.log").read_text()
            try:
                with proxy.client() as client:
                    if client.get("/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (folder / "error.log").read_text()
            time.sleep(0.1)
        yield relay, proxy
    finally:
        process.terminate()
        process.wait(15)


def _received(relay: RelayServer) -> float:
    """Bytes of tus bodies the relay has written (its counter, read around nginx)."""
    metrics = httpx.get(relay.url + "/metrics").text
    found = re.search(r"^relay_tus_received_bytes_total ([0-9.e+]+)$", metrics, re.M)
    return float(found[1]) if found else 0.0


def test_post_page_through_the_proxy_links_to_the_public_https_url(proxied) -> None:
    relay, proxy = proxied
    token = relay.add_user("anna")["token"]
    with proxy.client(token) as client:
        # Over 1 MB, nginx's default limit: the example lifts it.
        body = os.urandom(3 * MiB)
        answer = client.post(
            "/api/v1/uploads",
            files={"file": ("big.bin", body, "application/octet-stream")},
            data={"title": "Through nginx"},
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        )
        assert answer.status_code == 202, answer.text
        post = answer.json()
        assert post["url"] == f"{proxy.url}/p/{post['id']}"
        ready = relay.wait_post(token, post["id"])
        page = client.get(f"/p/{post['id']}", headers={"X-Forwarded-Host": "evil.example"})
    assert page.status_code == 200
    assert "Through nginx" in page.text
    assert f'content="{proxy.url}/p/{post["id"]}"' in page.text  # og:url
    assert "evil.example" not in page.text
    [item] = ready["items"]
    assert item["original"]["url"].startswith(proxy.url + "/media/")
    with proxy.client() as client:
        media = client.get(item["original"]["url"].removeprefix(proxy.url))
    assert media.status_code == 200 and media.content == body


def test_plain_http_is_sent_to_https(proxied) -> None:
    _relay, proxy = proxied
    answer = httpx.get(proxy.http_url + "/p/abc", headers={"Host": "localhost"})
    assert answer.status_code == 301
    assert answer.headers["Location"] == "https://localhost/p/abc"


def test_relay_errors_pass_through_as_json(proxied) -> None:
    relay, proxy = proxied
    with proxy.client("rly_wrong") as client:
        refused = client.post("/api/v1/uploads", content=b"x" * (2 * MiB))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"]


def test_a_tus_patch_streams_through_the_proxy(proxied) -> None:
    relay, proxy = proxied
    token = relay.add_user("anna")["token"]
    size = 16 * MiB
    body = os.urandom(size)
    first = body[: 4 * MiB]
    rest = body[4 * MiB :]
    go_on = threading.Event()
    outcome: dict[str, object] = {}
    with proxy.client(token) as client:
        created = client.post(
            "/api/v1/tus/",
            headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": "filename c3RyZWFt"},
        )
        assert created.status_code == 201, created.text
        location = created.headers["Location"]
        assert location.startswith(proxy.url + "/api/v1/tus/")
        path = location.removeprefix(proxy.url)

        def chunks() -> Iterator[bytes]:
            yield first
            # The rest only once the relay has written the first part: with request buffering
            # nginx would wait for the whole body first, and this would never be set.
            go_on.wait(90)
            for start in range(0, len(rest), MiB):
                yield rest[start : start + MiB]

        def patch() -> None:
            with proxy.client(token) as sender:
                outcome["answer"] = sender.patch(
                    path,
                    content=chunks(),
                    headers={
                        **TUS,
                        "Upload-Offset": "0",
                        "Content-Type": "application/offset+octet-stream",
                        "Content-Length": str(size),
                    },
                )

        before = _received(relay)
        sender = threading.Thread(target=patch)
        sender.start()
        deadline = time.monotonic() + 60
        while _received(relay) - before < len(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Written by the relay while the client still held back the rest of the body.
        outcome["seen_early"] = _received(relay) - before >= len(first)
        go_on.set()
        sender.join(120)
    assert outcome.get("seen_early") is True, "the relay saw nothing before the whole body"
    answer = outcome["answer"]
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 204, answer.text
    assert answer.headers["Upload-Offset"] == str(size)
    post_id = answer.headers["Relay-Post-Id"]
    assert answer.headers["Relay-Post-Url"] == f"{proxy.url}/p/{post_id}"
    post = relay.wait_post(token, post_id)
    assert post["items"][0]["original"]["sha256"] == hashlib.sha256(body).hexdigest()


def _guess_then_try(proxy: Proxy, relay: RelayServer) -> tuple[list[int], int, int]:
    """A guesser at 127.0.0.2 sends wrong tokens (and a forged X-Forwarded-For naming the
    other client) until throttled; then the other client, at 127.0.0.3, calls with its real
    token and with a wrong one. Returns the guesser's statuses and the other's two."""
    token = relay.add_user("anna")["token"]
    forged = {"X-Forwarded-For": "127.0.0.3"}  # nginx replaces it; and it is the left-most
    with proxy.client("rly_wrong", source="127.0.0.2") as guesser:
        guessed = [guesser.get("/api/v1/posts", headers=forged).status_code for _ in range(4)]
    with proxy.client(token, source="127.0.0.3") as other:
        served = other.get("/api/v1/posts").status_code
    with proxy.client("rly_also_wrong", source="127.0.0.3") as other:
        wrong = other.get("/api/v1/posts").status_code
    return guessed, served, wrong


def test_behind_a_trusted_proxy_one_guesser_is_throttled_and_no_one_else(start_proxy) -> None:
    relay, proxy = start_proxy(RELAY_TRUSTED_PROXIES="127.0.0.1", RELAY_AUTH_MAX_FAILURES="3")
    guessed, served, wrong = _guess_then_try(proxy, relay)
    assert guessed == [401, 401, 401, 429]
    assert (served, wrong) == (200, 401)  # counted as itself: not throttled by the guesser


def test_without_trusted_proxies_every_client_is_the_proxy_as_before(start_proxy) -> None:
    relay, proxy = start_proxy(RELAY_AUTH_MAX_FAILURES="3")
    guessed, served, wrong = _guess_then_try(proxy, relay)
    assert guessed == [401, 401, 401, 429]
    # The relay believes no header: all of nginx's clients are 127.0.0.1, throttled together.
    assert (served, wrong) == (429, 429)
