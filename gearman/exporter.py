"""A Prometheus exporter for one or several gearmand servers (``gearman-py exporter``).

Each scrape asks every server at once, one thread and one admin connection per
server, and answers within ``timeout`` seconds whatever the servers do: a server
that is down, or answers nothing (stopped, overloaded), is ``gearman_up 0``.

Metric names follow the Go gearman-exporter where it has one (``gearman_up``,
``gearman_version_info``); the per-function gauges are ``gearman_function_*``
(``go_names=True`` also writes them under the Go exporter's ``gearman_jobs``,
``gearman_jobs_running``, ``gearman_jobs_waiting``, ``gearman_workers``).  The
``server`` label is on every per-server sample when more than one server is
configured (or ``server_label=True``), so a one-server setup keeps the Go
exporter's label set.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from gearman import errors
from gearman.admin_client import GearmanAdminClient
from gearman.metrics.exposition import MetricFamily

log = logging.getLogger(__name__)

#: Seconds a scrape may take when no timeout is given (the Go exporter's default).
DEFAULT_TIMEOUT = 5.0
#: The port the Go gearman-exporter listens on; ``gearman-py exporter`` uses it too.
DEFAULT_LISTEN = "127.0.0.1:9418"

#: (name, help, key of the status row) of the per-function gauges.
FUNCTION_GAUGES = (
    ("gearman_function_jobs", "Jobs of the function in gearmand: waiting plus running.",
     "total"),
    ("gearman_function_jobs_running", "Jobs of the function a worker is running now.",
     "running"),
    ("gearman_function_jobs_waiting", "Jobs of the function waiting for a worker.", "waiting"),
    ("gearman_function_workers", "Workers registered for the function.", "workers"),
)
#: The Go gearman-exporter's names for the same gauges (go_names=True).
GO_NAMES = {"gearman_function_jobs": "gearman_jobs",
            "gearman_function_jobs_running": "gearman_jobs_running",
            "gearman_function_jobs_waiting": "gearman_jobs_waiting",
            "gearman_function_workers": "gearman_workers"}
PRIORITIES = ("high", "normal", "low")


class ServerReport:
    """What one server answered in one scrape (``error`` set when it did not)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.up = False
        self.error: Optional[str] = None
        self.version: Optional[str] = None
        self.functions: List[Dict[str, Any]] = []  # task, total, running, waiting, workers
        self.priorities: Optional[List[Dict[str, Any]]] = None  # task, high, normal, low
        self.workers_connected: Optional[int] = None
        self.seconds = 0.0


def ask_server(server: str, deadline: float) -> ServerReport:
    """Ask one gearmand for everything the exporter shows, each step bounded by
    ``deadline`` (a time.monotonic() value).  Never raises."""
    report = ServerReport(server)
    started = time.monotonic()

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise errors.InvalidAdminClientState(f"gearmand at {server}: out of time")
        return remaining

    try:
        with GearmanAdminClient([server], poll_timeout=left(), connect_timeout=left()) as admin:
            admin.poll_timeout = left()
            report.version = admin.get_version()
            admin.poll_timeout = left()
            for row in admin.get_status():
                report.functions.append({
                    "task": row["task"], "total": row["queued"], "running": row["running"],
                    "waiting": max(0, row["queued"] - row["running"]),
                    "workers": row["workers"]})
            report.up = True
            admin.poll_timeout = left()
            report.workers_connected = sum(1 for w in admin.get_workers() if w["tasks"])
            admin.poll_timeout = left()
            try:
                report.priorities = admin.get_priority_status()
            except errors.AdminCommandError as exc:  # gearmand before 1.1.15
                log.info("gearmand at %s has no prioritystatus: %s", server, exc)
    except (errors.GearmanError, OSError, ValueError) as exc:
        report.error = " ".join(str(exc).split())
        log.warning("scraping gearmand at %s: %s", server, report.error)
    report.seconds = time.monotonic() - started
    return report


