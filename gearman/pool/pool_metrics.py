"""The pool's ``/metrics`` (the worker metrics summed over its children, plus its
own) and ``/healthz``, served by :class:`gearman.metrics.MetricsServer`.

Children report cumulative totals (:mod:`gearman.pool.report`); the supervisor keeps
each live child's latest totals and folds a child's last totals into the
"retired" sums when it exits, so counters never go back when children recycle.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from gearman.metrics import (JOB_DURATION_BUCKETS, MetricFamily, MetricsServer, Registry,
                             format_value)

Done = Dict[str, Dict[str, int]]
Durations = Dict[str, List[float]]

OUTCOMES = ("complete", "fail", "exception")


class PoolMetrics:
    """The supervisor's registry: worker metrics summed over children, pool gauges."""

    def __init__(self, supervisor: Any) -> None:
        self.supervisor = supervisor
        self.registry = Registry()
        self.registry.add_collector(self._collect_jobs)
        self.registry.add_collector(self._collect_processes)
        self.restarts = self.registry.counter(
            "gearman_pool_restarts_total", "Children replaced, by why the old one went "
            "(max_jobs, lifetime, reload, died, start_failed)", ["reason"])
        self._live: Dict[int, Tuple[Done, Durations, Dict[str, int]]] = {}
        self._retired_done: Done = {}
        self._retired_durations: Durations = {}
        self.server: Optional[MetricsServer] = None
        #: the duration histogram's bounds, handed to every child
        self.buckets = JOB_DURATION_BUCKETS

    def start(self, listen: str) -> None:
        self.server = MetricsServer(listen, self.registry, health=self.supervisor.health)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    # -- from the supervisor's loop --------------------------------------------------
    def child_event(self, child: Any, event: Dict[str, Any]) -> None:
        if event["event"] == "jobs":
            self._live[child.number] = (event.get("done") or {}, event.get("durations") or {},
                                        event.get("running") or {})

    def child_gone(self, child: Any) -> None:
        totals = self._live.pop(child.number, None)
        if totals is not None:
            _add_done(self._retired_done, totals[0])
            _add_durations(self._retired_durations, totals[1])

    # -- at scrape time (the server's thread: copies, never the live dicts) -----------
    def _collect_jobs(self) -> List[MetricFamily]:
        done: Done = {}
        durations: Durations = {}
        running: Dict[str, int] = {}
        _add_done(done, self._retired_done)
        _add_durations(durations, self._retired_durations)
        for child_done, child_durations, child_running in list(self._live.values()):
            _add_done(done, child_done)
            _add_durations(durations, child_durations)
            for task, count in child_running.items():
                running[task] = running.get(task, 0) + int(count)
        jobs = MetricFamily("gearman_worker_jobs_total", "Jobs finished, by task and "
                            "outcome (complete, fail, exception)", "counter")
        for task in sorted(done):
            for outcome in OUTCOMES:
                if outcome in done[task]:
                    jobs.add({"task": task, "outcome": outcome}, done[task][outcome],
                             suffix="")
        took = MetricFamily("gearman_worker_job_duration_seconds", "Time a job took, "
                            "by task", "histogram")
        bounds = [format_value(bound) for bound in JOB_DURATION_BUCKETS] + ["+Inf"]
        for task in sorted(durations):
            counts, cumulative = durations[task], 0.0
            for bound, in_bucket in zip(bounds, counts):
                cumulative += in_bucket
                took.add({"task": task, "le": bound}, int(cumulative), suffix="_bucket")
            took.add({"task": task}, counts[-1], suffix="_sum")
            took.add({"task": task}, int(cumulative), suffix="_count")
        in_progress = MetricFamily("gearman_worker_jobs_in_progress", "Jobs running now, "
                                   "by task", "gauge")
        for task in sorted(set(running) | set(done)):  # 0 for the tasks seen before
            in_progress.add({"task": task}, running.get(task, 0))
        return [jobs, took, in_progress]

    def _collect_processes(self) -> List[MetricFamily]:
        processes = MetricFamily("gearman_pool_processes", "Worker processes running",
                                 "gauge")
        processes.add({}, len(self.supervisor.children))
        return [processes]


def _add_done(into: Done, more: Done) -> None:
    for task, outcomes in more.items():
        mine = into.setdefault(task, {})
        for outcome, count in outcomes.items():
            mine[outcome] = mine.get(outcome, 0) + int(count)


def _add_durations(into: Durations, more: Durations) -> None:
    size = len(JOB_DURATION_BUCKETS) + 2
    for task, counts in more.items():
        if len(counts) != size:
            continue  # from a child with other buckets: not comparable
        mine = into.setdefault(task, [0.0] * size)
        for i, count in enumerate(counts):
            mine[i] += float(count)
