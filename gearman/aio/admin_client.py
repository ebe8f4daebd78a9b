"""AsyncGearmanAdminClient: gearmand's text admin protocol as coroutines.

Each command is a plan from :mod:`gearman.admin_commands` (what to send, how to
read the reply), the same plans the blocking
:class:`~gearman.admin_client.GearmanAdminClient` runs; only the waiting differs.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

from gearman import admin_commands as plans
from gearman import errors
from gearman.admin_client_handler import AdminQuery, GearmanAdminClientCommandHandler
from gearman.aio.connection import AsyncConnection
from gearman.aio.manager import AsyncConnectionManager
from gearman.constants import (DEFAULT_ADMIN_POLL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
                               DEFAULT_MAX_PACKET_SIZE)
from gearman.shapes import HostItem, Name, PriorityStatus, QueuedJob, TaskStatus, WorkerInfo


class AsyncGearmanAdminClient(plans.AdminClientRules[AsyncConnection], AsyncConnectionManager):
    """Admin commands for one or several gearmand servers, awaited.

    ``poll_timeout`` bounds each command (connect included); a server that does
    not answer in time raises :class:`~gearman.errors.InvalidAdminClientState`.
    """

    command_handler_class = GearmanAdminClientCommandHandler
    closed_error = errors.InvalidAdminClientState

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None,
                 poll_timeout: Optional[float] = DEFAULT_ADMIN_POLL_TIMEOUT, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        super().__init__(host_list, poll_timeout, connect_timeout=connect_timeout,
                         keepalive=keepalive, max_packet_size=max_packet_size, trace=trace)
        self._answered: Dict[AdminQuery, asyncio.Future[None]] = {}

    def note_status(self, query: AdminQuery) -> None:
        waiter = self._answered.pop(query, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def establish_admin_connection(self, server: Optional[HostItem] = None
                                         ) -> Tuple[AsyncConnection, Any]:
        """The connection for ``server`` with a live session (its handler), connected
        now if needed, backoff or not."""
        connection = self._connection_for(server)
        if not connection.connected:
            self._before_connect(connection)
        handler = await self.live_handler(connection)
        if handler is None:
            raise self._connect_failed(connection)
        return connection, handler

    async def _run(self, plan: plans.Plan, server: Optional[HostItem]) -> Any:
        try:
            return await asyncio.wait_for(self._exchange(plan, server), self.poll_timeout)
        except asyncio.TimeoutError:
            raise plans.no_reply_error(self._connection_for(server).address, plan.command,
                                       self.poll_timeout) from None

    async def _exchange(self, plan: plans.Plan, server: Optional[HostItem]) -> Any:
        connection, handler = await self.establish_admin_connection(server)
        query = AdminQuery(plan.command, *plan.args)
        answered = asyncio.get_running_loop().create_future()
        self._answered[query] = answered
        try:
            handler.send_query(query)
            await answered
        except BaseException:
            self._answered.pop(query, None)
            if not query.done and connection.connected:
                # Its reply would arrive out of step with the next command's.
                self._drop(connection, errors.InvalidAdminClientState(
                    f"gearmand at {connection.address}: {plan.command!r} abandoned"))
            raise
        return plan.finish(plans.reply_of(query, connection), connection.address)

    async def shutdown(self) -> None:
        """Close every connection; the admin client can connect again afterwards."""
        self._close_all()

    # -- commands (what each sends and returns: gearman.admin_commands) ----------------
    async def ping_server(self, server: Optional[HostItem] = None) -> float:
        """ECHO round trip; returns the seconds it took."""
        return float(await self._run(plans.ping(), server))

    async def get_status(self, server: Optional[HostItem] = None) -> List[TaskStatus]:
        """``status``: task, queued (queued plus running), running, workers."""
        return cast(List[TaskStatus], await self._run(plans.status(), server))

    async def get_priority_status(self, server: Optional[HostItem] = None
                                  ) -> List[PriorityStatus]:
        """``prioritystatus``: queued jobs per priority, and workers."""
        return cast(List[PriorityStatus], await self._run(plans.priority_status(), server))

    async def get_version(self, server: Optional[HostItem] = None) -> str:
        """The server's version."""
        return str(await self._run(plans.version(), server))

    async def get_pid(self, server: Optional[HostItem] = None) -> int:
        """The server's process id."""
        return int(await self._run(plans.pid(), server))

    async def get_verbose(self, server: Optional[HostItem] = None) -> str:
        """The server's log level."""
        return str(await self._run(plans.verbose(), server))

    async def get_workers(self, server: Optional[HostItem] = None) -> List[WorkerInfo]:
        """``workers``: file_descriptor, ip, client_id, tasks per connection."""
        return cast(List[WorkerInfo], await self._run(plans.workers(), server))

    async def get_jobs(self, server: Optional[HostItem] = None) -> List[QueuedJob]:
        """``show jobs``: handle, retries, ignore_job, job_queued."""
        return cast(List[QueuedJob], await self._run(plans.jobs(), server))

    async def get_unique_jobs(self, server: Optional[HostItem] = None) -> List[Dict[str, str]]:
        """``show unique jobs``: one ``{'unique': str}`` per job."""
        return list(await self._run(plans.unique_jobs(), server))

    async def send_maxqueue(self, task: Name, max_size: Union[int, Sequence[int], None] = None,
                            server: Optional[HostItem] = None) -> str:
        """``maxqueue``: one size, or ``(high, normal, low)``."""
        return str(await self._run(plans.maxqueue(task, max_size), server))

    async def send_shutdown(self, graceful: bool = True, server: Optional[HostItem] = None) -> str:
        """``shutdown [graceful]`` (gearmand 1.1.15+ answers ERR UNKNOWN_COMMAND: raised)."""
        return str(await self._run(plans.shutdown(graceful), server))

    async def cancel_job(self, handle: Name, server: Optional[HostItem] = None) -> str:
        """``cancel job HANDLE``."""
        return str(await self._run(plans.cancel_job(handle), server))

    async def create_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``create function F``."""
        return str(await self._run(plans.create_function(task), server))

    async def drop_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``drop function F``."""
        return str(await self._run(plans.drop_function(task), server))

    async def ask_all_servers(self, method: str, *args: object, **kwargs: object
                              ) -> List[Tuple[str, object]]:
        """Call one admin method on every server at once: ``[(address, result or error)]``."""
        plans.check_admin_method(self, method)
        results = await asyncio.gather(
            *(getattr(self, method)(*args, server=connection, **kwargs)
              for connection in self.connection_list), return_exceptions=True)
        answers: List[Tuple[str, object]] = []
        for connection, result in zip(self.connection_list, results):
            if isinstance(result, BaseException) and not isinstance(result, errors.GearmanError):
                raise result
            answers.append((connection.address, result))
        return answers
