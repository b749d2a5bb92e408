"""Files sent together that are one thing: a clip and its captions, a Live Photo's still and clip.

``plan`` runs where a post's files become items (``accept`` for uploads, the unpack job for
mail) and decides by names alone what it can: a ``talk.srt`` or ``talk.sv.vtt`` sent with
``talk.mp4`` is not an item but a companion of the clip's item (its captions). Whether a still
and a MOV are one Live Photo only their content identifiers say, which takes reading them: when
a post has both a still (HEIC/JPEG) and a MOV, those items wait for one ``pair_items`` job
(``relay.live_photos``), which reads the identifiers, folds each MOV whose identifier matches a
still's into that still's item (as its ``motion`` companion), and only then queues them.
Without a match each stays an item of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from handlers import captions_language

CAPTIONS: Final = "captions"
MOTION: Final = "motion"

CLIP_EXTENSIONS: Final = frozenset(
    {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".3gp", ".mts", ".m2ts", ".ts", ".mpg"}
)
CAPTION_EXTENSIONS: Final = frozenset({".srt", ".vtt"})
STILL_EXTENSIONS: Final = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_CLIP_EXTENSIONS: Final = frozenset({".mov"})
MAX_CANDIDATES: Final = 200
"""Reading identifiers costs a probe per MOV; a post of more files is taken as it is."""


@dataclass(slots=True)
class Entry:
    """One item to make: the file at ``index`` and what belongs to it."""

    index: int
    companions: list[dict[str, Any]] = field(default_factory=list)
    waits: bool = False
    """Queued for the pairing job, not for processing yet."""

    def companions_json(self) -> str | None:
        return json.dumps(self.companions) if self.companions else None


def suffix(name: str) -> str:
    return Path(name).suffix.lower()


def plan(files: list[tuple[str, str]]) -> list[Entry]:
    """``files``: (filename, spool_name) in the order sent. The items to make, in that order."""
    clips = {
        Path(name).stem.lower(): i
        for i, (name, _) in enumerate(files)
        if suffix(name) in CLIP_EXTENSIONS
    }
    entries: dict[int, Entry] = {}
    folded: set[int] = set()
    for i, (name, spool_name) in enumerate(files):
        if suffix(name) not in CAPTION_EXTENSIONS:
            continue
        base, lang = captions_language(name)
        clip = clips.get(base)
        if clip is None:
            continue  # captions without their clip: kept as the file it is
        entry = entries.setdefault(clip, Entry(clip))
        entry.companions.append(
            {"role": CAPTIONS, "spool_name": spool_name, "filename": name, "lang": lang}
        )
        folded.add(i)
    made = [entries.get(i) or Entry(i) for i in range(len(files)) if i not in folded]
    stills = [e for e in made if suffix(files[e.index][0]) in STILL_EXTENSIONS]
    movs = [
        e for e in made if suffix(files[e.index][0]) in LIVE_CLIP_EXTENSIONS and not e.companions
    ]
    if stills and movs and len(stills) + len(movs) <= MAX_CANDIDATES:
        for entry in (*stills, *movs):
            entry.waits = True
    return made


def is_candidate(filename: str) -> bool:
    return suffix(filename) in STILL_EXTENSIONS | LIVE_CLIP_EXTENSIONS
