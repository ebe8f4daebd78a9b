"""One worker process of the pool: ``python -m gearman.pool.child CONFIG_JSON``.

It builds the worker from TARGET (a fresh import: this is a new interpreter),
names it, and runs ``work()`` until one of these ends it, always between jobs
(after the last result is sent and flushed, so nothing is lost or run twice):

- ``max_jobs`` jobs started (the last one finishes first);
- its lifetime (chosen by the supervisor, splay included) is over;
- SIGTERM or SIGINT (stop grabbing, finish the running jobs);
- its stdin reaches end of file: the supervisor is gone.

What it tells the supervisor goes through :class:`gearman.pool.report.Reporter`.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional

from gearman.pool.report import Reporter
from gearman.pool.target import build_worker

log = logging.getLogger("gearman.pool.child")

EXIT_CLEAN, EXIT_START_FAILED = 0, 3
#: how often an idle child looks at its connections and lifetime
CHILD_POLL_TIMEOUT = 1.0
#: a busy child polls once a job or more: it looks at them at most this often
CHECK_INTERVAL = 0.05


class ChildRun:
    """Wraps one worker object with the pool's accounting and stop rules: a job
    observer (``add_job_observer``, only with ``--max-jobs`` or ``--metrics``)
    counts the jobs, an ``after_poll`` set on the
    instance (the target's own hook still runs inside it) watches connections
    and the lifetime."""

    def __init__(self, worker: Any, reporter: Reporter, config: Dict[str, Any]) -> None:
        self.worker = worker
        self.reporter = reporter
        self.max_jobs: Optional[int] = config.get("max_jobs")
        self.count_jobs = bool(config.get("report_jobs"))
        self.started_jobs = 0
        self.exit_reason = "supervisor"
        self._lock = threading.Lock()
        self._started: Dict[int, float] = {}  # id(job) -> when it started
        self._connected: Optional[bool] = None
        lifetime = config.get("lifetime")
        self.deadline = None if lifetime is None else time.monotonic() + float(lifetime)
        self._next_check = 0.0
        self._after_poll = worker.after_poll
        worker.after_poll = self.after_poll
        if self.max_jobs is not None or self.count_jobs:  # else a job costs the pool nothing
            worker.add_job_observer(self)

    def stop(self, reason: str) -> None:
        """Stop grabbing; work() returns once the running jobs are done (any thread)."""
        if self.exit_reason == "supervisor":
            self.exit_reason = reason
        self.worker.shutdown()

    def job_started(self, job: Any) -> None:
        with self._lock:
            self.started_jobs += 1
            last = self.max_jobs is not None and self.started_jobs >= self.max_jobs
            if self.count_jobs:
                self._started[id(job)] = time.monotonic()
        if last:
            self.stop("max_jobs")  # no GRAB after this job; its result still goes out
        if self.count_jobs:
            self.reporter.job_started(job.task)

    def job_finished(self, job: Any, outcome: str) -> None:
        if not self.count_jobs:
            return
        with self._lock:
            started = self._started.pop(id(job), None)
        if started is not None:
            self.reporter.job_ended(job.task, outcome, time.monotonic() - started)

    def after_poll(self, any_activity: bool) -> bool:
        now = time.monotonic()
        if now >= self._next_check:  # a few checks a second, not one per job
            self._next_check = now + CHECK_INTERVAL
            self._check(now)
        return bool(self._after_poll(any_activity))

    def _check(self, now: float) -> None:
        connected = any(c.connected for c in self.worker.connection_list)
        if connected != self._connected:
            self._connected = connected
            self.reporter.send("connected", up=connected)
        if self.count_jobs:
            self.reporter.send_jobs()
        if self.deadline is not None and now >= self.deadline:
            self.stop("lifetime")


def _watch_supervisor(run: ChildRun) -> None:
    """Stop when stdin (a pipe from the supervisor) ends: the supervisor died."""
    try:  # os.read, not sys.stdin: a daemon thread must not hold the buffer's lock at exit
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    run.stop("supervisor_gone")


def main(argv: List[str]) -> int:
    config = json.loads(argv[0])
    logging.basicConfig(level=config.get("log_level", logging.WARNING), stream=sys.stderr,
                        format=f"gearman-py pool [child {config['client_id']}]: "
                               "%(name)s: %(message)s")
    reporter = Reporter(int(config["report_fd"]), config.get("buckets") or ())
    try:
        worker = build_worker(config["target"], config["hosts"], config.get("task"),
                              config.get("concurrency"))
        worker.set_client_id(config["client_id"])
    except BaseException as exc:  # the target failed to import or build: say why, then exit
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        reporter.send("fatal", reason=reason)
        log.error("cannot start: %s", reason, exc_info=True)
        return EXIT_START_FAILED
    run = ChildRun(worker, reporter, config)
    signal.signal(signal.SIGTERM, lambda signum, frame: run.stop("signal"))
    signal.signal(signal.SIGINT, lambda signum, frame: run.stop("signal"))
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal, not ours
    threading.Thread(target=_watch_supervisor, args=(run,), daemon=True).start()
    reporter.send("ready", tasks=sorted(worker.worker_abilities))
    try:
        if run.exit_reason == "supervisor":  # no stop came before work() started
            worker.work(poll_timeout=CHILD_POLL_TIMEOUT)
    finally:
        worker.close()
        if run.count_jobs:
            reporter.send_jobs(force=True)
    reporter.send("exit", reason=run.exit_reason)
    return EXIT_CLEAN


if __name__ == "__main__":  # pragma: no cover - run by the supervisor
    sys.exit(main(sys.argv[1:]))
