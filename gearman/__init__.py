"""gearman: a Python 3 client, worker and admin client for Gearman job servers.

The python-gearman 2.x API, complete over the protocol and safe under faults.

The classes are imported on first use (``gearman.GearmanClient``, ``from gearman
import GearmanWorker``), so importing a light submodule -- ``gearman.constants``,
or ``gearman.testing`` as a pytest plugin -- does not load the client, worker and
connection code.
"""
from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from gearman.constants import (JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN,
                               PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE)
from gearman.version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "GearmanClient", "GearmanWorker", "GearmanAdminClient", "DataEncoder",
    "PRIORITY_NONE", "PRIORITY_LOW", "PRIORITY_HIGH",
    "JOB_UNKNOWN", "JOB_PENDING", "JOB_CREATED", "JOB_FAILED", "JOB_COMPLETE",
    "__version__",
]

#: Public class -> the module that defines it.
_CLASSES = {"GearmanClient": "gearman.client", "GearmanWorker": "gearman.worker",
            "GearmanAdminClient": "gearman.admin_client", "DataEncoder": "gearman.encoders"}

if TYPE_CHECKING:
    from gearman.admin_client import GearmanAdminClient
    from gearman.client import GearmanClient
    from gearman.encoders import DataEncoder
    from gearman.worker import GearmanWorker
else:
    def __getattr__(name: str) -> Any:
        """The public classes, and submodules (``gearman.errors``), on first use."""
        if name in _CLASSES:
            value = getattr(importlib.import_module(_CLASSES[name]), name)
        elif not name.startswith("__"):
            try:
                value = importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list:
        return sorted(set(globals()) | set(__all__))
