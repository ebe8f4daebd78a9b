"""Worker protocol state for one connection: abilities, and the
grab → assign / no-job → sleep → NOOP cycle (protocol.md §5.2)."""
from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Dict, Optional

from gearman.command_handler import GearmanCommandHandler
from gearman.protocol import Command
from gearman.seams import Connection, WorkerOwner
from gearman.util import handle_text, to_text

log = logging.getLogger(__name__)

#: numbers the sessions: a handler lives from one connect to its connection's loss
_sessions = itertools.count(1)


class GearmanWorkerCommandHandler(GearmanCommandHandler):
    """Per-connection worker state.  The worker decides when to grab; this
    handler sends the packets and reports what the server answered."""

    #: GRAB_JOB_ALL answers JOB_ASSIGN_UNIQ for plain jobs (unique set) and
    #: JOB_ASSIGN_ALL for map/reduce jobs (reducer set), so nothing is hidden.
    grab_command = Command.GRAB_JOB_ALL

    connection_manager: WorkerOwner

    def __init__(self, connection_manager: WorkerOwner, connection: Connection) -> None:
        super().__init__(connection_manager, connection)
        #: this session's number: results of a job from an older session are never sent
        self.session = next(_sessions)
        #: the server may have a job for us (true at start and after NOOP)
        self.may_have_work = True
        #: GRABs on the wire whose answers have not come yet (the blocking worker
        #: sends one at a time; the asyncio worker one per free slot), the last sent
        #: at this time
        self.grabs_in_flight = 0
        self.grab_sent_at = 0.0

    @property
    def grab_outstanding(self) -> bool:
        """A GRAB is on the wire and its answer has not come yet."""
        return self.grabs_in_flight > 0

    def _grab_answered(self) -> bool:
        """One GRAB got its answer; True if none is left in flight."""
        if self.grabs_in_flight > 0:
            self.grabs_in_flight -= 1
        return self.grabs_in_flight == 0

    @property
    def sleeping(self) -> bool:
        """PRE_SLEEP was sent and no NOOP has come since: nothing to grab, none asked."""
        return not (self.may_have_work or self.grab_outstanding)

    # -- lifecycle -------------------------------------------------------------
    def initial_state(self, abilities: Optional[Dict[str, Optional[float]]] = None,
                      client_id: Optional[bytes] = None, **kwargs: Any) -> None:
        """Introduce ourselves: client id, then one CAN_DO per task.  Registrations
        are per connection, so this runs again after every reconnect."""
        if client_id:
            self.send_command(Command.SET_CLIENT_ID, client_id)
        for task, timeout in (abilities or {}).items():
            self.send_ability(task, timeout)
        self.connection_manager.note_may_have_work(self)

    def on_io_error(self) -> None:
        self.grabs_in_flight = 0
        self.may_have_work = False
        self.connection_manager.on_connection_lost(self)

    # -- sending -------------------------------------------------------------------
    def send_ability(self, task: str, timeout: Optional[float]) -> None:
        name = task.encode("utf-8", "surrogateescape")
        if timeout is None:
            self.send_command(Command.CAN_DO, name)
        else:
            # "0" would mean no timeout to gearmand: never round a tiny one down to it.
            self.send_command(Command.CAN_DO_TIMEOUT, name,
                              b"%d" % max(1, int(round(timeout * 1000))))
        # gearmand sends a sleeping worker no NOOP for jobs already queued under a
        # new ability [run, 1.1.20]: grab to find them.
        self.may_have_work = True

    def send_cant_do(self, task: str) -> None:
        self.send_command(Command.CANT_DO, task.encode("utf-8", "surrogateescape"))

    def send_client_id(self, client_id: bytes) -> None:
        self.send_command(Command.SET_CLIENT_ID, client_id)

    def grab(self) -> None:
        self.grabs_in_flight += 1
        self.grab_sent_at = time.monotonic()
        self.send_command(self.grab_command)

    # -- answers ----------------------------------------------------------------------
    def recv_noop(self) -> None:
        """A hint, not a job: it may be stale or duplicated (protocol.md §8.7)."""
        self.may_have_work = True
        self.connection_manager.note_may_have_work(self)

    def recv_no_job(self) -> None:
        self.may_have_work = False
        if self._grab_answered():
            # The server answers NOOP at once if a job arrived meanwhile.  (With
            # GRABs still in flight, the last one's answer decides.)
            self.send_command(Command.PRE_SLEEP)
        self.connection_manager.note_may_have_work(self)  # try the next server

    def _assigned(self, job_handle: bytes, task: bytes, unique: Optional[bytes],
                  reducer: Optional[bytes], data: bytes) -> None:
        self._grab_answered()
        self.connection_manager.on_job_assigned(
            self, handle_text(job_handle),
            task.decode("utf-8", "surrogateescape"),
            None if unique is None else unique.decode("utf-8", "surrogateescape"),
            None if reducer is None else to_text(reducer), data)

    def recv_job_assign(self, job_handle: bytes, task: bytes, data: bytes) -> None:
        self._assigned(job_handle, task, None, None, data)

    def recv_job_assign_uniq(self, job_handle: bytes, task: bytes, unique: bytes,
                             data: bytes) -> None:
        self._assigned(job_handle, task, unique, None, data)

    def recv_job_assign_all(self, job_handle: bytes, task: bytes, unique: bytes,
                            reducer: bytes, data: bytes) -> None:
        self._assigned(job_handle, task, unique, reducer, data)

    def recv_echo_res(self, data: bytes) -> None:
        log.debug("gearmand at %s echoed %d bytes", self.server, len(data))

    def recv_option_res(self, option_name: bytes) -> None:
        log.debug("gearmand at %s accepted option %r", self.server, option_name)

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        """Log and go on: an ERROR (say JOB_NOT_FOUND for a late result) never
        stops the processing of what follows it (peers.md §2, row 10)."""
        super().recv_error(error_code, error_text)
        # JOB_NOT_FOUND answers a late work result, never a GRAB; any other ERROR
        # while a GRAB is in flight is the GRAB's answer (a server too old for
        # GRAB_JOB_ALL says INVALID_COMMAND: fall back to GRAB_JOB_UNIQ).
        if self.grab_outstanding and error_code.lower() != b"job_not_found":
            last = self._grab_answered()
            if error_code.upper() == b"INVALID_COMMAND" and \
                    self.grab_command is Command.GRAB_JOB_ALL:
                self.grab_command = Command.GRAB_JOB_UNIQ
                self.grab()
                return
            self.may_have_work = False
            if last:
                self.send_command(Command.PRE_SLEEP)
