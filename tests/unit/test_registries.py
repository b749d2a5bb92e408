"""The adapter registry is built once, at start, and says which plug-in did not load and why;
the handler registry refuses to start on a broken install instead of keeping video as files."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from relay import publish
from relay.errors import PublishError, TransientPublishError
from relay.publish import Destination
from relay.publish.webhook import new_secret

ROOT = Path(__file__).resolve().parents[2]


class _Counting:
    """``entry_points`` with one good and one broken third-party adapter, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, group: str) -> list[EntryPoint]:
        assert group == "relay.adapters"
        self.calls += 1
        return [
            EntryPoint("shout", "relay.publish.webhook:WebhookAdapter", group),
            EntryPoint("gopher", "relay_gopher_missing_module:Adapter", group),
        ]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> _Counting:
    found = _Counting()
    monkeypatch.setattr(publish, "entry_points", found)
    publish.reset()
    yield found
    publish.reset()


def _destination(type_: str) -> Destination:
    return Destination(
        id="d1", user_id="u1", type=type_, url="http://127.0.0.1:9/", secret=new_secret()
    )


def test_registry_is_read_once(counting: _Counting) -> None:
    for _ in range(3):
        publish.adapter_for(_destination("webhook"), http=None)  # type: ignore[arg-type]
        publish.adapter_for(_destination("shout"), http=None)  # type: ignore[arg-type]
    assert counting.calls == 1


def test_a_broken_plugin_is_logged_by_name_and_its_deliveries_wait(
    counting: _Counting, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="relay.publish"):
        loaded = publish.load()
    assert "shout" in loaded.adapters and "mastodon" in loaded.adapters
    assert "gopher" not in loaded.adapters
    assert "ModuleNotFoundError" in loaded.broken["gopher"]
    [record] = caplog.records
    assert "'gopher'" in record.getMessage()
    assert "relay_gopher_missing_module" in record.getMessage()
    with pytest.raises(TransientPublishError) as caught:
        publish.adapter_for(_destination("gopher"), http=None)  # type: ignore[arg-type]
    assert caught.value.code == "publish.adapter_unavailable"
    with pytest.raises(PublishError) as unknown:
        publish.adapter_for(_destination("telex"), http=None)  # type: ignore[arg-type]
    assert unknown.value.code == "publish.unknown_type"


def test_a_handler_that_cannot_import_stops_the_relay(tmp_path: Path) -> None:
    # ffmpeg-python shadowed by a module that fails to import, as a broken install would.
    shadow = tmp_path / "shadow" / "ffmpeg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('ffmpeg-python is broken here')\n")
    env = {**os.environ, "PYTHONPATH": f"{shadow.parent}{os.pathsep}{ROOT}"}
    code = (
        "import handlers\n"
        "try:\n"
        "    handlers.load()\n"
        "except handlers.HandlerUnavailable as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('video handler:', type(handlers.handler_for(handlers.Kind.VIDEO)).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: the video handler (handlers/video.py)"), done.stdout
    assert "ffmpeg-python is broken here" in done.stdout
