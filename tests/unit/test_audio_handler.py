"""AudioHandler: every kind of audio becomes an ``audio`` rendition (AAC .m4a, an MP3 stays MP3)
with its duration, without tags or cover art."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from handlers.audio import AudioHandler
from relay import detect
from relay.errors import LimitExceeded, MediaError
from relay.model import HandlerOutput, Kind, Limits
from tests.clips import (
    LOCATION,
    all_tags,
    amr_nb,
    faststart,
    ffmpeg,
    has_decoder,
    has_location,
    packet_hashes,
    probe,
    stream,
    tone,
)
from tests.handlers_support import run_handler

TAGS = ["-metadata", "title=Röstmemo", "-metadata", "artist=Anna Andersson"]


run = partial(run_handler, AudioHandler)


def the_audio(output: HandlerOutput) -> tuple:
    [rendition] = output.renditions
    assert rendition.name == "audio"
    info = probe(rendition.path)
    assert [s["codec_type"] for s in info["streams"]] == ["audio"]  # cover art is gone
    assert not {"title", "artist"} & {key.lower() for key in all_tags(info)}
    return rendition, info


def cover(tmp_path: Path) -> list[str]:
    """ffmpeg arguments that add a picture as a second input and keep both inputs' streams."""
    art = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.1", "-frames:v", "1", str(art))
    return ["-i", str(art), "-map", "0", "-map", "1"]


def test_an_mp3_stays_mp3_without_tags_or_cover_art(tmp_path: Path) -> None:
    clip = tmp_path / "song.mp3"
    ffmpeg(
        *tone(),
        *cover(tmp_path),
        "-c:a",
        "libmp3lame",
        "-c:v",
        "png",
        "-id3v2_version",
        "3",
        *TAGS,
        str(clip),
    )
    assert stream(probe(clip), "video") is not None and clip.read_bytes()[:3] == b"ID3"
    rendition, info = the_audio(run(clip))
    assert (rendition.mime, rendition.path.suffix) == ("audio/mpeg", ".mp3")
    assert rendition.duration == pytest.approx(1.0, abs=0.2)
    assert stream(info, "audio")["codec_name"] == "mp3"
    assert not rendition.path.read_bytes().startswith(b"ID3")
    assert packet_hashes(rendition.path, "a:0") == packet_hashes(clip, "a:0")  # not re-encoded


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("memo.wav", []),
        ("take.flac", ["-c:a", "flac"]),
        ("voice.ogg", ["-c:a", "libopus"]),
        ("note.aac", ["-c:a", "aac", "-f", "adts"]),
        ("memo.m4a", ["-c:a", "aac", "-ac", "1"]),
        ("take.aiff", []),
    ],
)
def test_other_audio_becomes_aac_m4a(tmp_path: Path, name: str, args: list[str]) -> None:
    clip = tmp_path / name
    ffmpeg(*tone(1, 48000), *args, *TAGS, str(clip))
    assert detect.kind_of(detect.sniff(clip)) is Kind.AUDIO, detect.sniff(clip)
    rendition, info = the_audio(run(clip))
    assert (rendition.mime, rendition.path.suffix) == ("audio/mp4", ".m4a")
    assert rendition.duration == pytest.approx(1.0, abs=0.2)
    assert stream(info, "audio")["codec_name"] == "aac"
    assert faststart(rendition.path)


def test_an_m4a_with_cover_art_loses_it(tmp_path: Path) -> None:
    clip = tmp_path / "podcast.m4a"
    ffmpeg(
        *tone(),
        *cover(tmp_path),
        "-c:a",
        "aac",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        *TAGS,
        str(clip),
    )
    rendition, _ = the_audio(run(clip))
    assert rendition.duration == pytest.approx(1.0, abs=0.2)


def test_an_amr_voice_note_becomes_m4a(tmp_path: Path) -> None:
    if not has_decoder("amrnb"):
        pytest.skip("this ffmpeg has no AMR-NB decoder")
    clip = amr_nb(tmp_path / "voice.amr", seconds=2)
    assert detect.sniff(clip) == "audio/amr"
    rendition, info = the_audio(run(clip))
    assert rendition.mime == "audio/mp4" and stream(info, "audio")["codec_name"] == "aac"
    assert rendition.duration == pytest.approx(2.0, abs=0.2)


def test_a_recording_with_a_location_is_served_without_it(tmp_path: Path) -> None:
    clip = tmp_path / "memo.m4a"
    ffmpeg(*tone(), "-c:a", "aac", "-metadata", f"location={LOCATION}", str(clip))
    assert has_location(probe(clip))
    output = run(clip)
    assert output.served_original is not None and output.served_original_mime == "audio/x-m4a"
    assert not has_location(probe(output.served_original))
    assert packet_hashes(output.served_original, "a:0") == packet_hashes(clip, "a:0")


def test_too_long_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "long.wav"
    ffmpeg(*tone(2, 8000), str(clip))
    with pytest.raises(LimitExceeded) as caught:
        run(clip, limits=Limits(max_duration=1))
    assert caught.value.code == "media.too_long"
    assert not any((tmp_path / "work-long.wav").iterdir())


def test_damaged_audio_is_corrupt(tmp_path: Path) -> None:
    clip = tmp_path / "cut.flac"
    clip.write_bytes(b"fLaC" + bytes(200))
    with pytest.raises(MediaError) as caught:
        run(clip, "audio/flac")
    assert caught.value.code == "media.corrupt"


def test_a_type_without_an_allowed_demuxer_is_unsupported(tmp_path: Path) -> None:
    clip = tmp_path / "list.m3u"
    clip.write_bytes(b"#EXTM3U\nfile:///etc/passwd\n")
    with pytest.raises(MediaError) as caught:
        run(clip, "audio/x-mpegurl")
    assert caught.value.code == "media.unsupported"
