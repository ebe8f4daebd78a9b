"""gearman-py status, top, workers, version, ping and cancel: the admin protocol."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List, Tuple

from gearman import errors
from gearman.admin_client import GearmanAdminClient
from gearman.cli.common import (EXIT_FAILED, EXIT_OK, PROG, AddCommand, CliError, ask_all,
                                make_admin, print_json, print_rows, report, seconds)

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


def register(command: AddCommand) -> None:
    command("status", cmd_status, "Functions with their queued (waiting) and running jobs "
            "and available workers.")
    sub = command("workers", cmd_workers, "Worker connections and their functions.")
    sub.add_argument("--all", action="store_true",
                     help="also list connections without functions (clients, admin)")
    command("version", cmd_version, "The gearmand version of each server.")
    command("ping", cmd_ping, "Round-trip time of an ECHO to each server.")
    sub = command("top", cmd_top, "Status, refreshed until Ctrl-C.")
    sub.add_argument("--count", "-n", type=int, metavar="N", default=0,
                     help="stop after N refreshes")
    sub.add_argument("--interval", type=seconds, metavar="S", default=1.0,
                     help="seconds between refreshes (default 1)")
    sub = command("cancel", cmd_cancel, "Cancel a queued background job by its handle.")
    sub.add_argument("handle", metavar="HANDLE")
