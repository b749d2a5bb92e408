"""Running one media handler on one file, as a worker does, for the handler unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handlers import Handler
from relay import detect
from relay.model import HandlerInput, HandlerOutput, Limits, RunBlocking


def run_handler(
    handler: Callable[[], Handler],
    source: Path,
    mime: str | None = None,
    workdir: Path | None = None,
    *,
    limits: Limits | None = None,
    run_blocking: RunBlocking | None = None,
    progress: Callable[[float], None] | None = None,
    options: dict[str, Any] | None = None,
) -> HandlerOutput:
    """A fresh ``handler()`` processes ``source`` under ``asyncio.run``. ``mime`` is the sniffed
    type unless given, ``workdir`` is ``work-<name>`` beside the source unless given; the other
    settings keep HandlerInput's defaults unless given."""
    job = HandlerInput(
        source=source,
        mime=mime or detect.sniff(source),
        filename=source.name,
        workdir=workdir or source.parent / f"work-{source.name}",
    )
    if limits is not None:
        job.limits = limits
    if run_blocking is not None:
        job.run_blocking = run_blocking
    if progress is not None:
        job.progress = progress
    if options is not None:
        job.options = options
    return asyncio.run(handler().process(job))
