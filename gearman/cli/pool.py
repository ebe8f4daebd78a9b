"""gearman-py pool: run and supervise worker processes (see docs/pool.rst)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Dict, List, Optional, Tuple

from gearman.cli.common import EXIT_USAGE, PROG, AddCommand, CliError, seconds

DEFAULT_GRACEFUL_TIMEOUT = 30.0


def whole_number(text: str, minimum: int = 1) -> int:
    """An argparse type: a whole number of at least ``minimum``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def task_count(text: str) -> Tuple[str, int]:
    """``TASK=N`` -> (task, N)."""
    task, sep, count = text.rpartition("=")
    if not sep or not task or not task.strip() == task or any(c.isspace() for c in task):
        raise argparse.ArgumentTypeError(f"{text!r} must be TASK=N (a task name without "
                                         "spaces, then a count)")
    return task, positive_int(count)


def cmd_pool(args: argparse.Namespace) -> int:
    from gearman.metrics import parse_listen_address
    from gearman.pool.supervisor import PoolConfig, Supervisor
    from gearman.pool.target import parse_target

    try:
        parse_target(args.target)
        if args.metrics is not None:
            parse_listen_address(args.metrics)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    dedicated: Dict[str, int] = {}
    for task, count in args.dedicated or ():
        dedicated[task] = dedicated.get(task, 0) + count
    processes: Optional[int] = args.processes
    if processes is None:
        processes = 0 if dedicated else 1
    if processes + sum(dedicated.values()) < 1:
        raise CliError("nothing to run: give --processes N or --dedicated TASK=N", EXIT_USAGE)
    if args.lifetime_splay and args.max_lifetime is None:
        raise CliError("--lifetime-splay needs --max-lifetime", EXIT_USAGE)
    _log_to_stderr(args.verbose)
    config = PoolConfig(
        target=args.target, hosts=list(args.servers), processes=processes,
        dedicated=dedicated, concurrency=args.concurrency, max_jobs=args.max_jobs,
        max_lifetime=args.max_lifetime, lifetime_splay=args.lifetime_splay or 0.0,
        graceful_timeout=args.graceful_timeout, metrics=args.metrics,
        child_log_level=logging.DEBUG if args.verbose > 1 else
        logging.INFO if args.verbose else logging.WARNING)
    return Supervisor(config).run()


def _log_to_stderr(verbosity: int) -> None:
    """The supervisor's own messages (starts, deaths, restarts) are its output."""
    logger = logging.getLogger("gearman.pool")
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG} pool: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def register(command: AddCommand) -> None:
    sub = command(
        "pool", cmd_pool, "Run TARGET's worker in supervised processes: replaced when they "
        "die, recycled after --max-jobs or --max-lifetime, drained on SIGTERM/SIGINT, "
        "restarted with fresh code on SIGHUP.", json_ok=False,
        timeout_help=argparse.SUPPRESS, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="TARGET is module:attribute: a GearmanWorker subclass, a no-argument callable "
               "returning a configured worker,\nor a mapping task -> callback. Hosts come "
               "from the worker, else --host / $GEARMAN_SERVERS.\n\nSignals: SIGTERM or "
               "SIGINT drain (children stop grabbing, finish within --graceful-timeout,\n"
               "then are killed; a second signal stops at once); SIGHUP replaces the "
               "children one at a time\nwith freshly imported code, each old child "
               "finishing its job first.")
    sub.add_argument("target", metavar="TARGET", help="module:attribute")
    sub.add_argument("--processes", type=_count_or_zero, metavar="N",
                     help="worker processes for all tasks (default 1, or 0 with --dedicated)")
    sub.add_argument("--dedicated", type=task_count, action="append", metavar="TASK=N",
                     help="N more processes that register TASK alone (repeatable)")
    sub.add_argument("--concurrency", type=positive_int, metavar="N",
                     help="jobs each process runs at once on threads (default: the worker's "
                          "own, 1)")
    sub.add_argument("--max-jobs", type=positive_int, metavar="N",
                     help="a process exits after N jobs, once its last result is sent")
    sub.add_argument("--max-lifetime", type=seconds, metavar="S",
                     help="a process exits after S seconds (plus the splay), between jobs")
    sub.add_argument("--lifetime-splay", type=seconds, metavar="J",
                     help="add a random 0..J seconds to each process's lifetime")
    sub.add_argument("--graceful-timeout", type=seconds, metavar="S",
                     default=DEFAULT_GRACEFUL_TIMEOUT,
                     help=f"seconds a stopping process may take to finish its jobs before "
                          f"SIGKILL (default {DEFAULT_GRACEFUL_TIMEOUT:g})")
    sub.add_argument("--metrics", metavar="HOST:PORT",
                     help="serve /metrics (Prometheus) and /healthz there")


def _count_or_zero(text: str) -> int:
    return whole_number(text, 0)


__all__: List[str] = ["register", "cmd_pool"]
