"""Many jobs at once in the blocking worker: ``GearmanWorker(concurrency=N)``.

One thread -- the one in ``work()`` -- owns the sockets and the poll loop; up to
N job threads run the callbacks.  Nothing but the loop thread touches a socket:

- the loop GRABs only while a job thread is free (running jobs, jobs assigned but
  not started and GRABs in flight all count against ``concurrency``), so the
  worker never sits on a job another worker could run;
- an assigned job becomes a :class:`JobRecord` (keyed by the session it came on
  and its handle) and is handed to the job threads through a queue;
- what a job's thread sends (data, status, warning, the final result) goes into
  an outbox and wakes the loop (the manager's ``wakeup()`` socketpair); the loop
  writes it and, for the updates, tells the waiting thread once it is flushed;
- a session is one command handler (a new one per connect): a result whose
  session is gone is dropped, never sent on the new session -- gearmand re-queued
  that job when the old connection closed.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from gearman.connection_manager import REMOTE_FAULTS
from gearman.protocol import Command
from gearman.worker_rules import already_finished, not_running

log = logging.getLogger(__name__)

#: seconds work() waits for its job threads to end once the loop is done (they are
#: idle then, unless work() is leaving on an exception: daemon threads, left behind)
THREAD_JOIN_TIMEOUT = 5.0

class JobRecord:
    """One job between its assignment and its last packet."""

    __slots__ = ("job", "handler", "session", "finished")

    def __init__(self, job: Any, handler: Any) -> None:
        self.job = job
        self.handler = handler  # the session the job came on
        self.session: int = handler.session
        self.finished = False  # COMPLETE, FAIL or EXCEPTION was queued

    @property
    def key(self) -> Tuple[int, str]:
        return (self.session, self.job.handle)


class _Outgoing:
    """A packet a job's thread asks the loop to send (``command`` None: the job is done)."""

    __slots__ = ("record", "command", "fields", "flushed")

    def __init__(self, record: JobRecord, command: Optional[Command], fields: Tuple[bytes, ...],
                 flushed: Optional[threading.Event]) -> None:
        self.record, self.command, self.fields, self.flushed = record, command, fields, flushed


