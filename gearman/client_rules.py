"""The client's rules, for both drivers: checking what is submitted, building the
requests, which server a request goes to (and in what order it fails over),
whether a request must be sent (again), and the checks of status queries.

:class:`ClientRules` does no I/O and never waits; the blocking
:class:`~gearman.client.GearmanClient` and the asyncio
:class:`~gearman.aio.client.AsyncGearmanClient` mix it in before their
connection manager and add sending and waiting.
"""
from __future__ import annotations

import datetime
import random
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence

from gearman import errors
from gearman.client_handler import StatusQuery
from gearman.manager_core import ManagerCore
from gearman.constants import (JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN, MAX_UNIQUE_LENGTH,
                               PRIORITIES, PRIORITY_NONE)
from gearman.util import check_name, to_bytes, to_text

#: gearmand keeps a job handle in 64 bytes with its NUL; a longer GET_STATUS
#: handle makes it close the connection, failing every job on it.
MAX_HANDLE_LENGTH = 63

_JOB_KEYS = {"task", "data", "unique", "priority", "when", "reducer"}


def resolve_timeout(poll_timeout: Optional[float], timeout: Optional[float],
                    default: Optional[float] = None) -> Optional[float]:
    """``poll_timeout`` and the README's ``timeout`` are one setting; give one of them."""
    if poll_timeout is not None and timeout is not None and poll_timeout != timeout:
        raise ValueError(f"poll_timeout={poll_timeout!r} and timeout={timeout!r} disagree; "
                         "they are the same setting, pass one")
    value = poll_timeout if poll_timeout is not None else timeout
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"poll_timeout must be None or a number >= 0, got {value!r}")
    return float(value)


def accepted(request: Any) -> bool:
    """The server answered the submission (JOB_CREATED or an ERROR)."""
    return bool(request.state != JOB_PENDING)


def finished(request: Any) -> bool:
    """Nothing more will come for this submission: complete, failed or lost."""
    return bool(request.state == JOB_UNKNOWN or request.finished)


