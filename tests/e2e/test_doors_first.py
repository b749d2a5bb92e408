"""The doors first (RELAY_DOORS_FIRST_SECONDS): a burst of uploads holds new media work while
the door takes it in, every photo is processed after it, and with the setting at 0 nothing
waits."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.server import RelayServer

BURST = 16
"""Files of ``SIZE`` sent by four clients at once: ~50 MB, far over the 16 MB a second that makes
a burst. Files of no media type are quick to process, so that later jobs meet the burst (and
the suite spends no minute of CPU on renditions here)."""
SIZE = 3_200_000


def _metric(server: RelayServer, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found[1])


def _burst(server: RelayServer) -> tuple[list[str], int]:
    """``BURST`` raw uploads from four clients at once: the post ids, and the bytes sent."""
    token = server.add_user("anna")["token"]
    body = os.urandom(SIZE)

    def upload(number: int) -> str:
        response = httpx.post(
            f"{server.url}/api/v1/uploads",
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="recording-{number:02d}.bin"',
            },
            timeout=60,
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(4) as clients:
        posts = list(clients.map(upload, range(BURST)))
    for post in posts:
        done = server.wait_post(token, post, timeout=180)
        assert [item["status"] for item in done["items"]] == ["ready"], done
    return posts, BURST * SIZE


def test_a_burst_of_uploads_holds_media_work_then_all_is_processed(start_relay) -> None:
    server = start_relay()
    _, sent = _burst(server)
    assert _metric(server, "relay_doors_first_held_seconds_total") > 0
    # Every raw upload's bytes are counted as accepted (they once counted 0).
    assert _metric(server, 'relay_accepted_bytes_total{door="http"}') == sent


def test_with_doors_first_at_zero_media_work_never_waits(start_relay) -> None:
    server = start_relay(RELAY_DOORS_FIRST_SECONDS="0")
    _burst(server)
    assert _metric(server, "relay_doors_first_held_seconds_total") == 0
