"""Workers outlive failures of their own database and store, and the relay says when it cannot
process media at all (no ffmpeg) instead of retrying for ever."""

from __future__ import annotations

import sqlite3
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


def test_an_object_store_outage_is_waited_out(start_relay, tmp_path) -> None:
    with moto_s3() as s3:
        bucket = f"relay-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(bucket)
        server = start_relay(
            tmp_path / "node",
            **AWS_ENV,
            RELAY_STORAGE_URL=f"s3://{bucket}/media",
            RELAY_S3_ENDPOINT_URL=s3.endpoint,
            # The old give-up window: two tries at most a second apart.
            RELAY_JOB_MAX_ATTEMPTS="2",
            RELAY_JOB_BACKOFF_CAP_SECONDS="1",
        )
        anna = server.add_user("anna")
        s3._server.stop()
        post = server.upload(anna["token"], file=("torget.jpg", phone_jpeg(800, 600), "image/jpeg"))
        # Five tries have met the store away: well past where the job used to be buried.
        _wait_for_log(server, "waits: storage.unavailable", 5)
        with server.client(anna["token"]) as client:
            item = client.get(f"/api/v1/posts/{post['id']}").json()["items"][0]
        assert item["status"] in ("queued", "processing"), item
        assert len(list((server.data_dir / "spool" / "ready").iterdir())) == 1

        s3._server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3.port, verbose=False)
        s3._server.start()
        done = server.wait_post(anna["token"], post["id"])
        assert [i["status"] for i in done["items"]] == ["ready"]
        assert list((server.data_dir / "spool" / "ready").iterdir()) == []
        assert any(key.endswith("/original.jpg") for key in s3.list(bucket))


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
