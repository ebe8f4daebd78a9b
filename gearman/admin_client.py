"""GearmanAdminClient: gearmand's text admin protocol as blocking method calls.

Each call is bounded by ``poll_timeout``.  Replies come back structured: ints
for counts, ``str`` for text, no stray CR.  An ``ERR`` reply raises
:class:`~gearman.errors.AdminCommandError` with the server's code and text.
"""
from __future__ import annotations

import re
import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, TypeVar, Union)

from gearman import errors
from gearman.admin_client_handler import AdminQuery, GearmanAdminClientCommandHandler
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import (DEFAULT_ADMIN_POLL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
                               DEFAULT_MAX_PACKET_SIZE)
from gearman.protocol import parse_err_line
from gearman.shapes import HostItem, Name, PriorityStatus, QueuedJob, TaskStatus, WorkerInfo
from gearman.util import Deadline, check_name

if TYPE_CHECKING:
    from gearman.seams import AdminOwner

_Row = TypeVar("_Row")

ECHO_STRING = b"ping? pong!"


_ERR_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None


def split_err_line(line: str) -> Tuple[str, str]:
    """(code, text) of an ``ERR`` reply.  gearmand's two ``drop function`` errors
    carry no code, only words (protocol.md §7.2): their code is ``'ERR'`` and
    their text the whole message."""
    code, text = parse_err_line(line)
    if code and not _ERR_CODE.fullmatch(code):
        return "ERR", line[4:].strip()
    return code, text


def parse_status_line(line: str) -> TaskStatus:
    """``FUNCTION\tTOTAL\tRUNNING\tWORKERS`` -> task, queued (the total), running, workers."""
    fields = line.split("\t")
    if len(fields) < 4:
        raise ValueError("expected 4 tab-separated fields")
    return {"task": fields[0], "queued": _int(fields[1]), "running": _int(fields[2]),
            "workers": _int(fields[3])}


def parse_priority_status_line(line: str) -> PriorityStatus:
    """``FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS`` -> task, high, normal, low, workers."""
    fields = line.split("\t")
    if len(fields) < 5:
        raise ValueError("expected 5 tab-separated fields")
    return {"task": fields[0], "high": _int(fields[1]), "normal": _int(fields[2]),
            "low": _int(fields[3]), "workers": _int(fields[4])}


def parse_workers_line(line: str) -> WorkerInfo:
    """``FD IP CLIENT_ID : F1 F2`` -> file_descriptor, ip, client_id, tasks.

    Split on single spaces rather than on ``' :'``: an IPv6 peer (``::1``)
    has a colon of its own."""
    fields = line.split(" ", 3)
    if len(fields) < 4 or not fields[3].startswith(":"):
        raise ValueError("expected 'FD IP CLIENT_ID : FUNCTIONS'")
    return {"file_descriptor": _int(fields[0]), "ip": fields[1], "client_id": fields[2],
            "tasks": tuple(fields[3][1:].split())}


def parse_jobs_line(line: str) -> QueuedJob:
    """``HANDLE\tRETRIES\tIGNORE_JOB\tJOB_QUEUED`` -> handle, retries, ignore_job, job_queued."""
    fields = line.split("\t")
    if len(fields) < 4:
        raise ValueError("expected 4 tab-separated fields")
    return {"handle": fields[0], "retries": _int(fields[1]), "ignore_job": fields[2] == "1",
            "job_queued": fields[3] == "1"}


