"""Several nodes on one PostgreSQL database and one S3 bucket (moto's server mode over HTTP),
each ``relay serve`` with a data folder of its own, as an operator runs them.

Nothing acknowledged may live on one node only: a node killed mid-burst, its folder deleted,
and every post it answered ``250``/``202`` for still becomes ready through the other.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.contract.s3server import AWS_ENV, MotoS3
from tests.media import iphone_mail, phone_jpeg
from tests.receivers import webhook_receiver
from tests.server import RelayServer
from tests.tcpproxy import TcpProxy

StartRelay = Callable[..., RelayServer]
SECRET = "two-nodes-share-this-secret-key-0123456789"
LEASE = "4"
"""Seconds of a job's lease: how long the work of a dead node waits before another takes it."""


def _via(proxy: TcpProxy, url: str) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    target = urlparse(url)
    user = f"{target.username}@" if target.username else ""
    return target._replace(netloc=f"{user}127.0.0.1:{proxy.port}").geturl()


def _node_env(database: str, bucket: str, endpoint: str, **more: str) -> dict[str, str]:
    return {
        **AWS_ENV,
        "RELAY_DATABASE_URL": database,
        "RELAY_STORAGE_URL": f"s3://{bucket}/site",
        "RELAY_S3_ENDPOINT_URL": endpoint,
        "RELAY_SECRET_KEY": SECRET,
        "RELAY_JOB_LEASE_SECONDS": LEASE,
        "RELAY_ALLOW_PRIVATE_DESTINATIONS": "true",
        **more,
    }


def _mail(server: RelayServer, to: str, message: bytes) -> tuple[int, str]:
    """SMTP's answer to DATA (or 0 and the error when the connection failed)."""
    try:
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
            smtp.ehlo("phone.example.se")
            smtp.docmd("MAIL", "FROM:<anna@example.se>")
            smtp.docmd("RCPT", f"TO:<{to}>")
            code, reply = smtp.data(message)
            return code, reply.decode()
    except (OSError, smtplib.SMTPException) as exc:
        return 0, repr(exc)


def _queued(reply: str) -> str:
    return reply.rsplit("queued as ", 1)[1].strip()


def _upload(server: RelayServer, token: str, body: bytes) -> httpx.Response | None:
    try:
        with server.client(token) as client:
            return client.post("/api/v1/uploads", files={"file": ("IMG.jpg", body, "image/jpeg")})
    except httpx.HTTPError:
        return None


def _ready(server: RelayServer, token: str, post_id: str) -> dict[str, Any]:
    post = server.wait_post(token, post_id, timeout=180)
    assert post["items"], post  # a mail post with no items lost its message
    assert [item["status"] for item in post["items"]] == ["ready"] * len(post["items"]), post
    return post


