"""``relay upload`` as a person runs it: a subprocess against a live ``relay serve``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server import RelayServer, free_port

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The client's environment, with its resume state in a folder of the test's own."""
    clean = {k: v for k, v in os.environ.items() if k not in ("RELAY_SERVER", "RELAY_TOKEN")}
    return {**clean, "XDG_STATE_HOME": str(tmp_path / "state")}


def upload(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "upload", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def written(server: RelayServer) -> float:
    """Bytes the server has written from tus bodies (its Prometheus counter)."""
    metrics = httpx.get(server.url + "/metrics").text
    found = re.search(r"^relay_tus_received_bytes_total ([0-9.e+]+)$", metrics, re.M)
    return float(found[1]) if found else 0.0


def test_killed_half_way_then_resumed_byte_for_byte(
    relay: RelayServer, env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "recording.bin"
    body = os.urandom(24 * 1024 * 1024)
    path.write_bytes(body)
    token = relay.anna["token"]
    command = [str(path), "--server", relay.url, "--token", token, "--title", "Hotel wifi"]
    first = subprocess.Popen(
        [sys.executable, "-m", "relay", "upload", *command, "--chunk-size", "1"]
        + ["--limit-rate", "12M"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    state = Path(env["XDG_STATE_HOME"]) / "relay" / "uploads.json"
    url = ""
    with relay.client(token) as client:
        try:
            deadline = time.monotonic() + 30
            while True:
                assert first.poll() is None, "finished before it could be interrupted"
                assert time.monotonic() < deadline, "no progress on the server"
                if not url and state.exists():
                    [entry] = json.loads(state.read_text()).values()
                    url = entry["url"]
                if url:
                    offset = int(client.head(url, headers=TUS).headers["Upload-Offset"])
                    if 0 < offset < len(body):
                        break
                time.sleep(0.01)
        finally:
            first.kill()  # kill -9: no goodbye, like a laptop lid
            first.communicate()
        deadline = time.monotonic() + 10
        while client.get(url).json()["locked"]:  # the server has seen the connection drop
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = written(relay)
        second = upload(env, *command, "--wait")
        assert second.returncode == 0, second.stderr
        resumed = int(re.search(r"resuming at byte (\d+) of", second.stderr)[1])
        assert offset <= resumed < len(body)
        assert written(relay) - before == len(body) - resumed  # only the rest was sent
        head = client.head(url, headers=TUS)
    post_id = head.headers["Relay-Post-Id"]
    assert second.stdout.splitlines() == [f"{relay.url}/p/{post_id}"]
    assert "recording.bin: ready" in second.stderr  # --wait followed processing
    assert json.loads(state.read_text()) == {}  # done: nothing left to resume
    post = relay.wait_post(token, post_id)
    assert post["title"] == "Hotel wifi"
    [item] = post["items"]
    assert item["original"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert httpx.get(item["original"]["url"]).content == body


def test_several_files_one_post_each(relay: RelayServer, env: dict[str, str], tmp_path) -> None:
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for n, path in enumerate(paths):
        path.write_text(f"file {n}\n")
    done = upload(
        env, *map(str, paths), "--server", relay.url + "/", "--token", relay.anna["token"]
    )
    assert done.returncode == 0, done.stderr
    urls = done.stdout.splitlines()
    assert len(urls) == 2 and all(u.startswith(relay.url + "/p/") for u in urls)
    for url, path in zip(urls, paths, strict=True):
        post = relay.wait_post(relay.anna["token"], url.rsplit("/", 1)[1])
        assert post["items"][0]["filename"] == path.name


def test_a_wrong_token_says_how_to_get_one(relay: RelayServer, env, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("x")
    refused = upload(env, str(tmp_path / "a.txt"), "--server", relay.url, "--token", "rly_nope")
    assert refused.returncode == 1
    assert "the server refused the token" in refused.stderr
    assert "relay token add --user NAME" in refused.stderr


def test_a_server_that_is_down(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    url = f"http://127.0.0.1:{free_port()}"
    down = upload(env, str(tmp_path / "a.txt"), "--server", url, "--token", "t")
    assert down.returncode == 1
    assert f"cannot reach {url}: is `relay serve` running?" in down.stderr


def test_too_large_is_refused_before_sending(relay: RelayServer, env, tmp_path) -> None:
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as file:  # sparse: 4 GiB + 1 on paper, nothing on disk
        file.truncate(4 * 1024**3 + 1)
    before = written(relay)
    refused = upload(env, str(huge), "--server", relay.url, "--token", relay.anna["token"])
    assert refused.returncode == 1
    assert "too large for the server, which takes at most 4294967296 bytes" in refused.stderr
    assert written(relay) == before
    assert not (Path(env["XDG_STATE_HOME"]) / "relay" / "uploads.json").exists()


def test_a_missing_file(env: dict[str, str], tmp_path: Path) -> None:
    missing = upload(env, str(tmp_path / "nope.mp4"), "--server", "http://x", "--token", "t")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """``relay upload`` with stdout and stderr on one terminal 40 columns wide (a phone's SSH
    app), as a person runs it; gives the exit code and all the terminal got."""
    import fcntl
    import pty
    import struct
    import termios

    parent, child = pty.openpty()
    fcntl.ioctl(parent, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "upload", *args],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "40"},
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    got = bytearray()
    while True:  # until the child side closes (EIO), so the child never blocks on a full pty
        try:
            chunk = os.read(parent, 65536)
        except OSError:
            break
        if not chunk:
            break
        got.extend(chunk)
    os.close(parent)
    return process.wait(timeout=120), bytes(got)


def test_urls_print_whole_after_the_bars_on_a_terminal(
    relay: RelayServer, env: dict[str, str], tmp_path: Path
) -> None:
    paths = [tmp_path / "holiday-photo-number-one.txt", tmp_path / "b.txt"]
    for n, path in enumerate(paths):
        path.write_bytes(os.urandom(300_000 + n))
    code, screen = _run_on_a_terminal(
        [*map(str, paths), "--server", relay.url, "--token", relay.anna["token"]], env
    )
    assert code == 0, screen.decode(errors="replace")
    # rich shows the cursor again when the bars stop; the URLs come after, nothing else, each
    # whole on its own line (a terminal's newlines are \r\n), none cut to the 40 columns.
    shown = b"\x1b[?25h"
    assert shown in screen, screen
    after = screen.rsplit(shown, 1)[1].decode()
    lines = [line for line in after.splitlines() if line.strip()]
    assert len(lines) == 2, after
    for line, path in zip(lines, paths, strict=True):
        assert re.fullmatch(re.escape(relay.url) + r"/p/[A-Za-z0-9_-]+", line), line
        post = relay.wait_post(relay.anna["token"], line.rsplit("/", 1)[1])
        assert post["items"][0]["filename"] == path.name


def test_a_server_given_as_host_and_port_means_http(
    relay: RelayServer, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("no scheme\n")
    host_port = relay.url.removeprefix("http://")
    done = upload(
        env, str(tmp_path / "a.txt"), "--server", host_port, "--token", relay.anna["token"]
    )
    assert done.returncode == 0, done.stderr
    [url] = done.stdout.splitlines()
    assert url.startswith(relay.url + "/p/")


@pytest.mark.parametrize("server", ["ftp://127.0.0.1:8080", "http://", "smtp://relay"])
def test_a_server_that_is_not_a_url_says_what_is_needed(
    env: dict[str, str], tmp_path: Path, server: str
) -> None:
    (tmp_path / "a.txt").write_text("x")
    refused = upload(env, str(tmp_path / "a.txt"), "--server", server, "--token", "t")
    assert refused.returncode == 2
    assert "--server needs a URL like http://host:port" in refused.stderr
    assert "is `relay serve` running" not in refused.stderr