class GearmanAdminClient(GearmanConnectionManager):
    """Admin commands for one or several gearmand servers.

    Commands go to the first server of ``host_list`` unless ``server=`` names
    another; :meth:`ask_all_servers` asks each and says which answer is whose.
    """

    command_handler_class = GearmanAdminClientCommandHandler
    closed_error = errors.InvalidAdminClientState

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None,
                 poll_timeout: Optional[float] = DEFAULT_ADMIN_POLL_TIMEOUT, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        super().__init__(host_list, connect_timeout=connect_timeout, keepalive=keepalive,
                         max_packet_size=max_packet_size, trace=trace)
        if poll_timeout is not None and (isinstance(poll_timeout, bool) or poll_timeout < 0):
            raise ValueError(f"poll_timeout must be None or >= 0, got {poll_timeout!r}")
        self.poll_timeout = poll_timeout

    def note_status(self, query: AdminQuery) -> None:
        """Handlers report each answered query; a wait checks its own ``query.done``."""

    # -- plumbing ------------------------------------------------------------------------
    def _connection_for(self, server: Optional[HostItem]) -> GearmanConnection:
        if not self.connection_list:
            raise errors.ServerUnavailable("GearmanAdminClient has no servers in its host_list")
        if server is None:
            return self.connection_list[0]
        return self.connection_named(server)

    def establish_admin_connection(self, server: Optional[HostItem] = None,
                                   deadline: Optional[Deadline] = None) -> GearmanConnection:
        connection = self._connection_for(server)
        if connection.connected:  # notice a close by a restarted server before sending
            self.poll_connections_once([connection], 0)
        if not connection.connected:
            remaining = deadline.remaining() if deadline else self.poll_timeout
            # An admin call is explicit: establish_connection tries now, backoff or not.
            pool = self.server_pool
            pool.clear_last_failure(connection)
            if not self.establish_connection(connection, remaining):
                why = pool.last_failure(connection)
                pool.clear_last_failure(connection)
                reason = getattr(why, "reason", None) or str(why or "connection failed")
                raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                             f"cannot connect for an admin command: {reason}")
        return connection

    def _ask(self, command: str, *args: Any, server: Optional[HostItem] = None) -> Any:
        deadline = Deadline(self.poll_timeout)
        connection = self.establish_admin_connection(server, deadline)
        query = AdminQuery(command, *args)
        try:
            self.server_pool.handler_for(connection).send_query(query)
        except errors.ConnectionError as exc:
            self._drop(connection, exc)
            raise
        self.wait_until_server_responds(query, deadline)
        if query.error is not None:
            raise query.error
        if query.result is None:  # answered by the connection's loss
            raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                         f"connection lost waiting for the reply to {command!r}")
        result = query.result
        if isinstance(result, str) and (result.startswith("ERR ") or result == "ERR"):
            code, text = split_err_line(result)
            raise errors.AdminCommandError(code, text, connection.address, command)
        return result

    def _ask_text(self, command: str, *args: Any, server: Optional[HostItem] = None) -> str:
        """An admin command whose reply is one line of text."""
        return str(self._ask(command, *args, server=server))

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
            raise errors.InvalidAdminClientState(
                f"gearmand at {query.server} did not answer {query.command!r} within "
                f"{self.poll_timeout} seconds")
        return query

    def _lines(self, command: str, server: Optional[HostItem]) -> List[str]:
        reply = self._ask(command, server=server)
        if not isinstance(reply, list):
            raise errors.ProtocolError(f"expected a list reply to {command!r}, got {reply!r}")
        return reply

    def _parsed(self, command: str, server: Optional[HostItem],
                parse: Callable[[str], _Row]) -> List[_Row]:
        """The reply to a list command, one dict per line; a malformed line raises
        ProtocolError naming the server and the line."""
        result = []
        for line in self._lines(command, server):
            try:
                result.append(parse(line))
            except ValueError as exc:
                where = self._connection_for(server).address
                raise errors.ProtocolError(f"malformed {command!r} line {line!r}: {exc}",
                                           server=where) from None
        return result

    @staticmethod
    def _ok_value(reply: str) -> str:
        return reply[3:] if reply.startswith("OK ") else reply

    # -- commands ----------------------------------------------------------------------
    def ping_server(self, server: Optional[HostItem] = None) -> float:
        """ECHO round trip; returns the seconds it took."""
        start = time.monotonic()
        echoed = self._ask("echo", ECHO_STRING, server=server)
        if echoed != ECHO_STRING:
            raise errors.InvalidAdminClientState(f"echo mismatch: sent {ECHO_STRING!r}, "
                                                 f"got {echoed!r}")
        return time.monotonic() - start

    def get_status(self, server: Optional[HostItem] = None) -> List[TaskStatus]:
        """``status``: one dict per function: task, queued (gearmand's total: queued
        plus running, as in 2.x), running, workers."""
        return self._parsed("status", server, parse_status_line)

    def get_priority_status(self, server: Optional[HostItem] = None) -> List[PriorityStatus]:
        """``prioritystatus`` (gearmand 1.1.15+): queued jobs per priority, and workers."""
        return self._parsed("prioritystatus", server, parse_priority_status_line)

    def get_version(self, server: Optional[HostItem] = None) -> str:
        """The server's version, e.g. ``'1.1.20+ds'``."""
        return self._ok_value(self._ask("version", server=server))

    def get_pid(self, server: Optional[HostItem] = None) -> int:
        """The server's process id."""
        reply = self._ok_value(self._ask("getpid", server=server))
        try:
            return _int(reply)
        except ValueError as exc:
            raise errors.ProtocolError(f"getpid: {exc}",
                                       server=self._connection_for(server).address) from None

    def get_verbose(self, server: Optional[HostItem] = None) -> str:
        """The server's log level, e.g. ``'INFO'``."""
        return self._ok_value(self._ask("verbose", server=server))

    def get_workers(self, server: Optional[HostItem] = None) -> List[WorkerInfo]:
        """``workers``: every connection (clients and this one too), with its
        file_descriptor (int), ip, client_id (``'-'`` if unset) and tasks (tuple)."""
        return self._parsed("workers", server, parse_workers_line)

    def get_jobs(self, server: Optional[HostItem] = None) -> List[QueuedJob]:
        """``show jobs``: handle, retries (int), ignore_job (cancelled), job_queued
        (in the persistent queue).  2.x called the last three queued/canceled/enabled."""
        return self._parsed("show jobs", server, parse_jobs_line)

    def get_unique_jobs(self, server: Optional[HostItem] = None) -> List[Dict[str, str]]:
        """``show unique jobs``: one ``{'unique': str}`` per job (empty for no unique)."""
        return [{"unique": line} for line in self._lines("show unique jobs", server)]

    def send_maxqueue(self, task: Name, max_size: Union[int, Sequence[int], None] = None,
                      server: Optional[HostItem] = None) -> str:
        """``maxqueue``: one size for all priorities, or ``(high, normal, low)``.
        None, 0 or a negative size means unlimited.  gearmand applies it only to
        functions it already knows."""
        name = check_name(task, "task")
        if any(ch in name for ch in b" \t\r\n"):
            raise ValueError(f"task {task!r} must not contain whitespace for maxqueue")
        if max_size is None:
            sizes: Tuple[Any, ...] = ()
        elif isinstance(max_size, (list, tuple)):
            if len(max_size) != 3:
                raise ValueError("max_size must be one int or (high, normal, low)")
            sizes = tuple(max_size)
        else:
            sizes = (max_size,)
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int):
                raise TypeError(f"max_size values must be int, got {size!r}")
        return self._ask_text("maxqueue", name, *(str(size) for size in sizes), server=server)

    def send_shutdown(self, graceful: bool = True, server: Optional[HostItem] = None) -> str:
        """``shutdown [graceful]``.  gearmand 1.1.15 and later removed it and answer
        ERR UNKNOWN_COMMAND, which is raised."""
        if graceful:
            return self._ask_text("shutdown", "graceful", server=server)
        return self._ask_text("shutdown", server=server)

    def cancel_job(self, handle: Name, server: Optional[HostItem] = None) -> str:
        """``cancel job HANDLE``; an unknown handle raises (ERR UNKNOWN_JOB)."""
        raw = check_name(handle, "handle")
        return self._ask_text("cancel job", raw, server=server)

    def create_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``create function F``."""
        return self._ask_text("create function", check_name(task, "task"), server=server)

    def drop_function(self, task: Name, server: Optional[HostItem] = None) -> str:
        """``drop function F``: only for functions with no workers and no jobs."""
        return self._ask_text("drop function", check_name(task, "task"), server=server)

    def ask_all_servers(self, method: str, *args: object, **kwargs: object
                        ) -> List[Tuple[str, object]]:
        """Call one admin method on every server: ``[(address, result or error)]``."""
        if method.startswith("_") or not callable(getattr(self, method, None)):
            raise ValueError(f"{method!r} is not an admin command")
        answers: List[Tuple[str, object]] = []
        for connection in self.connection_list:
            try:
                answers.append((connection.address,
                                getattr(self, method)(*args, server=connection, **kwargs)))
            except errors.GearmanError as exc:
                answers.append((connection.address, exc))
        return answers




if TYPE_CHECKING:
    def _seam_check(admin: GearmanAdminClient) -> AdminOwner:
        return admin  # mypy checks that the admin client is what its handlers may ask of it
