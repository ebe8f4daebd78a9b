"""The jobs of the pool scenarios (bench/pool_bench.py): ``pool_workers:TASKS`` is
the TARGET given to ``gearman-py pool``, and ``python pool_workers.py ADDRESS
[CONCURRENCY]`` runs the same worker started by hand."""
from __future__ import annotations

import signal
import sys
import time
from typing import Any, List

import gearman

#: loop turns of one CPU-bound job (about 2-4 ms of pure Python on the 2-core VM)
CPU_LOOPS = 40000


def cpu(job: Any) -> bytes:
    total = 0
    for i in range(CPU_LOOPS):
        total += i * i
    return b"%d" % total


def sleep10(job: Any) -> bytes:
    time.sleep(0.01)
    return bytes(job.data)


def echo(job: Any) -> bytes:
    return bytes(job.data)


TASKS = {"cpu": cpu, "sleep10": sleep10, "echo": echo}


def main(argv: List[str]) -> int:
    concurrency = int(argv[1]) if len(argv) > 1 else 1
    worker = gearman.GearmanWorker([argv[0]], concurrency=concurrency)
    for task, callback in TASKS.items():
        worker.register_task(task, callback)
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.shutdown())
    worker.work(poll_timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
