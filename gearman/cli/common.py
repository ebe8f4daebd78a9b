"""What every gearman-py command shares: exit codes, the server list, one-line
errors, tables and JSON output, the admin client the admin commands use."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from gearman.admin_client import GearmanAdminClient
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE
from gearman.util import parse_host

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more seconds")
    return value


ADMIN_TIMEOUT_HELP = f"seconds an answer may take (default {DEFAULT_ADMIN_TIMEOUT:g})"

#: ``command(name, func, help_text, timeout_help=..., json_ok=True, **parser_kwargs)``:
#: how a command module's ``register`` adds a subcommand (see cli.parser).
AddCommand = Callable[..., argparse.ArgumentParser]
