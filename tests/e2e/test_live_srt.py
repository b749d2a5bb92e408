"""Going live over SRT against a real ``relay serve``: ffmpeg plays the phone, sending a test
picture with its time burned in and a tone as MPEG-TS over SRT, as Larix or OBS would."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clips import probe, stream
from tests.e2e.test_live import (
    add_key,
    live_posts,
    one_recording,
    passed_through,
    pushing,
    segments,
    wait_for,
)
from tests.server import RelayServer


def sending(
    url: str, seconds: float, **codecs: str
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """The phone of tests/e2e/test_live.py, sending MPEG-TS over SRT."""
    return pushing(url, seconds, container="mpegts", **codecs)


@pytest.fixture
def live_relay(start_relay: Callable[..., RelayServer]) -> Callable[..., RelayServer]:
    def start(**env: str) -> RelayServer:
        relay = start_relay(**env)
        relay.anna = relay.add_user("anna")  # type: ignore[attr-defined]
        return relay

    return start


def refused(url: str) -> bytes:
    """What ffmpeg said when the relay refused it at connect (it must have been refused)."""
    with sending(url, 3) as sender:
        _, err = sender.communicate(timeout=30)
    assert sender.returncode != 0, err
    return err


def test_a_wrong_revoked_or_playing_caller_is_refused_at_connect(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay()
    key, other = add_key(relay), add_key(relay)
    srt = f"srt://127.0.0.1:{relay.srt_port}"
    assert key["srt_url"] == f"{srt}?streamid=#!::r={key['key']},m=publish"
    relay.cli("live", "key", "revoke", key["key"])
    for url in (
        f"{srt}?streamid=live_nosuchkey",  # the bare form, a wrong key
        f"{srt}?streamid=#!::r=live_nosuchkey,m=publish",
        key["srt_url"],  # revoked
        f"{srt}?streamid=#!::r={other['key']},m=request",  # a good key, but to play
        srt,  # no stream id at all
    ):
        # libsrt's rejection at the handshake: ffmpeg never gets a connection to send on.
        assert b"Input/output error" in refused(url)
    assert live_posts(relay, relay.anna["token"]) == []
    log = relay.log.read_text()
    assert key["key"] not in log and other["key"] not in log  # the secret is never logged
    assert relay.process is not None and relay.process.poll() is None  # the server stays up


def test_an_srt_broadcast_is_a_live_post_then_its_replay(
    live_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = live_relay()
    token = relay.anna["token"]
    key = add_key(relay, title="Over SRT")
    with sending(key["srt_url"], 8) as sender:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        assert (post["title"], post["text"]) == ("Over SRT", "Live now.")

        def listed() -> list[str]:
            return segments(relay, post["id"])

        first = wait_for(listed, 30, "no segment in the live playlist")
        grown = wait_for(lambda: len(listed()) > len(first) and listed(), 30)
        assert grown[: len(first)] == first and sender.poll() is None  # live, still sending
        passed_through(relay, post["id"], first[0], tmp_path)
        sender.wait(60)
        assert sender.returncode == 0

    def replayed() -> dict[str, Any] | None:
        found = relay.wait_post(token, post["id"], 120)
        return found if found["items"] and found["text"] != "Live now." else None

    final = wait_for(replayed, 120, "no replay")
    assert final["text"] == "Replay of a live broadcast."
    [item] = final["items"]
    assert (item["kind"], item["status"]) == ("video", "ready")
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    local = tmp_path / "replay.mp4"
    local.write_bytes(httpx.get(mp4["url"]).content)
    assert abs(float(probe(local)["format"]["duration"]) - 8.0) <= 1.0  # what was sent


def test_an_srt_sender_that_drops_and_comes_back_continues_the_same_post(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay(RELAY_LIVE_RECONNECT_GRACE_SECONDS="30")
    token = relay.anna["token"]
    key = add_key(relay)
    with sending(key["srt_url"], 60) as first:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        wait_for(lambda: len(segments(relay, post["id"])) >= 2, 30)
        first.send_signal(signal.SIGKILL)  # the phone lost its network: no goodbye
        first.wait(10)
    listed = len(segments(relay, post["id"]))
    # Back within the grace time (before libsrt even noticed the first one gone): the same
    # broadcast goes on, and ends when this sender does.
    with sending(key["srt_url"], 5) as second:
        wait_for(lambda: len(segments(relay, post["id"])) > listed, 30)
        second.wait(60)
        assert second.returncode == 0, second.stderr.read() if second.stderr else ""
    [again] = live_posts(relay, token)
    assert again["id"] == post["id"]
    # Both parts are in the one recording: two segments' worth, then five seconds.
    assert one_recording(relay, token, post["id"]) >= 4.0 + 4.0


def test_an_srt_stream_that_is_not_h264_aac_is_transcoded(
    live_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = live_relay()
    token = relay.anna["token"]
    key = add_key(relay)
    # MPEG-2 video and MPEG audio layer II: what broadcast encoders send in TS.
    with sending(key["srt_url"], 6, video="mpeg2video", audio="mp2") as sender:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        [name, *_] = wait_for(lambda: segments(relay, post["id"]), 30)
        (tmp_path / "s.ts").write_bytes(httpx.get(f"{relay.url}/live/{post['id']}/{name}").content)
        sender.wait(60)
    info = probe(tmp_path / "s.ts")
    assert stream(info, "video")["codec_name"] == "h264"  # type: ignore[index]
    assert stream(info, "audio")["codec_name"] == "aac"  # type: ignore[index]


def test_the_srt_address_is_null_with_the_srt_door_off(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay(RELAY_SRT_LISTEN="off")
    assert add_key(relay)["srt_url"] is None
    assert "SRT on" not in relay.log.read_text()


def test_the_web_app_shows_the_srt_address_with_its_qr_code(
    live_relay: Callable[..., RelayServer],
) -> None:
    import re
    import sys

    relay = live_relay()
    subprocess.run(
        [sys.executable, "-m", "relay", "user", "password", "anna"],
        env=relay.env, input="a good long password\n", text=True, check=True, timeout=60,
    )  # fmt: skip
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        csrf = client.get("/").cookies["relay_csrf"]
        signed = client.post(
            "/signin", data={"csrf_token": csrf, "name": "anna", "password": "a good long password"}
        )
        assert signed.status_code == 303, signed.text
        page = client.post("/settings/stream-keys", data={"csrf_token": csrf, "title": ""}).text
    [key] = re.findall(r'<code id="stream-key" class="secret">([^<]+)</code>', page)
    [url] = re.findall(r'<code id="srt-url" class="secret">([^<]+)</code>', page)
    assert url == f"srt://127.0.0.1:{relay.srt_port}?streamid=#!::r={key},m=publish"
    assert re.search(
        r'<img class="qr" src="data:image/svg\+xml;[^"]+" [^>]*alt="QR code of the SRT', page
    )
    # The address the page gave is a real one: a sender using it goes live.
    with sending(url, 3) as sender:
        wait_for(lambda: live_posts(relay, relay.anna["token"]), message="no live post")
        sender.wait(60)
    assert sender.returncode == 0


def test_one_broadcast_at_a_time_per_user_over_srt_too(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay()  # RELAY_LIVE_MAX_PER_USER: 1
    phone_key, camera_key = add_key(relay), add_key(relay)
    with sending(phone_key["srt_url"], 20) as first:
        wait_for(lambda: live_posts(relay, relay.anna["token"]), message="no live post")
        refused(camera_key["srt_url"])  # at connect: the user is live already
        assert first.poll() is None  # the first one goes on
    assert len(live_posts(relay, relay.anna["token"])) == 1


def test_an_srt_broadcast_over_its_length_is_ended_on_its_own_clock(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay(RELAY_LIVE_MAX_DURATION_SECONDS="3")
    token = relay.anna["token"]
    key = add_key(relay)
    with sending(key["srt_url"], 30) as sender:
        sender.wait(60)  # the relay hangs up long before 30 s
    [post] = live_posts(relay, token)

    def replayed() -> dict[str, Any] | None:
        found = relay.wait_post(token, post["id"], 120)
        return found if found["text"] != "Live now." else None

    final = wait_for(replayed, 120, "the post never said why it ended")
    assert final["text"] == (
        "Replay of a live broadcast. It was ended early: "
        "The broadcast reached the longest a broadcast may last."
    )
    mp4 = next(r for r in final["items"][0]["renditions"] if r["name"] == "mp4")
    assert abs(mp4["duration"] - 3.0) <= 1.0


def test_srt_keys_are_checked_on_postgresql_too(
    start_relay: Callable[..., RelayServer], postgres: str
) -> None:
    # libsrt's callback reads the key through the database's synchronous path, on its thread.
    relay = start_relay(RELAY_DATABASE_URL=postgres)
    token = relay.add_user("anna")["token"]
    key = add_key(relay)
    refused(f"srt://127.0.0.1:{relay.srt_port}?streamid=#!::r=live_nosuchkey,m=publish")
    assert live_posts(relay, token) == []
    with sending(key["srt_url"], 3) as sender:
        wait_for(lambda: live_posts(relay, token), message="no live post")
        sender.wait(60)
    assert sender.returncode == 0
