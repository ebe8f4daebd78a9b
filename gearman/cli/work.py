"""gearman-py work: run a shell command once per job."""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
from typing import Any, List, Optional

from gearman.cli.common import EXIT_OK, EXIT_USAGE, PROG, AddCommand, CliError
from gearman.constants import DEFAULT_CONNECT_TIMEOUT
from gearman.worker import GearmanWorker

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
        self._log_job(logging.INFO, job, "failed: %s", text)
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


def register(command: AddCommand) -> None:
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
