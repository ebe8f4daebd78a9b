"""gearman-py: gearmand from the shell (status, workers, submit, work, top, ...).

Installed as the ``gearman-py`` console script and runnable as
``python -m gearman``.  Standard library only.  Every failure is one line on
stderr and a non-zero exit code: 1 when an operation failed, 2 for a usage
error, 130 after Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

from gearman import errors
from gearman.admin_client import GearmanAdminClient
from gearman.client import GearmanClient
from gearman.constants import (DEFAULT_CONNECT_TIMEOUT, JOB_COMPLETE, JOB_FAILED, PRIORITY_HIGH,
                               PRIORITY_LOW, PRIORITY_NONE)
from gearman.util import Deadline, parse_host
from gearman.version import __version__
from gearman.worker import GearmanWorker

PROG = "gearman-py"
DEFAULT_SERVER = "127.0.0.1:4730"
#: How long an admin command (status, workers, ...) may take when --timeout is not given.
DEFAULT_ADMIN_TIMEOUT = 10.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

PRIORITIES = {"low": PRIORITY_LOW, "normal": PRIORITY_NONE, "high": PRIORITY_HIGH}


class CliError(Exception):
    """A failure reported as one line on stderr, with exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# -- servers ---------------------------------------------------------------------------------
def server_list(hosts: Optional[Sequence[str]], environ: Mapping[str, str]) -> List[str]:
    """``--host`` values, else ``$GEARMAN_SERVERS`` (comma-separated, as libgearman
    reads it), else 127.0.0.1:4730.  Each entry is ``HOST[:PORT]``; duplicates go."""
    if hosts:
        entries, source = list(hosts), "--host"
    else:
        entries, source = [environ.get("GEARMAN_SERVERS", "")], "GEARMAN_SERVERS"
    servers: List[str] = []
    for entry in entries:
        for part in entry.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                address = parse_host(part).address
            except ValueError as exc:
                raise CliError(f"{source}: {exc}", EXIT_USAGE) from None
            if address not in servers:
                servers.append(address)
    if not servers and hosts:
        raise CliError("--host needs HOST[:PORT]", EXIT_USAGE)
    return servers or [DEFAULT_SERVER]


def admin_timeout(args: argparse.Namespace) -> float:
    return DEFAULT_ADMIN_TIMEOUT if args.timeout is None else args.timeout


def make_admin(args: argparse.Namespace) -> GearmanAdminClient:
    timeout = admin_timeout(args)
    return GearmanAdminClient(args.servers, poll_timeout=timeout,
                              connect_timeout=min(timeout, DEFAULT_CONNECT_TIMEOUT))


def ask_all(admin: GearmanAdminClient, method: str, *margs: Any
            ) -> Tuple[List[Tuple[str, Any]], List[str]]:
    """(answers, failures): what each server answered, and one message per server
    that failed."""
    answers, failures = [], []
    for server, answer in admin.ask_all_servers(method, *margs):
        if isinstance(answer, BaseException):
            failures.append(one_line(answer))
        else:
            answers.append((server, answer))
    return answers, failures


# -- output ----------------------------------------------------------------------------------
def one_line(what: Any) -> str:
    return " ".join(str(what).split())


def report(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns two spaces apart; numbers right-aligned, text left-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells])
              for i, header in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [value.rjust(width) if right else value.ljust(width)
                  for value, width, right in zip(values, widths, numeric)]
        return "  ".join(padded).rstrip()

    return "\n".join([line(list(headers))] + [line(row) for row in cells])


def print_rows(args: argparse.Namespace, rows: List[Dict[str, Any]],
               columns: Sequence[Tuple[str, str]]) -> None:
    """Print dict rows as a table: (header, key) columns, plus SERVER when there
    are several servers."""
    if len(args.servers) > 1:
        columns = [("SERVER", "server")] + list(columns)
    headers = [header for header, _ in columns]
    sys.stdout.write(format_table(headers, [[row[key] for _, key in columns]
                                            for row in rows]) + "\n")


# -- status and top --------------------------------------------------------------------------
STATUS_COLUMNS = [("FUNCTION", "function"), ("QUEUED", "queued"), ("RUNNING", "running"),
                  ("WORKERS", "workers")]


def status_rows(admin: GearmanAdminClient) -> Tuple[List[Dict[str, Any]], List[str]]:
    """One row per (server, function).  ``queued`` counts jobs waiting for a worker;
    ``total`` is gearmand's own count (waiting plus running)."""
    answers, failures = ask_all(admin, "get_status")
    rows = []
    for server, functions in answers:
        for entry in sorted(functions, key=lambda e: e["task"]):
            rows.append({"server": server, "function": entry["task"],
                         "queued": max(0, entry["queued"] - entry["running"]),
                         "running": entry["running"], "workers": entry["workers"],
                         "total": entry["queued"]})
    return rows, failures


