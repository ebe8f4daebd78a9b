"""Prometheus metrics, standard library only: counters, gauges and histograms with
labels, the text exposition format 0.0.4, and a small HTTP server for them.

The API (stable; the worker pool and the exporter use it)::

    from gearman.metrics import Registry, MetricsServer, MetricFamily

    registry = Registry()
    jobs = registry.counter("gearman_worker_jobs_total", "Jobs finished",
                            ["task", "outcome"])          # made on first use
    jobs.labels(task="resize", outcome="complete").inc()  # or .labels("resize", "complete")
    procs = registry.gauge("gearman_pool_processes", "Worker processes running")
    procs.set(4); procs.inc(); procs.dec()                # no labels: use the metric itself
    took = registry.histogram("gearman_worker_job_duration_seconds", "Job time",
                              ["task"], buckets=JOB_DURATION_BUCKETS)
    took.labels("resize").observe(0.42)

    # values computed at scrape time: a collector returns MetricFamily snapshots
    registry.add_collector(lambda: [
        MetricFamily("gearman_up", "1 if gearmand answered", "gauge").add({"server": s}, 1)])

    text = registry.render()                  # str, Content-Type CONTENT_TYPE
    server = MetricsServer("127.0.0.1:0", registry,
                           health=lambda: (all_children_up(), "3/3 children up"))
    server.port, server.url                   # the bound port (0 asks the kernel)
    server.close()                            # stops the thread, frees the port

- Label names are fixed when a metric is made; ``labels()`` takes the values by
  position or by name and returns the child (made, at 0, on first use) with
  ``inc``/``set``/``dec``/``observe``; ``remove(...)``/``clear()`` forget children.
- ``registry.counter/gauge/histogram`` return the existing metric for a name already
  made with the same type and labels (so two parts of a program can share it), and
  raise ValueError for a clash; ``Registry.register(Counter(...))`` refuses duplicates.
- Every metric family has its own lock: safe from any number of threads.
- ``MetricsServer`` serves ``GET /metrics`` and ``GET /healthz`` (``health()`` ->
  ``(ok, text)``: 200 or 503; no health callable: always 200) on a daemon thread.
  ``parse_listen_address('HOST:PORT')`` -> ``(host, port)`` or a ValueError that
  says what is wrong.
- ``metrics = instrument_worker(worker, registry=None)`` -> WorkerMetrics: counts
  the worker's jobs (``gearman_worker_jobs_total{task,outcome}``, outcome
  complete/fail/exception; ``gearman_worker_job_duration_seconds{task}``;
  ``gearman_worker_jobs_in_progress{task}``) in ``metrics.registry`` (a new one if
  None), through ``worker.add_job_observer``; thread-safe.
"""
from __future__ import annotations

from gearman.metrics.core import DEFAULT_BUCKETS, Counter, Gauge, Histogram, Registry
from gearman.metrics.exposition import (CONTENT_TYPE, MetricFamily, escape_help,
                                        escape_label_value, format_value)
from gearman.metrics.server import HealthCheck, MetricsServer, parse_listen_address
from gearman.metrics.worker import JOB_DURATION_BUCKETS, WorkerMetrics, instrument_worker

__all__ = [
    "CONTENT_TYPE", "DEFAULT_BUCKETS", "JOB_DURATION_BUCKETS", "Counter", "Gauge", "Histogram",
    "MetricFamily", "Registry", "MetricsServer", "HealthCheck", "parse_listen_address",
    "escape_help", "escape_label_value", "format_value", "instrument_worker",
    "WorkerMetrics",
]
