"""Loudness (EBU R128): audio the relay re-encodes comes out at -16 LUFS however loud or quiet it
went in, measured by ffmpeg's own ebur128 meter on the output; what was measured in the input is
on the rendition; silence, remuxed clips, a copied MP3 and the setting turned off are left as
they are."""

from __future__ import annotations

import re
import subprocess
from functools import partial
from pathlib import Path

import pytest

from handlers.audio import AudioHandler
from handlers.loudness import Measured, loudness_filter, parse
from handlers.video import VideoHandler
from tests.clips import ffmpeg, packet_hashes, picture, web_ready_mp4
from tests.handlers_support import run_handler

run_audio = partial(run_handler, AudioHandler)
run_video = partial(run_handler, VideoHandler)

TARGET = -16.0
QUIET_DB, LOUD_DB = -30, 12
"""ffmpeg's sine is -21.8 LUFS: these make it about -52 and -10 LUFS."""


def integrated(path: Path) -> float:
    """The integrated loudness ffmpeg's ebur128 meter gives the first audio stream, LUFS."""
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path)]
        + ["-map", "0:a:0", "-af", "ebur128", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stderr
    summary = log[log.rindex("Summary:") :]
    found = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    assert found is not None, summary
    return float(found.group(1))


def sine(volume_db: float, seconds: float = 4) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=44100,volume={volume_db}dB"]


def wav(path: Path, volume_db: float) -> Path:
    ffmpeg(*sine(volume_db), "-c:a", "pcm_s16le", str(path))
    return path


def webm(path: Path, volume_db: float) -> Path:
    """A clip the relay must transcode (VP9 + Opus), with a tone of the given volume."""
    ffmpeg(
        *picture("160x120", 4),
        *sine(volume_db),
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-c:a",
        "libopus",
        "-shortest",
        str(path),
    )
    return path


@pytest.mark.parametrize("volume_db", [QUIET_DB, LOUD_DB], ids=["quiet", "loud"])
def test_audio_comes_out_at_minus_16_lufs_with_its_input_loudness_recorded(
    tmp_path: Path, volume_db: float
) -> None:
    clip = wav(tmp_path / "memo.wav", volume_db)
    before = integrated(clip)
    [rendition] = run_audio(clip).renditions
    assert integrated(rendition.path) == pytest.approx(TARGET, abs=1.0)
    assert rendition.loudness is not None
    assert rendition.loudness["integrated_lufs"] == pytest.approx(before, abs=0.5)
    assert rendition.loudness["true_peak_dbtp"] < 0
    assert rendition.loudness["normalized_to_lufs"] == TARGET


@pytest.mark.parametrize("volume_db", [QUIET_DB, LOUD_DB], ids=["quiet", "loud"])
def test_a_transcoded_clip_comes_out_at_minus_16_lufs(tmp_path: Path, volume_db: float) -> None:
    clip = webm(tmp_path / "clip.webm", volume_db)
    before = integrated(clip)
    mp4 = next(r for r in run_video(clip).renditions if r.name == "mp4")
    assert integrated(mp4.path) == pytest.approx(TARGET, abs=1.0)
    assert mp4.loudness is not None
    assert mp4.loudness["integrated_lufs"] == pytest.approx(before, abs=0.5)
    assert mp4.loudness["normalized_to_lufs"] == TARGET


def true_peak(path: Path) -> float:
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path)]
        + ["-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stderr
    found = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", log[log.rindex("Summary:") :])
    assert found is not None
    return float(found.group(1))


def test_a_quiet_clip_with_loud_clicks_is_limited_not_clipped(tmp_path: Path) -> None:
    """One gain would take its clicks over full scale: loudnorm's limiter takes over, and the
    clicks stay under the true-peak target. (On clicks this sharp its dynamic mode lands below
    the target, -29 LUFS here, as the ffmpeg command line does on its own: quieter, never
    clipped.)"""
    clip = tmp_path / "clicks.wav"
    ffmpeg(
        "-f", "lavfi", "-i",
        "aevalsrc=0.01*sin(2*PI*440*t)+if(lt(mod(t\\,1)\\,0.002)\\,0.95\\,0):s=48000:d=6",
        "-c:a", "pcm_s16le", str(clip),
    )  # fmt: skip
    assert true_peak(clip) > -1 and integrated(clip) < TARGET - 6
    [rendition] = run_audio(clip).renditions
    assert true_peak(rendition.path) <= -1.0  # -1.5 dBTP wanted; AAC moves peaks a little
    assert integrated(rendition.path) <= TARGET + 1.0
    assert rendition.loudness is not None and rendition.loudness["true_peak_dbtp"] > -1


def test_the_target_is_a_setting(tmp_path: Path) -> None:
    clip = wav(tmp_path / "memo.wav", QUIET_DB)
    [rendition] = run_audio(clip, options={"audio_loudness_lufs": -23.0}).renditions
    assert integrated(rendition.path) == pytest.approx(-23.0, abs=1.0)
    assert rendition.loudness is not None and rendition.loudness["normalized_to_lufs"] == -23.0


def test_turned_off_loudness_is_left_alone_and_not_measured(tmp_path: Path) -> None:
    clip = wav(tmp_path / "memo.wav", QUIET_DB)
    [rendition] = run_audio(clip, options={"audio_loudness_lufs": None}).renditions
    assert integrated(rendition.path) == pytest.approx(integrated(clip), abs=1.0)
    assert rendition.loudness is None


def test_a_silent_track_is_encoded_as_it_is(tmp_path: Path) -> None:
    clip = tmp_path / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo:d=2", "-c:a", "pcm_s16le", str(clip))
    [rendition] = run_audio(clip).renditions
    assert rendition.duration == pytest.approx(2.0, abs=0.2)
    assert rendition.loudness == {
        "integrated_lufs": None,
        "true_peak_dbtp": None,
        "range_lu": 0.0,
        "normalized_to_lufs": None,
    }
    assert integrated(rendition.path) < -69  # still silence, not amplified noise


def test_a_silent_clip_is_transcoded_as_it_is(tmp_path: Path) -> None:
    clip = tmp_path / "silent.webm"
    ffmpeg(
        *picture("160x120", 2),
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=48000:cl=stereo:d=2",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-c:a",
        "libopus",
        "-shortest",
        str(clip),
    )
    mp4 = next(r for r in run_video(clip).renditions if r.name == "mp4")
    assert mp4.loudness is not None and mp4.loudness["integrated_lufs"] is None
    assert mp4.loudness["normalized_to_lufs"] is None


def test_a_remuxed_clip_is_measured_but_not_changed(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "phone.mp4", "320x240", 3)
    mp4 = next(r for r in run_video(clip).renditions if r.name == "mp4")
    assert packet_hashes(mp4.path, "a:0") == packet_hashes(clip, "a:0")  # copied, not re-encoded
    assert mp4.loudness is not None
    assert mp4.loudness["integrated_lufs"] == pytest.approx(integrated(clip), abs=0.5)
    assert mp4.loudness["normalized_to_lufs"] is None


def test_a_copied_mp3_is_measured_but_not_changed(tmp_path: Path) -> None:
    clip = tmp_path / "song.mp3"
    ffmpeg(*sine(LOUD_DB), "-c:a", "libmp3lame", str(clip))
    [rendition] = run_audio(clip).renditions
    assert packet_hashes(rendition.path, "a:0") == packet_hashes(clip, "a:0")
    assert rendition.loudness is not None
    assert rendition.loudness["integrated_lufs"] == pytest.approx(integrated(clip), abs=0.5)
    assert rendition.loudness["normalized_to_lufs"] is None


def test_loudness_filter_works_on_the_ffmpeg_command_line(tmp_path: Path) -> None:
    """The HLS ladder (or any other encode) applies the same measured gain with ``-af``."""
    clip = wav(tmp_path / "memo.wav", QUIET_DB)
    out = tmp_path / "out.m4a"
    [rendition] = run_audio(clip).renditions
    assert rendition.loudness is not None
    measured = Measured(
        integrated=rendition.loudness["integrated_lufs"],
        true_peak=rendition.loudness["true_peak_dbtp"],
        lra=rendition.loudness["range_lu"],
        threshold=rendition.loudness["integrated_lufs"] - 10,
    )
    # The channels are set, as every encode of the relay sets them: ffmpeg 5.1's loudnorm
    # passes on no channel layout of its own.
    ffmpeg("-i", str(clip), "-af", loudness_filter(measured), "-ac", "2", "-c:a", "aac", str(out))
    assert integrated(out) == pytest.approx(TARGET, abs=1.0)


SILENCE = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
    Threshold:   0.0 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold:   0.0 LUFS
    LRA low:     0.0 LUFS
    LRA high:    0.0 LUFS

  True peak:
    Peak:       -inf dBFS
"""


def test_meter_reports_of_silence_and_garbage_are_read_safely() -> None:
    silent = parse(SILENCE, TARGET)
    assert silent is not None and silent.silent
    assert loudness_filter(silent) == "aresample=48000"
    assert parse("no report at all", TARGET) is None
    assert parse(SILENCE.replace("-70.0", "loud"), TARGET) is None