def finish(failures: List[str]) -> int:
    for failure in failures:
        report(failure)
    return EXIT_FAILED if failures else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with make_admin(args) as admin:
        rows, failures = status_rows(admin)
    if args.json:
        print_json(rows)
    elif rows or not failures:
        print_rows(args, rows, STATUS_COLUMNS)
    return finish(failures)


def cmd_top(args: argparse.Namespace) -> int:
    clear = sys.stdout.isatty() and not args.json
    refreshes = 0
    with make_admin(args) as admin:
        while True:
            rows, failures = status_rows(admin)
            if args.json:
                sys.stdout.write(json.dumps({"time": time.time(), "status": rows,
                                             "errors": failures}) + "\n")
            else:
                if clear:
                    sys.stdout.write("\x1b[H\x1b[2J")
                sys.stdout.write(f"{PROG} top  {time.strftime('%H:%M:%S')}  "
                                 f"{', '.join(args.servers)}\n\n")
                print_rows(args, rows, STATUS_COLUMNS)
                for failure in failures:
                    sys.stdout.write(f"! {failure}\n")
                if not clear:
                    sys.stdout.write("\n")
            sys.stdout.flush()
            refreshes += 1
            if args.count and refreshes >= args.count:
                return finish(failures)
            time.sleep(args.interval)


# -- workers, version, ping ------------------------------------------------------------------
def cmd_workers(args: argparse.Namespace) -> int:
    with make_admin(args) as admin:
        answers, failures = ask_all(admin, "get_workers")
    rows = []
    for server, workers in answers:
        for worker in workers:
            if worker["tasks"] or args.all:
                rows.append({"server": server, "file_descriptor": worker["file_descriptor"],
                             "ip": worker["ip"], "client_id": worker["client_id"],
                             "functions": list(worker["tasks"])})
    if args.json:
        print_json(rows)
    elif rows or not failures:
        shown = [dict(row, functions=" ".join(row["functions"])) for row in rows]
        print_rows(args, shown, [("FD", "file_descriptor"), ("IP", "ip"),
                                 ("CLIENT_ID", "client_id"), ("FUNCTIONS", "functions")])
    return finish(failures)


def cmd_version(args: argparse.Namespace) -> int:
    with make_admin(args) as admin:
        answers, failures = ask_all(admin, "get_version")
    rows = [{"server": server, "version": version} for server, version in answers]
    if args.json:
        print_json(rows)
    elif len(args.servers) == 1:
        for row in rows:
            sys.stdout.write(f"{row['version']}\n")
    elif rows:
        print_rows(args, rows, [("VERSION", "version")])
    return finish(failures)


def cmd_ping(args: argparse.Namespace) -> int:
    with make_admin(args) as admin:
        answers, failures = ask_all(admin, "ping_server")
    rows = [{"server": server, "seconds": seconds} for server, seconds in answers]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            sys.stdout.write(f"{row['server']}: answered in {row['seconds'] * 1000:.2f} ms\n")
    return finish(failures)


# -- cancel ----------------------------------------------------------------------------------
def cmd_cancel(args: argparse.Namespace) -> int:
    handle = args.handle
    with make_admin(args) as admin:
        server = args.servers[0] if len(args.servers) == 1 else holder_of(admin, handle)
        try:
            admin.cancel_job(handle, server=server)
        except errors.AdminCommandError as exc:
            if exc.code == "UNKNOWN_JOB":
                raise CliError(f"gearmand at {server} has no job {handle} (finished, "
                               "or never queued there)") from None
            raise
    if args.json:
        print_json({"handle": handle, "server": server, "cancelled": True})
    else:
        sys.stdout.write(f"cancelled {handle} on {server}\n")
    return EXIT_OK


def holder_of(admin: GearmanAdminClient, handle: str) -> str:
    """The one server whose ``show jobs`` lists ``handle``.  Handles are per server
    (two gearmands on one host both hand out ``H:host:1``), so a handle found on
    several servers is an error rather than a guess."""
    answers, failures = ask_all(admin, "get_jobs")
    holders = [server for server, jobs in answers if any(j["handle"] == handle for j in jobs)]
    if len(holders) == 1:
        return holders[0]
    for failure in failures:
        report(failure)
    if holders:
        raise CliError(f"job {handle} exists on several servers ({', '.join(holders)}); "
                       "name one with --host")
    asked = ", ".join(server for server, _ in answers) or "no server"
    raise CliError(f"no job {handle} on {asked}")


