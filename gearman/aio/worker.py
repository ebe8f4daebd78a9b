"""AsyncGearmanWorker: up to ``concurrency`` jobs at once on an asyncio loop.

``async def`` callbacks run as tasks on the loop; plain functions run in a
bounded thread pool, so they never block it.  The worker grabs a job only while
a slot is free (running jobs plus GRABs in flight stay within ``concurrency``),
so it never holds a job another worker could run.  Registrations, job building
and the fields of results are :class:`~gearman.worker_rules.WorkerRules`, the
protocol per connection is :class:`~gearman.worker_handler.GearmanWorkerCommandHandler`:
both the blocking worker's own.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import sys
from typing import Any, Awaitable, Dict, Iterator, Optional, Set, Tuple, Union

from gearman import errors
from gearman.aio.connection import AsyncConnection
from gearman.aio.manager import AsyncConnectionManager
from gearman.constants import DEFAULT_WORKER_POLL_TIMEOUT
from gearman.job import GearmanJob
from gearman.protocol import Command
from gearman.shapes import ExcInfo, Number, Payload
from gearman.worker_handler import GearmanWorkerCommandHandler
from gearman.worker_rules import (WorkerRules, already_finished, exception_fields,
                                  exception_text, not_running, status_fields)

#: How long send_job_data/status/warning may wait for a slow server.
UPDATE_SEND_TIMEOUT = 30.0


class AsyncGearmanWorker(WorkerRules[AsyncConnection], AsyncConnectionManager):
    """Registers functions with gearmand servers and runs their jobs, ``concurrency``
    at a time.  ``await worker.work()`` runs until :meth:`shutdown`."""

    command_handler_class = GearmanWorkerCommandHandler

    def __init__(self, host_list: Any = None, concurrency: int = 1, **options: Any) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        super().__init__(host_list, **options)
        self.concurrency = concurrency
        #: job -> the handler (session) that assigned it, while it runs
        self._running: Dict[Any, Any] = {}
        #: the task running each job -> that job
        self._tasks: Dict[asyncio.Future[Any], Any] = {}
        #: jobs whose final answer (COMPLETE, FAIL, EXCEPTION) went out
        self._finished: Set[Any] = set()
        #: servers whose last GRAB got a job: they get a GRAB per free slot
        self._busy_servers: Set[Any] = set()
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._wakeup: Optional[asyncio.Event] = None
        self._stop_requested = False
        self._working = False
        #: a job started or ended since the last after_poll
        self._activity = False
        #: what an after_job() or after_poll() hook raised first: work() raises it once
        #: the running jobs end
        self._hook_error: Optional[BaseException] = None
        #: jobs answered whose after_job() is still running: they hold their slot
        self._settling = 0
        #: job tasks this worker cancelled itself (close(), or work() cancelled): their
        #: jobs are abandoned, not failed; gearmand gives them to another worker
        self._abandoned: Set[asyncio.Future[Any]] = set()

    # -- registrations reach the live servers at once ----------------------------------
    def _broadcast(self, send_name: str, *args: Any) -> None:
        """Send a registration to every live server now (from a job's thread: on the
        loop).  gearmand re-queues a running job whose task gets CANT_DO; that job's
        result is then dropped by the server (ERROR JOB_NOT_FOUND, logged)."""
        if self._loop is not None and self._in_other_thread():
            self._loop.call_soon_threadsafe(self._broadcast, send_name, *args)
            return
        for handler in self.server_pool.live_handlers():
            try:
                getattr(handler, send_name)(*args)
            except errors.ConnectionError as exc:
                self._drop(handler.connection, exc)

    def _in_other_thread(self) -> bool:
        loop = self._loop
        if loop is None:
            return False
        try:
            return asyncio.get_running_loop() is not loop
        except RuntimeError:  # no loop in this thread
            return True

    # -- the work loop ----------------------------------------------------------------------
    async def work(self, poll_timeout: Optional[float] = DEFAULT_WORKER_POLL_TIMEOUT) -> None:
        """Do jobs until :meth:`shutdown`; then let the running jobs finish, send their
        results and close.  Servers that are down are reconnected with backoff (every
        ``poll_timeout`` seconds at the latest); outages never end this."""
        if poll_timeout is not None and poll_timeout < 0:
            raise ValueError(f"poll_timeout must be None or >= 0, got {poll_timeout!r}")
        self._check_open()
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stop_requested = False
        self._hook_error = None
        self._working = True
        try:
            while not self._stop_requested:
                for connection in self.connection_list:
                    if not connection.connected and self.connection_is_due(connection):
                        await self.establish_connection(connection)
                self._grab_where_possible()
                timeout = poll_timeout
                retry_in = self.next_retry_in()
                if retry_in is not None:
                    timeout = retry_in if timeout is None else min(timeout, retry_in)
                self._wakeup.clear()
                if self._stop_requested:
                    break
                woken = await _wait_event(self._wakeup, timeout)
                any_activity, self._activity = woken or self._activity, False
                if not await self._hook_says_go_on(self.after_poll, any_activity):
                    self._stop_requested = True
            await self._finish_running()
        finally:
            self._working = False
            self._stop_requested = True
            if self._tasks:  # work() itself was cancelled (or failed): jobs are abandoned
                await self._abandon_running_jobs()
            self._close_all()
        error, self._hook_error = self._hook_error, None
        if error is not None:
            raise error

    async def _finish_running(self) -> None:
        """Let the running jobs end and their results go out."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        try:
            await self.flush_connections(self.connection_list, UPDATE_SEND_TIMEOUT)
        except asyncio.TimeoutError:
            self.log.warning("results not sent within %ss of shutdown", UPDATE_SEND_TIMEOUT)

    def shutdown(self) -> None:
        """Stop grabbing; ``work()`` returns once the running jobs are done.  Safe
        from a job (either kind), a signal handler or another thread.  Outside
        ``work()`` it closes every connection now."""
        if not self._working:
            self._close_all()
            return
        self._stop_requested = True
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            if self._in_other_thread():
                loop.call_soon_threadsafe(wakeup.set)
            else:
                wakeup.set()

    def stop(self) -> None:
        """Same as :meth:`shutdown`."""
        self.shutdown()

    async def close(self) -> None:
        """Close every connection for good (running jobs' results are not sent)."""
        self._stop_requested = True
        await self._abandon_running_jobs()
        await super().close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _abandon_running_jobs(self) -> None:
        """Cancel the running jobs (not the task calling this) and wait until they
        have stopped; their results are never sent."""
        current = asyncio.current_task()
        abandoned = {task: job for task, job in self._tasks.items() if task is not current}
        self._abandoned.update(abandoned)
        for task in abandoned:
            task.cancel()
        if abandoned:
            await asyncio.gather(*abandoned, return_exceptions=True)
        self._abandoned.difference_update(abandoned)
        for job in abandoned.values():  # (a task cancelled before its first step ran
            self._running.pop(job, None)  # no finally of its own)

    def _forget_task(self, task: asyncio.Future[Any]) -> None:
        self._tasks.pop(task, None)

    # -- grabbing ---------------------------------------------------------------------------
    def _grab_where_possible(self) -> None:
        """One GRAB per free slot (running jobs plus GRABs in flight never exceed
        ``concurrency``), to the servers that may have work.  A server that just
        answered NO_JOB or woke us with a NOOP gets one GRAB (a probe); one that
        handed out a job gets as many as there are free slots (pipelined: gearmand
        answers each GRAB with one job, so it is one round trip for all of them)."""
        if self._stop_requested or not self._working:
            return
        handlers = self.server_pool.live_handlers()
        free = self.concurrency - len(self._running) - self._settling
        for handler in handlers:
            free -= handler.grabs_in_flight
        for handler in handlers:
            if free <= 0:
                return
            if not handler.may_have_work:
                continue
            wanted = free if handler in self._busy_servers else 1
            wanted -= handler.grabs_in_flight
            for _ in range(min(wanted, free)):
                try:
                    handler.grab()
                except errors.ConnectionError as exc:
                    self._drop(handler.connection, exc)
                    break
                free -= 1

    # -- called by handlers ------------------------------------------------------------------
    def note_may_have_work(self, handler: GearmanWorkerCommandHandler) -> None:
        """A server may have work for us (connected, NOOP, NO_JOB): grab if a slot is free."""
        if not handler.may_have_work:  # it answered NO_JOB: probe it with one GRAB next
            self._busy_servers.discard(handler)
        self._grab_where_possible()

    def on_job_assigned(self, handler: GearmanWorkerCommandHandler, handle: str, task: str,
                        unique: Optional[str], reducer: Optional[str], data: bytes) -> None:
        self._busy_servers.add(handler)
        job = self._assigned_job(handler, handle, task, unique, reducer, data)
        if job is None or not self._is_runnable(handler, job):
            self._grab_where_possible()
            return
        self._running[job] = handler
        run = asyncio.ensure_future(self._run_job(job))
        self._tasks[run] = job
        run.add_done_callback(self._forget_task)
        self._grab_where_possible()  # the next slot's GRAB, while this job runs

    def on_connection_lost(self, handler: GearmanWorkerCommandHandler) -> None:
        self._busy_servers.discard(handler)
        lost = [job for job, owner in self._running.items() if owner is handler]
        if lost:
            self.log.warning("%d running job(s) from %s lost their connection; gearmand "
                             "re-queues them and their results are dropped", len(lost),
                             handler.server)
        if self._wakeup is not None:
            self._wakeup.set()  # reconnect

    # -- hooks (the blocking worker's; each may be async def) ---------------------------
    def after_poll(self, any_activity: bool) -> Union[bool, Awaitable[bool]]:
        """Called each time the work loop wakes: every ``poll_timeout`` seconds, and
        when a connection drops or :meth:`shutdown` wakes it.  ``any_activity``: a job
        started or ended since the last call, or something woke the loop.  Return
        False to end :meth:`work`."""
        return True

    def after_job(self) -> Union[bool, Awaitable[bool]]:
        """Called after every job (its final answer queued; the job's slot stays taken
        until this returns).  Return False to end :meth:`work` once the running jobs
        finish."""
        return True

    async def on_job_execute(self, current_job: GearmanJob) -> bool:
        """Run the job's callback (``async def`` on the loop, a plain function in a
        thread) and route its outcome to the two hooks below."""
        try:
            callback, arguments = self._callback_call(current_job)
            if asyncio.iscoroutinefunction(callback):
                job_result = await callback(*arguments)
            else:
                job_result = await self._in_thread(callback, arguments)
                if asyncio.iscoroutine(job_result):  # a plain function returning a coroutine
                    job_result = await job_result
        except Exception:
            return bool(await _resolved(self.on_job_exception(current_job, sys.exc_info())))
        return bool(await _resolved(self.on_job_complete(current_job, job_result)))

    async def on_job_exception(self, current_job: GearmanJob, exc_info: ExcInfo) -> bool:
        """Log the traceback and fail the job with WORK_EXCEPTION alone."""
        self._log_job_exception(current_job, exc_info)
        if not self.job_finished(current_job):
            await self.send_job_exception(current_job, exception_text(exc_info[1]))
        return True

    async def on_job_complete(self, current_job: GearmanJob, job_result: Payload) -> bool:
        """Send the callback's result as WORK_COMPLETE (encoded with data_encoder)."""
        if self.job_finished(current_job):
            return True  # the callback already sent the outcome itself
        try:
            await self.send_job_complete(current_job, job_result)
        except Exception as exc:  # the encoder refused the result: fail this job alone
            await self.send_job_exception(current_job,
                                          self._result_not_sendable(current_job, exc))
        return True

    async def _hook_says_go_on(self, hook: Any, *arguments: Any) -> bool:
        """Call after_job or after_poll.  One that raises stops the worker: work()
        raises the first such error once the running jobs end (as the blocking
        worker's hooks raise out of work()); later ones are logged."""
        try:
            return bool(await _resolved(hook(*arguments)))
        except Exception as exc:
            if self._hook_error is None:
                self._hook_error = exc
            else:
                self.log.error("%s raised too (work() raises the first error)",
                               getattr(hook, "__name__", hook), exc_info=True)
            return False

    # -- running a job ----------------------------------------------------------------------
    async def _run_job(self, job: Any) -> None:
        """Run one job through on_job_execute; it ends with exactly one final answer
        (an overridden hook that raises or sends none gets WORK_EXCEPTION or
        WORK_FAIL); then after_job, while the job still holds its slot."""
        self._activity = True
        try:
            if self._job_observers:
                self._tell_observers("job_started", job)
            failure: Optional[BaseException] = None
            try:
                await _resolved(self.on_job_execute(job))  # its value is ignored, as in 2.x
            except asyncio.CancelledError as exc:
                if asyncio.current_task() in self._abandoned:
                    raise  # abandoned (close(), work() cancelled): gearmand re-queues it
                failure = exc  # the job's own code was cancelled: that fails the job
            except Exception as exc:  # an overridden hook failed: fail the job, keep working
                failure = exc
            owed = self._answer_owed(job, failure)
            if owed is not None:
                self._final(job, *owed)
        finally:
            if self._job_observers and not self.job_finished(job):  # it never answered
                self._tell_observers("job_abandoned", job)
            handler = self._running.pop(job, None)
            self._finished.discard(job)
            if handler is not None:
                # Look again when a job ends, as the blocking worker does: gearmand
                # sends a sleeping worker no NOOP for a job it took back (CAN_DO_TIMEOUT).
                handler.may_have_work = True
        self._settling += 1
        try:
            keep_working = await self._hook_says_go_on(self.after_job)
        finally:
            self._settling -= 1
        if not keep_working:
            self.shutdown()
        self._activity = True
        self._grab_where_possible()

    async def _in_thread(self, callback: Any, arguments: Tuple[Any, ...]) -> Any:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="gearman-job")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: callback(*arguments))

    # -- sending for a job ------------------------------------------------------------------
    def _send(self, job: Any, command: Command, fields: Tuple[bytes, ...]) -> bool:
        """Send a packet for ``job`` on the session that assigned it, never on a
        later one (gearmand gave the job to someone else meanwhile)."""
        handler = self._running.get(job)
        connection = job.connection
        if handler is None or self.server_pool.handler_for(connection) is not handler or \
                not connection.connected:
            self._log_unsent(job, command)
            return False
        return self._send_for_job(handler, job, command, fields)

    def _final(self, job: Any, command: Command, fields: Tuple[bytes, ...]) -> None:
        if job in self._finished:
            raise already_finished(job)
        if job not in self._running:
            raise not_running(job)
        self._finished.add(job)
        self._observe_final(job, command)
        self._send(job, command, fields)

    async def _update(self, job: Any, command: Command, fields: Tuple[bytes, ...],
                      limit: float) -> None:
        if self._send(job, command, fields):
            await self.flush_connections([job.connection], limit)

    async def _final_sent(self, job: Any, command: Command, fields: Tuple[bytes, ...]) -> None:
        self._final(job, command, fields)

    def _from_thread(self, coroutine: Any) -> Any:
        """From a job's thread: run ``coroutine`` on the loop and wait for it (so a
        plain callback calls ``worker.send_job_data(job, x)`` plainly)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(UPDATE_SEND_TIMEOUT + 5.0)

    def _deliver_update(self, job: Any, command: Command, fields: Tuple[bytes, ...],
                        poll_timeout: Optional[float]) -> Any:
        """On the loop the packet is handed to the transport now, so a send that is not
        awaited (a plain-def hook, a forgotten ``await``) still goes out; what it
        returns waits, when awaited, only while the transport is full."""
        limit = UPDATE_SEND_TIMEOUT if poll_timeout is None else poll_timeout
        if self._in_other_thread():
            return self._from_thread(self._update(job, command, fields, limit))
        if not self._send(job, command, fields):
            return SENT
        connection = job.connection
        connection.flush()
        if not connection.writing_paused:
            return SENT
        waiting = asyncio.ensure_future(self.flush_connections([connection], limit))
        # Not awaited (a plain hook): its timeout is no one's error, and not logged as one.
        waiting.add_done_callback(lambda task: task.cancelled() or task.exception())
        return waiting

    def _deliver_final(self, job: Any, command: Command, fields: Tuple[bytes, ...]) -> Any:
        """On the loop the answer is queued now (awaiting what it returns is optional);
        from a job's thread, before this returns."""
        if self._in_other_thread():
            return self._from_thread(self._final_sent(job, command, fields))
        self._final(job, command, fields)
        return SENT

    def send_job_data(self, current_job: GearmanJob, data: Payload,
                      poll_timeout: Optional[float] = None) -> Any:
        """Partial result (WORK_DATA), sent at once.  In an ``async def`` callback,
        ``await`` it to wait while a slow server's connection is full; a plain
        callback (in its thread) calls it plainly and it returns once sent."""
        return self._deliver_update(current_job, Command.WORK_DATA,
                                    (self.encode_payload(data),), poll_timeout)

    def send_job_warning(self, current_job: GearmanJob, data: Payload,
                         poll_timeout: Optional[float] = None) -> Any:
        """Warning (WORK_WARNING); awaited or called like :meth:`send_job_data`."""
        return self._deliver_update(current_job, Command.WORK_WARNING,
                                    (self.encode_payload(data),), poll_timeout)

    def send_job_status(self, current_job: GearmanJob, numerator: Number, denominator: Number,
                        poll_timeout: Optional[float] = None) -> Any:
        """Progress (WORK_STATUS); awaited or called like :meth:`send_job_data`."""
        return self._deliver_update(current_job, Command.WORK_STATUS,
                                    status_fields(numerator, denominator), poll_timeout)

    def send_job_complete(self, current_job: GearmanJob, data: Payload,
                          poll_timeout: Optional[float] = None) -> Any:
        """Success (WORK_COMPLETE) sent by the callback itself, queued at once; its
        return value is then not sent."""
        return self._deliver_final(current_job, Command.WORK_COMPLETE,
                                   (self.encode_payload(data),))

    def send_job_failure(self, current_job: GearmanJob,
                         poll_timeout: Optional[float] = None) -> Any:
        """Failure without details (WORK_FAIL)."""
        return self._deliver_final(current_job, Command.WORK_FAIL, ())

    def send_job_exception(self, current_job: GearmanJob, data: Payload,
                           poll_timeout: Optional[float] = None) -> Any:
        """Failure with a text (WORK_EXCEPTION)."""
        return self._deliver_final(current_job, Command.WORK_EXCEPTION, exception_fields(data))

    def job_finished(self, current_job: GearmanJob) -> bool:
        """True once a WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION was sent for the job."""
        return current_job in self._finished

    @property
    def jobs_running(self) -> int:
        """How many jobs run now."""
        return len(self._running)


class _Sent:
    """What a ``send_job_*`` call on the loop returns once its packet is queued:
    awaiting it (as an ``async def`` callback does) returns at once."""

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())


SENT = _Sent()


async def _wait_event(event: asyncio.Event, timeout: Optional[float]) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds (None: for ever), without raising;
    whether it was set."""
    if timeout is None:
        await event.wait()
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def _resolved(value: Any) -> Any:
    """A hook's answer: awaited if the hook was ``async def``."""
    if inspect.isawaitable(value):
        return await value
    return value


__all__ = ["AsyncGearmanWorker", "UPDATE_SEND_TIMEOUT"]
