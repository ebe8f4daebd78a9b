"""The admin commands without I/O: what each one sends and how its reply becomes
the value returned.  Both drivers (:class:`~gearman.admin_client.GearmanAdminClient`
and :class:`~gearman.aio.admin_client.AsyncGearmanAdminClient`) run these plans;
they only differ in how they wait for the reply.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from gearman import errors
from gearman.admin_client_handler import AdminQuery
from gearman.constants import (DEFAULT_ADMIN_POLL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
                               DEFAULT_MAX_PACKET_SIZE)
from gearman.manager_core import C, ManagerCore
from gearman.protocol import parse_err_line
from gearman.shapes import HostItem
from gearman.util import check_name

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


def parse_status_line(line: str) -> Dict[str, Any]:
    """``FUNCTION\tTOTAL\tRUNNING\tWORKERS`` -> task, queued (the total), running, workers."""
    fields = line.split("\t")
    if len(fields) < 4:
        raise ValueError("expected 4 tab-separated fields")
    return {"task": fields[0], "queued": _int(fields[1]), "running": _int(fields[2]),
            "workers": _int(fields[3])}


def parse_priority_status_line(line: str) -> Dict[str, Any]:
    """``FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS`` -> task, high, normal, low, workers."""
    fields = line.split("\t")
    if len(fields) < 5:
        raise ValueError("expected 5 tab-separated fields")
    return {"task": fields[0], "high": _int(fields[1]), "normal": _int(fields[2]),
            "low": _int(fields[3]), "workers": _int(fields[4])}


def parse_workers_line(line: str) -> Dict[str, Any]:
    """``FD IP CLIENT_ID : F1 F2`` -> file_descriptor, ip, client_id, tasks.

    Split on single spaces rather than on ``' :'``: an IPv6 peer (``::1``)
    has a colon of its own."""
    fields = line.split(" ", 3)
    if len(fields) < 4 or not fields[3].startswith(":"):
        raise ValueError("expected 'FD IP CLIENT_ID : FUNCTIONS'")
    return {"file_descriptor": _int(fields[0]), "ip": fields[1], "client_id": fields[2],
            "tasks": tuple(fields[3][1:].split())}


def parse_jobs_line(line: str) -> Dict[str, Any]:
    """``HANDLE\tRETRIES\tIGNORE_JOB\tJOB_QUEUED`` -> handle, retries, ignore_job, job_queued."""
    fields = line.split("\t")
    if len(fields) < 4:
        raise ValueError("expected 4 tab-separated fields")
    return {"handle": fields[0], "retries": _int(fields[1]), "ignore_job": fields[2] == "1",
            "job_queued": fields[3] == "1"}


#: How a reply becomes the value: ``finish(reply, server_address)``.
Finish = Callable[[Any, str], Any]


class Plan(NamedTuple):
    """One admin command to send and how to read its reply."""
    command: str
    args: Tuple[Any, ...]
    finish: Finish


def reply_of(query: AdminQuery, connection: Any) -> Any:
    """The reply of an answered ``query``; raises what the server (or the loss of
    the connection) said instead."""
    if query.error is not None:
        raise query.error
    if query.result is None:  # answered by the connection's loss
        raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                     f"connection lost waiting for the reply to "
                                     f"{query.command!r}")
    result = query.result
    if isinstance(result, str) and (result.startswith("ERR ") or result == "ERR"):
        code, text = split_err_line(result)
        raise errors.AdminCommandError(code, text, connection.address, query.command)
    return result


def no_reply_error(server: str, command: str,
                   poll_timeout: Optional[float]) -> errors.GearmanError:
    """What an admin ``command`` to ``server`` raises once ``poll_timeout`` has passed
    unanswered (either driver)."""
    return errors.InvalidAdminClientState(f"gearmand at {server} did not answer "
                                          f"{command!r} within {poll_timeout} seconds")


def _text(reply: Any, where: str) -> str:
    return str(reply)


def _ok_value(reply: Any, where: str) -> str:
    return reply[3:] if reply.startswith("OK ") else str(reply)


def _lines(command: str, reply: Any, where: str) -> List[str]:
    if not isinstance(reply, list):
        raise errors.ProtocolError(f"expected a list reply to {command!r}, got {reply!r}",
                                   server=where)
    return reply


def _parsed(command: str, parse: Callable[[str], Dict[str, Any]]) -> Plan:
    """A list command whose lines become one dict each; a malformed line raises
    ProtocolError naming the server and the line."""
    def finish(reply: Any, where: str) -> List[Dict[str, Any]]:
        result = []
        for line in _lines(command, reply, where):
            try:
                result.append(parse(line))
            except ValueError as exc:
                raise errors.ProtocolError(f"malformed {command!r} line {line!r}: {exc}",
                                           server=where) from None
        return result
    return Plan(command, (), finish)


def ping() -> Plan:
    start = time.monotonic()

    def finish(echoed: Any, where: str) -> float:
        if echoed != ECHO_STRING:
            raise errors.InvalidAdminClientState(f"echo mismatch: sent {ECHO_STRING!r}, "
                                                 f"got {echoed!r}")
        return time.monotonic() - start
    return Plan("echo", (ECHO_STRING,), finish)


def status() -> Plan:
    return _parsed("status", parse_status_line)


def priority_status() -> Plan:
    return _parsed("prioritystatus", parse_priority_status_line)


def workers() -> Plan:
    return _parsed("workers", parse_workers_line)


def jobs() -> Plan:
    return _parsed("show jobs", parse_jobs_line)


def unique_jobs() -> Plan:
    return Plan("show unique jobs", (), lambda reply, where: [
        {"unique": line} for line in _lines("show unique jobs", reply, where)])


def version() -> Plan:
    return Plan("version", (), _ok_value)


def verbose() -> Plan:
    return Plan("verbose", (), _ok_value)


def pid() -> Plan:
    def finish(reply: Any, where: str) -> int:
        try:
            return _int(_ok_value(reply, where))
        except ValueError as exc:
            raise errors.ProtocolError(f"getpid: {exc}", server=where) from None
    return Plan("getpid", (), finish)


def maxqueue(task: Any, max_size: Union[int, Sequence[int], None]) -> Plan:
    """None, 0 or a negative size means unlimited; ``(high, normal, low)`` per priority."""
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
    return Plan("maxqueue", (name,) + tuple(str(size) for size in sizes), _text)


def shutdown(graceful: bool) -> Plan:
    return Plan("shutdown", ("graceful",) if graceful else (), _text)


def cancel_job(handle: Any) -> Plan:
    return Plan("cancel job", (check_name(handle, "handle"),), _text)


def create_function(task: Any) -> Plan:
    return Plan("create function", (check_name(task, "task"),), _text)


def drop_function(task: Any) -> Plan:
    return Plan("drop function", (check_name(task, "task"),), _text)


def check_admin_method(owner: Any, method: str) -> None:
    """``ask_all_servers`` calls only public admin methods."""
    if method.startswith("_") or not callable(getattr(owner, method, None)):
        raise ValueError(f"{method!r} is not an admin command")


class AdminClientRules(ManagerCore[C]):
    """What both admin clients share beside the plans: the ``poll_timeout``
    setting, which server a command goes to, and why a connect failed."""

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

    def _connection_for(self, server: Optional[HostItem]) -> C:
        if not self.connection_list:
            raise errors.ServerUnavailable(f"{type(self).__name__} has no servers in its "
                                           "host_list")
        if server is None:
            return self.connection_list[0]
        return self.connection_named(server)

    def _before_connect(self, connection: C) -> None:
        """An admin call is explicit: it tries now, backoff or not."""
        self.server_pool.clear_last_failure(connection)

    def _connect_failed(self, connection: C) -> errors.ConnectionError:
        why = self.server_pool.last_failure(connection)
        self.server_pool.clear_last_failure(connection)
        reason = getattr(why, "reason", None) or str(why or "connection failed")
        return errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                      f"cannot connect for an admin command: {reason}")
