"""Public constants: priorities, job states, ports and default limits."""
from __future__ import annotations

from typing import Optional

#: The IANA port for Gearman.
DEFAULT_GEARMAN_PORT = 4730

#: Priorities, with python-gearman 2.x's values.
PRIORITY_NONE: Optional[str] = None
PRIORITY_LOW = "LOW"
PRIORITY_HIGH = "HIGH"
PRIORITIES = (PRIORITY_NONE, PRIORITY_LOW, PRIORITY_HIGH)

#: Job request states, with python-gearman 2.x's values.
JOB_UNKNOWN = "UNKNOWN"  # not submitted yet, or its connection failed
JOB_PENDING = "PENDING"  # sent, waiting for JOB_CREATED
JOB_CREATED = "CREATED"  # the server gave it a handle
JOB_FAILED = "FAILED"  # WORK_FAIL / WORK_EXCEPTION / an ERROR reply
JOB_COMPLETE = "COMPLETE"  # WORK_COMPLETE

#: Largest packet body we accept from a server, and the largest payload we send.
#: gearmand itself has no limit below 4 GiB; 64 MiB keeps a bad length from
#: costing more memory than a real job ever would.  Configurable per object.
DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024

#: gearmand stores a unique id in a 64-byte buffer with its NUL (protocol.md §4).
MAX_UNIQUE_LENGTH = 63

#: Seconds a TCP (and TLS) connect may take before that server counts as down.
DEFAULT_CONNECT_TIMEOUT = 5.0

#: How long a worker blocks in one poll when nothing happens.
DEFAULT_WORKER_POLL_TIMEOUT = 60.0

#: How long an admin command may wait for its reply.
DEFAULT_ADMIN_POLL_TIMEOUT = 10.0

_DEBUG_MODE_ = False  # kept from 2.x; packet traces are logged at DEBUG by gearman.connection
