"""gearman-py exporter: serve gearmand's queues and workers to Prometheus."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from gearman.cli.common import EXIT_OK, EXIT_USAGE, PROG, AddCommand, CliError
from gearman.exporter import DEFAULT_LISTEN, DEFAULT_TIMEOUT, GearmanExporter, health_text
from gearman.metrics import MetricsServer, Registry, parse_listen_address


def listen_address(text: str) -> str:
    try:
        parse_listen_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_exporter(args: argparse.Namespace) -> int:
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds for the exporter", EXIT_USAGE)
    exporter = GearmanExporter(args.servers, timeout=timeout,
                               server_label=True if args.server_label else None,
                               go_names=args.go_names)
    registry = Registry()
    registry.add_collector(exporter.collect)
    server = MetricsServer(args.listen, registry, health=lambda: health_text(exporter))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    sys.stderr.write(f"{PROG} exporter: serving {server.url}/metrics for "
                     f"{', '.join(exporter.servers)} (scrape timeout {timeout:g}s)\n")
    sys.stderr.flush()
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.close()
    return EXIT_OK


def register(command: AddCommand) -> None:
    sub = command("exporter", cmd_exporter,
                  "Serve gearmand's queues, workers and health as Prometheus metrics "
                  "(/metrics, /healthz) until SIGTERM or Ctrl-C.",
                  timeout_help=f"seconds a scrape may take, every server asked at once "
                  f"(default {DEFAULT_TIMEOUT:g}); a server slower than that is gearman_up 0",
                  json_ok=False)
    sub.add_argument("--listen", type=listen_address, metavar="HOST:PORT",
                     default=DEFAULT_LISTEN,
                     help=f"where to serve the metrics (default {DEFAULT_LISTEN}; "
                     "':9418' for every interface, port 0 for any free port)")
    sub.add_argument("--server-label", action="store_true",
                     help="label every sample with its server even when there is only one "
                     "(with several servers it always is)")
    sub.add_argument("--go-names", action="store_true",
                     help="also write the per-function gauges under the Go gearman-exporter's "
                     "names (gearman_jobs, gearman_jobs_running, gearman_jobs_waiting, "
                     "gearman_workers) for dashboards made for it")
