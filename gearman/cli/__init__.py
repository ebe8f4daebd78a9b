"""gearman-py: gearmand from the shell (status, workers, submit, work, top, ...).

Installed as the ``gearman-py`` console script and runnable as
``python -m gearman``.  Standard library only.  Every failure is one line on
stderr and a non-zero exit code: 1 when an operation failed, 2 for a usage
error, 130 after Ctrl-C.  One module per command group; this one runs them.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional, Sequence

from gearman import errors
from gearman.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, PROG, CliError, one_line, report,
                                server_list)
from gearman.cli.parser import build_parser, parse_args
from gearman.logs import JsonLogFormatter

__all__ = ["main", "build_parser", "parse_args", "CliError"]


def configure_logging(verbosity: int, log_format: str = "text") -> None:
    """-v: INFO, -vv: DEBUG, to stderr; ``log_format='json'``: one JSON object a
    record (at WARNING without -v)."""
    level = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else logging.WARNING
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    elif verbosity:
        logging.basicConfig(level=level, format=f"{PROG}: %(name)s: %(message)s",
                            stream=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the tool; returns the exit code."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging(args.verbose, args.log_format)
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
