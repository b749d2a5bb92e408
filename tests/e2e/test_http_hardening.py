"""The HTTP and tus doors under abuse and failure: malformed bodies, too many parts, guessed
tokens, quotas, a full disk and a lost database, each against a real ``relay serve``."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.server import RelayServer
from tests.tcpproxy import TcpProxy

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def multipart(boundary: str, *parts: bytes) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary.encode() + b"--\r\n"


def file_part(n: int, content: bytes = b"hello") -> bytes:
    return (
        f'Content-Disposition: form-data; name="file"; filename="f{n}.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + content


def post_multipart(client: httpx.Client, body: bytes, boundary: str = "b") -> httpx.Response:
    return client.post(
        "/api/v1/uploads",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def spooled(server: RelayServer) -> list[str]:
    ready = server.data_dir / "spool" / "ready"
    tmp = server.data_dir / "spool" / "tmp"
    return sorted(p.name for folder in (ready, tmp) for p in folder.iterdir())


# --- malformed multipart ------------------------------------------------------------------------


MALFORMED = {
    "part header without a colon": b'--b\r\nContent-Disposition form-data; name="file"\r\n\r\n'
    b"abc\r\n--b--\r\n",
    "part header over 8 KiB": b"--b\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\nabc\r\n--b--\r\n",
    "unknown charset": b'--b\r\nContent-Disposition: form-data; name="title"\r\n'
    b"Content-Type: text/plain; charset=nonesuch\r\n\r\nabc\r\n--b--\r\n",
    "body cut before its end": b'--b\r\nContent-Disposition: form-data; name="file"; '
    b'filename="x"\r\n\r\nabc',
    "no starting boundary": b"--c\r\n\r\nabc\r\n--c--\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_multipart_body_is_400_and_logs_no_traceback(
    relay: RelayServer, case: str
) -> None:
    before = relay.log.read_text()
    with relay.client(relay.anna["token"]) as client:
        response = post_multipart(client, MALFORMED[case])
        assert response.status_code == 400, response.text
        assert code(response) == "bad_request"
        assert client.get("/healthz").status_code == 200
    logged = relay.log.read_text()[len(before) :]
    assert "Traceback" not in logged and " ERROR " not in logged, logged


# --- parts and fields -----------------------------------------------------------------------------


def test_file_parts_past_the_cap_are_refused_before_any_item(start_relay) -> None:
    server = start_relay(RELAY_MAX_UPLOAD_PARTS="3", RELAY_WORKERS="0")
    token = server.add_user("anna")["token"]
    with server.client(token) as client:
        refused = post_multipart(client, multipart("b", *(file_part(n) for n in range(4))))
        assert refused.status_code == 413, refused.text
        assert code(refused) == "upload.too_many_parts"
        assert client.get("/api/v1/posts").json()["posts"] == []
        assert spooled(server) == []  # the three taken in before the fourth are gone again
        # Other parts do not get round the cap either (an empty flood of unknown fields).
        flood = multipart("b", *(b'Content-Disposition: form-data; name="x"\r\n\r\n',) * 40)
        assert code(post_multipart(client, flood)) == "upload.too_many_parts"
        accepted = post_multipart(client, multipart("b", *(file_part(n) for n in range(3))))
        assert accepted.status_code == 202, accepted.text
        assert len(accepted.json()["items"]) == 3


def test_an_urlencoded_field_over_the_field_limit_is_refused(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        before = len(client.get("/api/v1/posts").json()["posts"])
        refused = client.post("/api/v1/uploads", data={"title": "t", "text": "å" * 40_000})
        assert refused.status_code == 400, refused.text  # 80,000 bytes of UTF-8
        assert code(refused) == "bad_request"
        assert len(client.get("/api/v1/posts").json()["posts"]) == before
        fits = client.post("/api/v1/uploads", data={"title": "t", "text": "å" * 30_000})
        assert fits.status_code == 202, fits.text
        assert fits.json()["text"] == "å" * 30_000


# --- failed tokens -----------------------------------------------------------------------------


def test_failed_tokens_are_throttled_per_address_and_others_go_on(start_relay) -> None:
    server = start_relay(RELAY_AUTH_MAX_FAILURES="5", RELAY_AUTH_FAILURE_WINDOW_SECONDS="600")
    token = server.add_user("anna")["token"]
    guesser = httpx.Client(
        base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    )
    other = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        transport=httpx.HTTPTransport(local_address="127.0.0.3"),
    )
    with guesser, other:
        bad = {"Authorization": "Bearer rly_guess"}
        for n in range(4):
            response = guesser.get("/api/v1/posts", headers=bad)
            assert response.status_code == 401, (n, response.text)
        # The fifth guess goes through the tus door (its PATCH looks the token up itself).
        response = guesser.patch(
            "/api/v1/tus/whatever", headers={**STREAM, **bad, "Upload-Offset": "0"}
        )
        assert response.status_code == 401, response.text
        throttled = guesser.get("/api/v1/posts", headers=bad)
        assert throttled.status_code == 429, throttled.text
        assert code(throttled) == "auth.throttled"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 600
        # Throttled before the lookup: from that address even a good token learns nothing.
        good_there = guesser.get("/api/v1/posts", headers={"Authorization": f"Bearer {token}"})
        assert good_there.status_code == 429
        tus_there = guesser.post("/api/v1/tus/", headers={**TUS, **bad, "Upload-Length": "1"})
        assert tus_there.status_code == 429 and tus_there.headers["Tus-Resumable"] == "1.0.0"
        # Another address is not slowed: its good token works at once.
        assert other.get("/api/v1/posts").status_code == 200
        assert other.post("/api/v1/uploads", data={"title": "still here"}).status_code == 202


# --- tus quotas --------------------------------------------------------------------------------


def test_tus_open_uploads_and_reserved_bytes_have_a_quota_per_user(start_relay) -> None:
    server = start_relay(
        RELAY_TUS_MAX_OPEN_UPLOADS_PER_USER="3",
        RELAY_TUS_MAX_RESERVED_BYTES_PER_USER="1000",
        RELAY_MAX_UPLOAD_BYTES="600",
    )
    anna = server.add_user("anna")["token"]
    bo = server.add_user("bo")["token"]

    def create(client: httpx.Client, **headers: str) -> httpx.Response:
        return client.post("/api/v1/tus/", headers={**TUS, **headers})

    with server.client(anna) as client, server.client(bo) as other:
        first = create(client, **{"Upload-Length": "300"})
        assert first.status_code == 201, first.text
        assert create(client, **{"Upload-Length": "300"}).status_code == 201
        over_bytes = create(client, **{"Upload-Length": "500"})  # 600 + 500 > 1000
        assert over_bytes.status_code == 413, over_bytes.text
        assert code(over_bytes) == "tus.quota_exceeded"
        assert over_bytes.headers["Tus-Resumable"] == "1.0.0"
        # A deferred length reserves the most an upload may be (600): too much now.
        deferred = create(client, **{"Upload-Defer-Length": "1"})
        assert code(deferred) == "tus.quota_exceeded"
        assert create(client, **{"Upload-Length": "100"}).status_code == 201
        too_many = create(client, **{"Upload-Length": "1"})
        assert too_many.status_code == 429, too_many.text
        assert code(too_many) == "tus.too_many_uploads"
        # Another user has a quota of their own.
        assert create(other, **{"Upload-Length": "600"}).status_code == 201
        # A terminated upload and a finished one no longer count.
        url = first.headers["Location"]
        assert client.delete(url, headers=TUS).status_code == 204
        second = create(client, **{"Upload-Length": "5"})
        assert second.status_code == 201, second.text
        done = client.patch(
            second.headers["Location"], content=b"12345", headers={**STREAM, "Upload-Offset": "0"}
        )
        assert done.status_code == 204 and "Relay-Post-Id" in done.headers
        assert create(client, **{"Upload-Length": "300"}).status_code == 201


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs as the data folder: a disk that fills up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_507_storage_full_and_the_relay_recovers(
    start_relay, small_disk: Path, tmp_path: Path
) -> None:
    # The database lives elsewhere: this is the spool's disk filling up, not SQLite's.
    server = start_relay(
        data_dir=small_disk / "relay",
        RELAY_DATABASE_URL=f"sqlite:///{tmp_path / 'relay.db'}",
        RELAY_STORAGE_URL=f"file://{tmp_path / 'media'}",
        RELAY_WORKERS="0",
    )
    token = server.add_user("anna")["token"]
    big = os.urandom(6 << 20)
    with server.client(token) as client:
        full = client.post("/api/v1/uploads", files={"file": ("big.bin", big, "x/y")})
        assert full.status_code == 507, full.text
        assert code(full) == "storage.full"
        assert int(full.headers["Retry-After"]) > 0
        assert client.get("/api/v1/posts").json()["posts"] == []
        assert spooled(server) == []  # nothing half-written is left to keep the disk full
        created = client.post("/api/v1/tus/", headers={**TUS, "Upload-Length": str(len(big))})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        patched = client.patch(url, content=big, headers={**STREAM, "Upload-Offset": "0"})
        assert patched.status_code == 507, patched.text
        assert code(patched) == "storage.full"
        assert patched.headers["Tus-Resumable"] == "1.0.0"
        assert "Retry-After" in patched.headers
        # What was acknowledged (nothing) is what HEAD says, and the bytes past it are gone
        # from the disk: there is room for a small upload, and the tus upload goes on.
        assert client.head(url, headers=TUS).headers["Upload-Offset"] == "0"
        room = client.post("/api/v1/uploads", files={"file": ("a.txt", b"hej", "text/plain")})
        assert room.status_code == 202, room.text
        part = client.patch(url, content=big[:100_000], headers={**STREAM, "Upload-Offset": "0"})
        assert part.status_code == 204, part.text
        assert client.head(url, headers=TUS).headers["Upload-Offset"] == "100000"
        assert client.delete(url, headers=TUS).status_code == 204
        # Room again: the same relay takes uploads as before.
        small = client.post("/api/v1/uploads", files={"file": ("small.txt", b"hej", "text/plain")})
        assert small.status_code == 202, small.text
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]


# --- a lost database ----------------------------------------------------------------------------


def test_a_lost_database_is_503_server_unavailable_and_the_relay_recovers(
    start_relay, postgres_schema: tuple[str, str]
) -> None:
    base, schema = postgres_schema
    target = urlparse(base)
    with TcpProxy((target.hostname or "127.0.0.1", target.port or 5432)) as proxy:
        netloc = f"{target.username}@127.0.0.1:{proxy.port}" if target.username else None
        url = target._replace(netloc=netloc or f"127.0.0.1:{proxy.port}").geturl()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
        server = start_relay(RELAY_DATABASE_URL=url, RELAY_WORKERS="0")
        token = server.add_user("anna")["token"]
        with server.client(token) as client:
            assert client.post("/api/v1/uploads", data={"title": "före"}).status_code == 202
            proxy.cut()
            upload = client.post("/api/v1/uploads", files={"file": ("a.txt", b"hej", "text/plain")})
            assert upload.status_code == 503, upload.text
            assert code(upload) == "server.unavailable"
            assert int(upload.headers["Retry-After"]) > 0
            created = client.post("/api/v1/tus/", headers={**TUS, "Upload-Length": "3"})
            assert created.status_code == 503, created.text
            assert code(created) == "server.unavailable"
            assert created.headers["Tus-Resumable"] == "1.0.0"
            listed = client.get("/api/v1/posts")
            assert (listed.status_code, code(listed)) == (503, "server.unavailable")
            assert client.get("/healthz").status_code == 200  # up, and saying why it refuses
            proxy.restore()
            # Lost while the bytes stream in, after the token was checked: the post cannot be
            # committed, so the spooled bytes go and the client hears 503 (and sends again).
            spool_tmp = server.data_dir / "spool" / "tmp"

            def body() -> Iterator[bytes]:
                yield b"x" * (9 << 20)  # past what is staged in memory: a file in spool/tmp
                deadline = time.monotonic() + 30  # a guard against hanging, not a measure
                while not any(spool_tmp.iterdir()) and time.monotonic() < deadline:
                    time.sleep(0.05)
                proxy.cut()
                yield b"y" * (1 << 20)

            lost = client.post(
                "/api/v1/uploads",
                content=body(),
                headers={"Content-Type": "x/y", "Content-Disposition": "attachment; filename=a"},
            )
            assert lost.status_code == 503, lost.text
            assert code(lost) == "server.unavailable"
            assert spooled(server) == []
            proxy.restore()
            after = client.post("/api/v1/uploads", data={"title": "efter"})
            assert after.status_code == 202, after.text
            titles = [p["title"] for p in client.get("/api/v1/posts").json()["posts"]]
            assert titles == ["efter", "före"]
    # Said as 503s, not as tracebacks of failed requests (the background loops may log theirs).
    assert " failed\nTraceback" not in server.log.read_text()
