"""Defect 8: a shutdown() that runs before work() has started is kept, not lost.

No sleeps: work() runs in a thread with poll_timeout=None (it would wait for
ever if the stop request were lost), and each wait is a bounded join.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, List

import pytest

import gearman
from gearman.testing import GearmandProcess

pytestmark = pytest.mark.gearmand


def run_work(worker: gearman.GearmanWorker, before: Any = None) -> threading.Thread:
    """work(poll_timeout=None) in a daemon thread, after ``before()`` if given."""
    errors: List[BaseException] = []

    def target() -> None:
        try:
            if before is not None:
                before()
            worker.work(poll_timeout=None)
        except BaseException as exc:  # pragma: no cover - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def ended(worker: gearman.GearmanWorker, thread: threading.Thread) -> bool:
    """True if work() returned by itself within 10 s (else stop it and say so)."""
    thread.join(10)
    alive = thread.is_alive()
    while thread.is_alive():  # the request was lost: stop it now so the test ends
        worker.shutdown()
        thread.join(1)
    assert not thread.errors  # type: ignore[attr-defined]
    return not alive


def test_shutdown_before_work_makes_work_return_at_once(gearmand: GearmandProcess) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("never-sent", lambda job: b"")
    worker.shutdown()
    assert ended(worker, run_work(worker))
    # The request is used up: the next work() runs until its own shutdown().
    thread = run_work(worker)
    thread.join(0.3)
    assert thread.is_alive()
    worker.shutdown()
    assert ended(worker, thread)


def test_shutdown_from_another_thread_racing_work_is_never_lost(
        gearmand: GearmandProcess) -> None:
    """Both threads are released together by a barrier, 30 times: whichever of
    shutdown() and work()'s start runs first, work() returns."""
    for _ in range(30):
        worker = gearman.GearmanWorker([gearmand.address])
        worker.register_task("never-sent", lambda job: b"")
        barrier = threading.Barrier(2)
        thread = run_work(worker, before=functools.partial(barrier.wait, 10))
        barrier.wait(10)
        worker.shutdown()
        assert ended(worker, thread)
        worker.close()
