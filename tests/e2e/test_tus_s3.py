"""tus on shared storage: two ``relay serve`` nodes on one PostgreSQL database and one S3 bucket
(moto's server over real HTTP). An upload begun on one node goes on, ends or is terminated on the
other; its bytes are an S3 multipart upload (parts of 5 MiB, a shorter tail as its own object),
never on a node's disk; expiry aborts it."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.contract.s3server import AWS_ENV, MotoS3
from tests.server import RelayServer
from tests.tcpproxy import TcpProxy

PREFIX = "media"
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024

StartRelay = Callable[..., RelayServer]


def _nodes(
    start_relay: StartRelay, s3: MotoS3, bucket: str, postgres: str, **env: str
) -> tuple[RelayServer, RelayServer]:
    """Node A takes uploads only (no workers: the post's job then runs on B, whose local spool
    holds the finished upload); node B takes uploads and processes."""
    shared = {
        **AWS_ENV,
        "RELAY_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
        "RELAY_S3_ENDPOINT_URL": s3.endpoint,
        "RELAY_DATABASE_URL": postgres,
        **env,
    }
    first = start_relay(RELAY_WORKERS="0", **shared)
    second = start_relay(**shared)
    return first, second


def _multipart_uploads(s3: MotoS3, bucket: str) -> list[dict[str, Any]]:
    return list(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def _tus_objects(s3: MotoS3, bucket: str) -> list[str]:
    return [key for key in s3.list(bucket) if key.startswith(f"{PREFIX}/tus/")]


def _create(client: httpx.Client, length: int, filename: str) -> str:
    name = base64.b64encode(filename.encode()).decode()
    response = client.post(
        "/api/v1/tus/",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": f"filename {name}"},
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Location"])


def _patch(
    client: httpx.Client, url: str, offset: int, body: bytes, **headers: str
) -> httpx.Response:
    return client.patch(
        url, content=body, headers={**STREAM, "Upload-Offset": str(offset), **headers}
    )


def _on(server: RelayServer, url: str) -> str:
    """The upload's URL on ``server`` (both nodes name it with the same public URL)."""
    return server.url + httpx.URL(url).path


def test_an_upload_begun_on_one_node_is_finished_on_the_other(
    s3: MotoS3, bucket: str, postgres: str, start_relay: StartRelay
) -> None:
    first, second = _nodes(start_relay, s3, bucket, postgres)
    token = first.add_user("anna")["token"]
    data = os.urandom(12_000_000)
    cut = 7_000_000  # one full part of 5 MiB and a tail
    with first.client(token) as on_first, second.client(token) as on_second:
        url = _create(on_first, len(data), "inspelning.bin")
        begun = _patch(on_first, _on(first, url), 0, data[:cut])
        assert begun.status_code == 204, begun.text
        assert begun.headers["Upload-Offset"] == str(cut)

        # In the bucket, not on node A's disk: one 5 MiB part and the tail as its own object.
        [multipart] = _multipart_uploads(s3, bucket)
        listed = s3.client().list_parts(
            Bucket=bucket, Key=multipart["Key"], UploadId=multipart["UploadId"]
        )
        assert [part["Size"] for part in listed["Parts"]] == [5 * MIB]
        [tail] = _tus_objects(s3, bucket)
        assert s3.list(bucket)[tail]["ContentLength"] == cut - 5 * MIB
        assert not any((first.data_dir / "tus").iterdir())

        # A chunk that does not match its checksum is discarded, though a part of it (the tail
        # and the first bytes) reached the bucket: the offset stays.
        rest = data[cut:]
        wrong = base64.b64encode(hashlib.sha1(b"something else").digest()).decode()
        refused = _patch(
            on_first, _on(first, url), cut, rest, **{"Upload-Checksum": f"sha1 {wrong}"}
        )
        assert refused.status_code == 460, refused.text

        # Node B knows the offset at once, and takes the rest.
        head = on_second.head(_on(second, url), headers=TUS)
        assert head.status_code == 200, head.text
        assert head.headers["Upload-Offset"] == str(cut)
        right = base64.b64encode(hashlib.sha1(rest).digest()).decode()
        ended = _patch(
            on_second, _on(second, url), cut, rest, **{"Upload-Checksum": f"sha1 {right}"}
        )
        assert ended.status_code == 204, ended.text
        assert ended.headers["Upload-Offset"] == str(len(data))
        post_id = ended.headers["Relay-Post-Id"]
        # Both nodes then say it is finished, and lead to the post.
        again = on_first.head(_on(first, url), headers=TUS)
        assert again.headers["Upload-Offset"] == str(len(data))
        assert again.headers["Relay-Post-Id"] == post_id

    post = second.wait_post(token, post_id)
    [item] = post["items"]
    assert item["status"] == "ready", post
    original = httpx.get(item["original"]["url"], timeout=30)
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == hashlib.sha256(data).hexdigest()
    # Nothing of the upload is left in the bucket but the post's own objects.
    assert _multipart_uploads(s3, bucket) == []
    assert _tus_objects(s3, bucket) == []
    for node in (first, second):
        assert "Traceback" not in node.log.read_text(), node.log.read_text()[-3000:]


