"""Fixtures of the fault suite (tests/faults): worker processes and thread workers
that are always stopped, and a check that nothing is left running."""
from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

from faultkit import ThreadWorker, WorkerProcess


@pytest.fixture
def worker_processes() -> Iterator[Callable[..., WorkerProcess]]:
    """``start(hosts) -> WorkerProcess`` (tasks echo, record); all stopped at teardown."""
    started: List[WorkerProcess] = []

    def start(hosts: Any, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess([hosts] if isinstance(hosts, str) else hosts, **kwargs)
        started.append(worker)
        return worker.start()

    yield start
    codes = [worker.stop() for worker in started]
    errors = [w.stderr()[-2000:] for w in started if w.proc is not None and w.proc.returncode]
    for worker in started:
        worker.remove_files()
    # A clean SIGTERM shutdown exits 0: a worker that died of a fault would not.
    assert codes == [0] * len(codes), errors


@pytest.fixture
def thread_workers() -> Iterator[Callable[..., ThreadWorker]]:
    """``start(worker) -> ThreadWorker``; each must stop within 10 s at teardown."""
    started: List[ThreadWorker] = []

    def start(worker: Any, poll_timeout: float = 0.5) -> ThreadWorker:
        runner = ThreadWorker(worker, poll_timeout)
        started.append(runner)
        return runner.start()

    yield start
    stopped = [runner.stop() for runner in started]
    assert all(stopped), "a worker thread did not stop within 10 s"
    assert not [e for runner in started for e in runner.errors]


@pytest.fixture
def thread_baseline() -> Iterator[Callable[[], List[str]]]:
    """``extra()`` names the threads started since the test began (and still alive)."""
    before = set(threading.enumerate())

    def extra() -> List[str]:
        return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]

    yield extra


@pytest.fixture(scope="session")
def fault_figures() -> Iterator[Dict[str, Any]]:
    """Measured figures, by test; written as JSON to $GEARMAN_FAULT_REPORT if set
    (docs/reliability.rst quotes them)."""
    figures: Dict[str, Any] = {}
    yield figures
    path = os.environ.get("GEARMAN_FAULT_REPORT")
    if path and figures:
        with open(path, "w") as fh:
            json.dump(figures, fh, indent=2, sort_keys=True)
