"""Job state objects: :class:`GearmanJob` (what a job is) and
:class:`GearmanJobRequest` (a client's view of one submission).  No I/O."""
from __future__ import annotations

import collections
from typing import Any, Deque, Dict, Optional, Union

from gearman import request_fate
from gearman.constants import JOB_UNKNOWN, PRIORITY_NONE
from gearman.seams import Connection
from gearman.shapes import JobAsDict, JobStatus, Payload


class GearmanJob:
    """One job: task name, unique id, payload, and the handle a server gave it.

    ``task``, ``unique`` and ``handle`` are ``str``; ``data`` is whatever the
    data encoder produced (``bytes`` by default).  ``connection`` is the
    connection the job lives on, ``None`` before it is sent.
    """

    # Slots keep 100,000 jobs small; __dict__ still lets applications tag them (2.x did).
    # ``reducer`` and ``when`` are rare: class defaults, set per job only when used.
    __slots__ = ("connection", "handle", "task", "unique", "data", "__weakref__", "__dict__")
    reducer: Optional[str] = None
    when: Optional[int] = None

    def __init__(self, connection: Optional[Connection], handle: Optional[str], task: str,
                 unique: Optional[str], data: Payload, reducer: Optional[str] = None,
                 when: Optional[int] = None) -> None:
        self.connection = connection
        self.handle = handle
        self.task = task
        self.unique = unique
        self.data = data
        if reducer is not None:
            self.reducer = reducer
        if when is not None:
            self.when = when

    def to_dict(self) -> JobAsDict:
        """python-gearman 2.x's dict form: task, job_handle, unique, data."""
        return {"task": self.task, "job_handle": self.handle, "unique": self.unique,
                "data": self.data}

    def __repr__(self) -> str:
        server = getattr(self.connection, "address", None)
        return (f"<GearmanJob task={self.task!r} unique={self.unique!r} "
                f"handle={self.handle!r} server={server!r}>")


class GearmanJobRequest:
    """A client's submission of one job and everything the server said about it.

    ``complete`` is true once the job finished (foreground: COMPLETE or FAILED)
    or, for a background job, once the server accepted it.  ``timed_out`` and
    ``connection_failed`` say why a wait ended without that.
    """

    # One slot (_extras) holds what few requests get: updates, status, exception.
    __slots__ = ("gearman_job", "priority", "background", "state", "result", "_extras",
                 "timed_out", "connection_failed", "connection_attempts",
                 "max_connection_attempts", "accepted_by", "encoded_data", "_wait_token",
                 "__weakref__", "__dict__")

    def __init__(self, gearman_job: GearmanJob, initial_priority: Optional[str] = PRIORITY_NONE,
                 background: bool = False, max_attempts: int = 1) -> None:
        self.gearman_job = gearman_job
        self.priority = initial_priority
        self.background = background
        self.state = JOB_UNKNOWN
        self.result: Payload = None
        self._extras: Optional[Dict[str, Any]] = None
        self.timed_out = False
        self.connection_failed = False
        self.connection_attempts = 0
        self.max_connection_attempts = max_attempts
        #: the connection that answered JOB_CREATED for the current attempt
        self.accepted_by: Optional[Connection] = None
        #: the payload as sent (bytes), computed once when the request is made
        self.encoded_data: Optional[bytes] = None
        #: marks the request as waited for by the client's current wait
        self._wait_token: Any = None

    # The deques, the status dict and the exception live in one dict made on first
    # use: 100,000 requests in flight would otherwise carry 300,000 empty containers.
    def _extra(self, name: str, default: Any) -> Any:
        extras = self._extras
        if extras is None:
            extras = self._extras = {}
        value = extras.get(name)
        if value is None:
            value = extras[name] = default()
        return value

    @property
    def data_updates(self) -> Deque[Payload]:
        """WORK_DATA payloads, in arrival order."""
        return self._extra("data_updates", collections.deque)  # type: ignore[no-any-return]

    @property
    def warning_updates(self) -> Deque[Payload]:
        """WORK_WARNING payloads, in arrival order."""
        return self._extra("warning_updates", collections.deque)  # type: ignore[no-any-return]

    @property
    def status(self) -> JobStatus:
        """Last known status: handle, known, running, numerator, denominator, time_received."""
        return self._extra("status", dict)  # type: ignore[no-any-return]

    @status.setter
    def status(self, value: JobStatus) -> None:
        if self._extras is None:
            self._extras = {}
        self._extras["status"] = value

    @property
    def exception(self) -> Union[BaseException, str, None]:
        """Why the job failed: a ServerError, the WORK_EXCEPTION text, or an encoder's
        error; ``None`` otherwise."""
        return None if self._extras is None else self._extras.get("exception")

    @exception.setter
    def exception(self, value: Union[BaseException, str, None]) -> None:
        if self._extras is None:
            self._extras = {}
        self._extras["exception"] = value

    @property
    def job(self) -> GearmanJob:
        return self.gearman_job

    @job.setter
    def job(self, value: GearmanJob) -> None:
        self.gearman_job = value

    @property
    def unique(self) -> Optional[str]:
        return self.gearman_job.unique

    @property
    def complete(self) -> bool:
        """Foreground: COMPLETE or FAILED; background: accepted (see request_fate)."""
        return request_fate.is_complete(self)

    @property
    def finished(self) -> bool:
        """Nothing more will happen without a new submission: complete, lost, or never
        sent (see request_fate)."""
        return request_fate.is_finished(self)

    def reset(self) -> None:
        """Forget the last attempt, so the request can be submitted again: its state,
        result, exception, updates and status (as 2.x's ``initialize_request`` did)."""
        self.state = JOB_UNKNOWN
        self.result = None
        self._extras = None
        self.timed_out = False
        self.connection_failed = False
        self.accepted_by = None
        self.gearman_job.connection = None
        self.gearman_job.handle = None

    def initialize_request(self) -> None:
        """2.x name for :meth:`reset`."""
        self.reset()

    def __repr__(self) -> str:
        job = self.gearman_job
        return (f"<GearmanJobRequest task={job.task!r} unique={job.unique!r} "
                f"priority={self.priority!r} background={self.background} state={self.state} "
                f"timed_out={self.timed_out} connection_failed={self.connection_failed}>")
