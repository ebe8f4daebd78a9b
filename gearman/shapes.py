"""Names for the shapes the public API takes and hands out, for type checkers.

The dicts are plain ``dict`` objects at run time (2.x gave dicts); the
``TypedDict`` classes only tell a type checker which keys hold what.
"""
from __future__ import annotations

import datetime
from types import TracebackType
from typing import Any, Dict, Optional, Tuple, Type, TypedDict, Union

#: A payload before encoding or after decoding: whatever the data encoder handles.
Payload = Any
#: A task name, unique id, job handle or reducer as a caller may give it.
Name = Union[str, bytes, bytearray, memoryview]
#: One ``host_list`` entry: ``'host:port'``, ``'host'``, ``('host', port)``,
#: ``'[::1]:4730'`` or a TLS dict (docs/hosts); checked by gearman.util.parse_host.
HostItem = Any
#: A constructor option of client, worker and admin client (connect_timeout,
#: keepalive, max_packet_size, trace).
Option = Union[bool, int, float]
#: ``when=``: a Unix time or a datetime.
When = Union[int, float, datetime.datetime, None]
#: A job dict of submit_multiple_jobs: task, data (a payload), and optional
#: unique, priority, when, reducer.
JobDict = Dict[str, Any]
#: A number gearmand reported or a worker sends (WORK_STATUS fields: whole numbers).
Number = Union[int, float]
#: What ``sys.exc_info()`` returns (the worker's ``on_job_exception`` hook gets it).
ExcInfo = Union[Tuple[Type[BaseException], BaseException, Optional[TracebackType]],
                Tuple[None, None, None]]


class JobStatus(TypedDict, total=False):
    """``request.status`` and ``get_job_status_by_handle()``; GET_STATUS_UNIQUE adds
    ``unique`` and ``waiting_clients`` in place of ``handle``."""

    handle: str
    unique: str
    known: bool
    running: bool
    numerator: Number
    denominator: Number
    waiting_clients: Number
    time_received: float


class TaskStatus(TypedDict):
    """One line of ``get_status()``: ``queued`` is gearmand's total (queued + running)."""

    task: str
    queued: int
    running: int
    workers: int


class PriorityStatus(TypedDict):
    """One line of ``get_priority_status()``."""

    task: str
    high: int
    normal: int
    low: int
    workers: int


class WorkerInfo(TypedDict):
    """One line of ``get_workers()``."""

    file_descriptor: int
    ip: str
    client_id: str
    tasks: Tuple[str, ...]


class QueuedJob(TypedDict):
    """One line of ``get_jobs()``."""

    handle: str
    retries: int
    ignore_job: bool
    job_queued: bool


class JobAsDict(TypedDict):
    """``GearmanJob.to_dict()``: python-gearman 2.x's dict form."""

    task: str
    job_handle: Optional[str]
    unique: Optional[str]
    data: Payload
