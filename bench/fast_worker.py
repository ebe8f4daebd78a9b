"""The common worker behind client scenarios: a minimal echo worker that speaks the
Gearman protocol itself (one blocking socket, no library; see bare.py).

Every client library is measured against the same workers, and these cost a
fraction of a library worker's CPU per job, so on a small machine the client, not
the worker, is what the scenario measures.  Usage:
``python fast_worker.py HOST:PORT TASK``.
"""
from __future__ import annotations

import sys

from bare import Bare


def main() -> None:
    try:
        Bare(sys.argv[1]).work(sys.argv[2], lambda: None)
    except ConnectionError:
        raise SystemExit(0) from None  # gearmand went away: the cell is over


if __name__ == "__main__":
    main()
