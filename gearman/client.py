"""GearmanClient: submit jobs, wait for their results, ask for their status.

Waits never scan all requests on each poll: handlers report every request they
change through :meth:`GearmanClient.note_updated`, and a wait looks only at those.
What happens to a request after each event is decided in :mod:`gearman.request_fate`;
the argument checks live in :mod:`gearman.request_checks`; the server order in
:mod:`gearman.server_pool`.  This module drives them with the blocking poll loop.
"""
from __future__ import annotations

from time import monotonic as _monotonic
from typing import (TYPE_CHECKING, Callable, Iterable, List, Optional, Sequence,
                    Union, cast, overload)

from gearman import client_queries, errors, request_fate
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery
from gearman.client_rules import ClientRules
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import (DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE,
                               PRIORITY_NONE)
from gearman.job import GearmanJobRequest
from gearman.request_checks import (MAX_HANDLE_LENGTH, as_request_list,
                                    check_handle, resolve_timeout)
from gearman.submit_paths import ShortPaths, may_hold_unread_close, send_new
from gearman.shapes import HostItem, JobDict, JobStatus, Name, Payload, When
from gearman.util import Deadline, to_bytes, to_text

if TYPE_CHECKING:
    from gearman.seams import ClientOwner

__all__ = ["GearmanClient", "MAX_HANDLE_LENGTH", "resolve_timeout"]


