"""Workers outlive failures of their own database and store, and the relay says when it cannot
process media at all (no ffmpeg) instead of retrying for ever."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import uuid

from moto.server import ThreadedMotoServer

from tests.clips import web_ready_mp4
from tests.contract.s3server import AWS_ENV, moto_s3
from tests.media import phone_jpeg
from tests.server import RelayServer

# Every write that would put a job back in the queue, or start processing an item, fails as
# SQLite fails when the disk is full. Reads go on.
_DISK_FULL = """
CREATE TRIGGER full_items BEFORE UPDATE ON items WHEN NEW.status = 'processing'
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
CREATE TRIGGER full_jobs BEFORE UPDATE ON jobs WHEN NEW.status = 'queued'
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
"""


def _wait_for_log(server: RelayServer, text: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.log.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not {count}x in:\n{server.log.read_text()}"
        time.sleep(0.1)


def test_workers_survive_a_full_disk_and_go_on_when_it_clears(start_relay, tmp_path) -> None:
    server = start_relay(tmp_path / "node", RELAY_JOB_BACKOFF_CAP_SECONDS="1")
    anna = server.add_user("anna")
    database = sqlite3.connect(server.data_dir / "relay.db")
    database.executescript(_DISK_FULL)
    posts = [
        server.upload(anna["token"], file=(f"{n}.jpg", phone_jpeg(800, 600), "image/jpeg"))
        for n in range(3)
    ]
    # Both workers have met the full disk, twice each, recording the failure included.
    _wait_for_log(server, "database or disk is full", 6)
    with server.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"] == "ok"

    database.executescript("DROP TRIGGER full_items; DROP TRIGGER full_jobs;")  # space freed
    database.close()
    for post in posts:
        done = server.wait_post(anna["token"], post["id"])
        assert [i["status"] for i in done["items"]] == ["ready"]
    assert list((server.data_dir / "spool" / "ready").iterdir()) == []


def test_a_full_work_disk_is_waited_out_and_the_photo_is_not_called_damaged(
    start_relay, tmp_path, small_fs
) -> None:
    """libvips' write of a rendition fails with ENOSPC: the photo waits for space, however
    many tries that takes, and is processed once there is space; it is never \"corrupt\"."""
    work = small_fs(tmp_path / "node" / "work", "300k")
    server = start_relay(
        tmp_path / "node", RELAY_JOB_MAX_ATTEMPTS="2", RELAY_JOB_BACKOFF_CAP_SECONDS="1"
    )
    anna = server.add_user("anna")
    post = server.upload(anna["token"], file=("IMG_0001.jpg", phone_jpeg(), "image/jpeg"))
    _wait_for_log(server, "storage.full", 3)  # more tries than RELAY_JOB_MAX_ATTEMPTS
    with server.client(anna["token"]) as client:
        seen = client.get(f"/api/v1/posts/{post['id']}").json()
    assert [item["status"] for item in seen["items"]] != ["failed"], seen
    subprocess.run(["mount", "-o", "remount,size=64m", str(work)], check=True)
    done = server.wait_post(anna["token"], post["id"])
    assert [item["status"] for item in done["items"]] == ["ready"], done
    assert {r["name"] for r in done["items"][0]["renditions"]} >= {"large", "medium", "small"}


def test_an_object_store_outage_is_waited_out(start_relay, tmp_path) -> None:
    """The store goes away after the upload was taken (with S3 storage the door takes nothing
    while it is away): the node that processes it meets the outage at every try and waits,
    however many tries that makes, then finishes when the store is back."""
    with moto_s3() as s3:
        bucket = f"relay-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(bucket)
        env = {
            **AWS_ENV,
            "RELAY_STORAGE_URL": f"s3://{bucket}/media",
            "RELAY_S3_ENDPOINT_URL": s3.endpoint,
            # Two nodes on one database: SQLite's file does on one machine.
            "RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.db'}",
            "RELAY_SECRET_KEY": "outage-test-shared-secret-key",
            # The old give-up window: two tries at most a second apart.
            "RELAY_JOB_MAX_ATTEMPTS": "2",
            "RELAY_JOB_BACKOFF_CAP_SECONDS": "1",
        }
        doors = start_relay(tmp_path / "doors", **env, RELAY_WORKERS="0")
        worker = start_relay(tmp_path / "worker", **env)
        anna = doors.add_user("anna")
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGSTOP)  # not a job taken before the store goes
        try:
            post = doors.upload(
                anna["token"], file=("torget.jpg", phone_jpeg(800, 600), "image/jpeg")
            )
            s3._server.stop()
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
        # Five tries have met the store away: well past where the job used to be buried.
        _wait_for_log(worker, "waits: storage.unavailable", 5)
        with doors.client(anna["token"]) as client:
            item = client.get(f"/api/v1/posts/{post['id']}").json()["items"][0]
        assert item["status"] in ("queued", "processing"), item

        s3._server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3.port, verbose=False)
        s3._server.start()
        done = doors.wait_post(anna["token"], post["id"])
        assert [i["status"] for i in done["items"]] == ["ready"]
        assert any(key.endswith("/original.jpg") for key in s3.list(bucket))
        # The spooled upload goes once processed (its delete runs beside the worker).
        deadline = time.monotonic() + 30
        while any("/spool/" in key for key in s3.list(bucket)):
            assert time.monotonic() < deadline, list(s3.list(bucket))
            time.sleep(0.1)


def test_without_ffmpeg_clips_fail_at_once_with_a_clear_code(start_relay, tmp_path) -> None:
    clip = web_ready_mp4(tmp_path / "clip.mp4")  # made with the test machine's ffmpeg
    bare = tmp_path / "bin"  # a PATH without ffmpeg or ffprobe
    bare.mkdir()
    server = start_relay(tmp_path / "node", PATH=str(bare))
    anna = server.add_user("anna")
    post = server.upload(anna["token"], file=("clip.mp4", clip.read_bytes(), "video/mp4"))
    done = server.wait_post(anna["token"], post["id"])
    [item] = done["items"]
    assert item["status"] == "failed"
    assert item["error"]["code"] == "media.ffmpeg_missing"
    assert "install ffmpeg" in item["error"]["message"]
    assert item["original"]["sha256"]  # the bytes are kept
    log = server.log.read_text()
    assert log.count("ffmpeg and ffprobe not found on PATH") == 1
    assert "is not installed" not in log
