"""Per-kind media handlers and their registry.

A handler turns one original into renditions. It never touches storage, the database or the
network: it reads ``HandlerInput.source``, writes files into ``HandlerInput.workdir`` and returns
a ``HandlerOutput`` naming them. Errors are ``relay.errors.MediaError`` with a catalog code.
``relay`` reaches handlers only through ``handler_for`` (and ``load`` at start).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from relay.model import (
    Companion,
    HandlerInput,
    HandlerOutput,
    Kind,
    RenditionFile,
    RunBlocking,
)


class Handler(Protocol):
    kind: Kind

    async def process(self, job: HandlerInput) -> HandlerOutput: ...


class HandlerUnavailable(RuntimeError):
    """A handler module cannot be imported: the install is broken, and the relay must not start
    (it used to keep such media as plain files, silently, which no one would notice)."""


_MODULES: dict[Kind, tuple[str, str]] = {
    Kind.IMAGE: ("image", "ImageHandler"),
    Kind.VIDEO: ("video", "VideoHandler"),
    Kind.AUDIO: ("audio", "AudioHandler"),
    Kind.DOCUMENT: ("document", "DocumentHandler"),
    Kind.FILE: ("file", "FileHandler"),
}

_HANDLERS: dict[Kind, Handler] | None = None


def load() -> dict[Kind, Handler]:
    """Import every handler (once); ``HandlerUnavailable`` names the one that fails and why."""
    global _HANDLERS
    if _HANDLERS is None:
        found: dict[Kind, Handler] = {}
        for kind, (module_name, class_name) in _MODULES.items():
            try:
                module = importlib.import_module(f"handlers.{module_name}")
            except ImportError as exc:
                raise HandlerUnavailable(
                    f"the {kind.value} handler (handlers/{module_name}.py) cannot be imported: "
                    f"{exc}; reinstall the relay with its dependencies (pip install -e .)"
                ) from exc
            found[kind] = getattr(module, class_name)()
        _HANDLERS = found
    return _HANDLERS


def handler_for(kind: Kind) -> Handler:
    return load()[kind]


# --- what is sent with an item (relay/pairing.py, relay/pipeline.py) ----------------------------


def captions_language(filename: str) -> tuple[str, str | None]:
    """A captions file's clip name and language: ``talk.sv.srt`` → ``("talk", "sv")``."""
    from handlers.captions import base_and_language

    return base_and_language(filename)


async def content_identifier(
    path: Path, role: str, run_blocking: RunBlocking, *, timeout: float, options: dict[str, Any]
) -> str | None:
    """The Apple content identifier of a Live Photo's ``still`` or ``clip``, or None."""
    from handlers import ffmpeg, motion

    if role == "still":
        return await run_blocking(motion.still_identifier, path)
    memory = ffmpeg.memory_limit(options)
    return await motion.clip_identifier(path, timeout=timeout, memory_bytes=memory)


async def extra_renditions(
    job: HandlerInput, kind: Kind
) -> tuple[list[RenditionFile], list[Companion]]:
    """Renditions from an item's companions (captions, a Live Photo's clip) or from inside it
    (a Motion Photo's clip), made after its own handler ran; and the companions that gave none."""
    from handlers.companions import extra_renditions as make

    return await make(job, kind)


# --- Instagram's padded form of a photo (relay/publish/deliver.py) -----------------------------


def instagram_size(width: int, height: int) -> tuple[int, int] | None:
    """The size an upright ``width`` × ``height`` photo is padded to for Instagram, by the
    arithmetic that pads it (handlers/image.py ``instagram_pad``); None when Instagram takes its
    shape as it is."""
    from handlers.image import instagram_pad

    pad = instagram_pad(width, height)
    return None if pad is None else (pad.width, pad.height)


def fit_instagram_file(source: Path, mime: str, workdir: Path) -> RenditionFile | None:
    """The stored rendition ``source`` padded for Instagram into ``workdir`` (the blocking
    work: run it in the worker pool); None when Instagram takes its shape."""
    from handlers.image import fit_instagram_file as make

    return make(source, mime, workdir)
