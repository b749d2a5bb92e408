"""``python -m bench web-posts-sqlite --quick``: the posts-list bench seeds, signs in, measures
the page and its bare SQL, and writes its row. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_bench import bench


def test_the_posts_list_bench_gives_its_row_and_ratio(tmp_path: Path) -> None:
    listed = bench("--list").stdout
    assert {"web-posts-sqlite", "web-posts-postgres", "web-first-load"} <= {
        line.split()[0] for line in listed.splitlines() if line.strip()
    }
    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    bench("web-posts-sqlite", "--quick", "--results", str(results), "--json", str(rows))
    [found] = json.loads(rows.read_text())["results"]
    assert found["scenario"] == "posts list, 500 posts, sqlite" and found["unit"] == "ms"
    assert found["relay"] > 0 and found["baseline"] > 0
    assert found["ratio"] == found["relay"] / found["baseline"]
    assert found["target"] == "≤ 50 ms"
    assert "| posts list, 500 posts, sqlite |" in results.read_text()
