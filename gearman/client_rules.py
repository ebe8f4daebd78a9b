"""The client's rules, for both drivers, over :mod:`gearman.request_checks` and
:mod:`gearman.request_fate`: building the requests, which server a request goes
to (and where its retry goes), what a lost connection means for a request, and
the checks of status queries.

:class:`ClientRules` does no I/O and never waits; the blocking
:class:`~gearman.client.GearmanClient` and the asyncio
:class:`~gearman.aio.client.AsyncGearmanClient` derive from it and from their
connection manager, and add sending and waiting.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

from gearman import errors, request_fate
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE, MAX_UNIQUE_LENGTH
from gearman.job import GearmanJobRequest
from gearman.manager_core import C, ManagerCore
from gearman.request_checks import RequestMaker, check_batch, make_request, make_requests
from gearman.shapes import HostItem, JobDict, Name
from gearman.util import to_bytes


class ClientRules(ManagerCore[C]):
    """Request building, server choice, retry and status-query rules of both clients."""

    #: Losing an established connection costs its requests a try, not the server its
    #: next connect: a retry (``max_retries``) reconnects at once; only a refused
    #: connect backs the server off.
    backoff_after_drop = False

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None,
                 random_unique_bytes: int = 16, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        self._maker = RequestMaker(random_unique_bytes)  # checked before anything else
        super().__init__(host_list, connect_timeout=connect_timeout, keepalive=keepalive,
                         max_packet_size=max_packet_size, trace=trace)

    @property
    def random_unique_bytes(self) -> int:
        return self._maker.random_unique_bytes

    # -- what handlers report (see gearman.seams.ClientOwner) -----------------------------
    def note_updated(self, request: GearmanJobRequest) -> None:
        """``request`` changed (each driver says what that wakes)."""
        raise NotImplementedError

    def note_lost(self, request: GearmanJobRequest) -> None:
        """The connection ``request`` depended on failed: the request fate decides;
        a retry due is handed to the driver (:meth:`_retry_due`)."""
        if request_fate.lose(request) == request_fate.RETRY:
            self._retry_due(request)
        self.note_updated(request)

    def _retry_due(self, request: GearmanJobRequest) -> None:
        """``request`` must be sent again (each driver says when)."""
        raise NotImplementedError

    # -- building requests -----------------------------------------------------------
    def _make_requests(self, jobs_to_submit: Sequence[JobDict], background: bool,
                       max_retries: int) -> List[GearmanJobRequest]:
        """Check a whole batch and build its requests; raises before anything is sent.
        A subclass's ``_create_request_from_dictionary`` (a 2.x override) builds each one."""
        if type(self)._create_request_from_dictionary is not \
                ClientRules._create_request_from_dictionary:
            check_batch(jobs_to_submit, background, max_retries)
            return [self._create_request_from_dictionary(job, background, max_retries, index)
                    for index, job in enumerate(jobs_to_submit)]
        return make_requests(self._maker, jobs_to_submit, background, max_retries,
                             self.job_class, self.job_request_class, self.encode_payload)

    def _make_request(self, job: JobDict, background: bool, max_retries: int
                      ) -> GearmanJobRequest:
        """:meth:`_make_requests` for submit_job's one job."""
        if type(self)._create_request_from_dictionary is not \
                ClientRules._create_request_from_dictionary:
            return self._make_requests([job], background, max_retries)[0]
        return make_request(self._maker, job, background, max_retries, self.job_class,
                            self.job_request_class, self.encode_payload)

    def _create_request_from_dictionary(self, job_info: JobDict, background: bool = False,
                                        max_retries: int = 0,
                                        index: int = 0) -> GearmanJobRequest:
        """2.x name: check one job dict and build its request (nothing is sent)."""
        return self._maker.make(job_info, index, background, max_retries, self.job_class,
                                self.job_request_class, self.encode_payload)

    # -- choosing a server -----------------------------------------------------------------
    def _connection_order(self, unique: Optional[str]) -> List[C]:
        """Servers for a unique id: a stable hash picks the first, the rest follow in order."""
        order: List[C] = self.server_pool.failover_order(unique)
        return order

    def _give_all_servers_a_try(self) -> None:
        """Every server is down and backed off: give each one fresh try now (its
        backoff then holds for the rest of the call, so 100,000 requests cost one
        connect attempt per server, not 100,000).  Otherwise the backoff stands, and
        requests fail over to the live servers without waiting on dead ones."""
        pool = self.server_pool
        if not any(c.connected or pool.is_due(c) for c in self.connection_list):
            pool.forget_backoff()

    def _candidate_connections(self, request: GearmanJobRequest) -> Iterator[C]:
        """The servers ``request`` may go to, in its failover order (a retry starts
        at the server after the one that dropped it): live ones, and down ones whose
        backoff is over (the driver connects those)."""
        if not self.connection_list:
            raise errors.ServerUnavailable(f"{type(self).__name__} has no servers in its "
                                           "host_list")
        job = request.job
        yield from self.server_pool.candidates(job.unique, after=job.connection)

    def _no_server(self) -> errors.ServerUnavailable:
        servers = ", ".join(c.address for c in self.connection_list)
        return errors.ServerUnavailable(f"no gearmand reachable among {servers}")

    def _unreachable(self, request: GearmanJobRequest, exc: BaseException) -> None:
        """No server takes ``request``: it is lost."""
        self.log.warning("job %s (%s): %s", request.job.unique, request.job.task, exc)
        request_fate.give_up(request)
        self.note_updated(request)

    def _send_on(self, connection: C, request: GearmanJobRequest) -> None:
        """Send ``request`` on ``connection`` (one try used up)."""
        request.connection_attempts += 1
        request.job.connection = connection
        handler: GearmanClientCommandHandler = self.server_pool.handler_for(connection)
        handler.send_job_request(request)

    @staticmethod
    def _begin_submission(request: GearmanJobRequest) -> None:
        """A fresh submission: the last attempt's outcome and tries forgotten."""
        request.reset()
        request.connection_attempts = 0

    def _prepare_retry(self, request: GearmanJobRequest) -> bool:
        """Ready a lost request for its next try; False if it is no longer due (the
        caller resubmitted it meanwhile)."""
        if not request_fate.is_retry_due(request):
            return False
        request_fate.prepare_retry(request)
        self.log.info("retrying job %s (%s) after %s dropped it, try %d of %d",
                      request.job.unique, request.job.task,
                      getattr(request.job.connection, "address", "?"),
                      request.connection_attempts + 1, request.max_connection_attempts)
        return True

    # -- status queries ----------------------------------------------------------------
    @staticmethod
    def _check_submitted(requests: List[GearmanJobRequest]) -> None:
        for request in requests:
            if request.job.handle is None or request.accepted_by is None:
                raise errors.InvalidClientState(f"job {request.job.unique!r} has no handle yet; "
                                                "submit it before asking its status")

    def _send_status_queries(self, requests: List[GearmanJobRequest]) -> List[StatusQuery]:
        """GET_STATUS for each request on the connection that accepted it; a request
        whose connection is gone is noted lost (counted once) instead."""
        queries = []
        for request in requests:
            request.timed_out = False
            connection = request.accepted_by
            handler = self.server_pool.handler_for(connection)
            if handler is None or connection is None or not connection.connected:
                self.note_lost(request)
                continue
            query = StatusQuery(to_bytes(request.job.handle or "", "handle"), request)
            handler.send_get_status(query)
            queries.append(query)
        return queries

    @staticmethod
    def _unique_key(unique: Name) -> bytes:
        raw = to_bytes(unique, "unique")
        if not raw or len(raw) > MAX_UNIQUE_LENGTH or b"\0" in raw:
            raise ValueError(f"unique must be 1 to {MAX_UNIQUE_LENGTH} bytes without NUL")
        return raw

    def _server_connection(self, server: Optional[HostItem],
                           unique: Optional[str] = None) -> Optional[C]:
        if server is None:
            if unique is not None:
                order = self._connection_order(unique)
                return order[0] if order else None
            if len(self.connection_list) == 1:
                return self.connection_list[0]
            raise ValueError("server is required: this client has several servers, and a "
                             "job handle is only meaningful on the server that issued it")
        return self.connection_named(server)

    def _query_target(self, connection: Optional[C]) -> C:
        if connection is None:
            raise errors.ServerUnavailable(f"{type(self).__name__} has no servers in its "
                                           "host_list")
        return connection

    @staticmethod
    def _server_down(connection: C) -> errors.ConnectionError:
        return errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                      "server is down")

    @staticmethod
    def _query_result(connection: C, query: StatusQuery, send: str,
                      unanswered: bool) -> Dict[str, Any]:
        """An answered query's result, or what the server (or the lost connection, or
        its silence) said instead."""
        if unanswered:
            raise errors.InvalidClientState(f"gearmand at {connection.address} did not answer "
                                            f"{send[5:].upper()} in time")
        if query.result is None:
            raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                         "connection lost while waiting for the answer")
        if "error" in query.result:
            raise query.result["error"]
        return query.result

