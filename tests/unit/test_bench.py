"""``python -m bench`` end to end on its cheapest scenario: the table, the JSON rows and the ratio.
No timing is asserted: figures belong to benchmarks, never to tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = "| scenario | relay | baseline | ratio | target | pass | peak memory | notes |"


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def test_list_names_every_scenario() -> None:
    listed = bench("--list").stdout
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    expected = {"smtp-1MB", "smtp-5MB", "smtp-10KB", "smtp-memory", "http-raw-1", "http-raw-4"}
    expected |= {"http-multipart-1", "http-multipart-4", "http-raw-memory", "tus", "tus-memory"}
    expected |= {"images", "video-h264", "video-hevc", "video-remux", "webhook"}
    expected |= {"smtp-1MB-busy", "smtp-1MB-postgres", "http-raw-4-postgres", "http-busy"}
    expected |= {"photos-mail", "photos-http", "photos-mail-postgres", "photos-http-postgres"}
    expected |= {"photos-workers"}
    assert expected <= names


def test_one_quick_scenario_gives_a_table_and_its_ratio(tmp_path: Path) -> None:
    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    out = bench("http-raw-1", "--quick", "--results", str(results), "--json", str(rows)).stdout
    table = results.read_text()
    assert COLUMNS in table and COLUMNS in out
    assert "Machine: CPU:" in table and "cores:" in table and "Python:" in table
    row = next(line for line in table.splitlines() if line.startswith("| http raw, 1 client"))
    assert len(row.split("|")) == len(COLUMNS.split("|"))
    [found] = json.loads(rows.read_text())["results"]
    assert found["scenario"] == "http raw, 1 client" and found["unit"] == "MB/s"
    assert found["relay"] > 0 and found["baseline"] > 0
    assert found["ratio"] == found["relay"] / found["baseline"]
    assert f"{found['ratio']:.2f}×" in row
    assert found["passed"] in (True, False) and found["target"] == "≥ 0.8×"
