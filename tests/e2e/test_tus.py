"""tus 1.0.0 at /api/v1/tus/: raw HTTP for each status code, checksums, locking, expiry, and
tuspy interrupted and resumed by a new client."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.server import RelayServer

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def create(client: httpx.Client, length: int, **metadata: str) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if metadata:
        headers["Upload-Metadata"] = ",".join(f"{k} {b64(v)}" for k, v in metadata.items())
    response = client.post("/api/v1/tus/", headers=headers)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def patch(client: httpx.Client, url: str, offset: int, body: bytes, **headers: str):
    return client.patch(
        url, content=body, headers={**STREAM, "Upload-Offset": str(offset), **headers}
    )


def offset_of(client: httpx.Client, url: str) -> int:
    response = client.head(url, headers=TUS)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def written(server: RelayServer) -> float:
    """Bytes the server has written from tus bodies (its Prometheus counter)."""
    metrics = httpx.get(server.url + "/metrics").text
    found = re.search(r"^relay_tus_received_bytes_total ([0-9.e+]+)$", metrics, re.M)
    return float(found[1]) if found else 0.0


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_options_advertises_version_extensions_size_and_checksums(relay: RelayServer) -> None:
    response = httpx.options(relay.url + "/api/v1/tus/")  # no token, no Tus-Resumable
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert {"creation", "creation-with-upload", "termination", "checksum", "expiration"} <= (
        extensions
    )
    assert response.headers["Tus-Max-Size"] == "4294967296"
    assert {"sha1", "md5", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))
    preflight = httpx.options(
        relay.url + "/api/v1/tus/",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Upload-Offset" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Upload-Offset" in preflight.headers["Access-Control-Expose-Headers"]


def test_every_request_but_options_needs_tus_resumable(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        url = create(client, 10)
        for version in (None, "0.2.2"):
            headers = {"Tus-Resumable": version} if version else {}
            answers = [
                client.post("/api/v1/tus/", headers={**headers, "Upload-Length": "5"}),
                client.head(url, headers=headers),
                client.patch(
                    url,
                    content=b"x",
                    headers={
                        **headers,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": "0",
                    },
                ),
                client.delete(url, headers=headers),
            ]
            for response in answers:
                assert response.status_code == 412
                assert response.headers["Tus-Version"] == "1.0.0"
        assert offset_of(client, url) == 0  # not processed


def test_an_upload_becomes_a_post_with_its_metadata(relay: RelayServer) -> None:
    body = os.urandom(300_000)
    with relay.client(relay.anna["token"]) as client:
        url = create(
            client,
            len(body),
            filename="möte.bin",
            title="Protokoll",
            text="Från mötet",
            filetype="application/octet-stream",
        )
        assert url.startswith(relay.url + "/api/v1/tus/")
        head = client.head(url, headers=TUS)
        assert head.headers["Upload-Offset"] == "0"
        assert head.headers["Upload-Length"] == str(len(body))
        assert head.headers["Cache-Control"] == "no-store"
        assert head.headers["Tus-Resumable"] == "1.0.0"
        assert b64("Protokoll") in head.headers["Upload-Metadata"]
        first = patch(client, url, 0, body[:100_000])
        assert first.status_code == 204
        assert first.headers["Upload-Offset"] == "100000"
        expires = parsedate_to_datetime(first.headers["Upload-Expires"]).timestamp()
        assert 86000 < expires - time.time() < 86500  # RFC 7231 date, 24 h ahead by default
        assert "Relay-Post-Id" not in first.headers
        last = patch(client, url, 100_000, body[100_000:])
        assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(body))
        post_id = last.headers["Relay-Post-Id"]
        assert last.headers["Relay-Post-Url"] == f"{relay.url}/p/{post_id}"
        assert "Upload-Expires" not in last.headers
        repeated = patch(client, url, len(body), b"")  # as after a lost answer
        assert repeated.status_code == 204 and repeated.headers["Relay-Post-Id"] == post_id
        assert not (relay.data_dir / "tus" / url.rsplit("/", 1)[1]).exists()
        again = client.head(url, headers=TUS)  # findable by the upload URL
        assert again.headers["Relay-Post-Id"] == post_id
        info = client.get(url).json()
        assert (info["status"], info["post_id"], info["offset"]) == ("finished", post_id, len(body))
        assert info["metadata"]["filename"] == "möte.bin"
    post = relay.wait_post(relay.anna["token"], post_id)
    assert (post["title"], post["text"]) == ("Protokoll", "Från mötet")
    [item] = post["items"]
    assert item["filename"] == "möte.bin"
    assert item["original"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert httpx.get(item["original"]["url"]).content == body


def test_offset_mismatch_409_and_wrong_content_type_415(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        url = create(client, 100)
        assert patch(client, url, 0, b"a" * 40).status_code == 204
        stale = patch(client, url, 0, b"b" * 40)
        assert stale.status_code == 409 and code(stale) == "tus.offset_mismatch"
        ahead = patch(client, url, 60, b"b" * 40)
        assert ahead.status_code == 409
        wrong = client.patch(
            url,
            content=b"c" * 10,
            headers={**TUS, "Content-Type": "application/octet-stream", "Upload-Offset": "40"},
        )
        assert wrong.status_code == 415
        assert offset_of(client, url) == 40
        missing = client.patch(url, content=b"c", headers=STREAM)  # no Upload-Offset
        assert missing.status_code == 400


def test_checksums_verified_and_a_mismatch_is_discarded(relay: RelayServer) -> None:
    chunk = b"hello world"
    good = "sha1 " + base64.b64encode(hashlib.sha1(chunk).digest()).decode()
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"something else").digest()).decode()
    with relay.client(relay.anna["token"]) as client:
        url = create(client, 2 * len(chunk))
        ok = patch(client, url, 0, chunk, **{"Upload-Checksum": good})
        assert ok.status_code == 204 and ok.headers["Upload-Offset"] == str(len(chunk))
        mismatch = patch(client, url, len(chunk), b"HELLO WORLD", **{"Upload-Checksum": bad})
        assert mismatch.status_code == 460 and code(mismatch) == "tus.checksum_mismatch"
        assert offset_of(client, url) == len(chunk)  # the chunk was discarded
        unknown = patch(client, url, len(chunk), chunk, **{"Upload-Checksum": "crc32 AAAAAA=="})
        assert unknown.status_code == 400 and code(unknown) == "tus.checksum_unsupported"
        sha256 = "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        done = patch(client, url, len(chunk), chunk, **{"Upload-Checksum": sha256})
        assert done.status_code == 204 and "Relay-Post-Id" in done.headers
    post = relay.wait_post(relay.anna["token"], done.headers["Relay-Post-Id"])
    assert post["items"][0]["original"]["sha256"] == hashlib.sha256(chunk * 2).hexdigest()


def test_unknown_404_and_another_users_upload_is_404(relay: RelayServer) -> None:
    other = relay.add_user("cecilia")
    with relay.client(relay.anna["token"]) as client:
        url = create(client, 10)
        unknown = relay.url + "/api/v1/tus/doesnotexist"
        assert client.head(unknown, headers=TUS).status_code == 404
        assert patch(client, unknown, 0, b"x").status_code == 404
        assert client.delete(unknown, headers=TUS).status_code == 404
    with relay.client(other["token"]) as client:
        assert client.head(url, headers=TUS).status_code == 404
        assert code(patch(client, url, 0, b"x" * 10)) == "not_found"
        assert client.delete(url, headers=TUS).status_code == 404
        assert client.get(url).status_code == 404
    with relay.client(relay.anna["token"]) as client:
        assert offset_of(client, url) == 0
    no_token = httpx.head(url, headers=TUS)
    assert no_token.status_code == 401


def test_termination_then_410_and_the_file_is_gone(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        url = create(client, 100)
        assert patch(client, url, 0, b"x" * 30).status_code == 204
        upload_id = url.rsplit("/", 1)[1]
        assert (relay.data_dir / "tus" / upload_id).exists()
        assert client.delete(url, headers=TUS).status_code == 204
        assert not (relay.data_dir / "tus" / upload_id).exists()
        assert client.head(url, headers=TUS).status_code == 410
        gone = patch(client, url, 30, b"x")
        assert gone.status_code == 410 and code(gone) == "tus.terminated"


def test_creation_with_upload_and_deferred_length(relay: RelayServer) -> None:
    with relay.client(relay.anna["token"]) as client:
        whole = client.post(
            "/api/v1/tus/",
            content=b"all at once",
            headers={
                **STREAM,
                "Upload-Length": "11",
                "Upload-Metadata": f"filename {b64('once.txt')}",
            },
        )
        assert whole.status_code == 201 and whole.headers["Upload-Offset"] == "11"
        assert "Relay-Post-Id" in whole.headers
        partial = client.post(
            "/api/v1/tus/", content=b"first", headers={**STREAM, "Upload-Defer-Length": "1"}
        )
        assert partial.status_code == 201 and partial.headers["Upload-Offset"] == "5"
        url = partial.headers["Location"]
        assert client.head(url, headers=TUS).headers["Upload-Defer-Length"] == "1"
        last = patch(client, url, 5, b" second", **{"Upload-Length": "12"})
        assert last.status_code == 204 and "Relay-Post-Id" in last.headers
        overridden = client.post(  # X-HTTP-Method-Override for clients without PATCH
            url, headers={**TUS, "X-HTTP-Method-Override": "HEAD"}
        )
        assert overridden.headers["Upload-Offset"] == "12"
    post = relay.wait_post(relay.anna["token"], last.headers["Relay-Post-Id"])
    assert httpx.get(post["items"][0]["original"]["url"]).content == b"first second"


def test_too_large_413(start_relay) -> None:
    server = start_relay(RELAY_MAX_UPLOAD_BYTES="1000")
    anna = server.add_user("anna")
    assert httpx.options(server.url + "/api/v1/tus/").headers["Tus-Max-Size"] == "1000"
    with server.client(anna["token"]) as client:
        big = client.post("/api/v1/tus/", headers={**TUS, "Upload-Length": "1001"})
        assert big.status_code == 413 and code(big) == "upload.too_large"
        url = create(client, 100)
        over = patch(client, url, 0, b"x" * 101)
        assert over.status_code == 413 and code(over) == "tus.length_exceeded"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for _ in range(30):
                yield b"y" * 50

        deferred = client.post("/api/v1/tus/", headers={**TUS, "Upload-Defer-Length": "1"})
        streamed = client.patch(
            deferred.headers["Location"],
            content=chunks(),
            headers={**STREAM, "Upload-Offset": "0"},
        )
        assert streamed.status_code == 413
        assert offset_of(client, url) == 0


def _db_rows(server: RelayServer) -> list[tuple]:
    with sqlite3.connect(server.data_dir / "relay.db") as conn:
        return conn.execute("SELECT id FROM uploads").fetchall()


def test_an_expired_upload_is_410(start_relay) -> None:
    server = start_relay(RELAY_TUS_EXPIRY_SECONDS="1", RELAY_TUS_CLEANUP_INTERVAL_SECONDS="3600")
    anna = server.add_user("anna")
    with server.client(anna["token"]) as client:
        url = create(client, 100)
        time.sleep(1.2)
        gone = client.head(url, headers=TUS)
        assert gone.status_code == 410 and "Upload-Offset" not in gone.headers
        assert code(patch(client, url, 0, b"x")) == "tus.expired"


def test_expired_uploads_are_swept_file_and_row(start_relay) -> None:
    server = start_relay(RELAY_TUS_EXPIRY_SECONDS="1", RELAY_TUS_CLEANUP_INTERVAL_SECONDS="0.2")
    anna = server.add_user("anna")
    with server.client(anna["token"]) as client:
        url = create(client, 100)
        assert patch(client, url, 0, b"x" * 10).status_code == 204
        finished = client.post(
            "/api/v1/tus/", content=b"done", headers={**STREAM, "Upload-Length": "4"}
        )
        path = server.data_dir / "tus" / url.rsplit("/", 1)[1]
        assert path.exists() and len(_db_rows(server)) == 2
        deadline = time.monotonic() + 10
        while path.exists() or len(_db_rows(server)) != 1:
            assert time.monotonic() < deadline, "expired upload not swept"
            time.sleep(0.1)
        assert client.head(url, headers=TUS).status_code == 404
        # a finished upload does not expire: its URL still leads to the post
        kept = client.head(finished.headers["Location"], headers=TUS)
        assert kept.headers["Relay-Post-Id"] == finished.headers["Relay-Post-Id"]


def test_concurrent_patches_one_is_refused_423_never_interleaved(start_relay, tmp_path) -> None:
    """Node A streams slowly; a second PATCH on A (in-process lock) and one on node B (the
    database lease; same database and data folder) are refused at once."""
    data_dir = tmp_path / "shared"
    node_a = start_relay(data_dir=data_dir)
    anna = node_a.add_user("anna")
    node_b = start_relay(data_dir=data_dir)
    body = os.urandom(200_000)
    release = threading.Event()

    def slow() -> Iterator[bytes]:
        yield body[:50_000]
        release.wait(20)
        yield body[50_000:]

    with node_a.client(anna["token"]) as client:
        url = create(client, len(body))
        result: dict[str, httpx.Response] = {}
        first = threading.Thread(
            target=lambda: result.setdefault(
                "first",
                client.patch(
                    url,
                    content=slow(),
                    headers={**STREAM, "Upload-Offset": "0", "Content-Length": str(len(body))},
                ),
            )
        )
        first.start()
        try:
            deadline = time.monotonic() + 10
            while not client.get(url).json()["locked"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            same_node = patch(client, url, 0, b"z" * len(body))
            assert same_node.status_code == 423 and code(same_node) == "tus.locked"
            with node_b.client(anna["token"]) as other_node:
                across = patch(other_node, url.replace(node_a.url, node_b.url), 0, b"z" * 10)
                assert across.status_code == 423
                deleted = other_node.delete(url.replace(node_a.url, node_b.url), headers=TUS)
                assert deleted.status_code == 423
        finally:
            release.set()
            first.join(30)
        assert result["first"].status_code == 204, result["first"].text
        post_id = result["first"].headers["Relay-Post-Id"]
    post = node_a.wait_post(anna["token"], post_id)
    assert httpx.get(post["items"][0]["original"]["url"]).content == body


def test_a_node_keeps_the_lease_for_the_next_patch_and_other_nodes_wait_for_it(
    start_relay, tmp_path
) -> None:
    """After a PATCH the lease stays with its node a few seconds: the client's next PATCH there
    writes at once, a stranger cannot take it away, and another node gets 423 until it lapses.
    Bodies of several MiB are flushed to disk while they stream; every byte must land."""
    data_dir = tmp_path / "shared"
    node_a = start_relay(data_dir=data_dir)
    anna = node_a.add_user("anna")
    cecilia = node_a.add_user("cecilia")
    node_b = start_relay(data_dir=data_dir)
    body = os.urandom(9 * 1024 * 1024 + 5)
    first, second = 3 * 1024 * 1024 + 1, 7 * 1024 * 1024
    with node_a.client(anna["token"]) as client, node_b.client(anna["token"]) as other_node:
        url = create(client, len(body))
        url_b = url.replace(node_a.url, node_b.url)
        assert patch(client, url, 0, body[:first]).status_code == 204
        assert client.get(url).json()["locked"] is False  # to this node: go on
        with node_a.client(cecilia["token"]) as stranger:
            assert patch(stranger, url, first, b"x").status_code == 404
        assert patch(client, url, first, body[first:second]).status_code == 204
        refused = patch(other_node, url_b, second, body[second:])
        assert refused.status_code == 423 and code(refused) == "tus.locked"
        assert other_node.get(url_b).json()["locked"] is True
        deadline = time.monotonic() + 20
        while (last := patch(other_node, url_b, second, body[second:])).status_code == 423:
            assert time.monotonic() < deadline, "the kept lease never lapsed"
            time.sleep(0.25)
        assert last.status_code == 204, last.text
        post_id = last.headers["Relay-Post-Id"]
    post = node_b.wait_post(anna["token"], post_id)
    assert post["items"][0]["original"]["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_node_that_stops_gives_back_the_leases_it_kept(start_relay, tmp_path) -> None:
    data_dir = tmp_path / "shared"
    node_a = start_relay(data_dir=data_dir)
    anna = node_a.add_user("anna")
    node_b = start_relay(data_dir=data_dir)
    with node_a.client(anna["token"]) as client:
        url = create(client, 20)
        assert patch(client, url, 0, b"0123456789").status_code == 204
    node_a.stop()
    with node_b.client(anna["token"]) as other_node:
        rest = patch(other_node, url.replace(node_a.url, node_b.url), 10, b"abcdefghij")
        assert rest.status_code == 204, rest.text  # at once: no lease left to lapse


def test_tuspy_interrupted_then_resumed_by_a_new_client(relay: RelayServer, tmp_path: Path) -> None:
    from tusclient import client as tus_client
    from tusclient.storage.filestorage import FileStorage

    path = tmp_path / "clip.bin"
    body = os.urandom(3 * 1024 * 1024 + 123)
    path.write_bytes(body)
    chunk = 512 * 1024
    headers = {"Authorization": f"Bearer {relay.anna['token']}"}
    endpoint = relay.url + "/api/v1/tus/"

    storage = FileStorage(str(tmp_path / "tuspy.json"))
    first = tus_client.TusClient(endpoint, headers=headers).uploader(
        str(path),
        chunk_size=chunk,
        metadata={"filename": "clip.bin", "title": "Resumed"},
        store_url=True,
        url_storage=storage,
        upload_checksum=True,
    )
    first.upload(stop_at=3 * chunk)  # the "network drop": only three chunks went
    url = first.url
    storage.close()

    storage = FileStorage(str(tmp_path / "tuspy.json"))
    second = tus_client.TusClient(endpoint, headers=headers).uploader(
        str(path), chunk_size=chunk, store_url=True, url_storage=storage
    )
    assert second.url == url and second.offset == 3 * chunk  # resumed where the server stopped
    second.upload()
    storage.close()
    with relay.client(relay.anna["token"]) as client:
        head = client.head(url, headers=TUS)
    assert head.headers["Upload-Offset"] == str(len(body))
    post = relay.wait_post(relay.anna["token"], head.headers["Relay-Post-Id"])
    assert post["title"] == "Resumed"
    [item] = post["items"]
    assert item["original"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert httpx.get(item["original"]["url"]).content == body


@pytest.mark.parametrize("metadata", ["filename", "filename !!!", "a YQ==,a YQ=="])
def test_bad_metadata_is_400(relay: RelayServer, metadata: str) -> None:
    with relay.client(relay.anna["token"]) as client:
        response = client.post(
            "/api/v1/tus/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": metadata}
        )
    assert response.status_code == (201 if metadata == "filename" else 400)


@pytest.mark.parametrize("checksum", [False, True])
def test_a_patch_cut_off_keeps_what_arrived_unless_it_had_a_checksum(
    relay: RelayServer, checksum: bool
) -> None:
    """tus: the server stores as much as it can; a chunk that cannot be verified is discarded."""
    token = relay.anna["token"]
    with relay.client(token) as client:
        url = create(client, 100_000)
        extra = "Upload-Checksum: sha1 " + base64.b64encode(b"x" * 20).decode() + "\r\n"
        head = (
            f"PATCH {urlparse(url).path} HTTP/1.1\r\nHost: relay\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: 100000\r\n{extra if checksum else ''}\r\n"
        )
        before = written(relay)
        deadline = time.monotonic() + 10
        with socket.create_connection(("127.0.0.1", relay.http_port)) as sock:
            sock.sendall(head.encode() + b"x" * 30_000)
            while written(relay) - before < 30_000:  # in the server's hands, then cut off
                assert time.monotonic() < deadline, "the server did not take the bytes"
                time.sleep(0.02)
        while client.get(url).json()["locked"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert offset_of(client, url) == (0 if checksum else 30_000)
        rest = patch(client, url, offset_of(client, url), b"y" * (100_000 - offset_of(client, url)))
        assert rest.status_code == 204 and "Relay-Post-Id" in rest.headers


def test_a_crash_between_the_last_byte_and_the_post_is_finished_after_restart(
    start_relay,
) -> None:
    """The two states a crash can leave once the last byte's row is written: the file still
    under tus/, or already in the spool (which start-up recovery must then leave alone)."""
    server = start_relay()
    anna = server.add_user("anna")
    with server.client(anna["token"]) as client:
        urls = [create(client, 10, filename=f"{n}.txt") for n in range(2)]
        for url in urls:
            assert patch(client, url, 0, b"0123").status_code == 204
    server.stop()
    with sqlite3.connect(server.data_dir / "relay.db") as conn:
        for n, url in enumerate(urls):
            upload_id = url.rsplit("/", 1)[1]
            path = server.data_dir / "tus" / upload_id
            path.write_bytes(b"0123456789")
            conn.execute(
                "UPDATE uploads SET received = 10, spool_name = ? WHERE id = ?",
                (f"spool{n}", upload_id),
            )
            if n == 1:
                path.rename(server.data_dir / "spool" / "ready" / f"spool{n}")
    server.start()
    with server.client(anna["token"]) as client:
        for url in urls:
            head = client.head(url, headers=TUS)
            assert head.headers["Upload-Offset"] == "10", head.headers
            post = server.wait_post(anna["token"], head.headers["Relay-Post-Id"])
            assert httpx.get(post["items"][0]["original"]["url"]).content == b"0123456789"
