"""AsyncGearmanClient: submit jobs and await their results on an asyncio loop.

The checks, the requests, the server order and the retry decision are
:class:`~gearman.client_rules.ClientRules`, the protocol state per connection is
:class:`~gearman.client_handler.GearmanClientCommandHandler`: both the blocking
client's own.  Here is only the waiting: any number of tasks may await one
client; each registers the requests it waits for, and the handler's note about
a request wakes only the tasks waiting for that request.
"""
from __future__ import annotations

import asyncio
from time import monotonic as _monotonic
from typing import (Any, AsyncIterator, Dict, Iterable, List, Optional, Sequence, Union,
                    cast)

from gearman import errors, request_fate
from gearman.aio.connection import AsyncConnection
from gearman.aio.manager import AsyncConnectionManager
from gearman.aio.waits import (EXPIRY_GRAIN, Expiries, RequestWait, Update, UpdateStream,
                               WaitRegistry, new_wait)
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery
from gearman.client_rules import ClientRules
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE, PRIORITY_NONE
from gearman.job import GearmanJobRequest
from gearman.request_checks import as_request_list, check_handle, resolve_timeout
from gearman.submit_paths import RECENTLY_HEARD, ShortPaths, may_hold_unread_close, send_new
from gearman.shapes import HostItem, JobDict, JobStatus, Name, Payload, When
from gearman.util import Deadline, to_bytes, to_text

__all__ = ["AsyncGearmanClient", "Update"]


