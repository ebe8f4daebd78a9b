"""``python -m gearman``: the gearman-py command-line tool (see :mod:`gearman.cli`)."""
from __future__ import annotations

import sys

from gearman.cli import main

if __name__ == "__main__":
    sys.exit(main())
