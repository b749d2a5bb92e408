"""The HLS ladder (handlers/ladder.py): which rungs a clip gets, the one ffmpeg run that makes
them, and the master playlist read back as a player reads it; also the playlist reading and
rewriting the store and the web route rely on (relay/storage/hls.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from handlers import ffmpeg as av
from handlers.ladder import Rung, attributes, rungs
from handlers.video import VideoHandler
from relay.model import HandlerOutput
from relay.storage import hls
from tests.clips import (
    LOCATION,
    ffmpeg,
    has_encoder,
    has_location,
    picture,
    probe,
    stream,
    tone,
    web_ready_mp4,
)
from tests.handlers_support import run_handler
from tests.unit.test_video_handler import assert_safe

run = partial(run_handler, VideoHandler)


@pytest.fixture
def argvs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every ffmpeg/ffprobe argv the handler runs, each checked like the video handler's."""
    seen: list[list[str]] = []
    real = av._execute

    async def recording(args: list[str], **kwargs):  # noqa: ANN003, ANN202
        seen.append(list(args))
        return await real(args, **kwargs)

    monkeypatch.setattr(av, "_execute", recording)
    return seen


def sizes(ladder: list[Rung]) -> list[tuple[int, int]]:
    return [(r.width, r.height) for r in ladder]


@pytest.mark.parametrize(
    ("displayed", "expected"),
    [
        ((1920, 1080), [(1920, 1080), (1280, 720), (854, 480), (640, 360)]),
        ((1280, 720), [(1280, 720), (854, 480), (640, 360)]),
        ((854, 480), [(854, 480), (640, 360)]),
        ((1080, 1920), [(1080, 1920), (720, 1280), (480, 854), (360, 640)]),  # portrait
        ((3840, 2160), [(1920, 1080), (1280, 720), (854, 480), (640, 360)]),  # 4K: MP4's size
        ((1920, 1440), [(1440, 1080), (960, 720), (640, 480), (480, 360)]),  # 4:3, 1080 lines
        ((2560, 1080), [(1920, 810), (1706, 720), (1138, 480), (854, 360)]),  # wide
        ((320, 240), [(320, 240)]),  # below the lowest rung: itself only
    ],
)
def test_rungs_are_standard_and_never_above_the_source(
    displayed: tuple[int, int], expected: list[tuple[int, int]]
) -> None:
    ladder = rungs(displayed, copy_top=False)
    assert sizes(ladder) == expected
    assert all(not r.copy for r in ladder)
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder)
    assert all(r.lines <= min(displayed) for r in ladder)


def test_a_remuxed_clip_keeps_its_bitstream_as_the_top_rung() -> None:
    top, *lower = rungs((1280, 720), copy_top=True)
    assert top.copy and (top.width, top.height) == (1280, 720)
    assert sizes(lower) == [(854, 480), (640, 360)] and not any(r.copy for r in lower)
    # Over 1080 lines it cannot be a rung as it is: encoded like any other.
    assert not rungs((1920, 1440), copy_top=True)[0].copy


def ladder_run(argvs: list[list[str]]) -> list[str]:
    [args] = [a for a in argvs if "hls" in a and "-var_stream_map" in a]
    return args


