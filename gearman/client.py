"""GearmanClient: submit jobs, wait for their results, ask for their status.

Waits never scan all requests on each poll: handlers report every request they
change through :meth:`GearmanClient.note_updated`, and a wait looks only at those.
"""
from __future__ import annotations

import datetime
import random
import sys
import zlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from gearman import errors
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import (JOB_CREATED, JOB_FAILED, JOB_PENDING, JOB_UNKNOWN, MAX_UNIQUE_LENGTH,
                               PRIORITIES, PRIORITY_NONE)
from gearman.util import Deadline, check_name, to_bytes, to_text

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


def _accepted(request: Any) -> bool:
    return bool(request.state != JOB_PENDING)


def _finished(request: Any) -> bool:
    return bool(request.state == JOB_UNKNOWN or request.finished)


class GearmanClient(GearmanConnectionManager):
    """Submits jobs to gearmand servers and collects their results.

    :param host_list: servers, as ``'host:port'``, ``('host', port)``, ``'[::1]:4730'``
        or a TLS dict (see docs/hosts).  A job goes to the server picked by a stable
        hash of its unique id and fails over to the others in a fixed order.
    """

    command_handler_class = GearmanClientCommandHandler
    #: Losing an established connection costs its requests a try, not the server its
    #: next connect: a retry (``max_retries``) reconnects at once; only a refused
    #: connect backs the server off.
    backoff_after_drop = False

    def __init__(self, host_list: Any = None, random_unique_bytes: int = 16,
                 **options: Any) -> None:
        super().__init__(host_list, **options)
        self.random_unique_bytes = random_unique_bytes
        self._rng = random.Random()
        self._updated: List[Any] = []
        self._queries_done: List[StatusQuery] = []
        self._task_names: Dict[Any, str] = {}

    # -- reported by handlers --------------------------------------------------------
    def note_updated(self, request: Any) -> None:
        self._updated.append(request)

    def note_status(self, query: StatusQuery) -> None:
        self._queries_done.append(query)

    # -- submitting ----------------------------------------------------------------------
    def submit_job(self, task: Any, data: Any, unique: Any = None,
                   priority: Optional[str] = PRIORITY_NONE, background: bool = False,
                   wait_until_complete: bool = True, max_retries: int = 0,
                   poll_timeout: Optional[float] = None, *, timeout: Optional[float] = None,
                   when: Any = None, reducer: Any = None) -> Any:
        """Submit one job and, by default, wait for its result.

        :param task: function name a worker registered (``str`` or ``bytes``).
        :param data: payload, encoded with :attr:`data_encoder`.
        :param unique: unique id (63 bytes at most); equal ids coalesce into one run.
            ``None`` makes a random one.
        :param poll_timeout: seconds to wait; ``None`` waits for ever, ``0`` makes one
            non-blocking pass.  ``timeout`` is the README's name for the same thing.
        :param when: run a background job no earlier than this Unix time or
            ``datetime`` (SUBMIT_JOB_EPOCH; gearmand 1.1 starts it only when other
            activity wakes its queue, see docs/client).
        :param reducer: submit a map/reduce job (SUBMIT_REDUCE_JOB) naming the reducer.
        :returns: the :class:`~gearman.job.GearmanJobRequest`.
        :raises TypeError, ValueError: bad arguments, before anything is sent.
        """
        job = {"task": task, "data": data, "unique": unique, "priority": priority,
               "when": when, "reducer": reducer}
        requests = self.submit_multiple_jobs([job], background=background,
                                             wait_until_complete=wait_until_complete,
                                             max_retries=max_retries,
                                             poll_timeout=poll_timeout, timeout=timeout)
        return requests[0]

    def submit_multiple_jobs(self, jobs_to_submit: Sequence[Dict[str, Any]],
                             background: bool = False, wait_until_complete: bool = True,
                             max_retries: int = 0, poll_timeout: Optional[float] = None, *,
                             timeout: Optional[float] = None) -> List[Any]:
        """Submit a list of job dicts (``task``, ``data``, optional ``unique``,
        ``priority``) and return their requests in order."""
        poll_timeout = resolve_timeout(poll_timeout, timeout)
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
        requests = [self._create_request_from_dictionary(job, background, max_retries, index)
                    for index, job in enumerate(jobs_to_submit)]
        return self.submit_multiple_requests(requests, wait_until_complete=wait_until_complete,
                                             poll_timeout=poll_timeout)

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

    def submit_multiple_requests(self, job_requests: Sequence[Any],
                                 wait_until_complete: bool = True,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> List[Any]:
        """(Re)submit requests.  One already accepted on a live connection is only
        waited for; one never accepted, or whose connection failed, is sent again
        with the same unique id."""
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        requests = self._as_request_list(job_requests)
        # First one non-blocking pass: a connection the server closed (say, it was
        # restarted a moment ago) is noticed now, not after a request was written into
        # it and lost.  It costs one epoll_wait per call; reliability wins over the
        # sequential benchmark here (bench/results/optimisations.md).
        self.poll_connections_once(self.connection_list, 0)
        if not any(c.connected or self.connection_is_due(c) for c in self.connection_list):
            # Every server is down and backed off: give each one fresh try now (its
            # backoff then holds for the rest of the call, so 100,000 requests cost one
            # connect attempt per server, not 100,000).  Otherwise the backoff stands,
            # and requests fail over to the live servers without waiting on dead ones.
            self.server_pool.forget_backoff()
        for request in requests:
            if self._needs_sending(request):
                request.reset()
                request.connection_attempts = 0
                self.send_job_request(request)
        # Through the overridable 2.x methods, the timeout passed positionally, so an
        # override written with timeout= or poll_timeout= sees every wait (API.md).
        self.wait_until_jobs_accepted(requests, deadline.remaining())
        if wait_until_complete:
            self.wait_until_jobs_completed(requests, deadline.remaining())
        return requests

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
        connections = self.connection_list
        if len(connections) < 2:
            return connections
        start = zlib.crc32(to_bytes(unique or "", "unique")) % len(connections)
        return connections[start:] + connections[:start]

    def establish_request_connection(self, current_request: Any) -> Any:
        """The live connection ``current_request`` should use; connects if needed.
        Servers that refuse are skipped (backed off), without using up a try."""
        connections = self.connection_list
        if len(connections) == 1 and connections[0].connected:
            return connections[0]
        if not connections:
            raise errors.ServerUnavailable("GearmanClient has no servers in its host_list")
        for connection in self._connection_order(current_request.job.unique):
            if connection.connected:
                return connection
            if not self.connection_is_due(connection):
                continue
            if self.establish_connection(connection):
                return connection
        servers = ", ".join(c.address for c in self.connection_list)
        raise errors.ServerUnavailable(f"no gearmand reachable among {servers}")

    def send_job_request(self, current_request: Any) -> None:
        """Send one request on the server it belongs to; mark it failed if none is up."""
        try:
            connection = self.establish_request_connection(current_request)
        except errors.ServerUnavailable as exc:
            self.log.warning("job %s (%s): %s", current_request.job.unique,
                             current_request.job.task, exc)
            current_request.state = JOB_UNKNOWN
            current_request.connection_failed = True
            self.note_updated(current_request)
            return
        current_request.connection_attempts += 1
        current_request.job.connection = connection
        self.server_pool.handler_for(connection).send_job_request(current_request)

    def _retry(self, request: Any) -> bool:
        """Send a request whose connection failed again, if it has tries left."""
        if request.connection_attempts >= request.max_connection_attempts:
            return False
        attempts = request.connection_attempts
        request.reset()
        request.connection_attempts = attempts
        self.log.info("retrying job %s (%s), try %d of %d", request.job.unique, request.job.task,
                      attempts + 1, request.max_connection_attempts)
        self.send_job_request(request)
        return not request.connection_failed

    # -- waiting ---------------------------------------------------------------------------
    def _wait(self, requests: Iterable[Any], done: Callable[[Any], bool],
              deadline: Deadline) -> None:
        # The requests waited for carry this wait's token: no set of 100,000
        # requests (4 MiB) beside them, and updates for others are skipped.
        self._updated = []
        token = object()
        pending = 0
        for request in requests:
            request.timed_out = False
            if not done(request) and getattr(request, "_wait_token", None) is not token:
                request._wait_token = token
                pending += 1
        if not pending:
            return

        def keep_polling(any_activity: bool) -> bool:
            nonlocal pending
            updated = self._updated
            if updated:
                self._updated = []
                for request in updated:
                    if getattr(request, "_wait_token", None) is not token:
                        continue
                    if request.connection_failed and self._retry(request):
                        continue
                    if done(request):
                        request._wait_token = None
                        pending -= 1
            return pending > 0

        completed = False
        try:
            self.poll_connections_until_stopped(self.connection_list, keep_polling,
                                                deadline.remaining())
            keep_polling(False)
            completed = True
        finally:
            self._queries_done = []  # late status answers; they would pin their requests
            if pending:
                for request in requests:
                    if getattr(request, "_wait_token", None) is token:
                        request._wait_token = None
                        request.timed_out = completed  # not after an exception

    def wait_until_jobs_accepted(self, job_requests: Sequence[Any],
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> List[Any]:
        """Wait until the server has answered every submission (JOB_CREATED or ERROR)."""
        requests = self._as_request_list(job_requests)
        self._wait(requests, _accepted, Deadline(resolve_timeout(poll_timeout, timeout)))
        return requests

    def wait_until_jobs_completed(self, job_requests: Sequence[Any],
                                  poll_timeout: Optional[float] = None, *,
                                  timeout: Optional[float] = None) -> List[Any]:
        """Wait until every request is complete, failed, or lost with its connection."""
        requests = self._as_request_list(job_requests)
        self._wait(requests, _finished, Deadline(resolve_timeout(poll_timeout, timeout)))
        return requests

    # -- status ------------------------------------------------------------------------------
    def get_job_status(self, current_request: Any, poll_timeout: Optional[float] = None, *,
                       timeout: Optional[float] = None, server: Any = None) -> Any:
        """GET_STATUS for a request (fills ``request.status``, returns the request) or
        for a job handle alone (give ``server`` when there are several; returns the
        status dict)."""
        if isinstance(current_request, (str, bytes)):
            return self.get_job_status_by_handle(current_request, server=server,
                                                 poll_timeout=poll_timeout, timeout=timeout)
        return self.get_job_statuses([current_request], poll_timeout, timeout=timeout)[0]

    def get_job_statuses(self, job_requests: Sequence[Any], poll_timeout: Optional[float] = None,
                         *, timeout: Optional[float] = None) -> List[Any]:
        """GET_STATUS for each request, on the connection that accepted it."""
        requests = self._as_request_list(job_requests)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        queries = []
        for request in requests:
            connection = request.accepted_by
            if request.job.handle is None or connection is None:
                raise errors.InvalidClientState(f"job {request.job.unique!r} has no handle yet; "
                                                "submit it before asking its status")
            request.timed_out = False
            if not connection.connected:
                request.connection_failed = True
                continue
            query = StatusQuery(to_bytes(request.job.handle, "handle"), request)
            self.server_pool.handler_for(connection).send_get_status(query)
            queries.append(query)
        for query in self._wait_queries(queries, deadline):
            query.request.timed_out = True
        return requests

    def _server_connection(self, server: Any, unique: Optional[str] = None) -> Any:
        if server is None:
            if unique is not None:
                return self._connection_order(unique)[0] if self.connection_list else None
            if len(self.connection_list) == 1:
                return self.connection_list[0]
            raise ValueError("server is required: this client has several servers, and a "
                             "job handle is only meaningful on the server that issued it")
        return self.connection_named(server)

    def _query(self, connection: Any, query: StatusQuery, send: str,
               deadline: Deadline) -> Optional[Dict[str, Any]]:
        if connection is None:
            raise errors.ServerUnavailable("GearmanClient has no servers in its host_list")
        if connection.connected:  # notice a close by a restarted server before sending
            self.poll_connections_once([connection], 0)
        if not connection.connected and not self.establish_connection(connection):
            raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                         "server is down")
        getattr(self.server_pool.handler_for(connection), send)(query)
        if self._wait_queries([query], deadline):
            raise errors.InvalidClientState(f"gearmand at {connection.address} did not answer "
                                            f"{send[5:].upper()} in time")
        if query.result is None:
            raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                         "connection lost while waiting for the answer")
        if "error" in query.result:
            raise query.result["error"]
        return query.result

    def get_job_status_by_handle(self, handle: Any, server: Any = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> Dict[str, Any]:
        """Status of any job by its handle on ``server``: a dict with ``handle``,
        ``known``, ``running``, ``numerator``, ``denominator``, ``time_received``."""
        raw = check_name(handle, "handle")
        if len(raw) > MAX_HANDLE_LENGTH:  # gearmand drops the connection (protocol.md §4)
            raise ValueError(f"handle is {len(raw)} bytes; gearmand job handles have at most "
                             f"{MAX_HANDLE_LENGTH}")
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = self._server_connection(server)
        result = self._query(connection, StatusQuery(raw), "send_get_status", deadline)
        assert result is not None
        return result

    def get_job_status_by_unique(self, unique: Any, server: Any = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> Dict[str, Any]:
        """GET_STATUS_UNIQUE: status of a job by unique id, on the server that unique
        hashes to (or ``server``).  Adds ``waiting_clients`` to the status keys."""
        raw = to_bytes(unique, "unique")
        if not raw or len(raw) > MAX_UNIQUE_LENGTH or b"\0" in raw:
            raise ValueError(f"unique must be 1 to {MAX_UNIQUE_LENGTH} bytes without NUL")
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = self._server_connection(server, to_text(raw))
        result = self._query(connection, StatusQuery(raw), "send_get_status_unique", deadline)
        assert result is not None
        return result

    def echo(self, data: Any = b"ping", server: Any = None,
             poll_timeout: Optional[float] = 5.0, *, timeout: Optional[float] = None) -> bytes:
        """ECHO_REQ round trip; returns what the server echoed."""
        deadline = Deadline(resolve_timeout(poll_timeout if timeout is None else None, timeout))
        connection = self._server_connection(server)
        result = self._query(connection, StatusQuery(to_bytes(data, "data")), "send_echo",
                             deadline)
        assert result is not None
        return bytes(result["data"])

    def _wait_queries(self, queries: List[StatusQuery], deadline: Deadline) -> List[StatusQuery]:
        """Poll until every query is answered; returns those that were not."""
        self._queries_done = []
        waiting = {query for query in queries if not query.done}

        def keep_polling(any_activity: bool) -> bool:
            if self._queries_done:
                waiting.difference_update(self._queries_done)
                self._queries_done = []
            return bool(waiting)

        if waiting:
            self.poll_connections_until_stopped(self.connection_list, keep_polling,
                                                deadline.remaining())
            keep_polling(False)
        # Jobs that finished meanwhile were noted for a _wait() that is not running:
        # drop the notes, or they would keep those requests alive.
        self._updated = []
        return list(waiting)