# -- submit ----------------------------------------------------------------------------------
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
            ok = request.complete and request.state != JOB_FAILED
            if ok and args.background:
                out.write(f"{request.job.handle}\n".encode())
            elif ok:
                out.write((request.result or b"").rstrip(b"\n") + b"\n")
            else:
                failures += 1
                out.write(b"\n")
                report(f"line {index}: job failed: {failure_text(request).rstrip()}")
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


def submit_outcome(args: argparse.Namespace, request: Any) -> int:
    """Print a submitted job's result, handle or JSON summary; report a failure."""
    job = request.job
    server = getattr(request.accepted_by or job.connection, "address", None)
    name = f"job {job.handle}" if job.handle else f"job for {args.function!r}"
    if request.connection_failed:
        if job.handle:
            raise CliError(f"lost the connection to gearmand at {server} while waiting for "
                           f"{name}")
        raise CliError(f"{name} not submitted: no gearmand reachable among "
                       f"{', '.join(args.servers)}")
    if request.timed_out:
        raise CliError(f"{name} did not {'get a handle' if args.background else 'finish'} "
                       f"within {args.timeout:g} seconds")
    failed = request.state != JOB_COMPLETE and not (args.background and job.handle)
    if args.json:
        print_json(submit_summary(args, request, server))
    elif args.background and not failed:
        sys.stdout.write(f"{job.handle}\n")
    elif not failed:
        out = sys.stdout.buffer
        for chunk in request.data_updates:
            out.write(chunk)
        out.write(request.result or b"")
        out.flush()
    if failed:
        report(f"{name} failed: {failure_text(request).rstrip()}")
        return EXIT_FAILED
    return EXIT_OK


def failure_text(request: Any) -> str:
    """Why a job failed: its exception text, else the warnings it sent (what
    ``work`` sends), else that it failed without details."""
    if request.exception is not None:
        return str(request.exception)
    return "\n".join(warning_texts(request)) or "WORK_FAIL, no details"


def warning_texts(request: Any) -> List[str]:
    """The job's WORK_WARNING payloads as text."""
    return [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w)
            for w in request.warning_updates]


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


# -- work ------------------------------------------------------------------------------------
class CommandWorker(GearmanWorker):
    """Runs ``command`` once per job: the payload on its stdin, its stdout as the
    result; a non-zero exit fails the job with its stderr text.

    A failure goes out as WORK_WARNING (the text) plus WORK_FAIL, not as
    WORK_EXCEPTION: gearmand 1.1.20 turns WORK_EXCEPTION into a WORK_FAIL for
    clients that did not opt in to exceptions, and the C ``gearman`` client
    never matches that packet and waits for ever.
    """

    def __init__(self, host_list: Any, command: List[str], count: Optional[int] = None,
                 **options: Any) -> None:
        super().__init__(host_list, **options)
        self.command = command
        self.jobs_left = count

    def run_command(self, worker: GearmanWorker, job: Any) -> Optional[bytes]:
        env = dict(os.environ, GEARMAN_FUNCTION=job.task, GEARMAN_HANDLE=job.handle or "",
                   GEARMAN_UNIQUE=job.unique or "")
        try:
            proc = subprocess.run(self.command, input=job.data, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            self.fail(job, f"cannot run {self.command[0]}: {exc.strerror or exc}")
            return None
        if proc.returncode != 0:
            text = proc.stderr.decode("utf-8", "replace").strip()
            self.fail(job, text or f"{self.command[0]} exited with status {proc.returncode}")
            return None
        if proc.stderr:
            sys.stderr.buffer.write(proc.stderr)
            sys.stderr.flush()
        return bytes(proc.stdout)

    def fail(self, job: Any, text: str) -> None:
        self.log.info("job %s (%s) failed: %s", job.handle, job.task, text)
        self.send_job_warning(job, text)
        self.send_job_failure(job)

    def after_job(self) -> bool:
        if self.jobs_left is None:
            return True
        self.jobs_left -= 1
        return self.jobs_left > 0


def cmd_work(args: argparse.Namespace) -> int:
    command = list(args.command)
    if not command:
        raise CliError("work needs a command: work FUNCTION -- COMMAND [ARG ...]", EXIT_USAGE)
    if shutil.which(command[0]) is None:
        raise CliError(f"command not found: {command[0]}", EXIT_USAGE)
    if args.count is not None and args.count < 1:
        raise CliError(f"--count must be at least 1, got {args.count}", EXIT_USAGE)
    connect_timeout = DEFAULT_CONNECT_TIMEOUT if args.timeout is None else args.timeout
    worker = CommandWorker(args.servers, command, args.count, connect_timeout=connect_timeout)
    try:
        if args.client_id:
            worker.set_client_id(args.client_id)
        worker.register_task(args.function, worker.run_command)
        if not worker.establish_worker_connections():
            raise CliError(f"no gearmand reachable among {', '.join(args.servers)}")
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: worker.shutdown())
        try:
            worker.work(poll_timeout=60.0)
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        worker.close()
    return EXIT_OK


