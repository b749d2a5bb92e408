"""Commands a sender writes into a mail: tags, privacy, drafts, alt texts and an end marker.

- ``#tag`` anywhere: collected (lowercased, in order, once each). The word stays in the text,
  since "Kväll på #torget" reads as a sentence. A tag needs a letter ("#1" is a number) and must
  not follow a letter, digit, "/", "=", "&", "@" or "#" (URL fragments, entities, "C#").
- ``((tag: a, b))`` or ``((tags: …))`` (Posterous): collected, removed from the text.
- ``[private]``, ``[draft]``: set the post private or draft; removed.
- ``[alt 2: …]``: alt text of the second attachment; ``[alt: …]`` is ``[alt 1: …]``; removed.
  The text runs to the first "]", so it cannot hold one.
- ``[delay 2h]`` (``30m``, ``2h``, ``1d``, ``1h30m``): publish that long after the mail came.
- ``[publish 2026-12-24 09:00]`` (or ``…T09:00``, or a date alone for 00:00): publish then, in
  the user's time zone (``relay user timezone``, default ``RELAY_TIMEZONE``); an explicit
  offset (``…09:00+01:00``) wins. A time past publishes at once. An unreadable one stays in the
  text, untouched, so the sender sees it was not understood.
- ``[end]``: everything after it is dropped, before signatures and footers are looked for
  (:func:`cut_at_end`, applied by the walker to each text segment).

The subject may carry the same commands, except ``[end]``. Commands are matched without regard
to case and with spaces allowed inside the brackets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_ALT_CHARS = 1000

_END = re.compile(r"\[[ \t]*end[ \t]*\]", re.IGNORECASE)
# Bounded classes that stop at the next bracket keep each attempt short: linear on any input.
_TAG_BLOCK = re.compile(r"\(\([ \t]*tags?[ \t]*:([^()]{0,2000})\)\)", re.IGNORECASE)
_FLAG = re.compile(r"\[[ \t]*(private|draft)[ \t]*\]", re.IGNORECASE)
_ALT = re.compile(r"\[[ \t]*alt(?:[ \t]*(\d{1,3}))?[ \t]*:([^\[\]]{0,2000})\]", re.IGNORECASE)
_WHEN = re.compile(r"\[[ \t]*(delay|publish)[ \t]+([^\[\]\n]{1,60}?)[ \t]*\]", re.IGNORECASE)
_DURATION = re.compile(r"[ \t]*(\d{1,4})[ \t]*(minutes?|mins?|m|hours?|h|days?|d)", re.IGNORECASE)
_LOCAL_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?(?:Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE
)
MAX_DELAY_SECONDS = 366 * 86400
_HASHTAG = re.compile(r"(?<![\w/=&@#])#(\w{1,200})")
# A removed command leaves this mark, so the lines it stood on can be tidied afterwards;
# cleaned text has no control characters, so it cannot clash with the sender's.
_MARK = "\x00"
_MARKED = re.compile(_MARK + r"(-?\d+)\x01")
_TOKENS = re.compile(_MARK + r"(-?\d+)\x01|" + _HASHTAG.pattern)


@dataclass(slots=True)
class Commands:
    text: str
    tags: list[str] = field(default_factory=list)
    private: bool = False
    draft: bool = False
    alts: dict[int, str] = field(default_factory=dict)
    """Attachment number (from 1) → alt text."""
    delay: float | None = None
    """``[delay …]`` in seconds from the mail's arrival."""
    publish_at: str | None = None
    """``[publish …]`` as written (ISO, normalised); its zone is the user's unless it has one."""


def duration(value: str) -> float | None:
    """``2h``, ``30 min``, ``1h30m``, ``1d`` → seconds; None if it is not such a thing."""
    total, at = 0.0, 0
    for match in _DURATION.finditer(value):
        if match.start() != at:
            return None
        unit = match.group(2)[0].lower()
        total += int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[unit]
        at = match.end()
    if at == 0 or value[at:].strip() or total > MAX_DELAY_SECONDS:
        return None
    return total


def local_time(value: str) -> str | None:
    """``2026-12-24 09:00`` → ``2026-12-24T09:00`` (checked to be a real date); None if not."""
    from datetime import datetime

    value = value.strip()
    if not _LOCAL_TIME.fullmatch(value):
        return None
    normal = value.replace(" ", "T").upper()
    try:
        datetime.fromisoformat(normal)
    except ValueError:
        return None
    return normal


def cut_at_end(text: str) -> tuple[str, bool]:
    """The text before the first ``[end]``, and whether there was one."""
    found = _END.search(text)
    return (text[: found.start()], True) if found else (text, False)


def extract(text: str) -> Commands:
    """Read and remove the commands of one text (a subject or a body)."""
    found = Commands(text="")
    block_tags: list[list[str]] = []

    def tag_block(match: re.Match[str]) -> str:
        block_tags.append([_norm_tag(t) for t in match.group(1).split(",")])
        return f"{_MARK}{len(block_tags) - 1}\x01"

    def flag(match: re.Match[str]) -> str:
        if match.group(1).lower() == "private":
            found.private = True
        else:
            found.draft = True
        return f"{_MARK}-1\x01"

    def alt(match: re.Match[str]) -> str:
        number = int(match.group(1) or 1)
        value = " ".join(match.group(2).split())[:MAX_ALT_CHARS]
        if number >= 1 and value:
            found.alts[number] = value  # a later one for the same attachment wins
        return f"{_MARK}-1\x01"

    def when(match: re.Match[str]) -> str:
        if match.group(1).lower() == "delay":
            seconds = duration(match.group(2))
            if seconds is None:
                return match.group(0)  # not understood: left for the sender to see
            found.delay = seconds
        else:
            at = local_time(match.group(2))
            if at is None:
                return match.group(0)
            found.publish_at = at
        return f"{_MARK}-1\x01"

    marked = _TAG_BLOCK.sub(tag_block, text)
    marked = _WHEN.sub(when, marked)
    marked = _FLAG.sub(flag, marked)
    marked = _ALT.sub(alt, marked)

    tags: list[str] = []
    for match in _TOKENS.finditer(marked):
        if match.group(1) is not None:
            index = int(match.group(1))
            tags += block_tags[index] if index >= 0 else []
        elif any(ch.isalpha() for ch in match.group(2)):
            tags.append(_norm_tag(match.group(2)))
    found.tags = merge_tags(tags)
    found.text = _tidy(marked) if _MARK in marked else text
    return found


def merge_tags(*lists: list[str]) -> list[str]:
    """Tags in order, each once, empty ones and those beyond the cap dropped."""
    out: list[str] = []
    for tags in lists:
        for tag in tags:
            if tag and tag not in out and len(out) < MAX_TAGS:
                out.append(tag)
    return out


def _norm_tag(tag: str) -> str:
    return " ".join(tag.strip().lstrip("#").split()).lower()[:MAX_TAG_CHARS]


def _tidy(marked: str) -> str:
    """Remove the marks; a line that held a command loses its extra spaces, or goes if empty."""
    lines = []
    for line in marked.split("\n"):
        if _MARK in line:
            line = " ".join(_MARKED.sub(" ", line).split())
            if not line:
                continue
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
