"""Going live against a real ``relay serve``: ffmpeg plays the phone, pushing a test picture
with its time burned in and a tone over RTMP, as Larix or OBS would."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clips import probe, stream
from tests.receivers import Receiver, webhook_receiver
from tests.server import RelayServer

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def phone(
    url: str,
    seconds: float,
    *,
    video: str = "libx264",
    audio: str = "aac",
    container: str = "flv",
) -> list[str]:
    """An ffmpeg command that pushes ``seconds`` of a 30 fps picture (its own clock burned in)
    and a tone to ``url`` in real time, H.264/AAC with a 2 s GOP as phone apps send: FLV for
    RTMP, ``container="mpegts"`` for SRT."""
    picture = "testsrc2=size=640x360:rate=30"
    if Path(FONT).exists():
        picture += f",drawtext=fontfile={FONT}:text='%{{pts\\:hms}}':fontsize=40:x=20:y=20"
    codecs = ["-c:v", video, "-g", "60", "-c:a", audio, "-ar", "44100"]
    if video == "libx264":
        codecs[2:2] = ["-preset", "veryfast", "-pix_fmt", "yuv420p"]
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", str(seconds), *codecs, "-f", container, url,
    ]  # fmt: skip


@contextmanager
def pushing(url: str, seconds: float, **codecs: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        phone(url, seconds, **codecs), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def add_key(relay: RelayServer, user: str = "anna", title: str = "") -> dict[str, Any]:
    args = ["live", "key", "add", "--user", user, "--json"]
    if title:
        args += ["--title", title]
    return json.loads(relay.cli(*args).stdout)


def wait_for(what: Callable[[], Any], timeout: float = 60, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, message or f"timed out waiting for {what}"
        time.sleep(0.2)


def live_posts(relay: RelayServer, token: str) -> list[dict[str, Any]]:
    with relay.client(token) as client:
        posts = client.get("/api/v1/posts").json()["posts"]
    return [p for p in posts if p.get("source") == "live"]


def segments(relay: RelayServer, post_id: str) -> list[str]:
    """The segments the broadcast's live playlist lists now (none before it is there)."""
    response = httpx.get(f"{relay.url}/live/{post_id}/index.m3u8")
    if response.status_code != 200:
        return []
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    return [line for line in response.text.splitlines() if line and not line.startswith("#")]


def passed_through(relay: RelayServer, post_id: str, segment: str, tmp_path: Path) -> dict:
    """The ffprobe of a live segment, which is the phone's H.264/AAC as it was sent."""
    answer = httpx.get(f"{relay.url}/live/{post_id}/{segment}")
    assert answer.headers["content-type"] == "video/mp2t"
    (tmp_path / "s.ts").write_bytes(answer.content)
    info = probe(tmp_path / "s.ts")
    assert stream(info, "video")["codec_name"] == "h264"  # type: ignore[index]
    assert stream(info, "video")["width"] == 640  # type: ignore[index]
    assert stream(info, "audio")["codec_name"] == "aac"  # type: ignore[index]
    return info


def one_recording(relay: RelayServer, token: str, post_id: str) -> float:
    """A broadcast that dropped and came back ended once, in one replay: its duration."""
    final = wait_for(
        lambda: (p := relay.wait_post(token, post_id, 120))["items"] and p, 120, "no replay"
    )
    [item] = final["items"]
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    with relay.client(token) as client:
        events = client.get(f"/api/v1/posts/{post_id}/events").json()["events"]
    assert [e["kind"] for e in events].count("live_ended") == 1
    return float(mp4["duration"])


def hooks_of(receiver: Receiver, kind: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in list(receiver.requests)]
    return [b for b in bodies if b["type"] == kind]


@pytest.fixture
def live_relay(start_relay: Callable[..., RelayServer]) -> Callable[..., RelayServer]:
    def start(**env: str) -> RelayServer:
        relay = start_relay(RELAY_ALLOW_PRIVATE_DESTINATIONS="true", **env)
        relay.anna = relay.add_user("anna")  # type: ignore[attr-defined]
        return relay

    return start


