"""GearmanAdminClient: gearmand's text admin protocol as blocking method calls.

Each call is bounded by ``poll_timeout``.  Replies come back structured: ints
for counts, ``str`` for text, no stray CR.  An ``ERR`` reply raises
:class:`~gearman.errors.AdminCommandError` with the server's code and text.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union, cast

from gearman import admin_commands as plans
from gearman import errors
from gearman.admin_client_handler import AdminQuery, GearmanAdminClientCommandHandler
from gearman.admin_commands import (ECHO_STRING, parse_jobs_line, parse_priority_status_line,
                                    parse_status_line, parse_workers_line, split_err_line)
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.shapes import HostItem, Name, PriorityStatus, QueuedJob, TaskStatus, WorkerInfo
from gearman.util import Deadline

__all__ = ["GearmanAdminClient", "ECHO_STRING", "parse_jobs_line", "parse_priority_status_line",
           "parse_status_line", "parse_workers_line", "split_err_line"]

class GearmanAdminClient(plans.AdminClientRules[GearmanConnection], GearmanConnectionManager):
    """Admin commands for one or several gearmand servers.

    Commands go to the first server of ``host_list`` unless ``server=`` names
    another; :meth:`ask_all_servers` asks each and says which answer is whose.
    """

    command_handler_class = GearmanAdminClientCommandHandler
    closed_error = errors.InvalidAdminClientState

    # -- plumbing ------------------------------------------------------------------------
    def establish_admin_connection(self, server: Optional[HostItem] = None,
                                   deadline: Optional[Deadline] = None) -> GearmanConnection:
        connection = self._connection_for(server)
        if connection.connected:  # notice a close by a restarted server before sending
            self.poll_connections_once([connection], 0)
        if not connection.connected:
            remaining = deadline.remaining() if deadline else self.poll_timeout
            self._before_connect(connection)
            if not self.establish_connection(connection, remaining):
                raise self._connect_failed(connection)
        return connection

    def _run(self, plan: plans.Plan, server: Optional[HostItem]) -> Any:
        """Send one admin command, wait for its reply and turn it into the result."""
        deadline = Deadline(self.poll_timeout)
        connection = self.establish_admin_connection(server, deadline)
        query = AdminQuery(plan.command, *plan.args)
        try:
            self.server_pool.handler_for(connection).send_query(query)
        except errors.ConnectionError as exc:
            self._drop(connection, exc)
            raise
        self.wait_until_server_responds(query, deadline)
        return plan.finish(plans.reply_of(query, connection), connection.address)

    def wait_until_server_responds(self, query: AdminQuery, deadline: Deadline) -> AdminQuery:
        """Poll until ``query`` is answered; raise InvalidAdminClientState at the deadline
        (and drop the connection, whose replies would now be out of step)."""

        def keep_polling(any_activity: bool) -> bool:
            return not query.done

        connection = query.connection
        if not query.done:
            self.poll_connections_until_stopped(self.connection_list, keep_polling,
                                                deadline.remaining())
        if not query.done:
            if connection is not None and connection.connected:
                self._drop(connection, errors.InvalidAdminClientState(
                    f"gearmand at {connection.address}: no reply to {query.command!r} in "
                    f"{self.poll_timeout}s"))
            raise plans.no_reply_error(query.server, query.command, self.poll_timeout)
        return query

    # -- commands (what each sends and returns: gearman.admin_commands) ----------------
    def ping_server(self, server: Optional[HostItem] = None) -> float:
        """ECHO round trip; returns the seconds it took."""
        return float(self._run(plans.ping(), server))

    def get_status(self, server: Optional[HostItem] = None) -> List[TaskStatus]:
        """``status``: one dict per function: task, queued (gearmand's total: queued
        plus running, as in 2.x), running, workers."""
        return cast(List[TaskStatus], self._run(plans.status(), server))

    def get_priority_status(self, server: Optional[HostItem] = None) -> List[PriorityStatus]:
        """``prioritystatus`` (gearmand 1.1.15+): queued jobs per priority, and workers."""
        return cast(List[PriorityStatus], self._run(plans.priority_status(), server))

    def get_version(self, server: Optional[HostItem] = None) -> str:
        """The server's version, e.g. ``'1.1.20+ds'``."""
        return str(self._run(plans.version(), server))

    def get_pid(self, server: Optional[HostItem] = None) -> int:
        """The server's process id."""
        return int(self._run(plans.pid(), server))

    def get_verbose(self, server: Optional[HostItem] = None) -> str:
        """The server's log level, e.g. ``'INFO'``."""
        return str(self._run(plans.verbose(), server))

    def get_workers(self, server: Optional[HostItem] = None) -> List[WorkerInfo]:
        """``workers``: every connection (clients and this one too), with its
        file_descriptor (int), ip, client_id (``'-'`` if unset) and tasks (tuple)."""
        return cast(List[WorkerInfo], self._run(plans.workers(), server))

    def get_jobs(self, server: Optional[HostItem] = None) -> List[QueuedJob]:
        """``show jobs``: handle, retries (int), ignore_job (cancelled), job_queued
        (in the persistent queue).  2.x called the last three queued/canceled/enabled."""
        return cast(List[QueuedJob], self._run(plans.jobs(), server))

    def get_unique_jobs(self, server: Optional[HostItem] = None) -> List[Dict[str, str]]:
        """``show unique jobs``: one ``{'unique': str}`` per job (empty for no unique)."""
        return list(self._run(plans.unique_jobs(), server))

    def send_maxqueue(self, task: Name, max_size: Union[int, Sequence[int], None] = None,
                      server: Optional[HostItem] = None) -> str:
        """``maxqueue``: one size for all priorities, or ``(high, normal, low)``.
        None, 0 or a negative size means unlimited.  gearmand applies it only to
        functions it already knows."""
        return str(self._run(plans.maxqueue(task, max_size), server))

    def send_shutdown(self, graceful: bool = True, server: Optional[HostItem] = None) -> str:
        """``shutdown [graceful]``.  gearmand 1.1.15 and later removed it and answer
        ERR UNKNOWN_COMMAND, which is raised."""
        return str(self._run(plans.shutdown(graceful), server))

    def cancel_job(self, handle: Name, server: Optional[HostItem] = None) -> str:
        """``cancel job HANDLE``; an unknown handle raises (ERR UNKNOWN_JOB)."""
        return str(self._run(plans.cancel_job(handle), server))

    def create_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``create function F``."""
        return str(self._run(plans.create_function(task), server))

    def drop_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``drop function F``: only for functions with no workers and no jobs."""
        return str(self._run(plans.drop_function(task), server))

    def ask_all_servers(self, method: str, *args: object, **kwargs: object
                        ) -> List[Tuple[str, object]]:
        """Call one admin method on every server: ``[(address, result or error)]``."""
        plans.check_admin_method(self, method)
        answers: List[Tuple[str, object]] = []
        for connection in self.connection_list:
            try:
                answers.append((connection.address,
                                getattr(self, method)(*args, server=connection, **kwargs)))
            except errors.GearmanError as exc:
                answers.append((connection.address, exc))
        return answers


if TYPE_CHECKING:
    from gearman.seams import AdminOwner

    def _seam_check(admin: GearmanAdminClient) -> AdminOwner:
        return admin  # mypy checks that the admin client is what its handlers may ask of it
