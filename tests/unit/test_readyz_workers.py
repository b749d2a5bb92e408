"""``/readyz`` answers 503, naming the part, when a worker of this node no longer runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from relay.app import make_app
from relay.config import Settings
from relay.context import RELAY


def test_readyz_names_workers_that_stopped(tmp_path: Path) -> None:
    async def run() -> tuple[int, dict, int, dict]:
        settings = Settings(data_dir=tmp_path, workers=2, rtmp_listen="off")
        async with TestClient(TestServer(make_app(settings, smtp=False))) as client:
            before = await client.get("/readyz")
            first = (before.status, await before.json())
            tasks = client.app[RELAY].workers.tasks
            tasks[1].cancel()
            await asyncio.gather(tasks[1], return_exceptions=True)
            after = await client.get("/readyz")
            return (*first, after.status, await after.json())

    status, body, status_after, body_after = asyncio.run(run())
    assert status == 200 and body["checks"]["workers"] == "ok", body
    assert status_after == 503
    # Two media processes, three job loops: one stores and commits while two run media work.
    assert body_after["checks"]["workers"] == "error: not running: worker-1 of 3"
    assert body_after["checks"]["database"] == "ok"
