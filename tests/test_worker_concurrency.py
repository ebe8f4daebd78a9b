"""GearmanWorker(concurrency=N) against a real gearmand: the limit seen through
gearmand's own ``status``, overlap, senders from job threads, shutdown with jobs
running, a restart mid-job, and concurrency=1 unchanged.  Every wait is bounded."""
from __future__ import annotations

import sys
import threading
from typing import Any, Iterator, List, Tuple

import pytest

import gearman
from gearman.constants import JOB_COMPLETE, JOB_FAILED
from gearman.protocol import Command
from gearman.testing import GearmandProcess
from gearman.worker_handler import GearmanWorkerCommandHandler
from test_worker import WorkerThread, status_of, wait_for

pytestmark = pytest.mark.gearmand


@pytest.fixture
def client(gearmand: GearmandProcess) -> Iterator[gearman.GearmanClient]:
    with gearman.GearmanClient([gearmand.address]) as gm_client:
        yield gm_client


@pytest.fixture
def runners() -> Iterator[List[WorkerThread]]:
    started: List[WorkerThread] = []
    yield started
    for runner in started:
        runner.stop()


class Gate:
    """Jobs wait here until the test opens it; counts how many run at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done: List[bytes] = []

    def job(self, job: Any) -> bytes:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.open.wait(20), "the test never opened the gate"
            return b"done " + job.data
        finally:
            with self.lock:
                self.running -= 1
                self.done.append(job.data)


def start(runners: List[WorkerThread], worker: Any) -> WorkerThread:
    runner = WorkerThread(worker, poll_timeout=5).start()
    runners.append(runner)
    return runner


def submit_background(client: Any, task: str, count: int) -> List[Any]:
    jobs = [{"task": task, "data": b"%d" % i, "unique": f"{task}-{i}"} for i in range(count)]
    return list(client.submit_multiple_jobs(jobs, background=True, wait_until_complete=False,
                                            poll_timeout=10))


def test_concurrency_is_validated() -> None:
    with pytest.raises(TypeError, match="concurrency"):
        gearman.GearmanWorker([], concurrency="4")
    with pytest.raises(TypeError, match="concurrency"):
        gearman.GearmanWorker([], concurrency=True)
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        gearman.GearmanWorker([], concurrency=0)


def test_the_limit_as_gearmand_sees_it(gearmand: GearmandProcess, client: Any,
                                       runners: List[WorkerThread]) -> None:
    limit = 3
    gate = Gate()
    worker = gearman.GearmanWorker([gearmand.address], concurrency=limit)
    worker.register_task("gated", gate.job)
    start(runners, worker)
    wait_for(lambda: status_of(gearmand, "gated")[2] == 1, what="the worker registered")
    submit_background(client, "gated", 3 * limit)
    wait_for(lambda: gate.running == limit, what=f"{limit} jobs running")
    seen = set()
    for _ in range(20):  # sampled while 3N jobs are queued: never above N
        total, running, workers = status_of(gearmand, "gated")
        seen.add(running)
        assert (total, workers) == (3 * limit, 1)
        assert running <= limit
    assert limit in seen
    assert gate.most == limit
    gate.open.set()
    wait_for(lambda: status_of(gearmand, "gated")[0] == 0, what="every job done")
    assert sorted(gate.done) == sorted(b"%d" % i for i in range(3 * limit))
    assert gate.most == limit


def test_io_bound_jobs_overlap(gearmand: GearmandProcess, client: Any,
                               runners: List[WorkerThread]) -> None:
    gate = Gate()
    worker = gearman.GearmanWorker([gearmand.address], concurrency=8)
    worker.register_task("sleepy", gate.job)
    start(runners, worker)
    jobs = [{"task": "sleepy", "data": b"%d" % i} for i in range(8)]
    requests = client.submit_multiple_jobs(jobs, wait_until_complete=False, poll_timeout=10)
    wait_for(lambda: gate.running == 8, what="all 8 jobs running at once")
    gate.open.set()
    done = client.wait_until_jobs_completed(requests, poll_timeout=20)
    assert [(r.state, r.result) for r in done] == [(JOB_COMPLETE, b"done %d" % i)
                                                   for i in range(8)]


def test_senders_from_job_threads_reach_the_client(gearmand: GearmandProcess, client: Any,
                                                   runners: List[WorkerThread]) -> None:
    worker_threads: List[int] = []

    def chatty(worker: Any, job: Any) -> bytes:
        worker_threads.append(threading.get_ident())
        worker.send_job_status(job, 1, 3)
        worker.send_job_data(job, b"part-" + job.data)
        worker.send_job_warning(job, b"careful-" + job.data)
        return b"end-" + job.data

    worker = gearman.GearmanWorker([gearmand.address], concurrency=4)
    worker.register_task("chatty", chatty)
    runner = start(runners, worker)
    jobs = [{"task": "chatty", "data": b"%d" % i} for i in range(6)]
    done = client.submit_multiple_jobs(jobs, poll_timeout=20)
    for i, request in enumerate(done):
        assert (request.state, request.result) == (JOB_COMPLETE, b"end-%d" % i)
        assert list(request.data_updates) == [b"part-%d" % i]
        assert list(request.warning_updates) == [b"careful-%d" % i]
        assert (request.status["numerator"], request.status["denominator"]) == (1, 3)
    assert runner.thread.ident not in worker_threads  # they ran on job threads


def test_a_job_thread_ending_in_system_exit_still_answers_its_job(
        gearmand: GearmandProcess, client: Any, runners: List[WorkerThread]) -> None:
    def leaves(job: Any) -> bytes:
        if job.data == b"exit":
            sys.exit(3)  # a BaseException: past every hook, out of the job thread's job
        return job.data

    worker = gearman.GearmanWorker([gearmand.address], concurrency=2)
    worker.register_task("leaves", leaves)
    start(runners, worker)
    done = client.submit_multiple_jobs([{"task": "leaves", "data": d}
                                        for d in (b"exit", b"a", b"exit", b"b")], poll_timeout=20)
    assert [r.state for r in done] == [JOB_FAILED, JOB_COMPLETE, JOB_FAILED, JOB_COMPLETE]
    assert all("SystemExit: 3" in str(done[i].exception) for i in (0, 2))
    again = client.submit_job("leaves", b"c", poll_timeout=20)  # both threads still serve
    assert (again.state, again.result) == (JOB_COMPLETE, b"c")


def test_shutdown_lets_running_jobs_finish_and_sends_their_results(
        gearmand: GearmandProcess, client: Any, runners: List[WorkerThread]) -> None:
    gate = Gate()
    worker = gearman.GearmanWorker([gearmand.address], concurrency=3)
    worker.register_task("gated", gate.job)
    runner = start(runners, worker)
    jobs = [{"task": "gated", "data": b"%d" % i} for i in range(5)]
    requests = client.submit_multiple_jobs(jobs, wait_until_complete=False, poll_timeout=10)
    wait_for(lambda: gate.running == 3, what="3 jobs running")
    worker.shutdown()
    assert not runner.finished(0.3), "work() returned with jobs still running"
    gate.open.set()
    assert runner.finished(10), "work() did not return once its jobs were done"
    assert len(gate.done) == 3  # no new job was taken after shutdown()
    # the two left wait for another worker (once gearmand has seen the close)
    wait_for(lambda: status_of(gearmand, "gated") == (2, 0, 0), what="2 jobs queued, no worker")
    ran = [r for r in requests if r.job.data in gate.done]
    assert len(ran) == 3
    done = client.wait_until_jobs_completed(ran, poll_timeout=10)
    assert [(r.state, r.result) for r in done] == [(JOB_COMPLETE, b"done " + r.job.data)
                                                   for r in ran]


class RecordingHandler(GearmanWorkerCommandHandler):
    """Keeps (session, command, handle) of every work result it sends."""

    sent: List[Tuple[int, Command, bytes]] = []

    def send_command(self, command: Any, *fields: Any) -> None:
        if command in (Command.WORK_COMPLETE, Command.WORK_FAIL, Command.WORK_EXCEPTION):
            RecordingHandler.sent.append((self.session, command, fields[0]))
        super().send_command(command, *fields)


class RecordingWorker(gearman.GearmanWorker):
    command_handler_class = RecordingHandler


def test_a_restart_mid_job_never_sends_the_old_result_on_the_new_session(
        gearmand: GearmandProcess, client: Any, runners: List[WorkerThread]) -> None:
    RecordingHandler.sent = []
    gate = Gate()
    worker = RecordingWorker([gearmand.address], concurrency=2)
    worker.register_task("gated", gate.job)
    worker.register_task("quick", lambda job: b"quick " + job.data)
    start(runners, worker)
    submit_background(client, "gated", 1)
    wait_for(lambda: gate.running == 1, what="the job running")
    first_session = next(iter(worker.connection_to_handler_map.values())).session
    gearmand.restart()
    wait_for(lambda: [h for h in worker.connection_to_handler_map.values()
                      if h.session != first_session and h.connection.connected],
             timeout=15, what="the worker reconnected")
    gate.open.set()
    wait_for(lambda: gate.done, what="the old job ended")
    with gearman.GearmanClient([gearmand.address]) as fresh:
        request = fresh.submit_job("quick", b"after", poll_timeout=15)
    assert (request.state, request.result) == (JOB_COMPLETE, b"quick after")
    old_results = [row for row in RecordingHandler.sent if row[0] != first_session
                   and row[2] != request.job.handle.encode()]
    assert old_results == []
    assert [row for row in RecordingHandler.sent if row[2] == request.job.handle.encode()
            ][0][0] != first_session


def test_after_job_false_ends_work_once_running_jobs_are_done(
        gearmand: GearmandProcess, client: Any, runners: List[WorkerThread]) -> None:
    class OneAndDone(gearman.GearmanWorker):
        def after_job(self) -> bool:
            return False

    gate = Gate()
    gate.open.set()
    worker = OneAndDone([gearmand.address], concurrency=4)
    worker.register_task("gated", gate.job)
    runner = start(runners, worker)
    request = client.submit_job("gated", b"x", poll_timeout=10)
    assert (request.state, request.result) == (JOB_COMPLETE, b"done x")
    assert runner.finished(10)


def test_concurrency_one_runs_jobs_on_the_work_thread(gearmand: GearmandProcess, client: Any,
                                                       runners: List[WorkerThread]) -> None:
    seen: List[Tuple[int, int]] = []

    def where(job: Any) -> bytes:
        seen.append((threading.get_ident(), threading.active_count()))
        return job.data

    worker = gearman.GearmanWorker([gearmand.address])
    assert worker.concurrency == 1
    worker.register_task("where", where)
    before = threading.active_count()
    runner = start(runners, worker)
    request = client.submit_job("where", b"here", poll_timeout=10)
    assert request.result == b"here"
    assert seen == [(runner.thread.ident, before + 1)]  # no thread beside work()'s own


def test_job_observers_count_jobs_run_on_job_threads(gearmand: GearmandProcess, client: Any,
                                                     runners: List[WorkerThread]) -> None:
    from gearman.metrics import instrument_worker

    def maybe_fail(job: Any) -> bytes:
        if job.data.startswith(b"bad"):
            raise ValueError("bad job")
        return job.data

    worker = gearman.GearmanWorker([gearmand.address], concurrency=4)
    worker.register_task("observed", maybe_fail)
    metrics = instrument_worker(worker)
    start(runners, worker)
    jobs = [{"task": "observed", "data": b"ok%d" % i} for i in range(8)]
    jobs += [{"task": "observed", "data": b"bad%d" % i} for i in range(3)]
    client.submit_multiple_jobs(jobs, poll_timeout=20)
    assert metrics.jobs.labels("observed", "complete").get() == 8
    assert metrics.jobs.labels("observed", "exception").get() == 3
    assert metrics.in_progress.labels("observed").get() == 0


def test_unregister_waits_for_the_running_jobs_of_that_task(
        gearmand: GearmandProcess, client: Any, runners: List[WorkerThread]) -> None:
    gate = Gate()
    worker = gearman.GearmanWorker([gearmand.address], concurrency=3)
    worker.register_task("gated", gate.job)
    start(runners, worker)
    requests = client.submit_multiple_jobs([{"task": "gated", "data": b"%d" % i}
                                            for i in range(2)], wait_until_complete=False,
                                           poll_timeout=10)
    wait_for(lambda: gate.running == 2, what="2 jobs running")
    worker.unregister_task("gated")  # from another thread, jobs of the task running
    for _ in range(5):  # the CANT_DO waits: gearmand keeps both jobs with this worker
        assert status_of(gearmand, "gated") == (2, 2, 1)
    gate.open.set()
    done = client.wait_until_jobs_completed(requests, poll_timeout=10)
    assert [r.state for r in done] == [JOB_COMPLETE] * 2
    wait_for(lambda: status_of(gearmand, "gated")[2] == 0, what="the CANT_DO sent")