def variants(master: str) -> list[tuple[dict[str, str], str]]:
    lines = master.splitlines()
    return [
        (attributes(line), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]


def joined_rendition(folder: Path, into: Path) -> Path:
    """A media playlist's init segment and segments in order, as one file ffprobe can read."""
    lines = (folder / "index.m3u8").read_text().splitlines()
    [init] = [attributes(line)["URI"] for line in lines if line.startswith("#EXT-X-MAP:")]
    segments = [line for line in lines if line and not line.startswith("#")]
    into.write_bytes(b"".join((folder / name).read_bytes() for name in (init, *segments)))
    return into


def check_master(output: HandlerOutput, expected: list[tuple[int, int]], fps: float) -> Path:
    [ladder] = [r for r in output.renditions if r.name == "hls"]
    assert ladder.mime == "application/vnd.apple.mpegurl"
    assert (ladder.width, ladder.height) == expected[0]
    master = ladder.path.read_text()
    assert master.startswith("#EXTM3U\n") and "#EXT-X-INDEPENDENT-SEGMENTS" in master
    found = variants(master)
    assert [tuple(map(int, v["RESOLUTION"].split("x"))) for v, _ in found] == expected
    for attrs, uri in found:
        video_codec, audio_codec = attrs["CODECS"].split(",")
        assert video_codec.startswith("avc1.64") and audio_codec == "mp4a.40.2"
        peak, average = int(attrs["BANDWIDTH"]), int(attrs["AVERAGE-BANDWIDTH"])
        assert peak >= average > 0
        assert float(attrs["FRAME-RATE"]) == pytest.approx(fps)
        folder = ladder.path.parent / uri.rsplit("/", 1)[0]
        info = probe(joined_rendition(folder, folder.parent / f"{folder.name}.mp4"))
        video = stream(info, "video")
        width, height = map(int, attrs["RESOLUTION"].split("x"))
        assert (video["codec_name"], video["profile"], video["pix_fmt"]) == (
            "h264",
            "High",
            "yuv420p",
        )
        assert (video["width"], video["height"]) == (width, height)
        assert not has_location(info)  # as the MP4: no metadata, no location
        # The codec string is the stream's own: avc1.PPCCLL with its level.
        assert int(video_codec[-2:], 16) == video["level"]
    # Higher rungs need more bits.
    peaks = [int(v["BANDWIDTH"]) for v, _ in found]
    assert peaks == sorted(peaks, reverse=True)
    files = {p.relative_to(ladder.path.parent).as_posix() for p in ladder.files}
    assert "audio/index.m3u8" in files and ladder.path not in ladder.files
    audio = probe(joined_rendition(ladder.path.parent / "audio", ladder.path.parent / "a.mp4"))
    assert stream(audio, "audio")["codec_name"] == "aac"
    return ladder.path


def test_a_transcoded_clip_gets_its_ladder_from_one_ffmpeg_run(
    tmp_path: Path, argvs: list[list[str]]
) -> None:
    source = tmp_path / "clip.avi"
    ffmpeg(*picture("1280x720", 3, 25), *tone(3), "-c:v", "mpeg4", "-c:a", "pcm_s16le",
           str(source))  # fmt: skip
    output = run(source)
    check_master(output, [(1280, 720), (854, 480), (640, 360)], 25)
    args = ladder_run(argvs)
    assert_safe(args)
    graph = args[args.index("-filter_complex") + 1]
    # One decode, one split into three encoders, each rung its keyframes at segment starts.
    assert args.count("-i") == 1 and "split=3" in graph
    assert [a for a in args if a.startswith("-c:v:")] == ["-c:v:0", "-c:v:1", "-c:v:2"]
    assert args[args.index("-c:v:0") + 1] == "libx264"
    assert args[args.index("-hls_segment_type") + 1] == "fmp4"
    assert "-force_key_frames:v:2" in args and "-maxrate:v:0" in args
    assert args[args.index("-var_stream_map") + 1].endswith("a:0,agroup:audio,name:audio")


def test_a_remuxed_clip_copies_its_top_rung_and_encodes_the_rest(
    tmp_path: Path, argvs: list[list[str]]
) -> None:
    source = web_ready_mp4(tmp_path / "clip.mp4", "854x480", 2, "-metadata", f"location={LOCATION}")
    assert has_location(probe(source))
    output = run(source)
    check_master(output, [(854, 480), (640, 360)], 15)
    args = ladder_run(argvs)
    assert args[args.index("-c:v:0") + 1] == "copy"
    assert args[args.index("-c:v:1") + 1] == "libx264"
    graph = args[args.index("-filter_complex") + 1]
    assert "split" not in graph  # the copied rung needs no decoded picture


def test_an_hdr_clip_is_tone_mapped_once_for_every_rung(
    tmp_path: Path, argvs: list[list[str]]
) -> None:
    if not has_encoder("libx265"):
        pytest.skip("this ffmpeg has no HEVC encoder to make an HLG clip with")
    source = tmp_path / "hlg.mp4"
    ffmpeg(*picture("854x480", 1, 25), "-vf", "format=yuv420p10le", "-c:v", "libx265",
           "-x265-params", "log-level=error", "-color_primaries", "bt2020",
           "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc", "-tag:v", "hvc1",
           str(source))  # fmt: skip
    output = run(source)
    [ladder] = [r for r in output.renditions if r.name == "hls"]
    graph = ladder_run(argvs)[ladder_run(argvs).index("-filter_complex") + 1]
    assert graph.count("tonemap=") == 1 and graph.index("tonemap=") < graph.index("split")
    info = probe(joined_rendition(ladder.path.parent / "360p", tmp_path / "360.mp4"))
    video = stream(info, "video")
    assert (video["color_transfer"], video["color_primaries"]) == ("bt709", "bt709")


def test_progress_rises_through_the_ladder_to_done(tmp_path: Path) -> None:
    source = tmp_path / "clip.avi"
    ffmpeg(*picture("640x360", 3, 25), "-c:v", "mpeg4", str(source))
    seen: list[float] = []
    output = run(source, progress=seen.append)
    assert [r.name for r in output.renditions] == ["mp4", "hls", "poster"]
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0.3 < f < 0.9 for f in seen)  # the ladder's own part is reported


