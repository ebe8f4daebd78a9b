"""A worker process for the fault tests and the soak: ``python fault_worker.py HOST:PORT...``.

It registers ``echo`` (returns the payload) and ``record`` (appends the job's
unique id to ``--log`` before returning it), so a test can count how many times
each job ran.  SIGTERM ends ``work()`` cleanly (exit status 0).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import gearman


class RecordingWorker(gearman.GearmanWorker):
    """Logs each ``record`` job's unique id (one line per run)."""

    def __init__(self, hosts: List[str], log_path: Optional[str]) -> None:
        super().__init__(hosts)
        self._log = open(log_path, "a", buffering=1) if log_path else None
        self.register_task("echo", self.echo)
        self.register_task("record", self.record)

    def echo(self, job: Any) -> Any:
        return job.data

    def record(self, job: Any) -> Any:
        if self._log is not None:
            self._log.write(f"{job.unique}\n")
        return job.data


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("hosts", nargs="+")
    parser.add_argument("--log", help="file that gets one line per 'record' job (its unique)")
    parser.add_argument("--ready", help="file created once the worker is set up")
    args = parser.parse_args(argv)
    worker = RecordingWorker(args.hosts, args.log)
    signal.signal(signal.SIGTERM, lambda *_: worker.shutdown())
    if args.ready:
        open(args.ready, "w").close()
    worker.work(poll_timeout=1.0)
    worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
