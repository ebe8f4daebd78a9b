"""The worker's rules, for both drivers: registering tasks and the client id (and
their checks), how a callback is called, how an assigned job is built, and the
fields of the updates and results a job sends.

:class:`WorkerRules` does no I/O and never waits; the blocking
:class:`~gearman.worker.GearmanWorker` and the asyncio
:class:`~gearman.aio.worker.AsyncGearmanWorker` derive from it and from their
connection manager, and add running jobs and sending.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from gearman import errors
from gearman.manager_core import C, ManagerCore
from gearman.job import GearmanJob
from gearman.logs import describe_job, job_log_fields
from gearman.protocol import Command
from gearman.seams import JobObserver
from gearman.shapes import Name, Payload
from gearman.util import Backoff, check_name, to_bytes, to_text
from gearman.worker_handler import GearmanWorkerCommandHandler


def takes_worker_argument(callback: Callable[..., Any]) -> bool:
    """True for 2.0.2's ``callback(worker, job)``, False for the README's ``callback(job)``."""
    import inspect  # here, not at import time: it costs every process 2.5 MiB

    try:
        parameters = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    required = [p for p in positional if p.default is p.empty]
    return len(required or positional) >= 2


def whole_number(value: Any, name: str) -> int:
    """A WORK_STATUS field: an int, or a float without a fraction."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a whole number, got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r} (gearmand clients "
                         "parse it as an integer)")
    return int(value)


def status_fields(numerator: Any, denominator: Any) -> Tuple[bytes, bytes]:
    """The two WORK_STATUS fields, checked."""
    return (b"%d" % whole_number(numerator, "numerator"),
            b"%d" % whole_number(denominator, "denominator"))


def exception_fields(data: Any) -> Tuple[bytes]:
    """The WORK_EXCEPTION field: a text, or anything as its ``str``."""
    text = data if isinstance(data, (str, bytes, bytearray)) else str(data)
    return (to_bytes(text, "data"),)


def exception_text(exc: Optional[BaseException]) -> str:
    """What a failed callback's client sees in ``request.exception``."""
    return f"{type(exc).__name__}: {exc}"


def job_server(job: Any) -> str:
    return getattr(job.connection, "address", "?")


def already_finished(job: Any) -> errors.InvalidWorkerState:
    """The error for a second final answer (COMPLETE, FAIL, EXCEPTION) to one job."""
    return errors.InvalidWorkerState(f"job {job.handle} (task {job.task!r}) was already finished")


def not_running(job: Any) -> errors.InvalidWorkerState:
    """The error for an answer to a job this worker is not running (any more)."""
    return errors.InvalidWorkerState(f"job {job.handle} (task {job.task!r}) is not running "
                                     "on this worker")


#: A job's final command, as job observers name it.
OUTCOMES = {Command.WORK_COMPLETE: "complete", Command.WORK_FAIL: "fail",
            Command.WORK_EXCEPTION: "exception"}


