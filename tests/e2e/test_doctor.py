"""``relay doctor`` on a real machine: a fresh data folder is fine; a missing ffmpeg is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.server import free_port

PASSWORD = "Doctor-Sekret-Pw"


def _doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", "doctor", *args],
        env={**base, "RELAY_DATA_DIR": str(tmp_path / "fresh" / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_on_a_fresh_data_folder_is_all_fine(tmp_path: Path) -> None:
    result = _doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    checks = json.loads(_doctor(tmp_path, "--json").stdout)
    assert checks["ok"] is True
    assert set(checks["checks"]) >= {"libmagic", "ffmpeg", "ffprobe", "database", "storage"}


def test_doctor_says_video_and_audio_need_ffmpeg(tmp_path: Path) -> None:
    # An empty PATH: python runs by its full path; ffmpeg and ffprobe are not found.
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _doctor(tmp_path, PATH=str(empty))
    assert result.returncode == 1
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    for tool in ("ffmpeg", "ffprobe"):
        assert lines[tool].startswith("FAIL"), result.stdout
        assert "video and audio cannot be processed" in lines[tool]
        assert "apt-get install ffmpeg" in lines[tool]
    assert lines["database"].startswith("ok") and lines["storage"].startswith("ok")


def test_doctor_names_a_database_that_is_down_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://relay:{PASSWORD}@127.0.0.1:{free_port()}/relay"
    result = _doctor(tmp_path, RELAY_DATABASE_URL=url)
    assert result.returncode == 1
    database = next(line for line in result.stdout.splitlines() if " database " in line)
    assert database.startswith("FAIL") and "RELAY_DATABASE_URL" in database
    assert PASSWORD not in result.stdout + result.stderr