def test_a_node_killed_mid_burst_and_its_folder_deleted_loses_nothing(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    env = _node_env(postgres, bucket, s3.endpoint)
    doomed = start_relay(tmp_path / "a", **env, RELAY_WORKERS="1")
    survivor = start_relay(tmp_path / "b", **env)
    anna = survivor.add_user("anna")
    token = anna["token"]
    photo = phone_jpeg(2400, 1800)
    acknowledged: list[tuple[str, str]] = []  # (node, post id)
    lock = threading.Lock()

    with webhook_receiver() as hook:
        survivor.add_destination("webhook", hook.url)

        def send(n: int) -> None:
            node = doomed if n % 2 else survivor
            if n % 4 < 2:
                code, reply = _mail(node, anna["address"], iphone_mail(anna["address"], photo))
                post_id = _queued(reply) if code == 250 else None
            else:
                response = _upload(node, token, photo)
                post_id = (
                    response.json()["id"] if response and response.status_code == 202 else None
                )
            if post_id is not None:
                with lock:
                    acknowledged.append(("a" if node is doomed else "b", post_id))

        with ThreadPoolExecutor(8) as senders:
            burst = [senders.submit(send, n) for n in range(48)]
            while sum(1 for node, _ in list(acknowledged) if node == "a") < 8:
                assert not all(f.done() for f in burst), "the burst ended before the kill"
                time.sleep(0.05)
            doomed.kill()  # SIGKILL, in the middle of the burst
            shutil.rmtree(doomed.data_dir)  # and its disk gone for good
            for sent in burst:
                sent.result()

        from_doomed = [post_id for node, post_id in acknowledged if node == "a"]
        assert len(from_doomed) >= 8
        for _, post_id in acknowledged:
            _ready(survivor, token, post_id)

        # Each post delivered once, whichever node ran its delivery (a retry after a kill
        # may repeat a request, under the same webhook-id: receivers drop the copy).
        deadline = time.monotonic() + 120
        for _, post_id in acknowledged:
            survivor.wait_delivery(token, post_id, timeout=max(1.0, deadline - time.monotonic()))
        published: dict[str, set[str]] = {}
        for request in hook.requests:
            body = json.loads(request.body)
            if body["type"] == "post.published":
                published.setdefault(body["post"]["id"], set()).add(request.headers["webhook-id"])
        # A post the killed node stored but never answered for is delivered too (its sender
        # saw no reply and sends again); what matters is that none is missing or doubled.
        assert {post_id for _, post_id in acknowledged} <= published.keys()
        assert {post_id: len(ids) for post_id, ids in published.items()} == {
            post_id: 1 for post_id in published
        }

    # The node comes back on an empty folder: a new node, with nothing missing.
    doomed.start()
    with doomed.client(token) as client:
        listed = client.get("/api/v1/posts").json()["posts"]
    assert {post["id"] for post in listed} >= {post_id for _, post_id in acknowledged}
    assert "Traceback" not in survivor.log.read_text()


def test_the_store_away_for_a_while_means_451_and_503_then_everything_goes_on(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    with TcpProxy(("127.0.0.1", s3.port)) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        node = start_relay(tmp_path / "a", **_node_env(postgres, bucket, endpoint))
        anna = node.add_user("anna")
        token = anna["token"]
        photo = phone_jpeg(1600, 1200)
        code, before = _mail(node, anna["address"], iphone_mail(anna["address"], photo))
        assert code == 250, before

        proxy.cut()
        code, refused = _mail(node, anna["address"], iphone_mail(anna["address"], photo))
        assert (code, refused[:5]) == (451, "4.3.0"), refused
        upload = _upload(node, token, photo)
        assert upload is not None and upload.status_code == 503, upload
        assert upload.json()["error"]["code"] == "storage.unavailable"
        assert int(upload.headers["Retry-After"]) > 0
        with node.client(token) as client:
            assert len(client.get("/api/v1/posts").json()["posts"]) == 1  # nothing half-taken

        proxy.restore()
        code, after = _mail(node, anna["address"], iphone_mail(anna["address"], photo))
        assert code == 250, after
        upload = _upload(node, token, photo)
        assert upload is not None and upload.status_code == 202, upload.text
        for post_id in (_queued(before), _queued(after), upload.json()["id"]):
            _ready(node, token, post_id)
        with node.client(token) as client:
            assert len(client.get("/api/v1/posts").json()["posts"]) == 3
    assert "Traceback" not in node.log.read_text()


def test_a_node_that_loses_its_database_for_a_moment_carries_on(
    start_relay: StartRelay, postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    target = urlparse(postgres)
    with TcpProxy((target.hostname or "127.0.0.1", target.port or 5432)) as proxy:
        steady = start_relay(tmp_path / "a", **_node_env(postgres, bucket, s3.endpoint))
        cut_off = start_relay(
            tmp_path / "b", **_node_env(_via(proxy, postgres), bucket, s3.endpoint)
        )
        token = steady.add_user("anna")["token"]
        photo = phone_jpeg(1600, 1200)
        first = _upload(cut_off, token, photo)
        assert first is not None and first.status_code == 202, first
        proxy.cut()
        during = _upload(cut_off, token, photo)
        assert during is not None and during.status_code == 503, during
        other = _upload(steady, token, photo)  # the other node never noticed
        assert other is not None and other.status_code == 202, other
        proxy.restore()
        again = _upload(cut_off, token, photo)
        assert again is not None and again.status_code == 202, again.text
        for response in (first, other, again):
            _ready(cut_off, token, response.json()["id"])


def test_roles_doors_on_one_node_processing_on_another_started_together(
    postgres: str, s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    """A doors-only node and a worker-only node, started at the same moment on an empty
    database: one migrates (the other waits on the lock), and the worker processes what the
    doors took."""
    env = _node_env(postgres, bucket, s3.endpoint)
    doors = RelayServer(tmp_path / "doors", **env)
    doors.command = ["serve", "--no-workers"]
    worker = RelayServer(tmp_path / "worker", **env)
    worker.command = ["worker"]
    smtp_less = RelayServer(tmp_path / "web", **env)
    smtp_less.command = ["serve", "--no-smtp", "--no-workers"]
    nodes = [doors, worker, smtp_less]
    try:
        with ThreadPoolExecutor(3) as starting:
            for started in [starting.submit(node.start) for node in nodes]:
                started.result()
        anna = doors.add_user("anna")
        code, reply = _mail(doors, anna["address"], iphone_mail(anna["address"], phone_jpeg()))
        assert code == 250, reply
        upload = _upload(smtp_less, anna["token"], phone_jpeg(1200, 900))
        assert upload is not None and upload.status_code == 202, upload
        for post_id in (_queued(reply), upload.json()["id"]):
            _ready(doors, anna["token"], post_id)
        assert _mail(smtp_less, anna["address"], b"Subject: x\r\n\r\nx\r\n")[0] == 0  # no door
        for node in nodes:
            assert "Traceback" not in node.log.read_text(), node.log.read_text()[-3000:]
    finally:
        for node in nodes:
            node.stop()


def test_a_node_refuses_a_database_a_newer_relay_migrated(tmp_path: Path) -> None:
    node = RelayServer(tmp_path / "node")
    node.start()
    node.stop()
    with sqlite3.connect(node.data_dir / "relay.db") as conn:
        conn.execute("UPDATE relay_schema_version SET version = version + 1")
    with pytest.raises(RuntimeError) as refused:
        node.start()
    said = str(refused.value)
    assert "newer than this relay" in said and "upgrade the relay" in said, said
    assert "Traceback" not in said, said