class WorkerRules(ManagerCore[C]):
    """Task registrations, the client id and job building shared by both workers.
    Each driver says how a registration reaches the servers (:meth:`_broadcast`)."""

    closed_error = errors.InvalidWorkerState

    def __init__(self, host_list: Any = None, **options: Any) -> None:
        super().__init__(host_list, **options)
        self.reconnect_backoff = Backoff(base=0.1, cap=2.0)
        self.worker_abilities: Dict[str, Callable[..., Any]] = {}
        self.worker_client_id: Optional[str] = None
        self._timeouts: Dict[str, Optional[float]] = {}
        self._pass_worker: Dict[str, bool] = {}
        #: told ``job_started(job)`` and ``job_finished(job, outcome)`` (add_job_observer)
        self._job_observers: List[JobObserver] = []

    def _broadcast(self, send_name: str, *args: Any) -> None:
        """Send a registration to every live server (each driver says when)."""
        raise NotImplementedError

    # -- configuration ------------------------------------------------------------------
    def set_client_id(self, client_id: Name) -> None:
        """Name this worker in gearmand's ``workers`` list (no whitespace, 127 bytes at most)."""
        raw = check_name(client_id, "client_id")
        if any(ch in raw for ch in b" \t\r\n"):
            raise ValueError(f"client_id {client_id!r} must not contain whitespace: gearmand's "
                             "workers list would be ambiguous")
        if len(raw) > 127:
            raise ValueError(f"client_id is {len(raw)} bytes; gearmand keeps 127")
        self.worker_client_id = to_text(raw)
        self._broadcast("send_client_id", raw)

    def register_task(self, task: Name, callback_function: Callable[..., Payload],
                      timeout: Optional[float] = None) -> Name:
        """Register ``callback_function`` for ``task``.

        The callback is called as ``callback(job)`` or ``callback(worker, job)``
        (by its signature); its return value, encoded with :attr:`data_encoder`,
        is the job's result.  ``timeout`` (seconds) sends CAN_DO_TIMEOUT: gearmand
        then re-queues a job this worker holds longer (it does not fail it).
        """
        name = to_text(check_name(task, "task"))
        if not callable(callback_function):
            raise TypeError(f"callback_function for task {name!r} must be callable, got "
                            f"{type(callback_function).__name__}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.worker_abilities[name] = callback_function
        self._timeouts[name] = timeout
        self._pass_worker[name] = takes_worker_argument(callback_function)
        self._broadcast("send_ability", name, timeout)
        return task

    def unregister_task(self, task: Name) -> Name:
        """Stop taking ``task`` (CANT_DO for that task alone)."""
        name = to_text(check_name(task, "task"))
        self.worker_abilities.pop(name, None)
        self._timeouts.pop(name, None)
        self._pass_worker.pop(name, None)
        self._broadcast("send_cant_do", name)
        return task

    def handler_initial_state(self) -> Dict[str, object]:
        client_id = self.worker_client_id
        return {"abilities": dict(self._timeouts),
                "client_id": client_id.encode("utf-8", "surrogateescape") if client_id else None}

    # -- observers --------------------------------------------------------------------------
    def add_job_observer(self, observer: JobObserver) -> None:
        """Tell ``observer.job_started(job)`` before a job's callback runs and
        ``observer.job_finished(job, outcome)`` when its final answer is sent
        (outcome ``'complete'``, ``'fail'`` or ``'exception'``), on the thread
        doing the job (the asyncio worker: on the loop).  An observer may also have
        ``job_abandoned(job)``: the asyncio worker calls it for a job it dropped
        unanswered (``close()``, or ``work()`` cancelled; gearmand re-queues it).  An
        observer that raises is logged, never fails the job.
        gearman.metrics.instrument_worker uses this."""
        self._job_observers.append(observer)

    def _tell_observers(self, event: str, *args: Any) -> None:
        """``job_abandoned`` (a job dropped unanswered: gearmand re-queues it) is
        optional for an observer; the other two are not."""
        for observer in self._job_observers:
            if event == "job_abandoned" and not hasattr(observer, event):
                continue
            try:
                getattr(observer, event)(*args)
            except Exception:
                self.log.exception("job observer %r failed on %s", observer, event)

    def _observe_final(self, job: Any, command: Command) -> None:
        """Tell the job observers of a job's one final answer, before it is sent."""
        if self._job_observers:
            self._tell_observers("job_finished", job, OUTCOMES[command])

    # -- jobs -----------------------------------------------------------------------------
    def job_finished(self, current_job: GearmanJob) -> bool:
        """True once a WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION was sent for the job."""
        raise NotImplementedError

    def _answer_owed(self, job: Any, failure: Optional[BaseException]
                     ) -> Optional[Tuple[Command, Tuple[bytes, ...]]]:
        """What ``job`` still owes gearmand once ``on_job_execute`` returned (or raised
        ``failure``, an overridden hook's bug): nothing if its final answer went
        out, else WORK_EXCEPTION naming the error, else WORK_FAIL.  Every job ends
        with exactly one final answer, so no client waits for ever."""
        if failure is not None:
            self._log_job(logging.ERROR, job, "on_job_execute raised %s", type(failure).__name__,
                          exc_info=failure, stacklevel=3)
        if self.job_finished(job):
            return None
        if failure is not None:
            return Command.WORK_EXCEPTION, (exception_text(failure).encode("utf-8", "replace"),)
        self._log_job(logging.ERROR, job, "ended without a result; sending WORK_FAIL",
                      stacklevel=3)
        return Command.WORK_FAIL, ()

    def create_job(self, command_handler: GearmanWorkerCommandHandler, job_handle: str,
                   task: str, unique: Optional[str], data: Payload) -> GearmanJob:
        """Build the job object handed to callbacks (2.x hook); ``data`` is already
        decoded by :attr:`data_encoder`, as in 2.x."""
        return self.job_class(command_handler.connection, job_handle, task, unique, data)

    def _assigned_job(self, handler: Any, handle: str, task: str, unique: Optional[str],
                      reducer: Optional[str], data: bytes) -> Any:
        """The job object of a JOB_ASSIGN*, or None when its data cannot be decoded
        (then the job is failed with WORK_EXCEPTION at once)."""
        try:
            decoded = self.data_encoder.decode(data)
        except Exception as exc:  # the data encoder could not decode the payload
            self._log_job(logging.ERROR, self.job_class(handler.connection, handle, task, unique,
                                                         None),
                          "from %s: cannot decode its data: %r", handler.server, exc)
            handler.send_command(Command.WORK_EXCEPTION, handle.encode("utf-8", "surrogateescape"),
                                 f"data not decodable: {exc!r}".encode())
            return None
        job = self.create_job(handler, handle, task, unique, decoded)
        if reducer is not None:
            job.reducer = reducer
        return job

    def _is_runnable(self, handler: Any, job: Any) -> bool:
        """Whether an assigned job should still run: its connection is up and its
        task still registered (a job assigned before gearmand saw our CANT_DO was
        re-queued by it, and gets no answer)."""
        if not job.connection.connected:
            return False
        if job.task not in self.worker_abilities:
            self._log_job(logging.INFO, job, "for an unregistered task from %s not run; "
                          "gearmand re-queued it on CANT_DO", handler.server)
            return False
        return True

    def _callback_call(self, job: Any) -> Tuple[Callable[..., Any], Tuple[Any, ...]]:
        """The job's callback and its arguments: ``(job)`` or ``(worker, job)``."""
        callback = self.worker_abilities[job.task]
        if self._pass_worker.get(job.task, True):
            return callback, (self, job)
        return callback, (job,)

    def _log_job(self, level: int, job: Any, message: str, *args: Any, **kwargs: Any) -> None:
        """Log about ``job``: the message starts with its handle, task and unique id,
        and the record carries them as gearman_handle/gearman_task/gearman_unique."""
        if self.log.isEnabledFor(level):
            self.log.log(level, "%s " + message, describe_job(job), *args,
                         extra=job_log_fields(job), stacklevel=kwargs.pop("stacklevel", 2),
                         **kwargs)

    def _log_job_exception(self, job: Any, exc_info: Any) -> None:
        self._log_job(logging.ERROR, job, "from %s raised %s", job_server(job),
                      type(exc_info[1]).__name__, exc_info=exc_info, stacklevel=3)

    def _result_not_sendable(self, job: Any, exc: Exception) -> str:
        """Log that the encoder refused ``job``'s result; the WORK_EXCEPTION text that
        fails the job instead."""
        self._log_job(logging.ERROR, job, "cannot send the result: %s", exc, stacklevel=3)
        return f"result not sendable: {exc}"

    def _send_for_job(self, handler: Any, job: Any, command: Command,
                      fields: Tuple[bytes, ...]) -> bool:
        """Send a packet for ``job`` on ``handler``'s session; a failed send costs that
        connection (and says False)."""
        try:
            handler.send_command(command, job.handle.encode("utf-8", "surrogateescape"), *fields)
        except errors.ConnectionError as exc:
            self._drop(handler.connection, exc)
            return False
        return True

    def _log_unsent(self, job: Any, command: Command) -> None:
        self._log_job(logging.WARNING, job, "%s not sent, connection to %s is gone; "
                      "gearmand re-queues the job", command.name, job_server(job), stacklevel=3)
