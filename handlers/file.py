"""Anything without a richer handler: kept exactly as it came, no renditions."""

from __future__ import annotations

from relay.model import HandlerInput, HandlerOutput, Kind


class FileHandler:
    kind = Kind.FILE

    async def process(self, job: HandlerInput) -> HandlerOutput:
        return HandlerOutput()