class ClientRules(ManagerCore):
    """Request checks, server choice and retry decisions shared by both clients;
    each driver's client derives from this and from its connection manager."""

    #: Losing an established connection costs its requests a try, not the server its
    #: next connect: a retry (``max_retries``) reconnects at once; only a refused
    #: connect backs the server off.
    backoff_after_drop = False

    def __init__(self, host_list: Any = None, random_unique_bytes: int = 16,
                 **options: Any) -> None:
        super().__init__(host_list, **options)
        self.random_unique_bytes = random_unique_bytes
        self._rng = random.Random()
        self._task_names: Dict[Any, str] = {}

    # -- building requests -----------------------------------------------------------
    def _requests_from_jobs(self, jobs_to_submit: Sequence[Dict[str, Any]], background: bool,
                            max_retries: int) -> List[Any]:
        """Check a batch of job dicts and build their requests (nothing is sent)."""
        if isinstance(jobs_to_submit, dict):
            raise TypeError("jobs_to_submit must be a list of dicts, got a single dict; "
                            "wrap it in [...] or use submit_job()")
        if not isinstance(jobs_to_submit, (list, tuple)):
            raise TypeError(f"jobs_to_submit must be a list or tuple of dicts, got "
                            f"{type(jobs_to_submit).__name__}")
        if not isinstance(background, bool):
            raise TypeError(f"background must be True or False, got {background!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        return [self._create_request_from_dictionary(job, background, max_retries, index)
                for index, job in enumerate(jobs_to_submit)]

    def _create_request_from_dictionary(self, job_info: Any, background: bool = False,
                                        max_retries: int = 0, index: int = 0) -> Any:
        """Check one job dict and build its request (nothing is sent).

        This runs once per job of a batch before anything is sent, so the common
        case (known keys, a task name seen before, no unique) takes no detours.
        """
        if not isinstance(job_info, dict):
            raise TypeError(f"jobs_to_submit[{index}] must be a dict with 'task' and 'data', "
                            f"got {type(job_info).__name__}")
        if not _JOB_KEYS.issuperset(job_info):
            raise ValueError(f"jobs_to_submit[{index}] has unknown keys "
                             f"{sorted(set(job_info) - _JOB_KEYS, key=repr)}")
        if "task" not in job_info or "data" not in job_info:
            raise ValueError(f"jobs_to_submit[{index}] needs both 'task' and 'data'")
        task = self._task_name(job_info["task"])
        priority = job_info.get("priority")
        if priority is not None and priority not in PRIORITIES:
            raise ValueError("priority must be PRIORITY_NONE, PRIORITY_LOW or PRIORITY_HIGH, "
                             f"got {priority!r}")
        unique = job_info.get("unique")
        if unique is None or unique == "" or unique == b"":
            unique = self._random_unique()
        else:
            unique = self._check_unique(unique)
        data = job_info["data"]
        job = self.job_class(None, None, task, unique, data)  # 2.x signature, for subclasses
        when, reducer = job_info.get("when"), job_info.get("reducer")
        if when is not None:
            job.when = self._check_when(when, background, priority)
        if reducer is not None:
            job.reducer = to_text(check_name(reducer, "reducer"))
        request = self.job_request_class(job, initial_priority=priority, background=background,
                                         max_attempts=max_retries + 1)
        try:
            request.encoded_data = self.encode_payload(data)
        except TypeError as exc:
            raise TypeError(f"jobs_to_submit[{index}] data: {exc}") from exc
        return request

    def _task_name(self, task: Any) -> str:
        """The checked, interned ``str`` name of ``task``: 100,000 jobs of one task
        share one str (not 5 MiB of copies), and a name seen before costs one lookup."""
        names = self._task_names
        cacheable = type(task) is str or type(task) is bytes  # hashable, immutable
        name = names.get(task) if cacheable else None
        if name is None:
            name = sys.intern(to_text(check_name(task, "task")))
            if cacheable:
                if len(names) >= 1024:  # many distinct names: stay bounded
                    names.clear()
                names[task] = name
        return name

    def _random_unique(self) -> str:
        size = self.random_unique_bytes
        return "%0*x" % (size * 2, self._rng.getrandbits(size * 8))

    def _check_unique(self, unique: Any) -> str:
        if unique is None or unique == "" or unique == b"":
            return self._random_unique()
        raw = to_bytes(unique, "unique")
        if b"\0" in raw:
            raise ValueError(f"unique {unique!r} must not contain a NUL byte")
        if len(raw) > MAX_UNIQUE_LENGTH:
            raise ValueError(f"unique is {len(raw)} bytes; gearmand keeps at most "
                             f"{MAX_UNIQUE_LENGTH}")
        return to_text(raw)

    @staticmethod
    def _check_when(when: Any, background: bool, priority: Optional[str]) -> Optional[int]:
        if when is None:
            return None
        if not background:
            raise ValueError("when= schedules a background job (SUBMIT_JOB_EPOCH); "
                             "pass background=True")
        if priority is not PRIORITY_NONE:
            raise ValueError("when= jobs run at normal priority; leave priority unset")
        if isinstance(when, datetime.datetime):
            return int(when.timestamp())
        if isinstance(when, bool) or not isinstance(when, (int, float)) or when < 0:
            raise ValueError(f"when must be a Unix time or a datetime, got {when!r}")
        return int(when)

    @staticmethod
    def _as_request_list(job_requests: Any) -> List[Any]:
        if not isinstance(job_requests, (list, tuple)):
            raise TypeError(f"job_requests must be a list of GearmanJobRequest, got "
                            f"{type(job_requests).__name__}")
        for request in job_requests:
            if not hasattr(request, "gearman_job"):
                raise TypeError(f"job_requests must hold GearmanJobRequest objects, got "
                                f"{type(request).__name__}")
        return list(job_requests)

    @staticmethod
    def _needs_sending(request: Any) -> bool:
        if request.state == JOB_FAILED and request.job.handle is None:
            return True  # refused with an ERROR (say QUEUE_ERROR): never accepted
        if request.state == JOB_PENDING:
            connection = request.job.connection
            return connection is None or not connection.connected
        if request.state == JOB_CREATED and not request.background:
            return not (request.accepted_by is not None and request.accepted_by.connected)
        return bool(request.state == JOB_UNKNOWN or request.connection_failed)

    def _connection_order(self, unique: Optional[str]) -> List[Any]:
        """Servers for a unique id: a stable hash picks the first, the rest follow in order."""
        return self.server_pool.failover_order(unique)

    def _candidate_connections(self, request: Any) -> Iterator[Any]:
        """The servers ``request`` may go to, in its failover order: live ones, and
        down ones whose backoff is over (the driver connects those).  Servers that
        refused lately are skipped without using up a try."""
        if not self.connection_list:
            raise errors.ServerUnavailable(f"{type(self).__name__} has no servers in its "
                                           "host_list")
        yield from self.server_pool.candidates(request.job.unique)

    def _no_server(self) -> errors.ServerUnavailable:
        servers = ", ".join(c.address for c in self.connection_list)
        return errors.ServerUnavailable(f"no gearmand reachable among {servers}")

    def _give_all_servers_a_try(self) -> None:
        """Every server is down and backed off: give each one fresh try now (its
        backoff then holds for the rest of the call, so 100,000 requests cost one
        connect attempt per server, not 100,000).  Otherwise the backoff stands, and
        requests fail over to the live servers without waiting on dead ones."""
        if not any(c.connected or self.connection_is_due(c) for c in self.connection_list):
            self.server_pool.forget_backoff()

    def note_updated(self, request: Any) -> None:
        """A handler changed ``request`` (each driver says what that wakes)."""
        raise NotImplementedError

    def _unreachable(self, request: Any, exc: BaseException) -> None:
        """No server takes ``request``: it has failed with its connection."""
        self.log.warning("job %s (%s): %s", request.job.unique, request.job.task, exc)
        request.state = JOB_UNKNOWN
        request.connection_failed = True
        self.note_updated(request)

    def _send_on(self, connection: Any, request: Any) -> None:
        """Send ``request`` on ``connection`` (one try used up)."""
        request.connection_attempts += 1
        request.job.connection = connection
        self.server_pool.handler_for(connection).send_job_request(request)

    def _begin_submission(self, request: Any) -> None:
        """A fresh submission: the last attempt's outcome and tries forgotten."""
        request.reset()
        request.connection_attempts = 0

    def _prepare_retry(self, request: Any) -> bool:
        """A request whose connection failed: reset it for its next try, or return
        False when it has used up its ``max_retries``."""
        if request.connection_attempts >= request.max_connection_attempts:
            return False
        attempts = request.connection_attempts
        request.reset()
        request.connection_attempts = attempts
        self.log.info("retrying job %s (%s), try %d of %d", request.job.unique, request.job.task,
                      attempts + 1, request.max_connection_attempts)
        return True

    # -- status queries ----------------------------------------------------------------
    def _status_query(self, request: Any) -> Optional[StatusQuery]:
        """The GET_STATUS query for an accepted ``request``, or None if its
        connection is gone (then it is marked ``connection_failed``)."""
        connection = request.accepted_by
        if request.job.handle is None or connection is None:
            raise errors.InvalidClientState(f"job {request.job.unique!r} has no handle yet; "
                                            "submit it before asking its status")
        request.timed_out = False
        if not connection.connected:
            request.connection_failed = True
            return None
        return StatusQuery(to_bytes(request.job.handle, "handle"), request)

    def _send_status_queries(self, requests: List[Any]) -> List[StatusQuery]:
        """GET_STATUS for each accepted request on the connection that accepted it."""
        queries = []
        for request in requests:
            query = self._status_query(request)
            if query is not None:
                self.server_pool.handler_for(request.accepted_by).send_get_status(query)
                queries.append(query)
        return queries

    @staticmethod
    def _handle_query(handle: Any) -> StatusQuery:
        raw = check_name(handle, "handle")
        if len(raw) > MAX_HANDLE_LENGTH:  # gearmand drops the connection (protocol.md §4)
            raise ValueError(f"handle is {len(raw)} bytes; gearmand job handles have at most "
                             f"{MAX_HANDLE_LENGTH}")
        return StatusQuery(raw)

    @staticmethod
    def _unique_query(unique: Any) -> StatusQuery:
        raw = to_bytes(unique, "unique")
        if not raw or len(raw) > MAX_UNIQUE_LENGTH or b"\0" in raw:
            raise ValueError(f"unique must be 1 to {MAX_UNIQUE_LENGTH} bytes without NUL")
        return StatusQuery(raw)

    def _server_connection(self, server: Any, unique: Optional[str] = None) -> Any:
        if server is None:
            if unique is not None:
                return self._connection_order(unique)[0] if self.connection_list else None
            if len(self.connection_list) == 1:
                return self.connection_list[0]
            raise ValueError("server is required: this client has several servers, and a "
                             "job handle is only meaningful on the server that issued it")
        return self.connection_named(server)

    @staticmethod
    def _query_result(connection: Any, query: StatusQuery) -> Dict[str, Any]:
        """An answered query's result, or what the server (or the lost connection) said."""
        if query.result is None:
            raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                         "connection lost while waiting for the answer")
        if "error" in query.result:
            raise query.result["error"]
        return query.result

    def _no_answer(self, connection: Any, send: str) -> errors.InvalidClientState:
        return errors.InvalidClientState(f"gearmand at {connection.address} did not answer "
                                         f"{send[5:].upper()} in time")

    def _server_down(self, connection: Any) -> errors.ConnectionError:
        return errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                      "server is down")
