"""The gearman-py argument parser: global options, then one subcommand."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, NoReturn

from gearman.cli import exporter, pool, status, submit, work
from gearman.cli.common import (ADMIN_TIMEOUT_HELP, EXIT_USAGE, PROG, report,
                                seconds)
from gearman.version import __version__

#: Each command group's module; its ``register(command)`` adds its subcommands.
COMMAND_MODULES = (status, submit, work, exporter, pool)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not the usage text."""

    def error(self, message: str) -> NoReturn:
        report(f"{message} (see '{self.prog} --help')")
        sys.exit(EXIT_USAGE)


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
    parser.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                        help="json: one JSON object per log record (time, level, logger, "
                        "message, gearman_task/gearman_handle/gearman_unique); warnings are "
                        "logged even without -v")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Talk to gearmand job servers: look at queues "
                    "and workers, submit jobs, run a shell command as a worker.",
                    epilog="Run '%(prog)s COMMAND --help' for one command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_common(parser, ADMIN_TIMEOUT_HELP + "; for submit: seconds to wait for the job",
               top=True)
    parser.set_defaults(json=False, verbose=0, log_format="text")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def command(name: str, func: Any, help_text: str, timeout_help: str = ADMIN_TIMEOUT_HELP,
                json_ok: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
        """Add subcommand ``name`` running ``func(args)``, with the global options."""
        sub = commands.add_parser(name, help=help_text, description=help_text, **kwargs)
        add_common(sub, timeout_help, json_ok)
        sub.set_defaults(run=func)
        return sub

    for module in COMMAND_MODULES:
        module.register(command)
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
