"""Per-kind media handlers and their registry.

A handler turns one original into renditions. It never touches storage, the database or the
network: it reads ``HandlerInput.source``, writes files into ``HandlerInput.workdir`` and returns
a ``HandlerOutput`` naming them. Errors are ``relay.errors.MediaError`` with a catalog code.
``relay`` reaches handlers only through ``handler_for``.
"""

from __future__ import annotations

from typing import Protocol

from relay.model import HandlerInput, HandlerOutput, Kind


class Handler(Protocol):
    kind: Kind

    async def process(self, job: HandlerInput) -> HandlerOutput: ...


def _registry() -> dict[Kind, Handler]:
    from handlers import document, file, image

    handlers: dict[Kind, Handler] = {
        Kind.IMAGE: image.ImageHandler(),
        Kind.DOCUMENT: document.DocumentHandler(),
        Kind.FILE: file.FileHandler(),
    }
    try:  # video and audio arrive with their own module; until then they are kept as they came
        from handlers import audio, video

        handlers[Kind.VIDEO] = video.VideoHandler()
        handlers[Kind.AUDIO] = audio.AudioHandler()
    except ImportError:
        handlers[Kind.VIDEO] = handlers[Kind.AUDIO] = handlers[Kind.FILE]
    return handlers


_HANDLERS: dict[Kind, Handler] | None = None


def handler_for(kind: Kind) -> Handler:
    global _HANDLERS
    if _HANDLERS is None:
        _HANDLERS = _registry()
    return _HANDLERS[kind]
