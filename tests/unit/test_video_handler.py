"""VideoHandler on clips made on the spot: remux or transcode, rotation, metadata, poster,
limits, damaged input, playlist tricks, and how ffmpeg itself is run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from handlers import ffmpeg as av
from handlers.video import VideoHandler, fit, transcode_args
from relay import detect
from relay.errors import LimitExceeded, MediaError
from relay.model import HandlerInput, HandlerOutput, Kind, Limits
from tests.clips import (
    LOCATION,
    PASSWD_MARK,
    amr_nb,
    faststart,
    ffconcat_list,
    ffmpeg,
    has_encoder,
    has_location,
    hls_playlist,
    packet_hashes,
    picture,
    probe,
    rotated,
    rotation,
    stream,
    tone,
    web_ready_mp4,
)
from tests.handlers_support import run_handler

FORBIDDEN_DEMUXERS = {"hls", "applehttp", "concat", "image2", "image2pipe", "lavfi", "tee"}


def assert_safe(args: list[str]) -> None:
    """Each input is a local file, read only with an allowlisted demuxer."""
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    assert inputs, args
    start = 0
    for i in inputs:
        options = args[start:i]
        assert "-protocol_whitelist" in options, args
        assert options[options.index("-protocol_whitelist") + 1] == "file,pipe", args
        assert "-f" in options, args
        demuxer = options[len(options) - 1 - options[::-1].index("-f") + 1]
        assert demuxer in av.ALLOWED_DEMUXERS and demuxer not in FORBIDDEN_DEMUXERS, args
        assert args[i + 1].startswith("file:/"), args
        start = i + 2


@pytest.fixture(autouse=True)
def every_run_is_safe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Records every ffmpeg/ffprobe argv the handler runs in a test, and checks each one."""
    seen: list[list[str]] = []
    real = av._execute

    async def recording(args: list[str], **kwargs):  # noqa: ANN003, ANN202
        seen.append(list(args))
        return await real(args, **kwargs)

    monkeypatch.setattr(av, "_execute", recording)
    yield seen
    for args in seen:
        assert_safe(args)


run = partial(run_handler, VideoHandler)


def by_name(output: HandlerOutput) -> dict:
    return {r.name: r for r in output.renditions}


def check_playable(output: HandlerOutput, width: int, height: int, duration: float) -> dict:
    """The common promise: H.264 yuv420p in an MP4 with the index in front, no metadata."""
    renditions = by_name(output)
    mp4 = renditions["mp4"]
    assert (mp4.mime, mp4.width, mp4.height) == ("video/mp4", width, height)
    assert mp4.duration == pytest.approx(duration, abs=0.2)
    info = probe(mp4.path)
    video = stream(info, "video")
    assert video is not None and video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert faststart(mp4.path)
    assert [s["codec_type"] for s in info["streams"]] in (["video"], ["video", "audio"])
    assert not has_location(info)
    poster = renditions["poster"]
    assert (poster.mime, poster.width, poster.height) == ("image/jpeg", width, height)
    with Image.open(poster.path) as image:
        assert image.format == "JPEG" and image.size == (width, height)
    return info


def transcoded_audio_ok(info: dict) -> None:
    audio = stream(info, "audio")
    assert audio is not None
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)


# --- remux or transcode ----------------------------------------------------------------------


def test_a_web_ready_mp4_is_remuxed_with_its_bitstream_unchanged(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "ready.mp4")
    assert not faststart(clip)
    output = run(clip)
    info = check_playable(output, 320, 240, 1.0)
    mp4 = by_name(output)["mp4"].path
    assert packet_hashes(mp4) == packet_hashes(clip)
    assert packet_hashes(mp4, "a:0") == packet_hashes(clip, "a:0")
    assert stream(info, "video")["profile"] == stream(probe(clip), "video")["profile"] == "High"
    assert output.served_original is None  # nothing in it says where it was made


def test_a_portrait_phone_clip_keeps_its_rotation_and_reports_upright_size(
    tmp_path: Path,
) -> None:
    clip = rotated(web_ready_mp4(tmp_path / "land.mp4", "320x180"), tmp_path / "phone.mov")
    output = run(clip)
    info = check_playable(output, 180, 320, 1.0)
    assert rotation(info) in (90, 270)  # remuxed: players turn it with the display matrix
    assert packet_hashes(by_name(output)["mp4"].path) == packet_hashes(clip)


