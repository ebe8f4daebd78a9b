"""GearmanAdminClient: gearmand's text admin protocol as blocking method calls.

Each call is bounded by ``poll_timeout``.  Replies come back structured: ints
for counts, ``str`` for text, no stray CR.  An ``ERR`` reply raises
:class:`~gearman.errors.AdminCommandError` with the server's code and text.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from gearman import admin_commands as plans
from gearman import errors
from gearman.admin_client_handler import AdminQuery, GearmanAdminClientCommandHandler
from gearman.admin_commands import (ECHO_STRING, parse_jobs_line, parse_priority_status_line,
                                    parse_status_line, parse_workers_line, split_err_line)
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import DEFAULT_ADMIN_POLL_TIMEOUT
from gearman.util import Deadline

__all__ = ["GearmanAdminClient", "ECHO_STRING", "parse_jobs_line", "parse_priority_status_line",
           "parse_status_line", "parse_workers_line", "split_err_line"]

class GearmanAdminClient(GearmanConnectionManager):
    """Admin commands for one or several gearmand servers.

    Commands go to the first server of ``host_list`` unless ``server=`` names
    another; :meth:`ask_all_servers` asks each and says which answer is whose.
    """

    command_handler_class = GearmanAdminClientCommandHandler
    closed_error = errors.InvalidAdminClientState

    def __init__(self, host_list: Any = None,
                 poll_timeout: Optional[float] = DEFAULT_ADMIN_POLL_TIMEOUT,
                 **options: Any) -> None:
        super().__init__(host_list, **options)
        if poll_timeout is not None and (isinstance(poll_timeout, bool) or poll_timeout < 0):
            raise ValueError(f"poll_timeout must be None or >= 0, got {poll_timeout!r}")
        self.poll_timeout = poll_timeout

    def note_status(self, query: AdminQuery) -> None:
        """Handlers report each answered query; a wait checks its own ``query.done``."""

    # -- plumbing ------------------------------------------------------------------------
    def _connection_for(self, server: Any) -> Any:
        if not self.connection_list:
            raise errors.ServerUnavailable("GearmanAdminClient has no servers in its host_list")
        if server is None:
            return self.connection_list[0]
        return self.connection_named(server)

    def establish_admin_connection(self, server: Any = None,
                                   deadline: Optional[Deadline] = None) -> Any:
        connection = self._connection_for(server)
        if connection.connected:  # notice a close by a restarted server before sending
            self.poll_connections_once([connection], 0)
        if not connection.connected:
            remaining = deadline.remaining() if deadline else self.poll_timeout
            # An admin call is explicit: establish_connection tries now, backoff or not.
            self._last_failure.pop(connection, None)
            if not self.establish_connection(connection, remaining):
                why = self._last_failure.pop(connection, None)
                reason = getattr(why, "reason", None) or str(why or "connection failed")
                raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                             f"cannot connect for an admin command: {reason}")
        return connection

    def _run(self, plan: plans.Plan, server: Any) -> Any:
        """Send one admin command, wait for its reply and turn it into the result."""
        deadline = Deadline(self.poll_timeout)
        connection = self.establish_admin_connection(server, deadline)
        query = AdminQuery(plan.command, *plan.args)
        try:
            self._handlers[connection].send_query(query)
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
            raise plans.no_reply_error(query, self.poll_timeout)
        return query

    # -- commands (what each sends and returns: gearman.admin_commands) ----------------
    def ping_server(self, server: Any = None) -> float:
        """ECHO round trip; returns the seconds it took."""
        return float(self._run(plans.ping(), server))

    def get_status(self, server: Any = None) -> List[Dict[str, Any]]:
        """``status``: one dict per function: task, queued (gearmand's total: queued
        plus running, as in 2.x), running, workers."""
        return list(self._run(plans.status(), server))

    def get_priority_status(self, server: Any = None) -> List[Dict[str, Any]]:
        """``prioritystatus`` (gearmand 1.1.15+): queued jobs per priority, and workers."""
        return list(self._run(plans.priority_status(), server))

    def get_version(self, server: Any = None) -> str:
        """The server's version, e.g. ``'1.1.20+ds'``."""
        return str(self._run(plans.version(), server))

    def get_pid(self, server: Any = None) -> int:
        """The server's process id."""
        return int(self._run(plans.pid(), server))

    def get_verbose(self, server: Any = None) -> str:
        """The server's log level, e.g. ``'INFO'``."""
        return str(self._run(plans.verbose(), server))

    def get_workers(self, server: Any = None) -> List[Dict[str, Any]]:
        """``workers``: every connection (clients and this one too), with its
        file_descriptor (int), ip, client_id (``'-'`` if unset) and tasks (tuple)."""
        return list(self._run(plans.workers(), server))

    def get_jobs(self, server: Any = None) -> List[Dict[str, Any]]:
        """``show jobs``: handle, retries (int), ignore_job (cancelled), job_queued
        (in the persistent queue).  2.x called the last three queued/canceled/enabled."""
        return list(self._run(plans.jobs(), server))

    def get_unique_jobs(self, server: Any = None) -> List[Dict[str, str]]:
        """``show unique jobs``: one ``{'unique': str}`` per job (empty for no unique)."""
        return list(self._run(plans.unique_jobs(), server))

    def send_maxqueue(self, task: Any, max_size: Union[int, Sequence[int], None] = None,
                      server: Any = None) -> str:
        """``maxqueue``: one size for all priorities, or ``(high, normal, low)``.
        None, 0 or a negative size means unlimited.  gearmand applies it only to
        functions it already knows."""
        return str(self._run(plans.maxqueue(task, max_size), server))

    def send_shutdown(self, graceful: bool = True, server: Any = None) -> str:
        """``shutdown [graceful]``.  gearmand 1.1.15 and later removed it and answer
        ERR UNKNOWN_COMMAND, which is raised."""
        return str(self._run(plans.shutdown(graceful), server))

    def cancel_job(self, handle: Any, server: Any = None) -> str:
        """``cancel job HANDLE``; an unknown handle raises (ERR UNKNOWN_JOB)."""
        return str(self._run(plans.cancel_job(handle), server))

    def create_function(self, task: Any, server: Any = None) -> str:
        """``create function F``."""
        return str(self._run(plans.create_function(task), server))

    def drop_function(self, task: Any, server: Any = None) -> str:
        """``drop function F``: only for functions with no workers and no jobs."""
        return str(self._run(plans.drop_function(task), server))

    def ask_all_servers(self, method: str, *args: Any, **kwargs: Any
                        ) -> List[Tuple[str, Any]]:
        """Call one admin method on every server: ``[(address, result or error)]``."""
        plans.check_admin_method(self, method)
        answers: List[Tuple[str, Any]] = []
        for connection in self.connection_list:
            try:
                answers.append((connection.address,
                                getattr(self, method)(*args, server=connection, **kwargs)))
            except errors.GearmanError as exc:
                answers.append((connection.address, exc))
        return answers


