"""Captions sent with a clip: an SRT or WebVTT file becomes one clean WebVTT file.

Both are read by webvtt-py (https://github.com/glut23/webvtt-py); what is written is our own:
the header, each cue's timing and its text as plain text. A cue's markup (``<i>``, ``<font>``,
``<c.x>``, a hostile ``<script>``) is dropped and what is left is escaped (``&``, ``<``, ``>``),
so a browser shows the characters and never builds elements from them; no cue settings, styles
or regions are carried over. The WebVTT syntax is W3C's: https://www.w3.org/TR/webvtt1/.

A captions file is tiny next to its clip: one over ``MAX_BYTES`` or ``MAX_CUES`` is refused
(``media.captions_invalid``), as is one that is not SRT or WebVTT at all.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Final

import webvtt
from webvtt.errors import MalformedFileError

from relay.errors import MediaError

MAX_BYTES: Final = 1 << 20
"""A two-hour film's subtitles are ~100 KB; ten times that is not captions."""
MAX_CUES: Final = 20_000
MAX_CUE_CHARS: Final = 1000

EXTENSIONS: Final = frozenset({".srt", ".vtt"})

_LANGUAGE: Final = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_CLIP_SUFFIXES: Final = frozenset({"mp4", "mov", "m4v", "webm", "mkv", "avi", "3gp", "mts", "ts"})
"""``talk.mov.srt`` names the clip ``talk.mov``, not a language ``mov``."""
_ENCODINGS: Final = ("utf-8-sig", "cp1252")
"""SRT from older tools is often Windows-1252; cp1252 decodes nearly any byte, so it is last."""


def is_captions(filename: str) -> bool:
    return Path(filename).suffix.lower() in EXTENSIONS


def base_and_language(filename: str) -> tuple[str, str | None]:
    """``talk.sv.srt`` → ``("talk", "sv")``; ``talk.srt`` → ``("talk", None)``. The base is
    lower-cased, as phones and mail programs do not keep a name's case alike."""
    stem = Path(filename).stem
    base, dot, tag = stem.rpartition(".")
    if dot and tag.lower() in _CLIP_SUFFIXES:
        return base.lower(), None
    if dot and _LANGUAGE.match(tag):
        return base.lower(), _normal_language(tag)
    return stem.lower(), None


def _normal_language(tag: str) -> str:
    language, _, region = tag.partition("-")
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


def to_webvtt(source: Path, target: Path) -> int:
    """Write ``source`` (SRT or WebVTT) to ``target`` as clean WebVTT; returns the cue count.
    Blocking (small files): call it off the event loop."""
    if source.stat().st_size > MAX_BYTES:
        raise MediaError("media.captions_invalid", f"over {MAX_BYTES} bytes")
    text = _decode(source.read_bytes())
    fmt = "vtt" if text.lstrip().startswith("WEBVTT") else "srt"
    try:
        parsed = webvtt.from_buffer(io.StringIO(text), format=fmt)
    except (MalformedFileError, ValueError, IndexError) as exc:
        raise MediaError("media.captions_invalid", f"not {fmt.upper()}: {exc}") from None
    cues = parsed.captions
    if not cues:
        raise MediaError("media.captions_invalid", "no cues")
    if len(cues) > MAX_CUES:
        raise MediaError("media.captions_invalid", f"over {MAX_CUES} cues")
    lines = ["WEBVTT", ""]
    for cue in cues:
        # WebVTT text has its own character references; SRT is taken as it is.
        body = plain_text(html.unescape(cue.text) if fmt == "vtt" else cue.text)
        if not body:
            continue
        lines += [f"{cue.start} --> {cue.end}", body, ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return (len(lines) - 2) // 3


def plain_text(text: str) -> str:
    """A cue's text (markup already dropped by webvtt-py) as WebVTT text that is only text:
    escaped, no blank line inside (it would end the cue), bounded."""
    kept = [line.strip() for line in text.replace("\r", "").split("\n")]
    joined = "\n".join(line for line in kept if line)[:MAX_CUE_CHARS]
    return joined.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise MediaError("media.captions_invalid", "binary, not text")
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise MediaError("media.captions_invalid", "not text")
