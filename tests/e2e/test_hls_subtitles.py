"""Captions in the HLS ladder through a real ``relay serve``: a clip uploaded with an SRT and a
WebVTT file gets a master playlist whose SUBTITLES group names both languages from every variant
stream; each language's subtitles playlist is a VOD playlist of one segment covering the clip,
and that segment is the page's own captions track, served as text/vtt. A private post's
subtitles playlists are as absent as its ladder."""

from __future__ import annotations

import math
from pathlib import Path

import httpx

from handlers.ladder import attributes
from tests.e2e.test_hls import clip_480p, get_playlist, player_playlist, variants
from tests.e2e.test_pairing import SRT, SRT_AS_VTT
from tests.server import RelayServer


def _upload(relay: RelayServer, tmp_path: Path, **fields: str) -> dict:
    clip = clip_480p(tmp_path)
    token = relay.anna["token"]  # type: ignore[attr-defined]
    files = [
        ("file", (clip.name, clip.read_bytes())),
        ("file", ("clip.sv.srt", SRT.encode())),
        ("file", ("clip.en.vtt", SRT_AS_VTT)),
    ]
    with relay.client(token) as client:
        response = client.post("/api/v1/uploads", files=files, data=fields)
    assert response.status_code == 202, response.text
    post = relay.wait_post(token, response.json()["id"], timeout=120)
    [item] = post["items"]
    assert item["status"] == "ready", item
    return post


def test_the_master_carries_the_clips_captions_as_webvtt_subtitles(
    relay: RelayServer, tmp_path: Path
) -> None:
    post = _upload(relay, tmp_path)
    [item] = post["items"]
    master = get_playlist(player_playlist(relay, post))
    subtitles = [
        attributes(line) for line in master if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")
    ]
    assert [(s["LANGUAGE"], s["NAME"], s["DEFAULT"]) for s in subtitles] == [
        ("sv", "svenska", "YES"),
        ("en", "English", "NO"),
    ]
    assert {s["GROUP-ID"] for s in subtitles} == {"subs"}
    assert all(s["AUTOSELECT"] == "YES" for s in subtitles)
    found = variants(master)
    assert len(found) == 2 and all(v["SUBTITLES"] == "subs" for v, _ in found)

    duration = max(r["duration"] or 0 for r in item["renditions"])
    assert 2.5 < duration < 3.5  # the clip is three seconds long
    for track in subtitles:
        lang = track["LANGUAGE"]
        assert track["URI"].startswith(f"{relay.url}/hls/")
        lines = get_playlist(track["URI"])
        assert f"#EXT-X-TARGETDURATION:{math.ceil(duration)}" in lines
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and lines[-1] == "#EXT-X-ENDLIST"
        [extinf] = [line for line in lines if line.startswith("#EXTINF:")]
        assert abs(float(extinf[len("#EXTINF:") :].rstrip(",")) - duration) < 0.01
        [segment] = [line for line in lines if line and not line.startswith("#")]
        assert segment == f"{relay.url}/p/{post['id']}/captions/{item['id']}/{lang}.vtt"
        vtt = httpx.get(segment)
        assert vtt.status_code == 200
        assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
        assert vtt.text.startswith("WEBVTT")
    sv = httpx.get(f"{relay.url}/p/{post['id']}/captions/{item['id']}/sv.vtt").text
    assert "Välkomna till kommunfullmäktige" in sv
    # A language the clip has no captions in has no playlist either.
    missing = subtitles[0]["URI"].replace("/sv.m3u8", "/de.m3u8")
    assert httpx.get(missing).status_code == 404


def test_a_clip_without_captions_has_no_subtitles_group(relay: RelayServer, tmp_path: Path) -> None:
    token = relay.anna["token"]  # type: ignore[attr-defined]
    clip = clip_480p(tmp_path)
    with relay.client(token) as client:
        response = client.post("/api/v1/uploads", files=[("file", (clip.name, clip.read_bytes()))])
    post = relay.wait_post(token, response.json()["id"], timeout=120)
    master = get_playlist(player_playlist(relay, post))
    assert not any("SUBTITLES" in line for line in master)
    [item] = post["items"]
    key = f"{post['id']}/{item['id']}/hls/subtitles/en.m3u8"
    assert httpx.get(f"{relay.url}/hls/{key}").status_code == 404


def test_a_private_posts_subtitles_playlists_are_not_served(
    relay: RelayServer, tmp_path: Path
) -> None:
    public = _upload(relay, tmp_path)
    private = _upload(relay, tmp_path, private="true")
    for post, status in ((public, 200), (private, 404)):
        [item] = post["items"]
        key = f"{post['id']}/{item['id']}/hls/subtitles/sv.m3u8"
        assert httpx.get(f"{relay.url}/hls/{key}").status_code == status