def test_the_setting_off_makes_no_ladder(tmp_path: Path, argvs: list[list[str]]) -> None:
    source = web_ready_mp4(tmp_path / "clip.mp4", "640x360", 1)
    output = run(source, options={"video_hls": False})
    assert [r.name for r in output.renditions] == ["mp4", "poster"]
    assert not [a for a in argvs if "hls" in a]


# --- playlists in the store and on the web ----------------------------------------------------

MASTER_KEY = "P1/I1/hls/master.m3u8"


def test_playlist_uris_resolve_only_inside_their_ladder() -> None:
    assert hls.resolve(MASTER_KEY, "720p/index.m3u8") == "P1/I1/hls/720p/index.m3u8"
    assert hls.resolve("P1/I1/hls/720p/index.m3u8", "seg00001.m4s") == "P1/I1/hls/720p/seg00001.m4s"
    assert hls.resolve("P1/I1/hls/720p/index.m3u8", "../audio/x.m4s") == "P1/I1/hls/audio/x.m4s"
    for uri in ("../../original.mp4", "/etc/passwd", "https://evil.example/x.m4s", "a/../../../b",
                "file:///etc/passwd", "seg.m4s?x=1", ".hidden"):  # fmt: skip
        assert hls.resolve("P1/I1/hls/720p/index.m3u8", uri) is None, uri


def test_rewrite_points_every_uri_at_its_url_and_drops_foreign_ones() -> None:
    text = (
        '#EXTM3U\n#EXT-X-MAP:URI="init_0.mp4"\n#EXTINF:4.0,\nseg00000.m4s\n'
        "#EXTINF:4.0,\nhttps://elsewhere.example/x.m4s\n#EXT-X-ENDLIST\n"
    )
    out = hls.rewrite(text, "P1/I1/hls/720p/index.m3u8", lambda key: f"https://cdn/{key}?sig=1")
    assert out.splitlines() == [
        "#EXTM3U",
        '#EXT-X-MAP:URI="https://cdn/P1/I1/hls/720p/init_0.mp4?sig=1"',
        "#EXTINF:4.0,",
        "https://cdn/P1/I1/hls/720p/seg00000.m4s?sig=1",
        "#EXTINF:4.0,",
        "#EXT-X-ENDLIST",
    ]


def test_a_ladder_that_cannot_be_made_leaves_the_clip_playable_from_its_mp4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import ladder
    from relay.errors import MediaError

    async def times_out(*args: object, **kwargs: object) -> None:
        raise MediaError("media.timeout", "ffmpeg over 60.0s")

    monkeypatch.setattr(ladder, "make", times_out)
    output = run(web_ready_mp4(tmp_path / "clip.mp4", "640x360", 1))
    assert [r.name for r in output.renditions] == ["mp4", "poster"]


def test_encoder_threads_are_bounded_so_the_ladder_fits_its_memory_limit() -> None:
    from handlers.ladder import encoder_threads

    # 4 encoders at 1.5 threads a core would not fit 2 GiB of address space on 64 cores.
    assert [encoder_threads(8, cores=64), encoder_threads(4, cores=64)] == [8, 4]
    assert [encoder_threads(8, cores=2), encoder_threads(4, cores=1)] == [3, 1]