class JobThreads:
    """The job threads of one ``work()`` call and the loop that feeds them."""

    def __init__(self, worker: Any, size: int) -> None:
        self.worker = worker
        self.size = size
        self.records: Dict[Tuple[int, str], JobRecord] = {}
        self._lock = threading.Lock()  # guards records and JobRecord.finished
        self._todo: queue.SimpleQueue[Optional[JobRecord]] = queue.SimpleQueue()
        self._outbox: Deque[_Outgoing] = collections.deque()  # append/popleft: thread-safe
        self._flush_waiters: List[Tuple[Any, threading.Event]] = []
        self._local = threading.local()
        self._threads: List[threading.Thread] = []
        self._stopping = False  # shutdown() or a hook said stop: no GRAB from here on

    # -- the loop (the work() thread) ----------------------------------------------------
    def run(self, poll_timeout: Optional[float]) -> None:
        """The concurrent ``work()`` loop: returns once stopping and no job runs."""
        worker = self.worker
        for number in range(self.size):
            thread = threading.Thread(target=self._serve, daemon=True,
                                      name=f"gearman-job-{number + 1}")
            thread.start()
            self._threads.append(thread)
        continue_working = True
        try:
            while True:
                self._stopping = worker._stop_requested or not continue_working
                if worker._pending_sends:
                    self._send_pending()
                worker._reconnect_due()
                continue_working = self._deliver() and continue_working
                self._dispatch()
                if self._stopping:
                    if not self.records and not worker._jobs and not self._outbox:
                        return
                else:
                    self.grab()
                timeout = poll_timeout
                if self._outbox:  # (jobs waiting for a thread: a freed one wakes the loop)
                    timeout = 0
                else:
                    wake_in = worker.next_retry_in()
                    if wake_in is not None:
                        timeout = wake_in if timeout is None else min(timeout, wake_in)
                any_activity = worker.poll_connections_once(worker.connection_list, timeout)
                self._release_flushed()
                continue_working = self._deliver() and continue_working
                self._dispatch()
                continue_working = worker.after_poll(any_activity) and continue_working
        finally:
            for _ in self._threads:
                self._todo.put(None)
            deadline = time.monotonic() + THREAD_JOIN_TIMEOUT  # for all of them together
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            for waiter in self._flush_waiters:
                waiter[1].set()
            self._deliver_stale_only()

    def free_slots(self) -> int:
        worker = self.worker
        return self.size - len(self.records) - len(worker._jobs)

    def grab(self) -> None:
        """GRAB from the servers in turn, one GRAB per server in flight, while a
        job thread is free (a GRAB unanswered past ``grab_patience`` no longer counts);
        none once stopping, nor while a registration waits to be sent."""
        worker = self.worker
        if self._stopping or worker._stop_requested or worker._pending_sends:
            return  # (pending: a CANT_DO waiting for running jobs of its task)
        free = self.free_slots()
        if free <= 0:
            return
        handlers = worker._live_handlers()
        now = time.monotonic()
        for handler in handlers:
            if handler.grab_outstanding and now - handler.grab_sent_at < worker.grab_patience:
                free -= 1
        start = next((i + 1 for i, h in enumerate(handlers) if h is worker._last_grabbed), 0)
        for step in range(len(handlers)):
            if free <= 0:
                return
            handler = handlers[(start + step) % len(handlers)]
            if handler.may_have_work and not handler.grab_outstanding:
                worker._last_grabbed = handler
                worker._safely(handler, handler.grab)
                free -= 1

    def _dispatch(self) -> None:
        """Hand assigned jobs to the job threads."""
        worker = self.worker
        while worker._jobs and len(self.records) < self.size:
            handler, job = worker._jobs.popleft()
            if not worker._is_runnable(handler, job):
                continue
            record = JobRecord(job, handler)
            with self._lock:
                self.records[record.key] = record
            self._todo.put(record)

    def _send_pending(self) -> None:
        """Registrations, in order; a CANT_DO waits while a job of its task runs
        (gearmand would re-queue that job)."""
        worker = self.worker
        while worker._pending_sends:
            send_name, args = worker._pending_sends[0]
            if send_name == "send_cant_do" and any(
                    r.job.task == args[0] for r in list(self.records.values())):
                return
            worker._pending_sends.popleft()
            worker._send_registration(send_name, args)

    def _deliver(self) -> bool:
        """Send what the job threads queued; False if an ``after_job()`` said stop."""
        worker, keep_working = self.worker, True
        while self._outbox:
            item = self._outbox.popleft()
            record = item.record
            if item.command is None:  # the job's thread is done with it
                with self._lock:
                    self.records.pop(record.key, None)
                keep_working = worker.after_job() and keep_working
                continue
            self._send(item)
        return keep_working

    def _send(self, item: _Outgoing) -> None:
        worker, record, command = self.worker, item.record, item.command
        assert command is not None  # "done" markers never come here
        handler, job = record.handler, record.job
        connection = handler.connection
        if worker.handler_for(connection) is not handler or not connection.connected:
            worker._log_job(logging.WARNING, job, "%s not sent, its session with %s is gone; "
                            "gearmand re-queued the job", command.name, connection.address)
            if item.flushed is not None:
                item.flushed.set()
            return
        try:
            handler.send_command(command, job.handle.encode("utf-8", "surrogateescape"),
                                 *item.fields)
            if item.flushed is not None:
                connection.flush()
        except REMOTE_FAULTS as exc:
            worker._drop(connection, exc)
        if item.flushed is not None:
            if connection.connected and connection.wants_write:
                self._flush_waiters.append((connection, item.flushed))
            else:
                item.flushed.set()

    def _release_flushed(self) -> None:
        if self._flush_waiters:
            waiting = []
            for connection, event in self._flush_waiters:
                if connection.connected and connection.wants_write:
                    waiting.append((connection, event))
                else:
                    event.set()
            self._flush_waiters = waiting

    def _deliver_stale_only(self) -> None:
        """On the way out: send what finished jobs left queued (work() then flushes)."""
        try:
            self._deliver()
        except Exception:  # an after_job() hook failing on the way out: logged, not raised
            log.exception("after_job() raised while work() was ending")

    # -- the job threads ------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            record = self._todo.get()
            if record is None:
                return
            self._local.record = record
            try:
                self.worker._execute(record.job)
            except BaseException as exc:  # SystemExit and the like: the thread keeps its
                # slot, and the job still gets its one final answer (no client waits)
                try:
                    owed = self.worker._answer_owed(record.job, exc)
                    if owed is not None:
                        self.worker._send_final(record.job, *owed)
                except Exception:
                    self.worker._log_job(logging.ERROR, record.job, "failed its job thread",
                                         exc_info=True)
            finally:
                self._local.record = None
                self._outbox.append(_Outgoing(record, None, (), None))
                self.worker.wakeup()

    def record_of(self, job: Any) -> Optional[JobRecord]:
        record: Optional[JobRecord] = getattr(self._local, "record", None)
        if record is not None and record.job is job:
            return record
        with self._lock:
            for record in self.records.values():
                if record.job is job:
                    return record
        return None

    def _running_record(self, job: Any) -> JobRecord:
        record = self.record_of(job)
        if record is None:
            raise not_running(job)
        return record

    def is_finished(self, job: Any) -> bool:
        record = self.record_of(job)
        return record is not None and record.finished

    def send_final(self, job: Any, command: Command, fields: Tuple[bytes, ...]) -> None:
        """Queue the job's last packet (from any thread); it goes out with the next pass."""
        record = self._running_record(job)
        with self._lock:
            if record.finished:
                raise already_finished(job)
            record.finished = True
        self.worker._observe_final(job, command)
        self._post(_Outgoing(record, command, fields, None))

    def send_update(self, job: Any, command: Command, fields: Tuple[bytes, ...],
                    timeout: float) -> None:
        """Queue a WORK_DATA/STATUS/WARNING and wait (at most ``timeout``) until it is
        flushed, as the one-job worker does."""
        record = self._running_record(job)
        if threading.get_ident() == self.worker._work_thread:  # a hook on the loop thread
            self._send(_Outgoing(record, command, fields, None))
            self.worker.flush_connections([job.connection], timeout)
            return
        flushed = threading.Event()
        self._post(_Outgoing(record, command, fields, flushed))
        flushed.wait(timeout)

    def _post(self, item: _Outgoing) -> None:
        self._outbox.append(item)
        if threading.get_ident() != self.worker._work_thread:
            self.worker.wakeup()
