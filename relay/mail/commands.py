"""Commands a sender writes into a mail: tags, privacy, drafts, alt texts and an end marker.

- ``#tag`` anywhere: collected (lowercased, in order, once each). The word stays in the text,
  since "Kväll på #torget" reads as a sentence. A tag needs a letter ("#1" is a number) and must
  not follow a letter, digit, "/", "=", "&", "@" or "#" (URL fragments, entities, "C#").
- ``((tag: a, b))`` or ``((tags: …))`` (Posterous): collected, removed from the text.
- ``[private]``, ``[draft]``: set the post private or draft; removed.
- ``[alt 2: …]``: alt text of the second attachment; ``[alt: …]`` is ``[alt 1: …]``; removed.
  The text runs to the first "]", so it cannot hold one.
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

    marked = _TAG_BLOCK.sub(tag_block, text)
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