def test_a_finished_upload_goes_into_the_spool_inside_the_bucket(
    s3: MotoS3, bucket: str, postgres: str, start_relay: StartRelay
) -> None:
    """The node that takes the last byte neither fetches the upload nor sends it again: the
    spool's object is a copy made inside the store, and the node's disk holds none of it."""
    first, second = _nodes(start_relay, s3, bucket, postgres)
    token = first.add_user("anna")["token"]
    data = os.urandom(11 * MIB)
    with first.client(token) as on_first:
        url = _create(on_first, len(data), "lång.bin")
        ended = _patch(on_first, _on(first, url), 0, data)
        assert ended.status_code == 204, ended.text
        # Node A runs no workers: nothing of the upload's size is on its disk (it did not fetch
        # the completed object to send it into the spool again; node B may already have
        # processed the spooled copy, so the bucket is not looked at here).
        big = [f for f in first.data_dir.rglob("*") if f.is_file() and f.stat().st_size >= MIB]
        assert big == []
    post = second.wait_post(token, ended.headers["Relay-Post-Id"])
    [item] = post["items"]
    assert item["status"] == "ready", post
    assert item["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert _tus_objects(s3, bucket) == []


def test_a_delete_on_the_other_node_aborts_the_multipart_upload(
    s3: MotoS3, bucket: str, postgres: str, start_relay: StartRelay
) -> None:
    first, second = _nodes(start_relay, s3, bucket, postgres)
    token = first.add_user("anna")["token"]
    data = os.urandom(6 * MIB)
    with first.client(token) as on_first, second.client(token) as on_second:
        url = _create(on_first, 20 * MIB, "lång.bin")
        assert _patch(on_first, _on(first, url), 0, data).status_code == 204
        assert len(_multipart_uploads(s3, bucket)) == 1
        assert len(_tus_objects(s3, bucket)) == 1  # the 1 MiB tail

        # An empty upload needs no multipart upload (S3 has no empty one): a post at once.
        empty = on_second.post("/api/v1/tus/", headers={**TUS, "Upload-Length": "0"})
        assert empty.status_code == 201, empty.text
        assert empty.headers["Relay-Post-Id"]
        assert len(_multipart_uploads(s3, bucket)) == 1

        gone = on_second.delete(_on(second, url), headers=TUS)
        assert gone.status_code == 204, gone.text
        assert _multipart_uploads(s3, bucket) == []
        assert _tus_objects(s3, bucket) == []
        after = on_first.head(_on(first, url), headers=TUS)
        assert after.status_code == 410, after.text
        more = _patch(on_first, _on(first, url), len(data), b"x")
        assert more.status_code == 410, more.text


def test_an_expired_upload_is_aborted_in_the_bucket(
    s3: MotoS3, bucket: str, postgres: str, start_relay: StartRelay
) -> None:
    first, _ = _nodes(
        start_relay,
        s3,
        bucket,
        postgres,
        RELAY_TUS_EXPIRY_SECONDS="1",
        RELAY_TUS_CLEANUP_INTERVAL_SECONDS="0.2",
    )
    token = first.add_user("anna")["token"]
    with first.client(token) as client:
        # Created with its first bytes in one request: a part and a tail in the bucket.
        name = base64.b64encode(b"a.bin").decode()
        created = client.post(
            "/api/v1/tus/",
            content=os.urandom(6 * MIB),
            headers={
                **STREAM,
                "Upload-Length": str(8 * MIB),
                "Upload-Metadata": f"filename {name}",
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["Upload-Offset"] == str(6 * MIB)
        deadline = time.monotonic() + 60  # a guard against hanging, not a measure
        while (_multipart_uploads(s3, bucket) or _tus_objects(s3, bucket)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert _multipart_uploads(s3, bucket) == []
        assert _tus_objects(s3, bucket) == []
        gone = client.head(created.headers["Location"], headers=TUS)
        assert gone.status_code == 404, gone.text


def test_uploads_begun_before_the_store_became_s3(
    s3: MotoS3, bucket: str, postgres: str, start_relay: StartRelay, tmp_path: Path
) -> None:
    """One with bytes on the old node's disk is said to be expired (410: start again); one
    that had none yet goes on in the bucket."""
    local = start_relay(tmp_path / "local", RELAY_DATABASE_URL=postgres)
    token = local.add_user("anna")["token"]
    with local.client(token) as client:
        begun = _create(client, 6 * MIB, "a.bin")
        assert _patch(client, begun, 0, b"x" * 1000).status_code == 204
        empty = _create(client, 6 * MIB, "b.bin")
    local.stop()
    data = os.urandom(6 * MIB)
    node = start_relay(
        tmp_path / "s3",
        **AWS_ENV,
        RELAY_STORAGE_URL=f"s3://{bucket}/{PREFIX}",
        RELAY_S3_ENDPOINT_URL=s3.endpoint,
        RELAY_DATABASE_URL=postgres,
    )
    with node.client(token) as client:
        refused = _patch(client, _on(node, begun), 1000, b"y" * 1000)
        assert refused.status_code == 410, refused.text
        done = _patch(client, _on(node, empty), 0, data)
        assert done.status_code == 204, done.text
        post = node.wait_post(token, done.headers["Relay-Post-Id"])
    [item] = post["items"]
    original = httpx.get(item["original"]["url"], timeout=30)
    assert hashlib.sha256(original.content).digest() == hashlib.sha256(data).digest()
    assert _multipart_uploads(s3, bucket) == []


def test_a_lost_bucket_is_503_and_the_upload_goes_on_when_it_is_back(
    s3: MotoS3, bucket: str, start_relay: StartRelay
) -> None:
    with TcpProxy(("127.0.0.1", s3.port)) as proxy:
        node = start_relay(
            **AWS_ENV,
            RELAY_STORAGE_URL=f"s3://{bucket}/{PREFIX}",
            RELAY_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}",
        )
        token = node.add_user("anna")["token"]
        data = os.urandom(12 * MIB)
        half = 6 * MIB
        with node.client(token) as client:
            url = _create(client, len(data), "klipp.bin")
            assert _patch(client, url, 0, data[:half]).status_code == 204
            proxy.cut()
            lost = _patch(client, url, half, data[half:])
            assert lost.status_code == 503, lost.text
            assert lost.json()["error"]["code"] == "storage.unavailable"
            assert lost.headers["Tus-Resumable"] == "1.0.0"
            head = client.head(url, headers=TUS)
            assert head.headers["Upload-Offset"] == str(half)  # what was stored, no more
            proxy.restore()
            done = _patch(client, url, half, data[half:])
            assert done.status_code == 204, done.text
            post = node.wait_post(token, done.headers["Relay-Post-Id"])
        [item] = post["items"]
        original = httpx.get(item["original"]["url"], timeout=30)  # through the proxy
        assert hashlib.sha256(original.content).digest() == hashlib.sha256(data).digest()
