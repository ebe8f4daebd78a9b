"""GearmanWorker: register functions and do jobs, one at a time per worker object
(or up to ``concurrency`` at once on job threads: see :mod:`gearman.worker_threads`).

With no work it sleeps (PRE_SLEEP) until a server wakes it (NOOP); a lost
server is reconnected with capped, jittered backoff and re-registered.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Tuple

from gearman import errors
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.constants import DEFAULT_WORKER_POLL_TIMEOUT
from gearman.job import GearmanJob
from gearman.protocol import Command
from gearman.shapes import ExcInfo, Number, Payload
from gearman.worker_handler import GearmanWorkerCommandHandler
from gearman.worker_threads import JobThreads
from gearman.worker_rules import (WorkerRules, already_finished, exception_fields,
                                  exception_text, status_fields, takes_worker_argument)

__all__ = ["GearmanWorker", "UPDATE_SEND_TIMEOUT", "takes_worker_argument"]

#: How long send_job_data/status/warning may wait for a slow server.
UPDATE_SEND_TIMEOUT = 30.0


class GearmanWorker(WorkerRules[GearmanConnection], GearmanConnectionManager):
    """Registers functions with gearmand servers and runs the jobs they hand out."""

    command_handler_class = GearmanWorkerCommandHandler
    #: seconds an unanswered GRAB may hold up grabbing from the other servers
    grab_patience = 1.0

    def __init__(self, host_list: Any = None, concurrency: int = 1, **options: Any) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise TypeError(f"concurrency must be an int, got {type(concurrency).__name__}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        super().__init__(host_list, **options)
        #: jobs run at once; above 1 they run on job threads started by work()
        self.concurrency = concurrency
        self._job_threads: Optional[JobThreads] = None  # set while a concurrent work() runs
        self._reconnect_every_pass = False  # a subclass overrides establish_worker_connections
        self._jobs: Deque[Tuple[Any, Any]] = collections.deque()
        self._current_job: Any = None
        #: the job whose final answer (COMPLETE, FAIL, EXCEPTION) went out last
        self._finished_job: Any = None
        self._stop_requested = False
        self._working = False
        self._last_grabbed: Any = None  # the next GRAB looks at the servers after it
        self._work_thread: Optional[int] = None
        #: registrations the work loop sends next (made from another thread or a callback)
        self._pending_sends: Deque[Tuple[str, Tuple[Any, ...]]] = collections.deque()

    # -- the work loop --------------------------------------------------------------------
    def work(self, poll_timeout: Optional[float] = DEFAULT_WORKER_POLL_TIMEOUT) -> None:
        """Do jobs until a hook returns False or :meth:`shutdown` is called.

        ``after_poll(any_activity)`` runs after every poll pass (at least every
        ``poll_timeout`` seconds); ``after_job()`` after every job.  Server outages
        never end this loop: servers are reconnected with backoff.

        With ``concurrency`` above 1, this thread owns the sockets and runs
        ``after_poll`` and ``after_job`` (after each job's result went out);
        ``on_job_execute``, ``on_job_complete``, ``on_job_exception`` and the
        callbacks run on the job threads.  Once stopping (:meth:`shutdown`, or a
        hook returned False) no job is grabbed and this returns when the running
        jobs are done and their results sent.
        """
        if poll_timeout is not None and poll_timeout < 0:
            raise ValueError(f"poll_timeout must be None or >= 0, got {poll_timeout!r}")
        # _stop_requested is not cleared here: a shutdown() that ran before this
        # point (another thread, or before work() was called) ends this work() at once.
        self._reconnect_every_pass = (type(self).establish_worker_connections
                                      is not GearmanWorker.establish_worker_connections)
        self._work_thread = threading.get_ident()
        self._working = True
        continue_working = True
        try:
            if self.concurrency > 1:  # job threads; this thread keeps the sockets
                self._job_threads = JobThreads(self, self.concurrency)
                self._job_threads.run(poll_timeout)
                continue_working = False
            while continue_working and not self._stop_requested:
                # After a job: registrations its callback made go out after its
                # result, and the next GRAB in the same write -- unless a hook
                # ended work(), so no job is taken only to be given back.
                if self._pending_sends:
                    self._send_pending()
                self._reconnect_due()
                self._grab_where_possible()
                timeout = poll_timeout
                if self._jobs:
                    timeout = 0
                elif self.server_pool.any_backed_off() or self.server_pool.session_count() > 1:
                    for wake_in in (self.next_retry_in(), self._patience_left()):
                        if wake_in is not None:
                            timeout = wake_in if timeout is None else min(timeout, wake_in)
                any_activity = self.poll_connections_once(self.connection_list, timeout)
                if self._jobs and not self._stop_requested:
                    any_activity = True
                    self._run_next_job()
                    continue_working = self.after_job()
                continue_working = self.after_poll(any_activity) and continue_working
        finally:
            self._job_threads = None  # (its threads are joined: the senders go direct)
            self._stop_requested = True  # no GRAB while the last results are flushed
            self._working = False
            self._finish_and_close()
            self._stop_requested = False  # the request is used up: a later work() runs

    def _reconnect_due(self) -> None:
        if self._reconnect_every_pass:
            self.establish_worker_connections()  # a 2.x override runs every pass
            return
        for connection in self.connection_list:
            if not connection.connected:  # one is down: reconnect those due
                self.establish_worker_connections()
                return

    def establish_worker_connections(self) -> List[GearmanConnection]:
        """Connect every server that is down and due for another try."""
        for connection in self.connection_list:
            if not connection.connected and self.connection_is_due(connection):
                self.establish_connection(connection)
        return [c for c in self.connection_list if c.connected]

    def shutdown(self) -> None:
        """Stop: inside ``work()`` (a callback, hook, signal handler or another
        thread) it ends the loop after the current job; otherwise it closes
        every connection now, and the next ``work()`` returns at once (so a
        shutdown() from another thread that wins the race with work() is kept)."""
        self._stop_requested = True
        if self._working:
            self.wakeup()
            return
        super().shutdown()

    def stop(self) -> None:
        """Same as :meth:`shutdown`."""
        self.shutdown()

    def _finish_and_close(self) -> None:
        """Send what finished jobs left queued, then close: jobs assigned but not
        started go back to the queue when gearmand sees the connection close."""
        self._jobs.clear()
        self._pending_sends.clear()  # the next connect registers from worker_abilities
        self.flush_connections(self.connection_list, UPDATE_SEND_TIMEOUT)
        super().shutdown()

    # -- hooks ----------------------------------------------------------------------------
    def after_poll(self, any_activity: bool) -> bool:
        """Called after every poll pass; return False to end :meth:`work`."""
        return True

    def after_job(self) -> bool:
        """Called after every job; return False to end :meth:`work`."""
        return True

    def on_job_execute(self, current_job: GearmanJob) -> bool:
        """Run the job's callback and route its outcome to the two hooks below
        (on a job thread when ``concurrency`` is above 1, like those hooks)."""
        try:
            callback, arguments = self._callback_call(current_job)
            job_result = callback(*arguments)
        except Exception:
            return self.on_job_exception(current_job, sys.exc_info())
        return self.on_job_complete(current_job, job_result)

    def on_job_exception(self, current_job: GearmanJob, exc_info: ExcInfo) -> bool:
        """Log the traceback and fail the job with WORK_EXCEPTION alone."""
        self._log_job_exception(current_job, exc_info)
        if not self.job_finished(current_job):
            self.send_job_exception(current_job, exception_text(exc_info[1]))
        return True

    def on_job_complete(self, current_job: GearmanJob, job_result: Payload) -> bool:
        """Send the callback's result as WORK_COMPLETE (encoded with data_encoder)."""
        if self.job_finished(current_job):
            return True  # the callback already sent the outcome itself
        try:
            self.send_job_complete(current_job, job_result)
        except Exception as exc:  # any encoder failure: fail this job, keep working
            self.send_job_exception(current_job, self._result_not_sendable(current_job, exc))
        return True

    # -- inside a callback ----------------------------------------------------------------
    def send_job_data(self, current_job: GearmanJob, data: Payload,
                      poll_timeout: Optional[float] = None) -> None:
        """Partial result (WORK_DATA), sent before this returns."""
        self._send_update(current_job, Command.WORK_DATA, self.encode_payload(data), poll_timeout)

    def send_job_warning(self, current_job: GearmanJob, data: Payload,
                         poll_timeout: Optional[float] = None) -> None:
        """Warning (WORK_WARNING), sent before this returns."""
        self._send_update(current_job, Command.WORK_WARNING, self.encode_payload(data),
                          poll_timeout)

    def send_job_status(self, current_job: GearmanJob, numerator: Number, denominator: Number,
                        poll_timeout: Optional[float] = None) -> None:
        """Progress (WORK_STATUS) as two whole numbers, sent before this returns."""
        self._send_update(current_job, Command.WORK_STATUS, status_fields(numerator, denominator),
                          poll_timeout)

    def send_job_complete(self, current_job: GearmanJob, data: Payload,
                          poll_timeout: Optional[float] = None) -> None:
        """Success (WORK_COMPLETE); goes out with the next poll."""
        self._send_final(current_job, Command.WORK_COMPLETE, (self.encode_payload(data),))

    def send_job_failure(self, current_job: GearmanJob,
                         poll_timeout: Optional[float] = None) -> None:
        """Failure without details (WORK_FAIL)."""
        self._send_final(current_job, Command.WORK_FAIL, ())

    def send_job_exception(self, current_job: GearmanJob, data: Payload,
                           poll_timeout: Optional[float] = None) -> None:
        """Failure with a text (WORK_EXCEPTION alone: gearmand 1.1.9+ ends the job on it)."""
        self._send_final(current_job, Command.WORK_EXCEPTION, exception_fields(data))

    def job_finished(self, current_job: GearmanJob) -> bool:
        """True once a WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION was sent for the job."""
        job_threads = self._job_threads
        if job_threads is not None:
            return job_threads.is_finished(current_job)
        return current_job is self._finished_job

    def _send(self, current_job: Any, command: Command, fields: Tuple[bytes, ...]) -> bool:
        connection = current_job.connection
        handler = self.server_pool.handler_for(connection)
        if handler is None or not connection.connected:
            self._log_unsent(current_job, command)
            return False
        return self._send_for_job(handler, current_job, command, fields)

    def _send_update(self, current_job: Any, command: Command, fields: Any,
                     poll_timeout: Optional[float]) -> None:
        if not isinstance(fields, tuple):
            fields = (fields,)
        limit = UPDATE_SEND_TIMEOUT if poll_timeout is None else poll_timeout
        job_threads = self._job_threads
        if job_threads is not None:
            job_threads.send_update(current_job, command, fields, limit)
        elif self._send(current_job, command, fields):
            self.flush_connections([current_job.connection], limit)

    def _send_final(self, current_job: Any, command: Command, fields: Tuple[bytes, ...]) -> None:
        job_threads = self._job_threads
        if job_threads is not None:
            job_threads.send_final(current_job, command, fields)
            return
        if current_job is self._finished_job:
            raise already_finished(current_job)
        self._finished_job = current_job
        self._observe_final(current_job, command)
        self._send(current_job, command, fields)

    # -- called by handlers ---------------------------------------------------------------
    def note_may_have_work(self, handler: GearmanWorkerCommandHandler) -> None:
        """A server may have work for us (connected, NOOP, NO_JOB elsewhere): grab."""
        self._grab_where_possible()

    def on_job_assigned(self, handler: GearmanWorkerCommandHandler, handle: str, task: str,
                        unique: Optional[str], reducer: Optional[str], data: bytes) -> None:
        job = self._assigned_job(handler, handle, task, unique, reducer, data)
        if job is not None:
            self._jobs.append((handler, job))

    def on_connection_lost(self, handler: GearmanWorkerCommandHandler) -> None:
        if self._forget_jobs(handler):
            self.log.warning("jobs assigned by %s dropped with its connection; gearmand "
                             "re-queues them", handler.server)

    # -- internals --------------------------------------------------------------------------
    def _live_handlers(self) -> List[Any]:
        return self.server_pool.live_handlers()

    def _broadcast(self, send_name: str, *args: Any) -> None:
        """Send a registration to every live server, or queue it for the work loop:
        from another thread while work() runs (only the loop touches connections,
        and a sleeping loop must be woken to send it), and from inside a callback
        (gearmand re-queues a running job whose task gets CANT_DO, so it waits
        until the job's result is out)."""
        self._pending_sends.append((send_name, args))
        if self._working and threading.get_ident() != self._work_thread:
            self.wakeup()
        elif self._current_job is None and self._job_threads is None:
            self._send_pending()  # (the concurrent loop sends them on its next pass)

    def _send_pending(self) -> None:
        while self._pending_sends:
            send_name, args = self._pending_sends.popleft()
            self._send_registration(send_name, args)

    def _send_registration(self, send_name: str, args: Tuple[Any, ...]) -> None:
        for handler in self._live_handlers():
            self._safely(handler, getattr(handler, send_name), *args)
            if send_name == "send_cant_do":  # gearmand re-queued its held jobs
                self._forget_jobs(handler, args[0])

    def _forget_jobs(self, handler: Any, task: Optional[str] = None) -> int:
        """Drop the jobs assigned by ``handler`` and not yet run (of ``task`` only, if
        given): gearmand gives them to another worker.  Returns how many."""
        kept = collections.deque((h, j) for h, j in self._jobs
                                 if h is not handler or (task is not None and j.task != task))
        dropped = len(self._jobs) - len(kept)
        self._jobs = kept
        return dropped

    def _safely(self, handler: Any, send: Callable[..., None], *args: Any) -> None:
        try:
            send(*args)
        except errors.ConnectionError as exc:
            self._drop(handler.connection, exc)

    def _grab_where_possible(self) -> None:
        """Send one GRAB, to the next server (in turn) that may have work.

        One job at a time: no GRAB while a job is held or a GRAB is in flight, so
        the worker never sits on a job another worker could run.  A GRAB left
        unanswered for ``grab_patience`` seconds (a stopped server) no longer
        blocks the other servers.
        """
        if self._job_threads is not None:
            self._job_threads.grab()
            return
        if self._jobs or self._current_job is not None or self._stop_requested:
            return
        handlers = self._live_handlers()
        if len(handlers) == 1:  # one server: no turns, no patience to weigh
            handler = handlers[0]
            if handler.may_have_work and not handler.grab_outstanding:
                self._last_grabbed = handler
                self._safely(handler, handler.grab)
            return
        now = time.monotonic()
        for handler in handlers:
            if handler.grab_outstanding and now - handler.grab_sent_at < self.grab_patience:
                return
        # Start after the server grabbed last, so busy servers take turns.
        start = next((i + 1 for i, h in enumerate(handlers) if h is self._last_grabbed), 0)
        for step in range(len(handlers)):
            handler = handlers[(start + step) % len(handlers)]
            if handler.may_have_work and not handler.grab_outstanding:
                self._last_grabbed = handler
                self._safely(handler, handler.grab)
                return

    def _patience_left(self) -> Optional[float]:
        """Seconds until an unanswered GRAB stops blocking grabs elsewhere, if one does."""
        handlers = self.server_pool.live().values()
        if len(handlers) < 2:
            return None
        oldest, others_have_work = None, False
        for handler in handlers:
            if handler.grab_outstanding:
                if oldest is None or handler.grab_sent_at < oldest:
                    oldest = handler.grab_sent_at
            elif handler.may_have_work:
                others_have_work = True
        if oldest is None or not others_have_work:
            return None
        return max(0.0, float(oldest + self.grab_patience - time.monotonic()))

    def _run_next_job(self) -> None:
        handler, job = self._jobs.popleft()
        if not self._is_runnable(handler, job):
            return
        self._current_job = job
        self._finished_job = None
        try:
            self._execute(job)
        finally:
            self._current_job = None
            self._finished_job = None  # do not keep the job alive until the next one

    def _execute(self, job: Any) -> None:
        """Run one job through on_job_execute; make sure it ends with exactly one
        result (on the loop thread, or on a job thread with concurrency above 1)."""
        if self._job_observers:
            self._tell_observers("job_started", job)
        failure = None
        try:
            self.on_job_execute(job)  # its return value is ignored, as in 2.x
        except Exception as exc:  # an overridden hook failed: fail the job, keep working
            failure = exc
        owed = self._answer_owed(job, failure)
        if owed is not None:
            self._send_final(job, *owed)


if TYPE_CHECKING:
    from gearman.seams import WorkerOwner

    def _seam_check(worker: GearmanWorker) -> WorkerOwner:
        return worker  # mypy checks that the worker is what its handlers may ask of it
