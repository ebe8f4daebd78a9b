"""A/B: this library at two commits (or a commit and the working tree), interleaved.

Usage (from the repository root)::

    bench/.venv/bin/python bench/ab.py --old HEAD~1 [--new WORKTREE] \\
        --scenarios sequential,batch --runs 6 [--quick]

``--old`` is a git revision, exported with ``git archive`` into a temporary
directory; ``--new`` is a directory (default: this working tree).  Each run
measures old then new, or new then old (alternating), one fresh cell each
(run.py's ``Cell``: fresh gearmand, fresh common workers, fresh client process),
so drift of a shared machine falls on both alike.  Prints, per scenario, the
median jobs/s and CPU µs/job of each side with the new/old ratio.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

import run


def export(revision: str) -> str:
    """The tree of ``revision`` in a temporary directory."""
    target = tempfile.mkdtemp(prefix="gearman-ab-")
    archive = subprocess.run(["git", "-C", run.ROOT, "archive", revision], check=True,
                             stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return target


def summary(cells: List[Dict[str, Any]]) -> str:
    good = [c for c in cells if c.get("ok")]
    if not good:
        return f"failed: {cells[0].get('error') if cells else 'no runs'}"
    rates = [c["jobs_per_s"] for c in good]
    cpus = [c["cpu_s"] / c["jobs"] * 1e6 for c in good]
    return (f"{statistics.median(rates):>9,.0f} jobs/s ({min(rates):,.0f}-{max(rates):,.0f})  "
            f"CPU {statistics.median(cpus):6.1f} µs/job ({min(cpus):.1f}-{max(cpus):.1f})  "
            f"n={len(good)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision of the A side")
    parser.add_argument("--new", default=run.ROOT, help="directory of the B side")
    parser.add_argument("--scenarios", default="sequential,batch")
    parser.add_argument("--runs", type=int, default=6, help="runs of each side")
    parser.add_argument("--quick", action="store_true", help="a tenth of the jobs")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    scenarios = run.select_scenarios(args.scenarios, args.quick)
    trees = {"old": export(args.old), "new": os.path.abspath(args.new)}
    try:
        return measure(args, scenarios, trees)
    finally:
        shutil.rmtree(trees["old"], ignore_errors=True)


def measure(args: argparse.Namespace, scenarios: List[run.Scenario],
            trees: Dict[str, str]) -> int:
    logdir = tempfile.mkdtemp(prefix="gearman-ab-logs-")
    cells: Dict[str, Dict[str, List[Dict[str, Any]]]] = {
        s.name: {"old": [], "new": []} for s in scenarios}
    for number in range(args.runs):
        for scenario in scenarios:
            order = ("old", "new") if number % 2 == 0 else ("new", "old")
            for side in order:
                cell = run.Cell(scenario, "gearman", number, logdir, None, args.timeout,
                                tree=trees[side])
                result = cell.run()
                cells[scenario.name][side].append(result)
                print(f"run {number + 1} {scenario.name:<12} {side}: "
                      f"{run.describe_cell(result)}", flush=True)
    print(f"\nold = {args.old}, new = {trees['new']}; {args.runs} interleaved runs each")
    for scenario in scenarios:
        old, new = cells[scenario.name]["old"], cells[scenario.name]["new"]
        print(f"{scenario.name:<12} old {summary(old)}")
        print(f"{'':<12} new {summary(new)}")
        rate = [statistics.median([c["jobs_per_s"] for c in side if c.get("ok")] or [0])
                for side in (old, new)]
        if rate[0]:
            print(f"{'':<12} new/old jobs/s {rate[1] / rate[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
