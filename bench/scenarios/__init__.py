"""The scenarios: each module lists its own in ``SCENARIOS``; ``ALL`` is every one, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import Context, Result


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    group: str
    """The module: ``python -m bench smtp`` runs every scenario of the group."""
    about: str
    run: Callable[[Context], list[Result]]


def all_scenarios() -> list[Scenario]:
    import bench.scenarios.loudness as loudness
    from bench.scenarios import http, images, nodes, photos, smtp, tus, tus_s3, video, web, webhook
    from bench.scenarios.live import SCENARIOS as LIVE  # apart, for merges

    return [
        *smtp.SCENARIOS,
        *http.SCENARIOS,
        *tus.SCENARIOS,
        *images.SCENARIOS,
        *video.SCENARIOS,
        *loudness.SCENARIOS,
        *webhook.SCENARIOS,
        *web.SCENARIOS,
        *tus_s3.SCENARIOS,
        *photos.SCENARIOS,
        *nodes.SCENARIOS,
        *LIVE,
    ]


def select(names: list[str]) -> list[Scenario]:
    """Scenarios named, or of the groups named, in the order they are listed; all if none."""
    every = all_scenarios()
    if not names:
        return every
    known = {s.name for s in every} | {s.group for s in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; see --list")
    return [s for s in every if s.name in names or s.group in names]
