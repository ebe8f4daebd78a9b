"""Job metrics for a GearmanWorker.

``instrument_worker(worker)`` adds one job observer to the worker
(:meth:`GearmanWorker.add_job_observer`); it counts on whatever thread runs
the job, so it serves the one-job worker and a worker that runs jobs on
several threads alike.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional, Tuple

from gearman.metrics.core import Counter, Gauge, Histogram, Registry

#: The outcomes ``gearman_worker_jobs_total`` counts.
OUTCOMES = ("complete", "fail", "exception")

#: Buckets for job durations, in seconds: from 5 ms up to 10 minutes.
JOB_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        60.0, 120.0, 300.0, 600.0)


class WorkerMetrics:
    """``gearman_worker_jobs_total{task,outcome}``,
    ``gearman_worker_job_duration_seconds{task}`` (histogram, callback start to final
    answer) and ``gearman_worker_jobs_in_progress{task}``, in :attr:`registry`.

    A job observer: ``job_started(job)``, ``job_finished(job, outcome)`` and
    ``job_abandoned(job)``.
    """

    def __init__(self, registry: Optional[Registry] = None) -> None:
        self.registry = Registry() if registry is None else registry
        self.jobs: Counter = self.registry.counter(
            "gearman_worker_jobs_total", "Jobs this worker finished, by task and outcome "
            "(complete, fail, exception).", ["task", "outcome"])
        self.duration: Histogram = self.registry.histogram(
            "gearman_worker_job_duration_seconds", "Seconds from a job's start to its final "
            "answer, by task.", ["task"], buckets=JOB_DURATION_BUCKETS)
        self.in_progress: Gauge = self.registry.gauge(
            "gearman_worker_jobs_in_progress", "Jobs running now, by task.", ["task"])
        self._lock = threading.Lock()
        self._started: Dict[int, Tuple[Any, float]] = {}  # id(job) -> (job, start)

    def job_started(self, job: Any) -> None:
        task = str(job.task)
        for outcome in OUTCOMES:  # every series exists from the first job: rate() sees 0
            self.jobs.labels(task, outcome)
        self.in_progress.labels(task).inc()
        with self._lock:
            self._started[id(job)] = (job, time.monotonic())

    def job_abandoned(self, job: Any) -> None:
        """A job dropped unanswered (an asyncio worker closed under it; gearmand
        re-queues it): no longer in progress, and no outcome counted."""
        with self._lock:
            started = self._started.pop(id(job), None)
        if started is not None:
            self.in_progress.labels(str(job.task)).dec()

    def job_finished(self, job: Any, outcome: str) -> None:
        task = str(job.task)
        with self._lock:
            started = self._started.pop(id(job), None)
        self.jobs.labels(task, outcome).inc()
        if started is not None:  # else a final answer sent for a job never started here
            self.duration.labels(task).observe(max(0.0, time.monotonic() - started[1]))
            self.in_progress.labels(task).dec()


def instrument_worker(worker: Any, registry: Optional[Registry] = None) -> WorkerMetrics:
    """Count ``worker``'s jobs in ``registry`` (a new Registry if None); returns the
    WorkerMetrics, whose ``registry`` a MetricsServer can serve.  Instrumenting the
    same worker twice with the same registry returns the first WorkerMetrics."""
    add = getattr(worker, "add_job_observer", None)
    if add is None:
        raise TypeError(f"instrument_worker needs a GearmanWorker, got {type(worker).__name__}")
    for observer in getattr(worker, "_job_observers", ()):
        if isinstance(observer, WorkerMetrics) and observer.registry is registry:
            return observer
    metrics = WorkerMetrics(registry)
    add(metrics)
    return metrics