class GearmanClient(ClientRules[GearmanConnection], GearmanConnectionManager):
    """Submits jobs to gearmand servers and collects their results.

    :param host_list: servers, as ``'host:port'``, ``('host', port)``, ``'[::1]:4730'``
        or a TLS dict (see docs/hosts).  A job goes to the server picked by a stable
        hash of its unique id and fails over to the others in a fixed order.
    :param random_unique_bytes: random bytes in a generated unique id (1 to 31: the
        id is their hex, and gearmand keeps 63 bytes of it).
    """

    command_handler_class = GearmanClientCommandHandler

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None,
                 random_unique_bytes: int = 16, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        super().__init__(host_list, random_unique_bytes, connect_timeout=connect_timeout,
                         keepalive=keepalive, max_packet_size=max_packet_size, trace=trace)
        self._updated: List[GearmanJobRequest] = []
        self._retries: List[GearmanJobRequest] = []
        self._queries_done: List[StatusQuery] = []

    # -- reported by handlers (see gearman.seams.ClientOwner) ---------------------------
    def note_updated(self, request: GearmanJobRequest) -> None:
        self._updated.append(request)

    def note_status(self, query: StatusQuery) -> None:
        self._queries_done.append(query)

    def _retry_due(self, request: GearmanJobRequest) -> None:
        """Sent by whichever call polls next (submit, wait or status)."""
        self._retries.append(request)

    # -- submitting ----------------------------------------------------------------------
    def submit_job(self, task: Name, data: Payload, unique: Optional[Name] = None,
                   priority: Optional[str] = PRIORITY_NONE, background: bool = False,
                   wait_until_complete: bool = True, max_retries: int = 0,
                   poll_timeout: Optional[float] = None, *, timeout: Optional[float] = None,
                   when: When = None, reducer: Optional[Name] = None) -> GearmanJobRequest:
        """Submit one job and, by default, wait for its result.

        :param task: function name a worker registered (``str`` or ``bytes``).
        :param data: payload, encoded with :attr:`data_encoder`.
        :param unique: unique id (63 bytes at most); equal ids coalesce into one run.
            ``None`` makes a random one.
        :param poll_timeout: seconds to wait; ``None`` waits for ever, ``0`` makes one
            non-blocking pass.  ``timeout`` is the README's name for the same thing.
        :param when: run a background job no earlier than this Unix time or
            ``datetime`` (SUBMIT_JOB_EPOCH; gearmand 1.1 starts it only when other
            activity wakes its queue, see docs/client).  Not with ``reducer``.
        :param reducer: submit a map/reduce job (SUBMIT_REDUCE_JOB) naming the reducer;
            that packet has no priority, so ``priority`` must stay unset.
        :returns: the :class:`~gearman.job.GearmanJobRequest`.
        :raises TypeError, ValueError: bad arguments, before anything is sent.
        """
        job = {"task": task, "data": data, "unique": unique, "priority": priority,
               "when": when, "reducer": reducer}
        paths = ShortPaths.of(self, GearmanClient)
        if not paths.submit:
            return self.submit_multiple_jobs([job], background=background,
                                             wait_until_complete=wait_until_complete,
                                             max_retries=max_retries,
                                             poll_timeout=poll_timeout, timeout=timeout)[0]
        # The one-job path: the same checks, no batch around it, one wait.
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        request = self._make_request(job, background, max_retries)
        self._submit_new([request], wait_until_complete, deadline, paths)
        return request

    def submit_multiple_jobs(self, jobs_to_submit: Sequence[JobDict],
                             background: bool = False, wait_until_complete: bool = True,
                             max_retries: int = 0, poll_timeout: Optional[float] = None, *,
                             timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """Submit a list of job dicts (``task``, ``data``, optional ``unique``,
        ``priority``) and return their requests in order."""
        poll_timeout = resolve_timeout(poll_timeout, timeout)
        requests = self._make_requests(jobs_to_submit, background, max_retries)
        paths = ShortPaths.of(self, GearmanClient)
        if not paths.batch:
            return self.submit_multiple_requests(requests, wait_until_complete=wait_until_complete,
                                                 poll_timeout=poll_timeout)
        self._submit_new(requests, wait_until_complete, Deadline(poll_timeout), paths)
        return requests

    def submit_multiple_requests(self, job_requests: Sequence[GearmanJobRequest],
                                 wait_until_complete: bool = True,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """(Re)submit requests.  One already accepted on a live connection is only
        waited for; one never accepted, or whose connection failed, is sent again
        with the same unique id."""
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        requests = as_request_list(job_requests)
        self._before_sending()
        needs_sending = request_fate.needs_sending
        for request in requests:
            if needs_sending(request):
                self._begin_submission(request)
                self.send_job_request(request)
        self._wait_through_overrides(requests, wait_until_complete, deadline)
        return requests

    def _submit_new(self, requests: List[GearmanJobRequest], wait_until_complete: bool,
                    deadline: Deadline, paths: ShortPaths) -> None:
        """Send requests just built (never sent, so nothing to resubmit) and wait: the
        path of submit_job and submit_multiple_jobs, with fewer calls per job."""
        self._before_sending()
        if not send_new(self, requests, paths):
            for request in requests:
                if not paths.no_reset:  # 2.x initialize_request: called before each send
                    self._begin_submission(request)
                self.send_job_request(request)
        if wait_until_complete and paths.one_wait:
            # One wait: a request is accepted before it completes, and a refused or
            # lost one is finished too, so waiting for "accepted" first adds nothing.
            self._wait(requests, request_fate.is_finished, deadline)
        else:
            self._wait_through_overrides(requests, wait_until_complete, deadline)

    def _before_sending(self) -> None:
        """Notice a close the servers made while we were idle, and give every server a
        fresh try if all of them are down, before requests are written."""
        connections = self.connection_list
        if may_hold_unread_close(connections, _monotonic()):
            # One non-blocking pass notices it (optimisations.md, row 13).
            self.poll_connections_once(connections, 0)
        self._give_all_servers_a_try()

    def _wait_through_overrides(self, requests: List[GearmanJobRequest],
                                wait_until_complete: bool, deadline: Deadline) -> None:
        # Through the overridable 2.x methods, the timeout passed positionally, so an
        # override written with timeout= or poll_timeout= sees every wait (API.md).
        self.wait_until_jobs_accepted(requests, deadline.remaining())
        if wait_until_complete:
            self.wait_until_jobs_completed(requests, deadline.remaining())

    def establish_request_connection(self, current_request: GearmanJobRequest
                                     ) -> GearmanConnection:
        """The live connection ``current_request`` should use; connects if needed.
        Servers that refuse are skipped (backed off), without using up a try.  A
        retry starts at the server after the one that dropped the request."""
        connections = self.server_pool.connections  # (once per job: not the property)
        if len(connections) == 1 and connections[0].connected:
            return connections[0]  # type: ignore[no-any-return]
        for connection in self._candidate_connections(current_request):
            if self.establish_connection(connection):
                return connection
        raise self._no_server()

    def send_job_request(self, current_request: GearmanJobRequest) -> None:
        """Send one request on the server it belongs to; mark it failed if none is up."""
        try:
            connection = self.establish_request_connection(current_request)
        except errors.ServerUnavailable as exc:
            self._unreachable(current_request, exc)
            return
        self._send_on(connection, current_request)

    def _send_retries(self) -> None:
        """Send again the requests whose connection failed while they had tries left."""
        retries, self._retries = self._retries, []
        for request in retries:
            if self._prepare_retry(request):  # not resubmitted by the caller meanwhile
                self.send_job_request(request)

    def shutdown(self) -> None:
        """Close every connection; requests waiting on them fail (no retry now)."""
        super().shutdown()
        retries, self._retries = self._retries, []
        for request in retries:
            request_fate.close(request)

    # -- waiting ---------------------------------------------------------------------------
    def _wait(self, requests: List[GearmanJobRequest], done: Callable[[GearmanJobRequest], bool],
              deadline: Deadline) -> None:
        # The requests waited for carry this wait's token: no set of 100,000
        # requests (4 MiB) beside them, and updates for others are skipped.
        if self._retries:
            self._send_retries()
        self._updated = []
        token = object()
        pending = 0
        for request in requests:
            request.timed_out = False
            if not done(request) and request._wait_token is not token:
                request._wait_token = token
                pending += 1
        if not pending:
            return

        def keep_polling(any_activity: bool) -> bool:
            nonlocal pending
            if self._retries:
                self._send_retries()
            updated = self._updated
            if updated:
                self._updated = []
                for request in updated:
                    if request._wait_token is token and done(request):
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
                    if request._wait_token is token:
                        request._wait_token = None
                        request.timed_out = completed  # not after an exception

    def wait_until_jobs_accepted(self, job_requests: Sequence[GearmanJobRequest],
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """Wait until the server has answered every submission (JOB_CREATED or ERROR)."""
        requests = as_request_list(job_requests)
        self._wait(requests, request_fate.is_answered,
                   Deadline(resolve_timeout(poll_timeout, timeout)))
        return requests

    def wait_until_jobs_completed(self, job_requests: Sequence[GearmanJobRequest],
                                  poll_timeout: Optional[float] = None, *,
                                  timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """Wait until every request is complete, failed, or lost with its connection."""
        requests = as_request_list(job_requests)
        self._wait(requests, request_fate.is_finished,
                   Deadline(resolve_timeout(poll_timeout, timeout)))
        return requests

    # -- status ------------------------------------------------------------------------------
    @overload
    def get_job_status(self, current_request: GearmanJobRequest,
                       poll_timeout: Optional[float] = None, *, timeout: Optional[float] = None,
                       server: Optional[HostItem] = None) -> GearmanJobRequest: ...

    @overload
    def get_job_status(self, current_request: Union[str, bytes],
                       poll_timeout: Optional[float] = None, *, timeout: Optional[float] = None,
                       server: Optional[HostItem] = None) -> JobStatus: ...

    def get_job_status(self, current_request: Union[GearmanJobRequest, str, bytes],
                       poll_timeout: Optional[float] = None, *, timeout: Optional[float] = None,
                       server: Optional[HostItem] = None
                       ) -> Union[GearmanJobRequest, JobStatus]:
        """GET_STATUS for a request (fills ``request.status``, returns the request) or
        for a job handle alone (give ``server`` when there are several; returns the
        status dict)."""
        if isinstance(current_request, (str, bytes)):
            return self.get_job_status_by_handle(current_request, server=server,
                                                 poll_timeout=poll_timeout, timeout=timeout)
        return self.get_job_statuses([current_request], poll_timeout, timeout=timeout)[0]

    def get_job_statuses(self, job_requests: Sequence[GearmanJobRequest],
                         poll_timeout: Optional[float] = None, *,
                         timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """GET_STATUS for each request, on the connection that accepted it."""
        requests = as_request_list(job_requests)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        self._check_submitted(requests)
        self.poll_connections_once(self.connection_list, 0)  # notice closed connections
        queries = self._send_status_queries(requests)
        for query in self._wait_queries(queries, deadline):
            query.request.timed_out = True
        return requests

    def get_job_status_by_handle(self, handle: Name, server: Optional[HostItem] = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> JobStatus:
        """Status of any job by its handle on ``server``: a dict with ``handle``,
        ``known``, ``running``, ``numerator``, ``denominator``, ``time_received``."""
        raw = check_handle(handle)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = client_queries.server_for(self, server)
        answer = client_queries.ask(self, connection, StatusQuery(raw), "send_get_status",
                                    deadline)
        return cast(JobStatus, answer)

    def get_job_status_by_unique(self, unique: Name, server: Optional[HostItem] = None,
                                 poll_timeout: Optional[float] = None, *,
                                 timeout: Optional[float] = None) -> JobStatus:
        """GET_STATUS_UNIQUE: status of a job by unique id, on the server that unique
        hashes to (or ``server``).  Adds ``waiting_clients`` to the status keys."""
        raw = self._unique_key(unique)
        deadline = Deadline(resolve_timeout(poll_timeout, timeout))
        connection = client_queries.server_for(self, server, to_text(raw))
        answer = client_queries.ask(self, connection, StatusQuery(raw), "send_get_status_unique",
                                    deadline)
        return cast(JobStatus, answer)

    def echo(self, data: Name = b"ping", server: Optional[HostItem] = None,
             poll_timeout: Optional[float] = 5.0, *, timeout: Optional[float] = None) -> bytes:
        """ECHO_REQ round trip; returns what the server echoed."""
        deadline = Deadline(resolve_timeout(poll_timeout if timeout is None else None, timeout))
        connection = client_queries.server_for(self, server)
        answer = client_queries.ask(self, connection, StatusQuery(to_bytes(data, "data")),
                                    "send_echo", deadline)
        return bytes(answer["data"])

    def _wait_queries(self, queries: List[StatusQuery], deadline: Deadline) -> List[StatusQuery]:
        """Poll until every query is answered; returns those that were not."""
        if self._retries:
            self._send_retries()
        self._queries_done = []
        waiting = {query for query in queries if not query.done}

        def keep_polling(any_activity: bool) -> bool:
            if self._retries:  # a job lost meanwhile keeps its retries (API.md, "Hosts")
                self._send_retries()
            if self._queries_done:
                waiting.difference_update(self._queries_done)
                self._queries_done = []
            return bool(waiting)

        if waiting:
            self.poll_connections_until_stopped(self.connection_list, keep_polling,
                                                deadline.remaining())
            keep_polling(False)
        # Jobs that finished meanwhile were noted for a _wait() that is not running:
        # drop the notes, or they would keep those requests alive (a retry does not
        # depend on them: it is queued when the loss is noted).
        self._updated = []
        return list(waiting)


if TYPE_CHECKING:
    def _seam_check(client: GearmanClient) -> ClientOwner:
        return client  # mypy checks that the client is what its handlers may ask of it
