"""A clip's captions in its HLS ladder's playlists (relay/storage/hls.py): the master gains a
SUBTITLES group (RFC 8216 4.3.4.1) that each variant stream names, and each language gets a VOD
subtitles playlist of one WebVTT segment whose target duration covers it (4.3.3.1)."""

from __future__ import annotations

import math

from handlers.ladder import attributes
from relay.model import Item, Rendition
from relay.storage import hls
from relay.web import streaming

MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,'
    'URI="audio/index.m3u8"\n'
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="audio"\n'
    "720p/index.m3u8\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=400000,CODECS="avc1.64001e,mp4a.40.2",AUDIO="audio"\n'
    "360p/index.m3u8\n"
)
CAPTIONS = (
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
)
TRACKS = [hls.SubtitleTrack("sv", "svenska"), hls.SubtitleTrack("en", "English")]


def test_the_master_names_a_subtitles_group_from_every_variant() -> None:
    lines = hls.with_subtitles(MASTER, TRACKS).splitlines()
    media = [attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    assert media == [
        {"TYPE": "SUBTITLES", "GROUP-ID": "subs", "NAME": "svenska", "LANGUAGE": "sv",
         "DEFAULT": "YES", "AUTOSELECT": "YES", "CHARACTERISTICS": CAPTIONS,
         "URI": "subtitles/sv.m3u8"},
        {"TYPE": "SUBTITLES", "GROUP-ID": "subs", "NAME": "English", "LANGUAGE": "en",
         "DEFAULT": "NO", "AUTOSELECT": "YES", "CHARACTERISTICS": CAPTIONS,
         "URI": "subtitles/en.m3u8"},
    ]  # fmt: skip
    streams = [attributes(line) for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert [s["SUBTITLES"] for s in streams] == ["subs", "subs"]
    assert [s["AUDIO"] for s in streams] == ["audio", "audio"]  # the rest is as it was
    # Renditions come before the variant streams that name them, each URI line after its tag.
    first_stream = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF"))
    assert all(i < first_stream for i, line in enumerate(lines) if line.startswith("#EXT-X-MEDIA"))
    assert lines[first_stream + 1] == "720p/index.m3u8"


def test_a_master_without_captions_is_unchanged() -> None:
    assert hls.with_subtitles(MASTER, []) == MASTER


def test_an_items_captions_become_tracks_named_as_the_pages() -> None:
    item = Item("I", "P", 0, "talk.mp4", None, renditions=[
        Rendition("mp4", "P/I/mp4.mp4", "video/mp4", 1000, duration=6.04),
        Rendition("captions", "P/I/sv.vtt", "text/vtt", 10, lang="sv"),
        Rendition("captions", "P/I/und.vtt", "text/vtt", 10),
    ])  # fmt: skip
    assert streaming.captions_of(item) == {"sv": 6.04, "und": 6.04}
    assert [t.lang for t in streaming.subtitle_tracks(item)] == ["sv", "und"]
    # Labelled as the page's <track> is: "svenska", and "captions" when the language is unknown.
    assert [t.name for t in streaming.subtitle_tracks(item)] == ["svenska", "captions"]
    # Without the clip's duration no segment can be described: no subtitles, the page's stay.
    item.renditions[0].duration = None
    assert streaming.subtitle_tracks(item) == []


def test_a_name_cannot_break_out_of_its_quoted_string() -> None:
    text = hls.with_subtitles(MASTER, [hls.SubtitleTrack("sv", 'sv"\n#EXT-X-ENDLIST')])
    [line] = [line for line in text.splitlines() if "TYPE=SUBTITLES" in line]
    assert attributes(line)["NAME"] == "sv#EXT-X-ENDLIST"
    assert "#EXT-X-ENDLIST" not in [line.strip() for line in text.splitlines()]


def test_the_subtitles_playlist_is_one_vod_segment_covering_the_clip() -> None:
    url = "https://relay.example/p/P/captions/I/sv.vtt"
    for duration, target in ((6.04, 7), (2.5, 3), (120.0, 120), (0.2, 1)):
        lines = hls.subtitles_playlist(url, duration).splitlines()
        assert lines[0] == "#EXTM3U"
        assert f"#EXT-X-TARGETDURATION:{target}" in lines
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
        assert lines[-1] == "#EXT-X-ENDLIST"
        [extinf] = [line for line in lines if line.startswith("#EXTINF:")]
        seconds = float(extinf.removeprefix("#EXTINF:").rstrip(","))
        assert seconds == round(duration, 3)
        assert round(seconds + 0.0) <= target and math.ceil(seconds) == target
        assert lines[lines.index(extinf) + 1] == url
        assert [line for line in lines if not line.startswith("#")] == [url]


def test_the_subtitles_key_sits_in_the_ladders_folder() -> None:
    # So serving rewrites its URI to /hls/ like the ladder's own playlists.
    assert hls.resolve("P/I/hls/master.m3u8", "subtitles/sv.m3u8") == "P/I/hls/subtitles/sv.m3u8"
