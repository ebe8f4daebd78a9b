"""Client protocol state for one connection.

Replies to SUBMIT_*, OPTION_REQ, GET_STATUS, GET_STATUS_UNIQUE and ECHO_REQ come
back in the order they were sent, and an ERROR takes the place of the reply it
replaces (protocol.md §5.1, §6).  So one FIFO of expected replies matches them,
and a handle maps to the list of requests that share it (coalescing).
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Any, Deque, Dict, Optional, Tuple

from gearman import request_fate
from gearman.command_handler import GearmanCommandHandler
from gearman.constants import JOB_COMPLETE, JOB_CREATED, JOB_FAILED, JOB_PENDING
from gearman.errors import InvalidClientState
from gearman.protocol import SUBMIT_COMMANDS, Command, submit_command
from gearman.seams import ClientOwner, Connection
from gearman.util import handle_text, to_bytes

log = logging.getLogger(__name__)

# Kinds of replies waited for, in the FIFO.
_SUBMIT, _OPTION, _STATUS, _STATUS_UNIQUE, _ECHO = range(5)
_KIND_NAMES = ("JOB_CREATED", "OPTION_RES", "STATUS_RES", "STATUS_RES_UNIQUE", "ECHO_RES")


def parse_number(value: bytes) -> Any:
    """A WORK_STATUS field as an int; floats and junk are kept as well as possible."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return 0


def _status(handle: str, known: bytes, running: bytes, numerator: bytes,
            denominator: bytes) -> Dict[str, Any]:
    """A job's status dict, as STATUS_RES and WORK_STATUS report it."""
    return {"handle": handle, "known": known == b"1", "running": running == b"1",
            "numerator": parse_number(numerator), "denominator": parse_number(denominator),
            "time_received": time.time()}


class StatusQuery:
    """A GET_STATUS or GET_STATUS_UNIQUE waiting for its answer."""

    __slots__ = ("key", "request", "result", "done", "kind")

    def __init__(self, key: bytes, request: Any = None) -> None:
        self.key, self.request = key, request
        self.kind = _STATUS  # set by the send_* method that sends it
        self.result: Optional[Dict[str, Any]] = None
        self.done = False


def _kind(item: Any) -> int:
    """Which reply an entry of the FIFO of expected replies waits for."""
    if type(item) is StatusQuery:
        return int(item.kind)
    return _OPTION if type(item) is bytes else _SUBMIT


