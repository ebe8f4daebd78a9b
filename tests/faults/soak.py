"""Soak: many small foreground jobs through one client, a real gearmand and two
worker processes, with the memory (VmRSS) of each sampled along the way.

By hand (about 3 minutes on 2 cores)::

    python tests/faults/soak.py --jobs 1000000 --out bench/results/soak.md

tests/faults/test_fault_soak.py runs a short version (50,000 jobs) in CI and
asserts that no process grows after the warm-up.  Exit status 1 if a job was
lost or failed, or the client or a worker grew by more than ``--max-growth-kb``
after the warm-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), HERE]

import gearman  # noqa: E402
from gearman.constants import JOB_COMPLETE  # noqa: E402
from gearman.testing import GearmandProcess  # noqa: E402

from faultkit import WorkerProcess, rss_kb  # noqa: E402

PAYLOAD = b"soak-payload-16b"


def run_soak(jobs: int, batch: int = 1000, sample_every: int = 10000,
             log: Optional[Any] = None) -> Dict[str, Any]:
    """Run ``jobs`` echo jobs in batches; return samples and counts."""
    samples: List[Dict[str, Any]] = []
    failed = 0
    with GearmandProcess() as server:
        workers = [WorkerProcess([server.address]).start() for _ in range(2)]
        try:
            with gearman.GearmanClient([server.address]) as client:
                start = time.monotonic()
                done = 0
                while done < jobs:
                    size = min(batch, jobs - done)
                    requests = client.submit_multiple_jobs(
                        [{"task": "echo", "data": PAYLOAD} for _ in range(size)],
                        poll_timeout=60)
                    failed += sum(1 for r in requests
                                  if r.state != JOB_COMPLETE or r.result != PAYLOAD)
                    done += size
                    del requests
                    if done % sample_every == 0 or done == jobs:
                        sample = {"jobs": done, "seconds": round(time.monotonic() - start, 1),
                                  "client_kb": rss_kb(), "gearmand_kb": rss_kb(server.pid),
                                  "worker1_kb": rss_kb(workers[0].pid),
                                  "worker2_kb": rss_kb(workers[1].pid)}
                        samples.append(sample)
                        if log is not None:
                            print(_row(sample), file=log, flush=True)
        finally:
            codes = [worker.stop() for worker in workers]
            for worker in workers:
                worker.remove_files()
    return {"jobs": jobs, "failed": failed, "samples": samples, "worker_exit_codes": codes}


def growth_after_warmup(samples: List[Dict[str, Any]], key: str, warmup_jobs: int) -> int:
    """KiB a process grew between the end of the warm-up and the end of the run (its
    peak after the warm-up, so a rise that fell back still counts)."""
    after = [s for s in samples if s["jobs"] >= warmup_jobs]
    if len(after) < 2:
        return 0
    return max(s[key] for s in after[1:]) - after[0][key]


COLUMNS = ["jobs", "seconds", "client_kb", "worker1_kb", "worker2_kb", "gearmand_kb"]


def _row(sample: Dict[str, Any]) -> str:
    return "| " + " | ".join(str(sample[c]) for c in COLUMNS) + " |"


def markdown(result: Dict[str, Any], warmup_jobs: int) -> str:
    lines = [f"# Soak: {result['jobs']:,} small foreground jobs", "",
             "One client (this process), gearmand 1.1.20, two worker processes "
             "(tests/faults/fault_worker.py), loopback, 2 cores.  VmRSS in KiB, sampled "
             f"every {result['samples'][0]['jobs']:,} jobs.  Made by "
             "`python tests/faults/soak.py`.", "",
             f"Failed or lost jobs: {result['failed']}.  Growth after the warm-up "
             f"({warmup_jobs:,} jobs): "
             + ", ".join(f"{key} {growth_after_warmup(result['samples'], key, warmup_jobs):+d} KiB"
                         for key in COLUMNS[2:]) + ".", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [_row(sample) for sample in result["samples"]]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--sample-every", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=100000, help="jobs before the baseline")
    parser.add_argument("--max-growth-kb", type=int, default=1024)
    parser.add_argument("--out", help="write the table (markdown) here")
    args = parser.parse_args(argv)
    print("| " + " | ".join(COLUMNS) + " |")
    result = run_soak(args.jobs, args.batch, args.sample_every, log=sys.stdout)
    report = markdown(result, args.warmup)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report)
    print(report.split("\n\n")[2])
    grown = {key: growth_after_warmup(result["samples"], key, args.warmup)
             for key in ("client_kb", "worker1_kb", "worker2_kb")}
    ok = result["failed"] == 0 and all(g <= args.max_growth_kb for g in grown.values())
    return 0 if ok and result["worker_exit_codes"] == [0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
