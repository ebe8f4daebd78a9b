"""GearmanClient: submit jobs, wait for their results, ask for their status.

Waits never scan all requests on each poll: handlers report every request they
change through :meth:`GearmanClient.note_updated`, and a wait looks only at those.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from gearman import errors
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery
from gearman.client_rules import (MAX_HANDLE_LENGTH, ClientRules, accepted, finished,
                                  resolve_timeout)
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import PRIORITY_NONE
from gearman.util import Deadline, to_bytes, to_text

__all__ = ["GearmanClient", "MAX_HANDLE_LENGTH", "resolve_timeout"]


class GearmanClient(ClientRules, GearmanConnectionManager):
    """Submits jobs to gearmand servers and collects their results.

    :param host_list: servers, as ``'host:port'``, ``('host', port)``, ``'[::1]:4730'``
        or a TLS dict (see docs/hosts).  A job goes to the server picked by a stable
        hash of its unique id and fails over to the others in a fixed order.
    """

    command_handler_class = GearmanClientCommandHandler

    def __init__(self, host_list: Any = None, random_unique_bytes: int = 16,
                 **options: Any) -> None:
        super().__init__(host_list, random_unique_bytes, **options)
        self._updated: List[Any] = []
        self._queries_done: List[StatusQuery] = []

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
        requests = self._requests_from_jobs(jobs_to_submit, background, max_retries)
        return self.submit_multiple_requests(requests, wait_until_complete=wait_until_complete,
                                             poll_timeout=poll_timeout)

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
        self._give_all_servers_a_try()
        for request in requests:
            if self._needs_sending(request):
                self._begin_submission(request)
                self.send_job_request(request)
        # Through the overridable 2.x methods, the timeout passed positionally, so an
        # override written with timeout= or poll_timeout= sees every wait (API.md).
        self.wait_until_jobs_accepted(requests, deadline.remaining())
        if wait_until_complete:
            self.wait_until_jobs_completed(requests, deadline.remaining())
        return requests

    def establish_request_connection(self, current_request: Any) -> Any:
        """The live connection ``current_request`` should use; connects if needed.
        Servers that refuse are skipped (backed off), without using up a try."""
        connections = self.connection_list
        if len(connections) == 1 and connections[0].connected:
            return connections[0]
        for connection in self._candidate_connections(current_request):
            if self.establish_connection(connection):
                return connection
        raise self._no_server()

    def send_job_request(self, current_request: Any) -> None:
        """Send one request on the server it belongs to; mark it failed if none is up."""
        try:
            connection = self.establish_request_connection(current_request)
        except errors.ServerUnavailable as exc:
            self._unreachable(current_request, exc)
            return
        self._send_on(connection, current_request)

    def _retry(self, request: Any) -> bool:
        """Send a request whose connection failed again, if it has tries left."""
        if not self._prepare_retry(request):
            return False
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
        self._wait(requests, accepted, Deadline(resolve_timeout(poll_timeout, timeout)))
        return requests

    def wait_until_jobs_completed(self, job_requests: Sequence[Any],
                                  poll_timeout: Optional[float] = None, *,
                                  timeout: Optional[float] = None) -> List[Any]:
        """Wait until every request is complete, failed, or lost with its connection."""
        requests = self._as_request_list(job_requests)
        self._wait(requests, finished, Deadline(resolve_timeout(poll_timeout, timeout)))
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
        queries = self._send_status_queries(requests)
        for query in self._wait_queries(queries, deadline):
            query.request.timed_out = True
        return requests

    def _query(self, connection: Any, query: StatusQuery, send: str,
               deadline: Deadline) -> Optional[Dict[str, Any]]:
        if connection is None:
            raise errors.ServerUnavailable("GearmanClient has no servers in its host_list")
        if connection.connected:  # notice a close by a restarted server before sending
            self.poll_connections_once([connection], 0)
        if not connection.connected and not self.establish_connection(connection):
            raise self._server_down(connection)
        getattr(self.server_pool.handler_for(connection), send)(query)
        if self._wait_queries([query], deadline):
            raise self._no_answer(connection, send)
        return self._query_result(connection, query)

    def get_job_status_by_handle(self, handle: Any, server: Any = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> Dict[str, Any]:
        """Status of any job by its handle on ``server``: a dict with ``handle``,
        ``known``, ``running``, ``numerator``, ``denominator``, ``time_received``."""
        query = self._handle_query(handle)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = self._server_connection(server)
        result = self._query(connection, query, "send_get_status", deadline)
        assert result is not None
        return result

    def get_job_status_by_unique(self, unique: Any, server: Any = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> Dict[str, Any]:
        """GET_STATUS_UNIQUE: status of a job by unique id, on the server that unique
        hashes to (or ``server``).  Adds ``waiting_clients`` to the status keys."""
        query = self._unique_query(unique)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = self._server_connection(server, to_text(query.key))
        result = self._query(connection, query, "send_get_status_unique", deadline)
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