class GearmanClientCommandHandler(GearmanCommandHandler):
    """Submits requests on one connection and routes the server's answers to them."""

    connection_manager: ClientOwner

    def __init__(self, connection_manager: ClientOwner, connection: Connection) -> None:
        super().__init__(connection_manager, connection)
        #: what each outstanding command waits for, oldest first: a request (its
        #: JOB_CREATED), a StatusQuery (its kind says which answer) or an option
        #: name (OPTION_RES).  No (kind, item) tuples: 100,000 submissions in
        #: flight would carry 5 MiB of them.
        self._expected: Deque[Any] = collections.deque()
        #: handle -> its request, or a list of them when submissions coalesced (one
        #: list per job would cost 100,000 jobs in flight 7 MiB)
        self._requests_by_handle: Dict[str, Any] = {}
        self._rotation: Dict[str, int] = {}
        self._task_bytes: Dict[Any, bytes] = {}
        self.exceptions_enabled = False

    # -- lifecycle -------------------------------------------------------------
    def initial_state(self, **kwargs: Any) -> None:
        """Ask for WORK_EXCEPTION packets (API.md: the client opts in)."""
        self._expected.append(b"exceptions")
        self.send_command(Command.OPTION_REQ, b"exceptions")

    def on_io_error(self) -> None:
        """Every request still waiting on this connection has failed with it."""
        failed = []
        for item in self._expected:
            kind = _kind(item)
            if kind == _SUBMIT:
                failed.append(item)
            elif kind != _OPTION:
                item.done = True
                self.connection_manager.note_status(item)
        for held in self._requests_by_handle.values():
            failed.extend(held if type(held) is list else (held,))
        self._expected.clear()
        self._requests_by_handle.clear()
        self._rotation.clear()
        note_lost = self.connection_manager.note_lost
        for request in failed:
            note_lost(request)  # the owner asks the request fate: retry or failed

    @property
    def requests_in_flight(self) -> int:
        return sum(1 for item in self._expected if _kind(item) == _SUBMIT) + sum(
            len(held) if type(held) is list else 1 for held in self._requests_by_handle.values())

    # -- sending -----------------------------------------------------------------
    def send_job_request(self, current_request: Any) -> None:
        """Queue the SUBMIT_* packet for ``current_request``; it becomes PENDING."""
        job = current_request.gearman_job
        task = self._task_bytes.get(job.task) if type(job.task) is str else None
        if task is None:
            task = to_bytes(job.task, "task")
            if type(job.task) is str and len(self._task_bytes) < 1024:
                self._task_bytes[job.task] = task
        unique = job.unique
        unique = unique.encode("utf-8", "surrogateescape") if type(unique) is str else \
            to_bytes(unique or b"", "unique")
        payload = current_request.encoded_data
        if payload is None:
            payload = current_request.encoded_data = self.connection_manager.encode_payload(
                job.data)
        # getattr: a 2.x job_class need not derive from GearmanJob (which has defaults).
        when, reducer = getattr(job, "when", None), getattr(job, "reducer", None)
        if when is not None:
            command = Command.SUBMIT_JOB_EPOCH
            args: Tuple[bytes, ...] = (task, unique, b"%d" % when, payload)
        elif reducer is not None:
            command = (Command.SUBMIT_REDUCE_JOB_BACKGROUND if current_request.background
                       else Command.SUBMIT_REDUCE_JOB)
            args = (task, unique, to_bytes(reducer, "reducer"), b"", payload)
        else:
            known = SUBMIT_COMMANDS.get((current_request.background, current_request.priority))
            # Not a bool and a known priority: submit_command names the problem.
            command = known or submit_command(current_request.background,
                                              current_request.priority)
            args = (task, unique, payload)
        self.connection.send_command(command, args)
        current_request.state = JOB_PENDING
        self._expected.append(current_request)

    def send_get_status(self, query: StatusQuery) -> None:
        query.kind = _STATUS
        self._expected.append(query)
        self.send_command(Command.GET_STATUS, query.key)

    def send_get_status_unique(self, query: StatusQuery) -> None:
        query.kind = _STATUS_UNIQUE
        self._expected.append(query)
        self.send_command(Command.GET_STATUS_UNIQUE, query.key)

    def send_echo(self, query: StatusQuery) -> None:
        query.kind = _ECHO
        self._expected.append(query)
        self.send_command(Command.ECHO_REQ, query.key)

    # -- replies in FIFO order -----------------------------------------------------
    def _pop_expected(self, kind: int, command: str) -> Any:
        if not self._expected or _kind(self._expected[0]) != kind:
            waiting = "nothing" if not self._expected else _KIND_NAMES[_kind(self._expected[0])]
            raise InvalidClientState(f"gearmand at {self.server} sent {command} while "
                                     f"{waiting} was expected")
        return self._expected.popleft()

    def recv_job_created(self, job_handle: bytes) -> None:
        expected = self._expected
        if expected and type(expected[0]) is not StatusQuery and type(expected[0]) is not bytes:
            request = expected.popleft()
        else:
            request = self._pop_expected(_SUBMIT, "JOB_CREATED")
        # The map is keyed by the job's own str handle: no second (bytes) copy per job.
        handle = request.job.handle = handle_text(job_handle)
        request.state = JOB_CREATED
        request.accepted_by = self.connection
        if not request.background:
            held = self._requests_by_handle.get(handle)
            if held is None:
                self._requests_by_handle[handle] = request
            elif type(held) is list:
                held.append(request)  # coalesced with requests we already have
            else:
                self._requests_by_handle[handle] = [held, request]
        self.connection_manager.note_updated(request)

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        """An ERROR answers the oldest outstanding command (protocol.md §6)."""
        if not self._expected:
            super().recv_error(error_code, error_text)
            return
        item = self._expected.popleft()
        kind = _kind(item)
        if kind == _SUBMIT:
            request_fate.refuse(item, self.server_error(error_code, error_text, "SUBMIT_JOB"))
            log.warning("%s refused job %s: %s", self.server, item.job.unique, item.exception)
            self.connection_manager.note_updated(item)
        elif kind == _OPTION:
            log.info("%s refused OPTION_REQ %r: %s", self.server, item,
                     error_code.decode("utf-8", "replace"))
        else:
            item.done = True
            item.result = {"error": self.server_error(error_code, error_text)}
            self.connection_manager.note_status(item)

    def recv_option_res(self, option_name: bytes) -> None:
        self._pop_expected(_OPTION, "OPTION_RES")
        if option_name.rstrip(b"\0").lower() == b"exceptions":
            self.exceptions_enabled = True

    def recv_status_res(self, job_handle: bytes, known: bytes, running: bytes,
                        numerator: bytes, denominator: bytes) -> None:
        query = self._pop_expected(_STATUS, "STATUS_RES")
        query.result = _status(handle_text(job_handle), known, running, numerator,
                               denominator)
        query.done = True
        if query.request is not None:
            query.request.status = query.result
        self.connection_manager.note_status(query)

    def recv_status_res_unique(self, unique: bytes, known: bytes, running: bytes,
                               numerator: bytes, denominator: bytes,
                               client_count: bytes) -> None:
        query = self._pop_expected(_STATUS_UNIQUE, "STATUS_RES_UNIQUE")
        query.result = {
            "unique": unique.decode("utf-8", "surrogateescape"),
            "known": known == b"1", "running": running == b"1",
            "numerator": parse_number(numerator), "denominator": parse_number(denominator),
            "waiting_clients": parse_number(client_count), "time_received": time.time(),
        }
        query.done = True
        self.connection_manager.note_status(query)

    def recv_echo_res(self, data: bytes) -> None:
        query = self._pop_expected(_ECHO, "ECHO_RES")
        query.result = {"data": data}
        query.done = True
        self.connection_manager.note_status(query)

    # -- work updates, matched by handle -----------------------------------------------
    def _held(self, job_handle: bytes, command: str) -> Tuple[str, Any]:
        """The handle as text and what the map holds for it: a request, a list of
        coalesced requests, or None (logged: an unknown handle is dropped)."""
        handle = handle_text(job_handle)
        held = self._requests_by_handle.get(handle)
        if held is None:
            log.warning("gearmand at %s sent %s for unknown job handle %r; dropped",
                        self.server, command, handle)
        return handle, held

    def _next_of(self, handle: str, held: Any) -> Any:
        """With coalesced requests the server repeats each update once per submission;
        hand the copies out in turn so every request sees each update once."""
        if type(held) is not list:
            return held
        turn = self._rotation.get(handle, 0)
        self._rotation[handle] = turn + 1
        return held[turn % len(held)]

    def recv_work_data(self, job_handle: bytes, data: bytes) -> None:
        handle, held = self._held(job_handle, "WORK_DATA")
        if held is not None:
            request = self._next_of(handle, held)
            request.data_updates.append(self._decode(data, "WORK_DATA"))
            self.connection_manager.note_updated(request)

    def recv_work_warning(self, job_handle: bytes, data: bytes) -> None:
        handle, held = self._held(job_handle, "WORK_WARNING")
        if held is not None:
            request = self._next_of(handle, held)
            request.warning_updates.append(self._decode(data, "WORK_WARNING"))
            self.connection_manager.note_updated(request)

    def recv_work_status(self, job_handle: bytes, numerator: bytes, denominator: bytes) -> None:
        handle, held = self._held(job_handle, "WORK_STATUS")
        if held is not None:
            for request in held if type(held) is list else (held,):
                request.status = _status(handle, b"1", b"1", numerator, denominator)
                self.connection_manager.note_updated(request)

    def _decode(self, data: bytes, command: str) -> Any:
        """Decode an update; if the encoder fails, keep the raw bytes and log it."""
        try:
            return self.decode_data(data)
        except Exception as exc:
            log.warning("gearmand at %s: cannot decode %s payload: %r", self.server, command, exc)
            return data

    def _finish(self, job_handle: bytes, command: str) -> Any:
        """The request a terminal packet belongs to, removed from the handle map."""
        handle, held = self._held(job_handle, command)
        if type(held) is not list:
            if held is not None:
                del self._requests_by_handle[handle]
            return held
        request = held.pop(0)
        if not held:
            del self._requests_by_handle[handle]
            self._rotation.pop(handle, None)
        return request

    def recv_work_complete(self, job_handle: bytes, data: bytes) -> None:
        request = self._finish(job_handle, "WORK_COMPLETE")
        if request is not None:
            try:
                request.result = self.decode_data(data)
                request.state = JOB_COMPLETE
            except Exception as exc:  # a user encoder failed: this request fails alone
                log.warning("gearmand at %s: cannot decode the result of job %s: %r",
                            self.server, request.job.handle, exc)
                request.exception = exc
                request.state = JOB_FAILED
            self.connection_manager.note_updated(request)

    def recv_work_fail(self, job_handle: bytes) -> None:
        request = self._finish(job_handle, "WORK_FAIL")
        if request is not None:
            request.state = JOB_FAILED
            self.connection_manager.note_updated(request)

    def recv_work_exception(self, job_handle: bytes, data: bytes) -> None:
        """Terminal since gearmand 1.1.9 (protocol.md §5.5)."""
        request = self._finish(job_handle, "WORK_EXCEPTION")
        if request is not None:
            request.exception = data.decode("utf-8", "surrogateescape")
            request.state = JOB_FAILED
            self.connection_manager.note_updated(request)
