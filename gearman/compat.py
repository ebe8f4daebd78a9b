"""python-gearman 2.0.2's ``gearman.compat``: ``any``, ``all`` and ``defaultdict``,
which it provided for Python 2.4.  On Python 3 they are simply the built-ins and
``collections.defaultdict``; kept so 2.x code importing them runs unchanged."""
from __future__ import annotations

import builtins
from collections import defaultdict

any = builtins.any
all = builtins.all

__all__ = ["any", "all", "defaultdict"]