# -- the parser ------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not the usage text."""

    def error(self, message: str) -> NoReturn:
        report(f"{message} (see '{self.prog} --help')")
        sys.exit(EXIT_USAGE)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more seconds")
    return value


def add_common(parser: argparse.ArgumentParser, timeout_help: str,
               json_ok: bool = True, top: bool = False) -> None:
    """The global options, accepted before or after the subcommand (SUPPRESS keeps a
    subcommand from resetting what was given before it)."""
    sup = argparse.SUPPRESS if not top else None
    parser.add_argument("--host", action="append", dest="hosts", metavar="HOST[:PORT]",
                        default=sup, help="a gearmand server (repeatable; default: "
                        "$GEARMAN_SERVERS, else 127.0.0.1:4730)")
    if json_ok:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help="machine-readable JSON output")
    parser.add_argument("--timeout", type=seconds, metavar="S", default=sup, help=timeout_help)
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log the library's messages to stderr (-vv: debug)")


ADMIN_TIMEOUT_HELP = f"seconds an answer may take (default {DEFAULT_ADMIN_TIMEOUT:g})"


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Talk to gearmand job servers: look at queues "
                    "and workers, submit jobs, run a shell command as a worker.",
                    epilog="Run '%(prog)s COMMAND --help' for one command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common(parser, ADMIN_TIMEOUT_HELP + "; for submit: seconds to wait for the job",
               top=True)
    parser.set_defaults(json=False, verbose=0)
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def command(name: str, func: Any, help_text: str, timeout_help: str = ADMIN_TIMEOUT_HELP,
                json_ok: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, **kwargs)
        add_common(sub, timeout_help, json_ok)
        sub.set_defaults(run=func)
        return sub

    command("status", cmd_status, "Functions with their queued (waiting) and running jobs "
            "and available workers.")
    sub = command("workers", cmd_workers, "Worker connections and their functions.")
    sub.add_argument("--all", action="store_true",
                     help="also list connections without functions (clients, admin)")
    command("version", cmd_version, "The gearmand version of each server.")
    command("ping", cmd_ping, "Round-trip time of an ECHO to each server.")

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

    sub = command("work", cmd_work, "Do jobs for FUNCTION by running COMMAND once per job "
                  "(payload on stdin, stdout is the result; a non-zero exit fails the job "
                  "with its stderr).", json_ok=False,
                  usage=f"{PROG} work [options] FUNCTION -- COMMAND [ARG ...]",
                  timeout_help=f"seconds a connect may take (default "
                               f"{DEFAULT_CONNECT_TIMEOUT:g})")
    sub.add_argument("function", metavar="FUNCTION")
    sub.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    sub.add_argument("--client-id", metavar="ID", help="name shown by 'workers'")
    sub.add_argument("--count", "-c", type=int, metavar="N",
                     help="exit after N jobs (default: work until Ctrl-C or SIGTERM)")

    sub = command("top", cmd_top, "Status, refreshed until Ctrl-C.")
    sub.add_argument("--count", "-n", type=int, metavar="N", default=0,
                     help="stop after N refreshes")
    sub.add_argument("--interval", type=seconds, metavar="S", default=1.0,
                     help="seconds between refreshes (default 1)")

    sub = command("cancel", cmd_cancel, "Cancel a queued background job by its handle.")
    sub.add_argument("handle", metavar="HANDLE")
    return parser


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Parse ``argv``; for ``work`` everything after the first ``--`` is the command,
    untouched (argparse would take its options for ours)."""
    parser = build_parser()
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        if args.subcommand == "work":
            args.command = list(args.command) + argv[cut + 1:]
            return args
    args, extras = parser.parse_known_args(argv)
    # argparse settles an optional positional (submit's DATA) at the first option
    # after FUNCTION: 'submit f --unique u DATA' leaves DATA over.  Take it back.
    if (args.subcommand == "submit" and args.data is None and len(extras) == 1
            and not extras[0].startswith("-")):
        args.data, extras = extras[0], []
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def configure_logging(verbosity: int) -> None:
    if verbosity:
        logging.basicConfig(level=logging.DEBUG if verbosity > 1 else logging.INFO,
                            format=f"{PROG}: %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool; returns the exit code."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose)
    try:
        args.servers = server_list(args.hosts, os.environ)
        return int(args.run(args))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except CliError as exc:
        report(one_line(exc))
        return exc.code
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, and keep Python from
        # complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (errors.GearmanError, OSError, ValueError, TypeError) as exc:
        report(one_line(exc))
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
