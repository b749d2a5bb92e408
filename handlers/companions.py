"""Renditions that come from what was sent with an item, or hidden inside it, after its own
handler has run: a clip's captions (``captions``, WebVTT) and a photo's moving part (``motion``:
a Live Photo's MOV, or the MP4 inside an Android Motion Photo).

None of these may cost the item itself: a captions file that cannot be read or a clip that will
not transcode leaves the item as its handler made it, and says why in the log; the pipeline then
makes that file an item of its own (nothing sent is dropped).
"""

from __future__ import annotations

import asyncio
import logging

from handlers import captions, motion
from relay.errors import MediaError
from relay.model import Companion, HandlerInput, Kind, RenditionFile

log = logging.getLogger("relay.handlers.companions")

CAPTIONS = "captions"
_MOTION_PHOTO_TYPES = frozenset({"image/jpeg"})


async def extra_renditions(
    job: HandlerInput, kind: Kind
) -> tuple[list[RenditionFile], list[Companion]]:
    """The renditions made, and the companions that made none (kept as items of their own)."""
    made: list[RenditionFile] = []
    used: list[Companion] = []
    if kind == Kind.VIDEO:
        for n, companion in enumerate(c for c in job.companions if c.role == CAPTIONS):
            if any(r.lang == companion.lang for r in made):
                continue  # one track per language: a second one is kept as a file
            target = job.workdir / f"captions-{n}.vtt"
            try:
                await job.run_blocking(captions.to_webvtt, companion.path, target)
            except MediaError as exc:
                log.warning("captions %s left out: %s %s", companion.filename, exc.code, exc.detail)
                continue
            made.append(RenditionFile(CAPTIONS, target, "text/vtt", lang=companion.lang))
            used.append(companion)
    elif kind == Kind.IMAGE:
        paired = next((c for c in job.companions if c.role == motion.MOTION), None)
        clip = paired.path if paired is not None else None
        if clip is None and job.mime in _MOTION_PHOTO_TYPES:
            inside = job.workdir / "motion-photo.mp4"
            # A thread, not a media process: a still that is no Motion Photo (nearly all)
            # costs a read of its header's segments, less than the hand-over to a process.
            if await asyncio.to_thread(motion.split_motion_photo, job.source, inside):
                clip = inside
        if clip is not None:
            try:
                made.append(await motion.motion_rendition(job, clip))
            except MediaError as exc:
                log.warning("motion of %s left out: %s %s", job.filename, exc.code, exc.detail)
            else:
                used += [paired] if paired is not None else []
    return made, [c for c in job.companions if c not in used]