class AsyncGearmanClient(ClientRules[AsyncConnection], AsyncConnectionManager):
    """Submits jobs to gearmand servers and awaits their results.

    Same constructor, options and methods as :class:`~gearman.client.GearmanClient`,
    as coroutines.  ``poll_timeout`` returns with ``timed_out`` set, as there;
    cancelling the awaiting task raises in that task only, and the late replies of
    its requests are dropped.
    """

    command_handler_class = GearmanClientCommandHandler

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None,
                 random_unique_bytes: int = 16, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        super().__init__(host_list, random_unique_bytes, connect_timeout=connect_timeout,
                         keepalive=keepalive, max_packet_size=max_packet_size, trace=trace)
        self._registry = WaitRegistry()
        self._expiries = Expiries()
        #: when a look found no unread close on any connection (monotonic seconds)
        self._looked_at = 0.0
        self._answers: Dict[StatusQuery, asyncio.Future[None]] = {}
        #: requests lost with tries left, being sent again -> the task sending them
        self._retrying: Dict[Any, asyncio.Future[Any]] = {}
        #: tasks waiting for the loop to deliver what is due (see _notice_closed_connections)
        self._settle_waiters: List[asyncio.Future[None]] = []
        self._shutting_down = False

    # -- reported by handlers --------------------------------------------------------
    def note_updated(self, request: GearmanJobRequest) -> None:
        registry = self._registry
        held = registry.waits.get(request)
        if held is not None:
            for wait in held if type(held) is list else (held,):
                if wait.reached(request) and registry.remove(request, wait):
                    wait.settled()
        if registry.streams:
            for stream in registry.streams_for(request):
                stream.changed(request)

    def note_status(self, query: StatusQuery) -> None:
        answered = self._answers.pop(query, None)
        if answered is not None and not answered.done():
            answered.set_result(None)

    # -- retries ---------------------------------------------------------------------------
    def _retry_due(self, request: Any) -> None:
        """A request lost its connection with tries left (the request fate said so):
        send it again now, in a task (connecting may take a while), whether or not
        anyone waits for it; its waits stay registered meanwhile."""
        if self._closed or self._shutting_down:
            request_fate.close(request)  # no retry after close(): it has failed
            return
        if request in self._retrying:
            return
        task = asyncio.ensure_future(self._retry(request))
        self._retrying[request] = task
        task.add_done_callback(lambda _: self._retrying.pop(request, None))

    async def _retry(self, request: Any) -> None:
        if self._prepare_retry(request):
            await self.send_job_request(request)

    # -- submitting ----------------------------------------------------------------------
    async def submit_job(self, task: Name, data: Payload, unique: Optional[Name] = None,
                         priority: Optional[str] = PRIORITY_NONE, background: bool = False,
                         wait_until_complete: bool = True, max_retries: int = 0,
                         poll_timeout: Optional[float] = None, *,
                         timeout: Optional[float] = None, when: When = None,
                         reducer: Optional[Name] = None) -> GearmanJobRequest:
        """Submit one job and, by default, await its result (see GearmanClient.submit_job)."""
        job = {"task": task, "data": data, "unique": unique, "priority": priority,
               "when": when, "reducer": reducer}
        limit = resolve_timeout(poll_timeout, timeout)
        request = self._make_request(job, background, max_retries)
        if not self._sent_at_once((request,)):
            await self._submit((request,), wait_until_complete, limit, fresh=True)
            return request
        # The common case in this one coroutine, which keeps only the request and its
        # wait alive while it waits: a gather of 20,000 calls holds 20,000 tasks, and
        # every object each one keeps is walked by the garbage collector's full passes.
        wait = self._start_wait((request,), request_fate.is_finished if wait_until_complete
                                else request_fate.is_answered, limit)
        if wait is not None:
            try:
                await wait
            finally:
                self._end_wait((request,), wait)
        return request

    async def submit_multiple_jobs(self, jobs_to_submit: Sequence[JobDict],
                                   background: bool = False, wait_until_complete: bool = True,
                                   max_retries: int = 0, poll_timeout: Optional[float] = None,
                                   *, timeout: Optional[float] = None
                                   ) -> List[GearmanJobRequest]:
        """Submit a list of job dicts and return their requests in order."""
        limit = resolve_timeout(poll_timeout, timeout)
        requests = self._make_requests(jobs_to_submit, background, max_retries)
        await self._submit(requests, wait_until_complete, limit, fresh=True)
        return requests

    async def submit_multiple_requests(self, job_requests: Sequence[GearmanJobRequest],
                                       wait_until_complete: bool = True,
                                       poll_timeout: Optional[float] = None, *,
                                       timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """(Re)submit requests: one already accepted on a live connection is only
        awaited; one never accepted, or whose connection failed, is sent again."""
        limit = resolve_timeout(poll_timeout, timeout)
        requests = as_request_list(job_requests)
        await self._submit(requests, wait_until_complete, limit)
        return requests

    def _sent_at_once(self, requests: Sequence[GearmanJobRequest]) -> bool:
        """Send requests just built with no await, when that is the whole story: no
        connection may hold an unread close, and the blocking client's short path
        (:func:`send_new`: the only server, up) takes them."""
        self._check_open()
        return not self._may_hold_unread_close() and self._send_new(requests)

    def _send_new(self, requests: Sequence[GearmanJobRequest]) -> bool:
        return send_new(self, requests, ShortPaths.of(self, AsyncGearmanClient))

    async def _submit(self, requests: Sequence[GearmanJobRequest], wait_until_complete: bool,
                      limit: Optional[float], fresh: bool = False) -> None:
        """Send what needs sending and wait (the arguments are checked).  ``fresh``:
        the requests were just built, so they may take :func:`send_new`."""
        self._check_open()
        if self._may_hold_unread_close():
            await self._notice_closed_connections()
        if not (fresh and self._send_new(requests)):
            deadline = Deadline(limit)
            await self._send_each(requests)
            limit = deadline.remaining()
        # Waiting for completion alone covers acceptance: a finished request was
        # answered (JOB_CREATED or ERROR) or is lost.  One wait instead of two.
        await self._wait(requests, request_fate.is_finished if wait_until_complete
                         else request_fate.is_answered, limit)

    async def _send_each(self, requests: Sequence[GearmanJobRequest]) -> None:
        """Send the requests that need it, connecting (and failing over) as needed."""
        self._give_all_servers_a_try()
        needs_sending = request_fate.needs_sending
        connections = self.server_pool.connections
        for request in requests:
            if needs_sending(request):
                self._begin_submission(request)
                if len(connections) == 1 and connections[0].connected:
                    self._send_on(connections[0], request)  # no await on the common path
                else:
                    await self.send_job_request(request)

    def _may_hold_unread_close(self) -> bool:
        """The shared rule (:func:`~gearman.submit_paths.may_hold_unread_close`), then
        a look at the sockets (:meth:`AsyncConnection.may_hold_close`): only then
        does the task let the loop deliver what is due.  A clean look counts as
        hearing from every server."""
        now = _monotonic()
        connections = self.server_pool.connections
        if now - self._looked_at < RECENTLY_HEARD or \
                not may_hold_unread_close(connections, now):
            return False
        if any(connection.may_hold_close() for connection in connections):
            return True
        self._looked_at = now
        return False

    async def _notice_closed_connections(self) -> None:
        """Let the loop run the callbacks already due: a connection the server closed
        a moment ago (say, it was restarted) is noticed now, not after a request was
        written into it and lost (as the blocking client's first non-blocking poll).
        A close takes up to three turns of the loop to reach connection_lost.  All
        the tasks that submit during those turns share one wait for them."""
        if not any(connection.connected for connection in self.connection_list):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._settle_waiters.append(waiter)
        if len(self._settle_waiters) == 1:
            asyncio.ensure_future(self._settle())
        await waiter

    async def _settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            if not waiter.done():  # (a cancelled caller's is done)
                waiter.set_result(None)

    async def establish_request_connection(self, current_request: GearmanJobRequest
                                           ) -> AsyncConnection:
        """The live connection ``current_request`` should use; connects if needed."""
        connections = self.connection_list
        if len(connections) == 1 and connections[0].connected:
            return connections[0]  # the common case costs no lookups
        for connection in self._candidate_connections(current_request):
            if await self.live_handler(connection) is not None:
                return connection
        raise self._no_server()

    async def send_job_request(self, current_request: GearmanJobRequest) -> None:
        """Send one request on its server; mark it failed if none is up."""
        try:
            connection = await self.establish_request_connection(current_request)
        except errors.ServerUnavailable as exc:
            self._unreachable(current_request, exc)
            return
        self._send_on(connection, current_request)

    # -- waiting -------------------------------------------------------------------------
    async def _wait(self, requests: Sequence[Any], reached: Any,
                    timeout: Optional[float]) -> None:
        wait = self._start_wait(requests, reached, timeout)
        if wait is None:
            return
        try:
            await wait
        finally:
            self._end_wait(requests, wait)

    def _start_wait(self, requests: Sequence[Any], reached: Any,
                    timeout: Optional[float]) -> Optional[RequestWait]:
        """Register a wait for the requests not yet ``reached``; None if none is left."""
        wait = new_wait(reached)
        registry = self._registry
        for request in requests:
            request.timed_out = False
            if not reached(request):
                registry.add(request, wait)
                wait.pending += 1
        if not wait.pending:
            return None
        if timeout is not None:
            if timeout < 10 * EXPIRY_GRAIN:  # short: to the loop's own precision
                wait.timer = asyncio.get_running_loop().call_later(timeout, wait.expire)
            else:
                wait.slot = self._expiries.add(wait, timeout)
        return wait

    def _end_wait(self, requests: Sequence[Any], wait: RequestWait) -> None:
        """The awaiting task woke (or was cancelled): drop what the wait still holds.
        Requests still pending when the wait ran out (not cancelled) are timed out."""
        timed_out = not wait.cancelled() and wait.pending > 0
        if wait.timer is not None:
            wait.timer.cancel()
        elif wait.slot is not None:
            self._expiries.discard(wait, wait.slot)
        if wait.pending > 0:  # timed out, cancelled, or the client was closed
            registry = self._registry
            for request in requests:
                if registry.remove(request, wait):
                    request.timed_out = timed_out

    async def wait_until_jobs_accepted(self, job_requests: Sequence[GearmanJobRequest],
                                       poll_timeout: Optional[float] = None, *,
                                       timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """Await the server's answer to every submission (JOB_CREATED or ERROR)."""
        requests = as_request_list(job_requests)
        await self._wait(requests, request_fate.is_answered,
                         resolve_timeout(poll_timeout, timeout))
        return requests

    async def wait_until_jobs_completed(self, job_requests: Sequence[GearmanJobRequest],
                                        poll_timeout: Optional[float] = None, *,
                                        timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """Await every request being complete, failed, or lost with its connection."""
        requests = as_request_list(job_requests)
        await self._wait(requests, request_fate.is_finished,
                         resolve_timeout(poll_timeout, timeout))
        return requests

    async def updates(self, request: GearmanJobRequest) -> AsyncIterator[Update]:
        """The WORK_DATA, WORK_WARNING and WORK_STATUS of a foreground ``request`` as
        they arrive (those that came before the call first), ending when the job
        completes, fails or loses its connection."""
        if not hasattr(request, "gearman_job"):
            raise TypeError(f"request must be a GearmanJobRequest, got {type(request).__name__}")
        if request.background:
            raise ValueError("a background job sends no updates to its client")
        stream = UpdateStream()
        stream.changed(request)
        self._registry.add_stream(request, stream)
        try:
            while True:
                while stream.items:
                    yield stream.items.popleft()
                if request_fate.is_finished(request):
                    return
                stream.wakeup.clear()
                await stream.wakeup.wait()
        finally:
            self._registry.remove_stream(request, stream)

    # -- status ------------------------------------------------------------------------------
    async def _await_answers(self, queries: List[StatusQuery],
                             timeout: Optional[float]) -> List[StatusQuery]:
        """Await the answers of ``queries``; returns those not answered in time."""
        loop = asyncio.get_running_loop()
        futures = []
        for query in queries:
            if not query.done:
                self._answers[query] = future = loop.create_future()
                futures.append(future)
        try:
            if futures:
                await asyncio.wait(futures, timeout=timeout)
        finally:
            for query in queries:
                self._answers.pop(query, None)
        return [query for query in queries if not query.done]

    async def get_job_status(self, current_request: Union[GearmanJobRequest, str, bytes],
                             poll_timeout: Optional[float] = None, *,
                             timeout: Optional[float] = None, server: Optional[HostItem] = None
                             ) -> Union[GearmanJobRequest, JobStatus]:
        """GET_STATUS for a request (fills ``request.status``) or a job handle."""
        if isinstance(current_request, (str, bytes)):
            return await self.get_job_status_by_handle(current_request, server=server,
                                                       poll_timeout=poll_timeout,
                                                       timeout=timeout)
        statuses = await self.get_job_statuses([current_request], poll_timeout, timeout=timeout)
        return statuses[0]

    async def get_job_statuses(self, job_requests: Sequence[GearmanJobRequest],
                               poll_timeout: Optional[float] = None, *,
                               timeout: Optional[float] = None) -> List[GearmanJobRequest]:
        """GET_STATUS for each request, on the connection that accepted it."""
        requests = as_request_list(job_requests)
        limit = resolve_timeout(poll_timeout, timeout)
        self._check_submitted(requests)
        await self._notice_closed_connections()
        queries = self._send_status_queries(requests)
        for query in await self._await_answers(queries, limit):
            query.request.timed_out = True
        return requests

    async def _query(self, connection: Any, query: StatusQuery, send: str,
                     timeout: Optional[float]) -> Dict[str, Any]:
        connection = self._query_target(connection)
        await self._notice_closed_connections()
        handler = await self.live_handler(connection)
        if handler is None:
            raise self._server_down(connection)
        getattr(handler, send)(query)
        unanswered = bool(await self._await_answers([query], timeout))
        return self._query_result(connection, query, send, unanswered)

    async def get_job_status_by_handle(self, handle: Name, server: Optional[HostItem] = None,
                                       poll_timeout: Optional[float] = None, *,
                                       timeout: Optional[float] = None) -> JobStatus:
        """Status of any job by its handle on ``server``."""
        query = StatusQuery(check_handle(handle))
        limit = resolve_timeout(poll_timeout, timeout)
        answer = await self._query(self._server_connection(server), query, "send_get_status",
                                   limit)
        return cast(JobStatus, answer)

    async def get_job_status_by_unique(self, unique: Name, server: Optional[HostItem] = None,
                                       poll_timeout: Optional[float] = None, *,
                                       timeout: Optional[float] = None) -> JobStatus:
        """GET_STATUS_UNIQUE on the server that unique hashes to (or ``server``)."""
        query = StatusQuery(self._unique_key(unique))
        limit = resolve_timeout(poll_timeout, timeout)
        connection = self._server_connection(server, to_text(query.key))
        answer = await self._query(connection, query, "send_get_status_unique", limit)
        return cast(JobStatus, answer)

    async def echo(self, data: Name = b"ping", server: Optional[HostItem] = None,
                   poll_timeout: Optional[float] = 5.0, *,
                   timeout: Optional[float] = None) -> bytes:
        """ECHO_REQ round trip; returns what the server echoed."""
        limit = resolve_timeout(poll_timeout if timeout is None else None, timeout)
        result = await self._query(self._server_connection(server),
                                   StatusQuery(to_bytes(data, "data")), "send_echo", limit)
        return bytes(result["data"])

    async def shutdown(self) -> None:
        """Close every connection; waiting requests fail (no retry now).  The client
        can connect again afterwards (``close()`` ends it for good)."""
        self._on_close()
        self._shutting_down = True  # the losses it causes are no reason to retry
        try:
            self._close_all()
        finally:
            self._shutting_down = False

    def _on_close(self) -> None:
        """shutdown() and close(): retries that were due fail, and so end their waits."""
        for request, task in list(self._retrying.items()):
            task.cancel()
            request_fate.close(request)  # the retry that was due will not happen
            self.note_updated(request)
