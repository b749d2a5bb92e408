"""Captions (SRT → WebVTT, plain text only), Live Photo content identifiers, Motion Photo
splitting and the motion rendition, and which files sent together become one item."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from handlers import captions, motion
from handlers.companions import extra_renditions
from relay.errors import MediaError
from relay.model import Companion, HandlerInput, Kind
from relay.pairing import CAPTIONS, plan
from tests.clips import has_location, probe, stream, web_ready_mp4
from tests.phones import apple_maker_note, live_clip, live_still, motion_photo

CORPUS_PHOTO = Path("/work/shared/corpora/exif-orientation/Landscape_1.jpg")
ID = "1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9"

SRT = (
    "1\r\n00:00:01,000 --> 00:00:02,500\r\nHej och <i>välkommen</i>\r\n\r\n"
    "2\r\n00:00:03,000 --> 00:00:04,250\r\n<script>alert(1)</script> A --> B & <b>C</b>\r\n"
    "<img src=x onerror=alert(2)>\r\n\r\n"
)


def _vtt(tmp_path: Path, text: str | bytes, name: str = "talk.srt") -> str:
    source = tmp_path / name
    source.write_bytes(text.encode() if isinstance(text, str) else text)
    target = tmp_path / "out.vtt"
    captions.to_webvtt(source, target)
    return target.read_text(encoding="utf-8")


def test_srt_becomes_webvtt_with_dots_in_its_times(tmp_path: Path) -> None:
    vtt = _vtt(tmp_path, SRT)
    assert vtt.startswith("WEBVTT\n\n")
    assert "00:00:01.000 --> 00:00:02.500\nHej och välkommen\n" in vtt
    assert "00:00:03.000 --> 00:00:04.250\n" in vtt
    assert "," not in vtt.split("\n\n")[1].splitlines()[0]


def test_hostile_cue_text_is_only_text(tmp_path: Path) -> None:
    vtt = _vtt(tmp_path, SRT)
    cue = vtt.split("\n\n")[2]
    # No tag survives, nothing is left that a parser could read as one, and a cue's "-->"
    # cannot start a new timing line.
    assert "<" not in vtt and ">" not in vtt.replace("-->", "")
    assert cue.splitlines()[1:] == ["alert(1) A --&gt; B &amp; C"]
    assert vtt.count("-->") == 2


def test_webvtt_in_is_cleaned_too(tmp_path: Path) -> None:
    text = (
        "WEBVTT\n\nSTYLE\n::cue { color: red }\n\n"
        "00:01.000 --> 00:02.000 align:start\n<v Anna>Tjena &amp; <c.loud>hej</c>\n\n"
    )
    vtt = _vtt(tmp_path, text, "talk.vtt")
    assert vtt == "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nTjena &amp; hej\n"


def test_windows_1252_srt_is_read(tmp_path: Path) -> None:
    vtt = _vtt(tmp_path, "1\n00:00:01,000 --> 00:00:02,000\nÅsa på torget\n".encode("cp1252"))
    assert "Åsa på torget" in vtt


@pytest.mark.parametrize(
    "data",
    [b"not captions at all\n\njust text", b"\x00\x01\x02binary", b""],
    ids=["text", "binary", "empty"],
)
def test_what_is_not_captions_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MediaError) as caught:
        _vtt(tmp_path, data)
    assert caught.value.code == "media.captions_invalid"


def test_captions_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    cue = "1\n00:00:01,000 --> 00:00:02,000\n" + "x" * 500 + "\n\n"
    with pytest.raises(MediaError) as caught:
        _vtt(tmp_path, cue * (captions.MAX_BYTES // len(cue) + 1))
    assert caught.value.code == "media.captions_invalid"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("talk.srt", ("talk", None)),
        ("Talk.SV.srt", ("talk", "sv")),
        ("talk.en-gb.vtt", ("talk", "en-GB")),
        ("talk.final.srt", ("talk.final", None)),
        ("talk.mov.srt", ("talk", None)),
    ],
)
def test_a_captions_file_names_its_clip_and_language(
    name: str, expected: tuple[str, str | None]
) -> None:
    assert captions.base_and_language(name) == expected


def test_captions_fold_into_the_clip_of_the_same_name() -> None:
    files = [("talk.mp4", "a"), ("talk.sv.srt", "b"), ("other.srt", "c"), ("photo.jpg", "d")]
    entries = plan(files)
    assert [files[e.index][0] for e in entries] == ["talk.mp4", "other.srt", "photo.jpg"]
    assert json.loads(entries[0].companions_json() or "") == [
        {"role": CAPTIONS, "spool_name": "b", "filename": "talk.sv.srt", "lang": "sv"}
    ]
    assert not any(e.waits for e in entries)


def test_stills_and_movs_sent_together_wait_for_pairing() -> None:
    entries = plan([("IMG_1.HEIC", "a"), ("IMG_1.MOV", "b"), ("notes.pdf", "c")])
    assert [e.waits for e in entries] == [True, True, False]
    assert not any(e.waits for e in plan([("IMG_1.HEIC", "a"), ("clip.mp4", "b")]))


@pytest.mark.parametrize("fmt", ["HEIF", "JPEG"])
def test_the_still_s_content_identifier_is_read_from_the_apple_maker_note(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / "still"
    path.write_bytes(live_still(ID.lower(), fmt))
    assert motion.still_identifier(path) == ID
    path.write_bytes(live_still(None, fmt))
    assert motion.still_identifier(path) is None


def test_a_maker_note_that_is_not_apple_s_or_is_cut_says_nothing() -> None:
    note = apple_maker_note(ID)
    assert motion.apple_content_identifier(note) == ID
    assert motion.apple_content_identifier(b"Nikon\x00" + note[6:]) is None
    assert motion.apple_content_identifier(note[:30]) is None


def test_the_clip_s_content_identifier_is_read_with_ffprobe(tmp_path: Path) -> None:
    clip = live_clip(tmp_path / "IMG_1.MOV", ID)
    assert asyncio.run(motion.clip_identifier(clip, timeout=30, memory_bytes=2 << 30)) == ID
    bare = live_clip(tmp_path / "IMG_2.MOV", None)
    assert asyncio.run(motion.clip_identifier(bare, timeout=30, memory_bytes=2 << 30)) is None


@pytest.mark.parametrize("legacy", [False, True], ids=["container", "microvideo"])
def test_a_motion_photo_splits_into_its_jpeg_and_mp4(tmp_path: Path, legacy: bool) -> None:
    mp4 = web_ready_mp4(tmp_path / "clip.mp4").read_bytes()
    photo = motion_photo(CORPUS_PHOTO.read_bytes(), mp4, legacy=legacy)
    start = motion.embedded_clip_start(photo)
    assert start == len(photo) - len(mp4)
    source = tmp_path / "PXL_1.MP.jpg"
    source.write_bytes(photo)
    assert motion.split_motion_photo(source, tmp_path / "out.mp4")
    assert (tmp_path / "out.mp4").read_bytes() == mp4


def test_a_jpeg_whose_xmp_points_at_no_mp4_is_not_a_motion_photo(tmp_path: Path) -> None:
    jpeg = CORPUS_PHOTO.read_bytes()
    assert motion.embedded_clip_start(jpeg) is None
    lying = motion_photo(jpeg, b"\x00" * 4000)  # the XMP says a clip; the bytes are not one
    assert motion.embedded_clip_start(lying) is None
    too_long = motion_photo(jpeg, b"")[:-10]
    assert motion.embedded_clip_start(too_long) is None


def _job(tmp_path: Path, source: Path, mime: str, companions: list[Companion]) -> HandlerInput:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return HandlerInput(
        source=source, mime=mime, filename=source.name, workdir=workdir, companions=companions
    )


def test_a_live_photo_s_clip_becomes_a_silent_motion_rendition_without_location(
    tmp_path: Path,
) -> None:
    still = tmp_path / "IMG_1.HEIC"
    still.write_bytes(live_still(ID))
    clip = live_clip(tmp_path / "IMG_1.MOV", ID)
    assert has_location(probe(clip))
    job = _job(tmp_path, still, "image/heic", [Companion("motion", clip, clip.name)])
    [made], left_out = asyncio.run(extra_renditions(job, Kind.IMAGE))
    assert left_out == []
    assert (made.name, made.mime, made.width, made.height) == ("motion", "video/mp4", 480, 360)
    info = probe(made.path)
    assert stream(info, "video")["codec_name"] == "h264"
    assert not [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert not has_location(info)
    assert "com.apple.quicktime.content.identifier" not in (info["format"].get("tags") or {})


def test_a_clip_s_captions_become_a_text_vtt_rendition_in_their_language(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "talk.mp4")
    srt = tmp_path / "talk.srt"
    srt.write_text(SRT)
    job = _job(tmp_path, clip, "video/mp4", [Companion("captions", srt, srt.name, "sv")])
    [made], left_out = asyncio.run(extra_renditions(job, Kind.VIDEO))
    assert left_out == []
    assert (made.name, made.mime, made.lang) == ("captions", "text/vtt", "sv")
    assert made.path.read_text().startswith("WEBVTT")


def test_unreadable_captions_leave_the_clip_as_it_is_and_are_left_out(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "talk.mp4")
    bad = tmp_path / "talk.srt"
    bad.write_bytes(b"\x00not captions")
    companion = Companion("captions", bad, bad.name, "en")
    job = _job(tmp_path, clip, "video/mp4", [companion])
    assert asyncio.run(extra_renditions(job, Kind.VIDEO)) == ([], [companion])


def test_what_is_not_a_still_or_a_clip_has_no_identifier(tmp_path: Path) -> None:
    junk = tmp_path / "IMG_1.HEIC"
    junk.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100)
    assert motion.still_identifier(junk) is None
    assert asyncio.run(motion.clip_identifier(junk, timeout=30, memory_bytes=2 << 30)) is None


def test_one_track_per_language_and_a_second_is_left_out(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "talk.mp4")
    tracks = []
    for name, lang in (("talk.sv.srt", "sv"), ("talk.en.srt", "en"), ("talk.sv.vtt", "sv")):
        (tmp_path / name).write_text(SRT)
        tracks.append(Companion("captions", tmp_path / name, name, lang))
    job = _job(tmp_path, clip, "video/mp4", tracks)
    made, left_out = asyncio.run(extra_renditions(job, Kind.VIDEO))
    assert [r.lang for r in made] == ["sv", "en"]
    assert left_out == [tracks[2]]
