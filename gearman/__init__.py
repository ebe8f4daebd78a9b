"""gearman: a Python 3 client, worker and admin client for Gearman job servers.

The python-gearman 2.x API, complete over the protocol and safe under faults.
"""
from __future__ import annotations

import logging

from gearman.admin_client import GearmanAdminClient
from gearman.client import GearmanClient
from gearman.constants import (JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN,
                               PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE)
from gearman.encoders import DataEncoder
from gearman.version import __version__
from gearman.worker import GearmanWorker

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "GearmanClient", "GearmanWorker", "GearmanAdminClient", "DataEncoder",
    "PRIORITY_NONE", "PRIORITY_LOW", "PRIORITY_HIGH",
    "JOB_UNKNOWN", "JOB_PENDING", "JOB_CREATED", "JOB_FAILED", "JOB_COMPLETE",
    "__version__",
]