@pytest.mark.skipif(not has_encoder("libx265"), reason="this ffmpeg has no libx265 encoder")
def test_a_rotated_hevc_mov_is_transcoded_upright(tmp_path: Path) -> None:
    hevc = tmp_path / "hevc.mov"
    ffmpeg(
        *picture("320x180"),
        *tone(),
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=none",
        "-tag:v",
        "hvc1",
        "-c:a",
        "aac",
        "-shortest",
        str(tmp_path / "flat.mov"),
    )
    rotated(tmp_path / "flat.mov", hevc)
    assert rotation(probe(hevc)) in (90, 270)
    output = run(hevc)
    info = check_playable(output, 180, 320, 1.0)
    assert rotation(info) == 0  # the pixels themselves are upright now
    assert (stream(info, "video")["width"], stream(info, "video")["height"]) == (180, 320)
    transcoded_audio_ok(info)
    with Image.open(by_name(output)["poster"].path) as poster:
        assert poster.height > poster.width


@pytest.mark.parametrize(
    ("name", "args", "mime"),
    [
        (
            "vp9.webm",
            [*picture(), *tone(), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"],
            "video/webm",
        ),
        ("mpeg4.avi", [*picture(), *tone(), "-c:v", "mpeg4", "-c:a", "libmp3lame"], None),
        ("ts.ts", [*picture(), *tone(), "-c:v", "libx264", "-c:a", "aac", "-f", "mpegts"], None),
        (
            "mpeg2.mpg",
            [*picture(), *tone(), "-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"],
            None,
        ),
    ],
)
def test_other_clips_are_transcoded(tmp_path: Path, name: str, args: list[str], mime) -> None:
    clip = tmp_path / name
    ffmpeg(*args, "-shortest", str(clip))
    sniffed = detect.sniff(clip)
    assert detect.kind_of(sniffed) is Kind.VIDEO, sniffed
    info = check_playable(run(clip, mime), 320, 240, 1.0)
    transcoded_audio_ok(info)


def test_an_mjpeg_avi_with_odd_dimensions_gets_even_ones(tmp_path: Path) -> None:
    clip = tmp_path / "camera.avi"
    ffmpeg(*picture("321x241"), "-c:v", "mjpeg", "-q:v", "5", str(clip))
    assert detect.sniff(clip) == "video/x-msvideo"
    info = check_playable(run(clip), 320, 240, 1.0)
    assert stream(info, "audio") is None


def test_an_old_phone_3gp_with_h263_and_amr_becomes_playable(tmp_path: Path) -> None:
    if not has_encoder("h263"):
        pytest.skip("this ffmpeg has no h263 encoder")
    clip = tmp_path / "old.3gp"
    ffmpeg(
        *picture("176x144"),
        "-f",
        "amr",
        "-i",
        str(amr_nb(tmp_path / "voice.amr")),
        "-c:v",
        "h263",
        "-c:a",
        "copy",
        "-shortest",
        str(clip),
    )
    assert detect.sniff(clip) == "video/3gpp"
    assert stream(probe(clip), "audio")["codec_name"] == "amr_nb"
    transcoded_audio_ok(check_playable(run(clip), 176, 144, 1.0))


def test_large_and_fast_clips_are_scaled_to_1920_and_60_fps(tmp_path: Path) -> None:
    big = tmp_path / "big.mkv"
    ffmpeg(*picture("2560x1440", 0.5, 5), "-c:v", "libx264", "-preset", "ultrafast", str(big))
    check_playable(run(big), 1920, 1080, 0.5)
    fast = tmp_path / "fast.mkv"
    ffmpeg(*picture("160x90", 0.5, 120), "-c:v", "libx264", "-preset", "ultrafast", str(fast))
    info = check_playable(run(fast), 160, 90, 0.5)
    num, den = stream(info, "video")["avg_frame_rate"].split("/")
    assert int(num) / int(den) <= 60.01


def test_settings_choose_crf_and_preset(tmp_path: Path) -> None:
    clip = tmp_path / "vp9.webm"
    ffmpeg(*picture(), "-c:v", "libvpx-vp9", "-deadline", "realtime", str(clip))
    job = HandlerInput(
        clip, "video/webm", "vp9.webm", tmp_path, options={"video_crf": 31, "video_preset": "fast"}
    )
    probed = asyncio.run(av.probe(clip, "matroska", timeout=30, memory_bytes=av.MEMORY_BYTES))
    args = transcode_args(job, "matroska", probed, tmp_path / "out.mp4")
    assert args[args.index("-crf") + 1] == "31" and args[args.index("-preset") + 1] == "fast"
    assert_safe(args)
    job.options = {"video_crf": "nonsense", "video_preset": "-i"}
    args = transcode_args(job, "matroska", probed, tmp_path / "out.mp4")
    assert args[args.index("-crf") + 1] == "23" and args[args.index("-preset") + 1] == "veryfast"


def test_fit_keeps_aspect_and_even_sides() -> None:
    assert fit(3840, 2160) == (1920, 1080)
    assert fit(1080, 1920) == (1080, 1920)
    assert fit(1440, 3040) == (910, 1920)
    assert fit(321, 241) == (320, 240)


# --- metadata, poster, progress --------------------------------------------------------------


def test_location_is_dropped_from_the_mp4_and_the_served_original(tmp_path: Path) -> None:
    clip = web_ready_mp4(
        tmp_path / "where.mov",
        "320x240",
        1,
        "-movflags",
        "use_metadata_tags",
        "-metadata",
        f"com.apple.quicktime.location.ISO6709={LOCATION}",
        "-metadata",
        f"location={LOCATION}",
    )
    assert has_location(probe(clip))
    output = run(clip)
    check_playable(output, 320, 240, 1.0)
    assert output.served_original is not None and output.served_original_mime == "video/quicktime"
    original = probe(output.served_original)
    assert not has_location(original)
    assert packet_hashes(output.served_original) == packet_hashes(clip)  # still the original
    for path in (by_name(output)["mp4"].path, output.served_original):
        assert LOCATION[:8].encode() not in path.read_bytes()


def black_then_picture(path: Path, *encoding: str) -> Path:
    """A 2 s clip: a second of black, then a second of test picture."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=320x240:r=15:d=1 [b]; testsrc2=s=320x240:r=15:d=1 [t]; [b][t] concat",
        *encoding,
        str(path),
    )
    return path


def test_the_poster_is_not_the_black_first_frame(tmp_path: Path) -> None:
    clip = black_then_picture(tmp_path / "fade.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p")
    output = run(clip)
    check_playable(output, 320, 240, 2.0)
    with Image.open(by_name(output)["poster"].path) as poster:
        assert ImageStat.Stat(poster.convert("L")).mean[0] > 60


def test_an_all_black_clip_still_gets_a_poster(tmp_path: Path) -> None:
    clip = tmp_path / "night.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=10:d=1", "-c:v", "mpeg4", str(clip))
    check_playable(run(clip), 160, 90, 1.0)


ONE_KEYFRAME = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "1000", "-sc_threshold", "0")
"""x264 options for a clip whose first frame is its only keyframe (a screen recording's way)."""


def keyframe_times(path: Path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return [float(t) for t, flags in (line.split(",")[:2] for line in out.split()) if "K" in flags]


def poster_runs(seen: list[list[str]]) -> list[list[str]]:
    return [args for args in seen if args[0] == "ffmpeg" and "mjpeg" in args]


def test_the_poster_of_a_clip_decodes_only_its_keyframes(
    tmp_path: Path, every_run_is_safe: list[list[str]]
) -> None:
    clip = web_ready_mp4(tmp_path / "one.mp4", "320x240", 2, *ONE_KEYFRAME[2:])
    assert keyframe_times(clip) == [0.0]
    output = run(clip)
    check_playable(output, 320, 240, 2.0)
    with Image.open(by_name(output)["poster"].path) as poster:
        assert ImageStat.Stat(poster.convert("L")).mean[0] > 60
    [args] = poster_runs(every_run_is_safe)  # one run, and it skipped every other frame
    at = args.index("-skip_frame")
    assert args[at + 1] == "nokey" and at < args.index("-i")  # an option of the input


def test_a_black_start_with_no_other_keyframe_still_gets_a_picture_poster(
    tmp_path: Path, every_run_is_safe: list[list[str]]
) -> None:
    clip = black_then_picture(tmp_path / "fade.mp4", *ONE_KEYFRAME)
    assert keyframe_times(clip) == [0.0]
    output = run(clip)
    check_playable(output, 320, 240, 2.0)
    with Image.open(by_name(output)["poster"].path) as poster:
        assert ImageStat.Stat(poster.convert("L")).mean[0] > 60
    first, second = poster_runs(every_run_is_safe)  # the black keyframe, then every frame
    assert "-skip_frame" in first and "-skip_frame" not in second


def test_progress_is_reported_up_to_done(tmp_path: Path) -> None:
    clip = tmp_path / "a.webm"
    ffmpeg(*picture(), "-c:v", "libvpx-vp9", "-deadline", "realtime", str(clip))
    seen: list[float] = []
    run(clip, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert any(0.0 < f < 1.0 for f in seen)
    assert seen == sorted(seen)


def test_a_video_mime_holding_only_audio_gets_an_audio_rendition(tmp_path: Path) -> None:
    clip = tmp_path / "voice.mp4"
    ffmpeg(*tone(), "-c:a", "aac", "-f", "mp4", str(clip))
    output = run(clip, "video/mp4")
    [audio] = output.renditions
    assert (audio.name, audio.mime) == ("audio", "audio/mp4")
    assert audio.duration == pytest.approx(1.0, abs=0.2)


# --- refusals ----------------------------------------------------------------------------------


def test_a_truncated_clip_fails_as_corrupt_with_a_readable_message(tmp_path: Path) -> None:
    clip = web_ready_mp4(tmp_path / "cut.mp4", "320x240", 2)
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # index was at the end
    with pytest.raises(MediaError) as caught:
        run(clip, "video/mp4")
    assert caught.value.code == "media.corrupt"
    assert caught.value.message == "The file is damaged or truncated and cannot be read."
    assert "moov" in caught.value.detail  # ffmpeg's own words, for the log only


def test_garbage_with_a_video_type_fails_as_corrupt(tmp_path: Path) -> None:
    clip = tmp_path / "noise.avi"
    clip.write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST" + os.urandom(4000))
    with pytest.raises(MediaError) as caught:
        run(clip, "video/x-msvideo")
    assert caught.value.code == "media.corrupt"


def test_too_long_is_refused_before_transcoding(
    tmp_path: Path, every_run_is_safe: list[list[str]]
) -> None:
    clip = web_ready_mp4(tmp_path / "long.mp4", "160x90", 2)
    with pytest.raises(LimitExceeded) as caught:
        run(clip, limits=Limits(max_duration=1))
    assert caught.value.code == "media.too_long"
    assert [args[0] for args in every_run_is_safe] == ["ffprobe"]
    assert not any((tmp_path / "work-long.mp4").iterdir())


def test_too_many_pixels_is_refused_before_transcoding(
    tmp_path: Path, every_run_is_safe: list[list[str]]
) -> None:
    clip = web_ready_mp4(tmp_path / "wide.mp4", "320x240", 0.2)
    with pytest.raises(LimitExceeded) as caught:
        run(clip, limits=Limits(max_pixels=320 * 240 - 1))
    assert caught.value.code == "media.too_many_pixels"
    assert [args[0] for args in every_run_is_safe] == ["ffprobe"]


def test_a_header_that_understates_the_length_is_stopped_at_the_limit(tmp_path: Path) -> None:
    clip = tmp_path / "long.ts"  # a transport stream has no duration header to believe
    ffmpeg(*picture("160x90", 3, 10), "-c:v", "mpeg2video", "-f", "mpegts", str(clip))
    probed = asyncio.run(av.probe(clip, "mpegts", timeout=30, memory_bytes=av.MEMORY_BYTES))
    node = av.output(av.open_input(clip, "mpegts")["v:0"], path=tmp_path / "o.mp4", muxer="mp4")
    with pytest.raises(LimitExceeded) as caught:
        asyncio.run(
            av.transcode(
                av.compile_args(node), timeout=30, memory_bytes=av.MEMORY_BYTES, max_seconds=1
            )
        )
    assert caught.value.code == "media.too_long" and probed.duration == pytest.approx(3, abs=0.2)


def test_an_unknown_type_is_unsupported(tmp_path: Path) -> None:
    clip = tmp_path / "list.m3u8"
    clip.write_bytes(hls_playlist())
    with pytest.raises(MediaError) as caught:
        run(clip, "application/vnd.apple.mpegurl")
    assert caught.value.code == "media.unsupported"


@pytest.mark.parametrize("content", [hls_playlist(), ffconcat_list()], ids=["hls", "ffconcat"])
@pytest.mark.parametrize("mime", ["video/mp4", "video/x-msvideo", "video/mp2t", "video/webm"])
def test_a_playlist_in_disguise_is_never_followed(tmp_path: Path, content: bytes, mime) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(content)
    assert detect.kind_of(detect.sniff(clip)) is Kind.FILE
    # Even if it were sniffed as video, the forced demuxer reads it as what it claims to be.
    with pytest.raises(MediaError) as caught:
        run(clip, mime)
    assert caught.value.code == "media.corrupt"
    for made in (tmp_path / "work-clip.mp4").iterdir():
        assert PASSWD_MARK not in made.read_bytes()


# --- how ffmpeg is run ---------------------------------------------------------------------------


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """What each started ffmpeg looked like from outside: pid, group, nice, memory limit."""
    seen: list[dict] = []
    real = asyncio.create_subprocess_exec

    async def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        process = await real(*args, **kwargs)
        seen.append({"pid": process.pid})
        try:  # a quick ffprobe may already be gone
            limits = Path(f"/proc/{process.pid}/limits").read_text()
            stat = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[-1].update(
                pgid=os.getpgid(process.pid),
                nice=int(stat[16]),
                address_space=next(
                    line.split()[3] for line in limits.splitlines() if "address space" in line
                ),
            )
        except (FileNotFoundError, ProcessLookupError):
            pass
        return process

    monkeypatch.setattr(av.asyncio, "create_subprocess_exec", spy)
    return seen


def assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} still alive")


def slow_copy_args(tmp_path: Path) -> list[str]:
    clip = web_ready_mp4(tmp_path / "slow.mp4", "160x90", 2)
    inp = av.open_input(clip, "mov", re=None)  # read at its own pace: takes two seconds
    return av.compile_args(av.output(inp["v:0"], path=tmp_path / "o.mp4", muxer="mp4", c="copy"))


def test_a_run_past_its_timeout_is_killed_with_its_group(tmp_path: Path, spawned) -> None:
    args = slow_copy_args(tmp_path)
    with pytest.raises(MediaError) as caught:
        asyncio.run(av.transcode(args, timeout=0.5, memory_bytes=300 << 20))
    assert caught.value.code == "media.timeout"
    [child] = spawned
    assert child["pgid"] == child["pid"] != os.getpgid(0)
    assert child["nice"] == 19 and child["address_space"] == str(300 << 20)
    assert_group_gone(child["pgid"])


def test_a_cancelled_run_is_killed_with_its_group(tmp_path: Path, spawned) -> None:
    args = slow_copy_args(tmp_path)

    async def cancel_soon() -> None:
        await asyncio.wait_for(av.transcode(args, timeout=60, memory_bytes=av.MEMORY_BYTES), 0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(cancel_soon())
    assert spawned[0]["pgid"] == spawned[0]["pid"]
    assert_group_gone(spawned[0]["pgid"])


def test_the_handler_turns_its_time_limit_into_media_timeout(tmp_path: Path, spawned) -> None:
    clip = web_ready_mp4(tmp_path / "a.mp4", "160x90", 0.5)
    with pytest.raises(MediaError) as caught:
        run(clip, limits=Limits(timeout=0.001))
    assert caught.value.code == "media.timeout"
    for child in spawned:
        assert_group_gone(child["pid"])


def test_the_demuxer_allowlist_has_no_indirection() -> None:
    assert not av.ALLOWED_DEMUXERS & FORBIDDEN_DEMUXERS
    with pytest.raises(ValueError):
        av.open_input(Path("/tmp/x"), "hls")
    with pytest.raises(ValueError):
        av.probe_args(Path("/tmp/x"), "concat")
    assert_safe(av.probe_args(Path("/tmp/x"), "mov"))
    poster_like = av.compile_args(
        av.output(
            av.open_input(Path("/tmp/x"), "mov", t="10")["v:0"], path=Path("/p"), muxer="mjpeg"
        )
    )
    assert_safe(poster_like)
