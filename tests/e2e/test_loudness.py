"""A voice memo uploaded to a real ``relay serve`` comes back at -16 LUFS, and the post in the
API says how loud it was sent (``loudness``, as relay/openapi.json describes it); with
``RELAY_AUDIO_LOUDNESS_LUFS=off`` it comes back as loud as it went in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator

from tests.clips import ffmpeg
from tests.server import RelayServer
from tests.unit.test_loudness import QUIET_DB, integrated, wav

SPEC = json.loads((Path(__file__).resolve().parents[2] / "relay" / "openapi.json").read_text())
RENDITION = {**SPEC["components"]["schemas"]["Rendition"], "components": SPEC["components"]}


def upload(relay: RelayServer, token: str, clip: Path) -> dict[str, Any]:
    with relay.client(token) as client:
        response = client.post("/api/v1/uploads", files=[("file", (clip.name, clip.read_bytes()))])
    assert response.status_code == 202, response.text
    [item] = relay.wait_post(token, response.json()["id"])["items"]
    assert item["status"] == "ready", item
    [rendition] = item["renditions"]
    OAS31Validator(RENDITION).validate(rendition)
    return rendition


def served_loudness(rendition: dict[str, Any], tmp_path: Path) -> float:
    local = tmp_path / "served.m4a"
    local.write_bytes(httpx.get(rendition["url"]).content)
    return integrated(local)


def test_a_quiet_memo_is_served_at_minus_16_lufs(relay: RelayServer, tmp_path: Path) -> None:
    memo = wav(tmp_path / "memo.wav", QUIET_DB)
    rendition = upload(relay, relay.anna["token"], memo)
    assert rendition["loudness"]["integrated_lufs"] == pytest.approx(integrated(memo), abs=0.5)
    assert rendition["loudness"]["normalized_to_lufs"] == -16
    assert served_loudness(rendition, tmp_path) == pytest.approx(-16, abs=1.0)


def test_silence_is_served_as_silence(relay: RelayServer, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono:d=2", str(silence))
    rendition = upload(relay, relay.anna["token"], silence)
    assert rendition["loudness"]["integrated_lufs"] is None
    assert rendition["loudness"]["normalized_to_lufs"] is None


def test_turned_off_the_memo_is_served_as_loud_as_it_was(start_relay, tmp_path: Path) -> None:  # noqa: ANN001
    relay = start_relay(RELAY_AUDIO_LOUDNESS_LUFS="off")
    anna = relay.add_user("anna")
    memo = wav(tmp_path / "memo.wav", QUIET_DB)
    rendition = upload(relay, anna["token"], memo)
    assert rendition["loudness"] is None
    assert served_loudness(rendition, tmp_path) == pytest.approx(integrated(memo), abs=1.0)
