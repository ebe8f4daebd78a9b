"""gearman-py submit: one job, or one job per line of a file."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, Optional

from gearman.cli.common import (EXIT_FAILED, EXIT_OK, PRIORITIES, AddCommand, CliError,
                                one_line, print_json, report)
from gearman.cli.outcome import server_of, warning_texts, why_not_done
from gearman.client import GearmanClient
from gearman.constants import JOB_FAILED
from gearman.util import Deadline

def read_payload(data: Optional[str]) -> bytes:
    if data is None or data == "-":
        return sys.stdin.buffer.read()
    return os.fsencode(data)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, what: str, stream: Any = None) -> None:
        self.total, self.what = total, what
        self.stream = stream or sys.stderr
        self.enabled = bool(total) and self.stream.isatty()
        self._last = -1.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        width = 30
        filled = width * done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{self.total} {self.what}")
        self.stream.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            self.stream.write("\n")
            self.stream.flush()


def submit_lines(args: argparse.Namespace) -> int:
    """``submit FUNCTION --lines FILE``: one job per line, results in order, one per
    line; a progress bar on a terminal, none when stderr is piped."""
    source = sys.stdin.buffer if args.lines == "-" else open(args.lines, "rb")
    with source:
        payloads = [line.rstrip(b"\r\n") for line in source]
    jobs = [{"task": args.function, "data": payload, "priority": PRIORITIES[args.priority]}
            for payload in payloads]
    progress = Progress(len(jobs), "jobs")
    deadline = Deadline(args.timeout)
    with GearmanClient(args.servers) as client:
        requests = client.submit_multiple_jobs(jobs, background=args.background,
                                               wait_until_complete=False,
                                               poll_timeout=args.timeout)
        pending = requests
        while True:
            pending = [r for r in pending if not r.finished]
            if not pending or deadline.expired():
                break
            progress.update(len(requests) - len(pending))
            client.wait_until_jobs_completed(pending, poll_timeout=0.1)
        progress.close(len(requests) - len(pending))
        failures = 0
        out = sys.stdout.buffer
        for index, request in enumerate(requests, 1):
            reason = why_not_done(request, args.timeout, args.servers)
            if reason is None and args.background:
                out.write(f"{request.job.handle}\n".encode())
            elif reason is None:
                out.write((request.result or b"").rstrip(b"\n") + b"\n")
            else:
                failures += 1
                out.write(b"\n")
                report(f"line {index}: {job_name(request, args)}: {one_line(reason)}")
        out.flush()
    return EXIT_FAILED if failures else EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    if args.lines is not None:
        if args.data is not None or args.unique is not None:
            raise CliError("--lines takes the payloads from a file; give no DATA or --unique")
        return submit_lines(args)
    payload = read_payload(args.data)
    with GearmanClient(args.servers) as client:
        request = client.submit_job(args.function, payload, unique=args.unique,
                                    priority=PRIORITIES[args.priority],
                                    background=args.background, poll_timeout=args.timeout)
        # Judge the outcome before closing: closing fails whatever still waits.
        return submit_outcome(args, request)


def job_name(request: Any, args: argparse.Namespace) -> str:
    handle = request.job.handle
    return f"job {handle}" if handle else f"job for {args.function!r}"


def submit_outcome(args: argparse.Namespace, request: Any) -> int:
    """Print a submitted job's result, handle or JSON summary; report a failure."""
    reason = why_not_done(request, args.timeout, args.servers)
    name = job_name(request, args)
    if reason is not None and request.state != JOB_FAILED:
        raise CliError(f"{name}: {one_line(reason)}")  # nothing came back to print
    if args.json:
        print_json(submit_summary(args, request, server_of(request)))
    elif args.background and reason is None:
        sys.stdout.write(f"{request.job.handle}\n")
    elif reason is None:
        out = sys.stdout.buffer
        for chunk in request.data_updates:
            out.write(chunk)
        out.write(request.result or b"")
        out.flush()
    if reason is not None:
        report(f"{name}: {one_line(reason)}")
        return EXIT_FAILED
    return EXIT_OK


def submit_summary(args: argparse.Namespace, request: Any, server: Optional[str]
                   ) -> Dict[str, Any]:
    job = request.job
    summary: Dict[str, Any] = {"function": args.function, "unique": job.unique,
                               "handle": job.handle, "server": server, "state": request.state,
                               "background": args.background}
    if not args.background:
        result = b"".join(request.data_updates) + (request.result or b"")
        summary["result"] = result.decode("utf-8", "replace")
        summary["result_hex"] = result.hex()
        summary["exception"] = None if request.exception is None else str(request.exception)
        summary["warnings"] = warning_texts(request)
    return summary


def register(command: AddCommand) -> None:
    sub = command("submit", cmd_submit, "Submit one job and print its result (or, with "
                  "--background, its handle).",
                  timeout_help="seconds to wait for the result (default: for ever)")
    sub.add_argument("function", metavar="FUNCTION")
    sub.add_argument("data", metavar="DATA", nargs="?",
                     help="the payload; '-' or nothing reads it from stdin")
    sub.add_argument("--background", "-b", action="store_true",
                     help="do not wait for the result; print the job handle")
    sub.add_argument("--priority", choices=sorted(PRIORITIES), default="normal")
    sub.add_argument("--unique", "-u", metavar="U",
                     help="unique id: jobs with equal ids run once (63 bytes at most)")
    sub.add_argument("--lines", metavar="FILE",
                     help="one job per line of FILE ('-': stdin); prints the results in "
                          "order, one per line, with a progress bar on a terminal")
