"""Files that belong together, through a real ``relay serve``: a clip mailed with its SRT gets a
WebVTT captions track (served as ``text/vtt``, a ``<track>`` on the page); a Live Photo's HEIC
and MOV uploaded together become one item with a still and a motion clip; a Motion Photo JPEG
keeps its still and gains its clip; a still and a MOV that are not one Live Photo stay two."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx

from tests.clips import has_location, probe, stream, web_ready_mp4
from tests.contract.s3server import AWS_ENV, MotoS3
from tests.phones import live_clip, live_still, motion_photo
from tests.server import RelayServer

CORPUS_PHOTO = Path("/work/shared/corpora/exif-orientation/Landscape_1.jpg")
SRT = (
    "1\n00:00:00,100 --> 00:00:00,900\nVälkomna till <b>kommunfullmäktige</b>\n\n"
    '2\n00:00:01,000 --> 00:00:01,900\n<img src=x onerror="alert(1)">Nästa punkt\n\n'
)
SRT_AS_VTT = "WEBVTT\n\n00:01.000 --> 00:02.000\nHej &amp; välkommen\n".encode()


def _token(relay: RelayServer) -> str:
    return relay.anna["token"]  # type: ignore[attr-defined]


def _upload(relay: RelayServer, files: list[tuple[str, bytes]]) -> dict:
    with relay.client(_token(relay)) as client:
        response = client.post("/api/v1/uploads", files=[("file", f) for f in files])
    assert response.status_code == 202, response.text
    return relay.wait_post(_token(relay), response.json()["id"])


def _saved(tmp_path: Path, url: str, name: str) -> tuple[Path, httpx.Response]:
    response = httpx.get(url)
    assert response.status_code == 200
    path = tmp_path / name
    path.write_bytes(response.content)
    return path, response


def test_a_clip_mailed_with_its_srt_gets_a_captions_track(
    relay: RelayServer, tmp_path: Path
) -> None:
    clip = web_ready_mp4(tmp_path / "fullmakt.mp4", "320x240", 2)
    msg = EmailMessage()
    msg["From"] = "anna@example.se"
    msg["To"] = relay.anna["address"]  # type: ignore[attr-defined]
    msg["Subject"] = "Kommunfullmäktige"
    msg.set_content("Dagens möte.\n")
    msg.add_attachment(clip.read_bytes(), maintype="video", subtype="mp4", filename=clip.name)
    msg.add_attachment(
        SRT.encode(), maintype="application", subtype="x-subrip", filename="fullmakt.sv.srt"
    )
    post_id = relay.send_mail(relay.anna["address"], msg.as_bytes(policy=SMTP))  # type: ignore[attr-defined]
    post = relay.wait_post(_token(relay), post_id)

    [item] = post["items"]  # the SRT is part of the clip, not an item of its own
    assert (item["kind"], item["status"], item["filename"]) == ("video", "ready", clip.name)
    renditions = {r["name"]: r for r in item["renditions"]}
    captions = renditions["captions"]
    assert (captions["mime"], captions["lang"]) == ("text/vtt", "sv")
    served = httpx.get(captions["url"])
    assert served.headers["content-type"].startswith("text/vtt")
    assert served.text.startswith("WEBVTT\n\n00:00:00.100 --> 00:00:00.900\n")
    assert "Välkomna till kommunfullmäktige" in served.text and "<" not in served.text

    page = httpx.get(post["url"]).text
    [video] = re.findall(r"<video\b.*?</video>", page, re.S)
    [track] = re.findall(r"<track\b[^>]*>", video)
    assert 'kind="captions"' in track and 'srclang="sv"' in track and " default" in track
    assert 'label="svenska"' in track
    # The track is at the page's own origin, whatever the store (no CORS needed), as text/vtt.
    [src] = re.findall(r'src="([^"]+)"', track)
    assert src == f"{relay.url}/p/{post_id}/captions/{item['id']}/sv.vtt"
    from_page = httpx.get(src)
    assert from_page.headers["content-type"] == "text/vtt; charset=utf-8"
    assert from_page.text == served.text
    assert from_page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(src.replace("/sv.vtt", "/en.vtt")).status_code == 404


def test_captions_without_a_language_in_the_name_take_the_user_s(
    relay: RelayServer, tmp_path: Path
) -> None:
    clip = web_ready_mp4(tmp_path / "talk.mp4")
    post = _upload(relay, [(clip.name, clip.read_bytes()), ("talk.srt", SRT.encode())])
    [item] = post["items"]
    [captions] = [r for r in item["renditions"] if r["name"] == "captions"]
    assert captions["lang"] == "en"  # RELAY_DEFAULT_LANGUAGE: anna has chosen none


def test_captions_that_cannot_be_read_are_kept_as_a_file_of_their_own(
    relay: RelayServer, tmp_path: Path
) -> None:
    clip = web_ready_mp4(tmp_path / "broken.mp4")
    post = _upload(
        relay, [(clip.name, clip.read_bytes()), ("broken.srt", b"\x00\x01 not captions")]
    )
    video, kept = post["items"]
    assert (video["kind"], video["status"]) == ("video", "ready")
    assert "captions" not in {r["name"] for r in video["renditions"]}
    assert (kept["filename"], kept["status"]) == ("broken.srt", "ready")
    assert httpx.get(kept["original"]["url"]).content == b"\x00\x01 not captions"


def test_a_live_photo_pair_becomes_one_item_with_a_still_and_a_motion_clip(
    relay: RelayServer, tmp_path: Path
) -> None:
    identifier = "8C4B2A1D-77E0-4F0B-9C3A-2D5E6F708192"
    mov = live_clip(tmp_path / "IMG_4021.MOV", identifier)
    post = _upload(
        relay,
        [("IMG_4021.HEIC", live_still(identifier)), ("IMG_4021.MOV", mov.read_bytes())],
    )
    [item] = post["items"]
    assert (item["kind"], item["status"], item["filename"]) == ("image", "ready", "IMG_4021.HEIC")
    renditions = {r["name"]: r for r in item["renditions"]}
    assert {"large", "medium", "small", "motion"} <= set(renditions)
    motion = renditions["motion"]
    assert (motion["mime"], motion["width"], motion["height"]) == ("video/mp4", 480, 360)
    path, served = _saved(tmp_path, motion["url"], "motion.mp4")
    assert served.headers["content-type"] == "video/mp4"
    info = probe(path)
    assert stream(info, "video")["codec_name"] == "h264"
    assert stream(info, "audio") is None and not has_location(info)

    page = httpx.get(post["url"]).text
    assert re.search(r"<details class=\"live\"><summary[^>]*>Live</summary>", page)
    [video] = re.findall(r"<video class=\"motion\"[^>]*>", page)
    assert " muted" in video and " loop" in video and "autoplay" not in video
    assert f'src="{motion["url"]}"' in video and "<script" not in page


def test_a_still_and_a_mov_of_two_moments_stay_two_items(
    relay: RelayServer, tmp_path: Path
) -> None:
    mov = live_clip(tmp_path / "IMG_5000.MOV", "00000000-1111-2222-3333-444444444444")
    post = _upload(
        relay,
        [
            ("IMG_5001.HEIC", live_still("99999999-8888-7777-6666-555555555555")),
            ("IMG_5000.MOV", mov.read_bytes()),
        ],
    )
    still, clip = post["items"]
    assert (still["kind"], still["status"]) == ("image", "ready")
    assert "motion" not in {r["name"] for r in still["renditions"]}
    assert (clip["kind"], clip["status"], clip["filename"]) == ("video", "ready", "IMG_5000.MOV")


def test_a_motion_photo_keeps_its_still_and_gains_its_clip(
    relay: RelayServer, tmp_path: Path
) -> None:
    mp4 = web_ready_mp4(tmp_path / "inside.mp4", "320x240", 1, "-metadata",
                        "location=+59.3293+018.0686+012.000/")  # fmt: skip
    photo = motion_photo(CORPUS_PHOTO.read_bytes(), mp4.read_bytes())
    post = _upload(relay, [("PXL_20261207_101010.MP.jpg", photo)])
    [item] = post["items"]
    assert (item["kind"], item["status"]) == ("image", "ready")
    renditions = {r["name"]: r for r in item["renditions"]}
    assert {"large", "motion"} <= set(renditions)
    path, _ = _saved(tmp_path, renditions["motion"]["url"], "motion.mp4")
    info = probe(path)
    assert stream(info, "video")["codec_name"] == "h264"
    assert stream(info, "audio") is None and not has_location(info)
    # The served original is the still alone: the clip (and its location) is not in it.
    original = httpx.get(item["original"]["url"]).content
    assert b"ftyp" not in original and len(original) < len(photo) - len(mp4.read_bytes()) + 64


def test_a_live_photo_mailed_from_an_iphone_is_one_item(relay: RelayServer, tmp_path: Path) -> None:
    identifier = "F00DFACE-0000-4000-8000-000000000042"
    mov = live_clip(tmp_path / "IMG_0042.MOV", identifier)
    msg = EmailMessage()
    msg["From"] = "anna@example.se"
    msg["To"] = relay.anna["address"]  # type: ignore[attr-defined]
    msg["Subject"] = "Torget"
    msg.set_content("Skickat från min iPhone\n")
    msg.add_attachment(
        live_still(identifier, "JPEG"), maintype="image", subtype="jpeg", filename="IMG_0042.JPG"
    )
    msg.add_attachment(
        mov.read_bytes(), maintype="video", subtype="quicktime", filename="IMG_0042.MOV"
    )
    post_id = relay.send_mail(relay.anna["address"], msg.as_bytes(policy=SMTP))  # type: ignore[attr-defined]
    post = relay.wait_post(_token(relay), post_id)
    [item] = post["items"]
    assert (item["kind"], item["filename"]) == ("image", "IMG_0042.JPG")
    assert {"large", "motion"} <= {r["name"] for r in item["renditions"]}


def test_on_an_s3_store_the_track_is_still_served_from_the_page_s_origin(
    s3: MotoS3, bucket: str, start_relay: Callable[..., RelayServer], tmp_path: Path
) -> None:
    relay = start_relay(
        **AWS_ENV, RELAY_STORAGE_URL=f"s3://{bucket}/media", RELAY_S3_ENDPOINT_URL=s3.endpoint
    )
    anna = relay.add_user("anna")
    clip = web_ready_mp4(tmp_path / "talk.mp4")
    with relay.client(anna["token"]) as client:
        response = client.post(
            "/api/v1/uploads",
            files=[("file", (clip.name, clip.read_bytes())), ("file", ("talk.sv.vtt", SRT_AS_VTT))],
        )
    assert response.status_code == 202, response.text
    post = relay.wait_post(anna["token"], response.json()["id"])
    [item] = post["items"]
    [captions] = [r for r in item["renditions"] if r["name"] == "captions"]
    assert captions["url"].startswith(s3.endpoint)  # the API gives the bucket's link
    page = httpx.get(post["url"]).text
    [src] = re.findall(r'<track\b[^>]*\bsrc="([^"]+)"', page)
    assert src.startswith(relay.url + "/p/")
    served = httpx.get(src)
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/vtt")
    assert served.text == httpx.get(captions["url"]).text
    assert "00:00:01.000 --> 00:00:02.000\nHej &amp; välkommen" in served.text