def test_a_wrong_or_revoked_key_is_refused_at_publish(live_relay: Callable[..., RelayServer]):
    relay = live_relay()
    key = add_key(relay)
    assert key["rtmp_url"] == f"rtmp://127.0.0.1:{relay.rtmp_port}/live/{key['key']}"
    listed = json.loads(relay.cli("live", "key", "list", "--user", "anna", "--json").stdout)
    assert [k["hint"] for k in listed["keys"]] == [key["key"][:9]]
    assert key["key"] not in json.dumps(listed)  # only a hint is kept
    relay.cli("live", "key", "revoke", key["key"])
    wrong = f"rtmp://127.0.0.1:{relay.rtmp_port}/live/live_nosuchkey"
    for url in (wrong, key["rtmp_url"]):
        with pushing(url, 5) as sender:
            _, err = sender.communicate(timeout=30)
        assert sender.returncode != 0
        assert b"The stream key is wrong or revoked." in err, err
    assert live_posts(relay, relay.anna["token"]) == []
    assert key["key"] not in relay.log.read_text()  # the secret is never logged
    assert relay.process is not None and relay.process.poll() is None  # the server stays up


def test_a_broadcast_is_a_live_post_then_its_replay(
    live_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = live_relay()
    token = relay.anna["token"]
    key = add_key(relay, title="From the harbour")
    with webhook_receiver() as receiver:
        relay.add_destination("webhook", receiver.url)
        with pushing(key["rtmp_url"], 10) as sender:
            [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
            assert (post["title"], post["text"]) == ("From the harbour", "Live now.")
            page = httpx.get(post["url"]).text
            playlist_url = f"{relay.url}/live/{post['id']}/index.m3u8"
            assert f'data-hls="{playlist_url}"' in page and "Live now" in page
            assert "/static/player.js" in page  # hls.js where the browser lacks HLS

            def listed() -> list[str]:
                return segments(relay, post["id"])

            first = wait_for(listed, 30, "no segment in the live playlist")
            grown = wait_for(lambda: len(listed()) > len(first) and listed(), 30)
            assert grown[: len(first)] == first and sender.poll() is None  # live, still sending
            info = passed_through(relay, post["id"], first[0], tmp_path)
            assert 1.5 <= float(info["format"]["duration"]) <= 2.6  # 2 s segments
            # The live post goes to the channels while the broadcast runs.
            [published] = wait_for(lambda: hooks_of(receiver, "post.published"), 30)
            assert published["post"]["id"] == post["id"] and sender.poll() is None
            sender.wait(60)
            assert sender.returncode == 0

        [updated] = wait_for(lambda: hooks_of(receiver, "post.updated"), 120, "no replay")
    replay = updated["post"]
    assert replay["text"] == "Replay of a live broadcast."
    [item] = replay["items"]
    assert (item["kind"], item["status"]) == ("video", "ready")
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    assert abs(mp4["duration"] - 10.0) <= 1.0  # what was sent, into the archive
    assert any(r["name"] == "poster" for r in item["renditions"])
    local = tmp_path / "replay.mp4"
    local.write_bytes(httpx.get(mp4["url"]).content)
    assert abs(float(probe(local)["format"]["duration"]) - 10.0) <= 1.0
    page = httpx.get(replay["url"]).text
    assert "index.m3u8" not in page and mp4["url"] in page  # the page is the replay now


def test_a_sender_that_drops_and_comes_back_continues_the_same_post(
    live_relay: Callable[..., RelayServer],
) -> None:
    relay = live_relay(RELAY_LIVE_RECONNECT_GRACE_SECONDS="30")
    token = relay.anna["token"]
    key = add_key(relay)
    with pushing(key["rtmp_url"], 60) as first:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        wait_for(lambda: len(segments(relay, post["id"])) >= 2, 30)
        first.send_signal(signal.SIGKILL)  # the phone lost its network: no goodbye
        first.wait(10)
    listed = len(segments(relay, post["id"]))
    with pushing(key["rtmp_url"], 60) as second:
        # Back within the grace time: the same broadcast goes on.
        wait_for(lambda: len(segments(relay, post["id"])) > listed, 30)
        # On another network before the old connection timed out: the new one takes over.
        with pushing(key["rtmp_url"], 4) as third:
            assert second.wait(30) != 0  # the relay closed the old connection
            third.wait(60)
            assert third.returncode == 0, third.stderr.read() if third.stderr else ""
    [again] = live_posts(relay, token)
    assert again["id"] == post["id"]
    # All three parts are in the one recording: two segments' worth, more, then four seconds.
    assert one_recording(relay, token, post["id"]) >= 4.0 + 4.0


@pytest.mark.parametrize(
    ("env", "reason", "seconds"),
    [
        (
            {"RELAY_LIVE_MAX_DURATION_SECONDS": "4"},
            "The broadcast reached the longest a broadcast may last.",
            4.0,
        ),
        # The sender's ~1 Mbit/s against a limit of 100 kbit/s: judged after 3 s of media.
        (
            {"RELAY_LIVE_MAX_BITRATE": "100000"},
            "The broadcast sent more bits a second than allowed.",
            3.0,
        ),
    ],
)
def test_a_broadcast_over_its_limit_is_ended_with_the_reason_on_the_post(
    live_relay: Callable[..., RelayServer], env: dict[str, str], reason: str, seconds: float
) -> None:
    relay = live_relay(**env)
    token = relay.anna["token"]
    key = add_key(relay)
    with pushing(key["rtmp_url"], 30) as sender:
        sender.wait(60)  # the relay hangs up long before 30 s
    [post] = live_posts(relay, token)

    def replayed() -> dict[str, Any] | None:
        found = relay.wait_post(token, post["id"], 120)
        return found if found["text"] != "Live now." else None

    final = wait_for(replayed, 120, "the post never said why it ended")
    assert final["text"] == f"Replay of a live broadcast. It was ended early: {reason}"
    mp4 = next(r for r in final["items"][0]["renditions"] if r["name"] == "mp4")
    assert abs(mp4["duration"] - seconds) <= 1.0


def test_one_broadcast_at_a_time_per_user(live_relay: Callable[..., RelayServer]) -> None:
    relay = live_relay()  # RELAY_LIVE_MAX_PER_USER: 1
    phone_key, camera_key = add_key(relay), add_key(relay)
    with pushing(phone_key["rtmp_url"], 20) as first:
        wait_for(lambda: live_posts(relay, relay.anna["token"]), message="no live post")
        with pushing(camera_key["rtmp_url"], 5) as second:
            _, err = second.communicate(timeout=30)
        assert second.returncode != 0
        assert b"Too many broadcasts are live at once; try again later." in err, err
        assert first.poll() is None  # the first one goes on
    assert len(live_posts(relay, relay.anna["token"])) == 1


def test_a_stream_that_is_not_h264_aac_is_transcoded(
    live_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = live_relay()
    token = relay.anna["token"]
    key = add_key(relay)
    # Sorenson Spark and MP3: what old Flash-era senders push.
    with pushing(key["rtmp_url"], 8, video="flv", audio="libmp3lame") as sender:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        [name, *_] = wait_for(lambda: segments(relay, post["id"]), 30)
        (tmp_path / "s.ts").write_bytes(httpx.get(f"{relay.url}/live/{post['id']}/{name}").content)
        sender.wait(60)
    info = probe(tmp_path / "s.ts")
    assert stream(info, "video")["codec_name"] == "h264"  # type: ignore[index]
    assert stream(info, "audio")["codec_name"] == "aac"  # type: ignore[index]


def test_nginx_rtmp_on_publish_asks_the_relay(live_relay: Callable[..., RelayServer]) -> None:
    relay = live_relay()
    key = add_key(relay)
    form = {"call": "publish", "app": "live", "addr": "192.0.2.7", "name": key["key"]}
    assert httpx.post(f"{relay.url}/api/v1/live/on_publish", data=form).status_code == 200
    refused = httpx.post(f"{relay.url}/api/v1/live/on_publish", data={**form, "name": "nope"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "live.bad_key"
    relay.cli("live", "key", "revoke", key["key"])
    assert httpx.post(f"{relay.url}/api/v1/live/on_publish", data=form).status_code == 403
    done = httpx.post(f"{relay.url}/api/v1/live/on_publish_done", data=form)
    assert done.status_code == 200
    assert key["key"] not in relay.log.read_text()


def test_stream_keys_in_the_web_apps_settings(live_relay: Callable[..., RelayServer]) -> None:
    import subprocess as sp
    import sys

    relay = live_relay()
    sp.run(
        [sys.executable, "-m", "relay", "user", "password", "anna"],
        env=relay.env, input="a good long password\n", text=True, check=True, timeout=60,
    )  # fmt: skip
    with httpx.Client(base_url=relay.url, timeout=30) as client:
        csrf = client.get("/").cookies["relay_csrf"]
        signed = client.post(
            "/signin", data={"csrf_token": csrf, "name": "anna", "password": "a good long password"}
        )
        assert signed.status_code == 303, signed.text
        assert "You have no stream key." in client.get("/settings").text
        forged = client.post("/settings/stream-keys", data={"title": "x"})
        assert forged.status_code == 403  # no CSRF token, no key
        made = client.post(
            "/settings/stream-keys", data={"csrf_token": csrf, "title": "<b>Harbour</b> cam"}
        )
        assert made.status_code == 200
        page = made.text
        [url] = re.findall(r'<code id="rtmp-url" class="secret">([^<]+)</code>', page)
        [key] = re.findall(r'<code id="stream-key" class="secret">([^<]+)</code>', page)
        assert url == f"rtmp://127.0.0.1:{relay.rtmp_port}/live/{key}"
        assert re.search(r'<img class="qr" src="data:image/svg\+xml;[^"]+" [^>]*alt="[^"]+"', page)
        assert "&lt;b&gt;Harbour&lt;/b&gt; cam" in page and "<b>Harbour" not in page
        # The key the page gave is a real one: nginx-rtmp's callback takes it.
        on_publish = f"{relay.url}/api/v1/live/on_publish"
        assert httpx.post(on_publish, data={"name": key}).status_code == 200
        settings = client.get("/settings").text
        assert key not in settings and key[:9] in settings  # listed by its hint only
        [key_id] = re.findall(r'href="/settings/stream-keys/([a-z0-9]+)/revoke"', settings)
        question = client.get(f"/settings/stream-keys/{key_id}/revoke")
        assert question.status_code == 200 and key[:9] in question.text
        revoked = client.post(f"/settings/stream-keys/{key_id}/revoke", data={"csrf_token": csrf})
        assert revoked.status_code == 303
        assert httpx.post(on_publish, data={"name": key}).status_code == 403
        assert "You have no stream key." in client.get("/settings").text


def test_a_relay_killed_mid_broadcast_keeps_the_recording(
    start_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = start_relay(tmp_path / "node")
    token = relay.add_user("anna")["token"]
    key = add_key(relay)
    with pushing(key["rtmp_url"], 60) as sender:
        [post] = wait_for(lambda: live_posts(relay, token), message="no live post")
        wait_for(lambda: len(segments(relay, post["id"])) >= 2, 30)
        relay.kill()  # kill -9: no goodbye to anyone
        sender.wait(30)
    again = start_relay(tmp_path / "node")  # the same data folder, started again

    def replayed() -> dict[str, Any] | None:
        found = again.wait_post(token, post["id"], 120)
        return found if found["items"] and found["text"] != "Live now." else None

    final = wait_for(replayed, 120, "the recording was lost")
    assert final["text"] == (
        "Replay of a live broadcast. It was ended early: "
        "The relay stopped during the broadcast; the recording up to then is kept."
    )
    [item] = final["items"]
    assert item["status"] == "ready", item
    mp4 = next(r for r in item["renditions"] if r["name"] == "mp4")
    assert mp4["duration"] >= 3.0  # at least the two segments seen live
    assert not list((tmp_path / "node" / "live").glob("*/*/recording.flv"))


def test_senders_that_never_say_publish_are_bounded(
    live_relay: Callable[..., RelayServer],
) -> None:
    import socket

    relay = live_relay()
    token = relay.anna["token"]
    idle = [socket.create_connection(("127.0.0.1", relay.rtmp_port), 5) for _ in range(20)]
    try:
        with socket.create_connection(("127.0.0.1", relay.rtmp_port), 5) as one_more:
            one_more.settimeout(5)
            assert one_more.recv(1) == b""  # closed at once, not left to time out
        # Half a handshake, then silence: cut off after the hello time.
        idle[0].sendall(b"\x03" + bytes(100))
        idle[0].settimeout(30)
        assert idle[0].recv(1) == b""
    finally:
        for each in idle:
            each.close()
    key = add_key(relay)
    with pushing(key["rtmp_url"], 3) as sender:  # the door takes senders again
        sender.wait(60)
        assert sender.returncode == 0
    assert len(live_posts(relay, token)) == 1
