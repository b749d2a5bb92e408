"""``python -m bench [SCENARIO|GROUP …] [--quick] [--list] [--results FILE]``

Runs the scenarios (all by default), prints one table and writes it, with the machine it ran
on, to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench import harness
from bench.scenarios import all_scenarios, select

DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[2])
    parser.add_argument("scenarios", nargs="*", help="scenario or group names (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS, help="where to write the table"
    )
    parser.add_argument(
        "--photos", type=int, metavar="N", help="photos in every photos-* scenario (200 or 100)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="sample each relay serve with py-spy into DIR"
    )
    parser.add_argument(
        "--profile-format", choices=("flamegraph", "raw", "speedscope"), default="flamegraph"
    )
    return parser.parse_args(argv)


def report(results: list[harness.Result], machine: dict[str, str], quick: bool, took: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"{harness.now_stamp()}, {'--quick run (reduced sizes)' if quick else 'full run'}, "
        f"{took / 60:.1f} min. Ratio = relay / baseline; see bench/README.md for each scenario.",
        "",
        harness.table(results),
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.list:
        for scenario in all_scenarios():
            print(f"{scenario.name:<22} {scenario.group:<8} {scenario.about}")
        return 0
    chosen = select(args.scenarios)
    if args.profile:
        harness.PROFILE.update(dir=args.profile.resolve(), format=args.profile_format)
    workdir = harness.make_workdir()
    ctx = harness.Context(quick=args.quick, workdir=workdir, photos=args.photos)
    started = time.monotonic()
    results: list[harness.Result] = []
    try:
        machine = harness.machine(workdir)
        for scenario in chosen:
            ctx.log(f"== {scenario.name}")
            try:
                results.extend(scenario.run(ctx))
            except Exception as exc:  # one broken scenario must not hide the others' figures
                traceback.print_exc()
                results.append(harness.Result(scenario.name, "", note=f"error: {exc}"[:200]))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, machine, args.quick, time.monotonic() - started)
    print(text)
    args.results.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(harness.as_json(results, machine), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