class GearmanExporter:
    """Collects gearmand's state for a Registry: ``registry.add_collector(exporter.collect)``.

    ``servers`` are ``HOST[:PORT]`` strings; ``timeout`` bounds a whole scrape.
    """

    def __init__(self, servers: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
                 server_label: Optional[bool] = None, go_names: bool = False) -> None:
        if isinstance(servers, str) or not servers:
            raise ValueError("GearmanExporter needs a list of one or more 'HOST[:PORT]' "
                             f"servers, got {servers!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.servers = list(servers)
        self.timeout = float(timeout)
        self.server_label = len(self.servers) > 1 if server_label is None else server_label
        self.go_names = go_names

    def scrape(self) -> List[ServerReport]:
        """Ask every server at once; a server not done by the deadline is reported
        down (its thread ends on its own by the same deadline)."""
        deadline = time.monotonic() + self.timeout
        answers: queue.Queue[ServerReport] = queue.Queue()
        for server in self.servers:
            threading.Thread(target=lambda s=server: answers.put(ask_server(s, deadline)),
                             name=f"gearman-exporter:{server}", daemon=True).start()
        reports: Dict[str, ServerReport] = {}
        while len(reports) < len(self.servers):
            try:
                report = answers.get(timeout=max(0.0, deadline - time.monotonic()) + 0.05)
            except queue.Empty:
                break
            reports[report.server] = report
        for server in self.servers:
            if server not in reports:
                late = reports[server] = ServerReport(server)
                late.error, late.seconds = f"no answer within {self.timeout:g}s", self.timeout
        return [reports[server] for server in self.servers]

    def collect(self) -> List[MetricFamily]:
        """One scrape, as metric families."""
        return self.families(self.scrape())

    def families(self, reports: Sequence[ServerReport]) -> List[MetricFamily]:
        up = MetricFamily("gearman_up", "1 if gearmand answered the scrape, else 0.", "gauge")
        version = MetricFamily("gearman_version_info", "gearmand's version, as a label.",
                               "gauge")
        took = MetricFamily("gearman_scrape_duration_seconds",
                            "Seconds asking gearmand took in this scrape.", "gauge")
        connected = MetricFamily("gearman_workers_connected",
                                 "Worker connections with at least one function registered.",
                                 "gauge")
        by_priority = MetricFamily("gearman_function_jobs_waiting_by_priority",
                                   "Jobs of the function waiting for a worker, by priority "
                                   "(gearmand's prioritystatus).", "gauge")
        gauges = [(MetricFamily(name, text, "gauge"), key) for name, text, key in FUNCTION_GAUGES]
        for report in reports:
            where = self._where(report)
            up.add(where, 1 if report.up else 0)
            took.add(where, round(report.seconds, 6))
            if report.version is not None:
                version.add({"version": report.version, **where}, 1)
            if report.workers_connected is not None:
                connected.add(where, report.workers_connected)
            for row in report.functions:
                for family, key in gauges:
                    family.add({"function": row["task"], **where}, row[key])
            for row in report.priorities or ():
                for priority in PRIORITIES:
                    by_priority.add({"function": row["task"], "priority": priority, **where},
                                    row[priority])
        families = [up, version, took, connected] + [family for family, _ in gauges]
        families.append(by_priority)
        if self.go_names:
            families.extend(_renamed(family, GO_NAMES[family.name]) for family, _ in gauges)
        return families

    def _where(self, report: ServerReport) -> Dict[str, str]:
        return {"server": report.server} if self.server_label else {}


def _renamed(family: MetricFamily, name: str) -> MetricFamily:
    copy = MetricFamily(name, family.help + " (the Go gearman-exporter's name)", family.type)
    for sample in family.samples:
        copy.add(dict(sample.labels), sample.value)
    return copy


def health_text(exporter: GearmanExporter) -> Tuple[bool, str]:
    """``/healthz``: the exporter itself is up (gearmand's health is ``gearman_up``)."""
    return True, f"ok: exporting {len(exporter.servers)} gearmand server(s)"
