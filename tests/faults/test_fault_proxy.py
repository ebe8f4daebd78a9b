"""Faults injected by a TCP proxy between the library and a real gearmand:
every write split into 1-byte pieces, delay, a cut in mid-packet, a TCP reset.

The proxy (``faultkit.FaultProxy``) is written in the tests, standard library only.
The counts of how often each job ran back the promises in docs/reliability.rst:
which faults make a job run twice, and who re-ran it (gearmand or the client).
"""
from __future__ import annotations

import collections
import threading
import time

import pytest

import gearman
from gearman import errors
from gearman.constants import JOB_COMPLETE, JOB_UNKNOWN
from gearman.protocol import REQ, Command

from faultkit import DOWN, UP, FaultProxy, header_of, wait_for

pytestmark = pytest.mark.gearmand

PROMPT = 2.0


class Recorder:
    """A thread worker whose tasks count how often each unique id ran."""

    def __init__(self, address, thread_workers, slow_seconds=0.5):
        self.runs = collections.Counter()
        self.on_run = None  # called as on_run(job, run_number) before returning
        self.release = threading.Event()
        self.started = threading.Event()  # a slow job is in its callback
        worker = gearman.GearmanWorker([address])
        worker.register_task("record", self._record)
        worker.register_task("slow", self._slow)
        worker.register_task("chatty", self._chatty)
        self.worker = worker
        self.slow_seconds = slow_seconds
        self.runner = thread_workers(worker, poll_timeout=0.5)

    def _count(self, job):
        self.runs[job.unique] += 1
        if self.on_run is not None:
            self.on_run(job, self.runs[job.unique])

    def _record(self, job):
        self._count(job)
        return job.data

    def _slow(self, job):
        self.started.set()
        self.release.wait(self.slow_seconds)
        self._count(job)
        return job.data

    def _chatty(self, worker, job):
        for i in range(5):
            worker.send_job_data(job, b"part %d " % i + job.data)
            worker.send_job_status(job, i + 1, 5)
        self._count(job)
        return job.data


@pytest.fixture
def proxy(gearmand):
    fault_proxy = FaultProxy(gearmand.port)
    yield fault_proxy
    fault_proxy.close()


def test_every_write_split_into_one_byte_pieces(gearmand, proxy, thread_workers):
    proxy.split = True
    recorder = Recorder(proxy.address, thread_workers)
    with gearman.GearmanClient([proxy.address]) as client:
        jobs = [{"task": "record", "data": bytes([i % 256]) * 200 + b"\0end"}
                for i in range(100)]
        requests = client.submit_multiple_jobs(jobs, poll_timeout=60)
        assert [r.result for r in requests] == [job["data"] for job in jobs]
        chatty = client.submit_job("chatty", b"x", poll_timeout=30)
        assert list(chatty.data_updates) == [b"part %d x" % i for i in range(5)]
        assert chatty.result == b"x"
    with gearman.GearmanAdminClient([proxy.address], poll_timeout=10) as admin:
        status = {row["task"]: row for row in admin.get_status()}
        assert status["record"]["workers"] == 1
        assert admin.get_pid() == gearmand.pid
    assert sum(recorder.runs.values()) == 101 and set(recorder.runs.values()) == {1}
    assert proxy.cuts == 0 and proxy.accepted == 3


def test_delay_on_every_chunk(gearmand, proxy, thread_workers):
    proxy.delay = 0.05
    recorder = Recorder(proxy.address, thread_workers)
    with gearman.GearmanClient([proxy.address]) as client:
        start = time.monotonic()
        early = client.submit_job("record", b"early", poll_timeout=0.05)
        assert early.timed_out and time.monotonic() - start < 0.05 + 0.75
        client.wait_until_jobs_completed([early], poll_timeout=10)
        assert early.state == JOB_COMPLETE and early.result == b"early"
        jobs = [{"task": "record", "data": b"%d" % i} for i in range(20)]
        requests = client.submit_multiple_jobs(jobs, poll_timeout=30)
        assert all(r.state == JOB_COMPLETE for r in requests)
    with gearman.GearmanAdminClient([proxy.address], poll_timeout=0.05) as admin:
        with pytest.raises(errors.InvalidAdminClientState):
            admin.get_status()
        admin.poll_timeout = 10
        assert admin.get_pid() == gearmand.pid
    assert set(recorder.runs.values()) == {1}


def test_cut_in_the_result_to_the_client_reports_failure_though_the_job_ran(
        gearmand, proxy, thread_workers):
    """The connection dies inside WORK_COMPLETE: with max_retries=0 the request is
    reported failed at once, although the worker did run it (once)."""
    recorder = Recorder(gearmand.address, thread_workers)
    with gearman.GearmanClient([proxy.address]) as client:
        assert client.echo(b"warm") == b"warm"
        proxy.cut_next(DOWN, header_of(Command.WORK_COMPLETE))
        start = time.monotonic()
        request = client.submit_job("record", b"x" * 100, unique="cut-result", poll_timeout=30)
        assert time.monotonic() - start < PROMPT
        assert request.connection_failed and request.state == JOB_UNKNOWN
        assert proxy.cuts == 1
        assert recorder.runs["cut-result"] == 1


def test_client_retry_after_a_cut_result_runs_the_job_twice(gearmand, proxy, thread_workers):
    """max_retries=1 resubmits a request whose connection dropped after JOB_CREATED:
    the first run had finished, so the job runs a second time (client's doing)."""
    recorder = Recorder(gearmand.address, thread_workers)
    with gearman.GearmanClient([proxy.address]) as client:
        assert client.echo(b"warm") == b"warm"
        proxy.cut_next(DOWN, header_of(Command.WORK_COMPLETE))
        request = client.submit_job("record", b"y" * 100, unique="retried", max_retries=1,
                                    poll_timeout=30)
        assert request.state == JOB_COMPLETE and request.result == b"y" * 100
        assert request.connection_attempts == 2
        assert recorder.runs["retried"] == 2


def test_client_retry_of_a_job_still_running_coalesces_and_runs_once(
        gearmand, proxy, thread_workers):
    """The connection dies inside JOB_CREATED while the job is queued or running:
    the resubmission carries the same unique id, gearmand attaches it to the job
    it already has, and the job runs once."""
    recorder = Recorder(gearmand.address, thread_workers, slow_seconds=1.0)
    with gearman.GearmanClient([proxy.address]) as client:
        assert client.echo(b"warm") == b"warm"
        proxy.cut_next(DOWN, header_of(Command.JOB_CREATED))
        request = client.submit_job("slow", b"z", unique="coalesced", max_retries=1,
                                    poll_timeout=30)
        assert request.state == JOB_COMPLETE and request.result == b"z"
        assert request.connection_attempts == 2
        assert recorder.runs["coalesced"] == 1


def test_cut_in_a_job_assignment_to_the_worker(gearmand, proxy, thread_workers):
    """The worker's connection dies inside JOB_ASSIGN: gearmand re-queues the job,
    the worker reconnects, grabs it again and runs it once."""
    recorder = Recorder(proxy.address, thread_workers)
    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("record", b"warm", poll_timeout=10).state == JOB_COMPLETE
        proxy.cut_next(DOWN, header_of(Command.JOB_ASSIGN_UNIQ))
        start = time.monotonic()
        request = client.submit_job("record", b"x" * 100, unique="assign-cut", poll_timeout=30)
        assert request.state == JOB_COMPLETE and time.monotonic() - start < 5
        assert proxy.cuts == 1 and proxy.accepted == 2  # it reconnected once
        assert recorder.runs["assign-cut"] == 1


def test_cut_in_a_workers_result_makes_gearmand_run_the_job_again(
        gearmand, proxy, thread_workers):
    """The worker's connection dies inside WORK_COMPLETE: gearmand never got the
    result, re-queues the job, and it runs twice (the server's doing); the client
    gets one result."""
    recorder = Recorder(proxy.address, thread_workers)

    def cut_first_result(job, run_number):
        if run_number == 1:
            proxy.cut_next(UP, header_of(Command.WORK_COMPLETE, REQ))

    recorder.on_run = cut_first_result
    with gearman.GearmanClient([gearmand.address]) as client:
        request = client.submit_job("record", b"r" * 200, unique="result-cut", poll_timeout=30)
        assert request.state == JOB_COMPLETE and request.result == b"r" * 200
        assert proxy.cuts == 1
        assert recorder.runs["result-cut"] == 2
        rows = {row["task"]: row for row in
                gearman.GearmanAdminClient([gearmand.address]).get_status()}
        assert rows["record"]["queued"] == 0


def test_reset_of_a_client_waiting_for_a_foreground_job(gearmand, proxy, thread_workers):
    recorder = Recorder(gearmand.address, thread_workers)
    box = {}
    client = gearman.GearmanClient([proxy.address])

    def submit():
        box["request"] = client.submit_job("slow", b"s", unique="reset-client", poll_timeout=30)

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    assert recorder.started.wait(5)  # the job is with the worker
    assert proxy.reset_all() == 1
    reset_at = time.monotonic()
    thread.join(PROMPT + 1)
    assert time.monotonic() - reset_at < PROMPT
    request = box["request"]
    assert request.connection_failed and not request.complete
    recorder.release.set()
    assert wait_for(lambda: recorder.runs["reset-client"] == 1, 5)  # gearmand let it finish
    client.close()


def test_reset_of_a_worker_holding_a_job(gearmand, proxy, thread_workers):
    recorder = Recorder(proxy.address, thread_workers, slow_seconds=0.5)
    with gearman.GearmanClient([gearmand.address]) as client:
        box = {}
        thread = threading.Thread(
            target=lambda: box.update(r=client.submit_job("slow", b"w", unique="reset-worker",
                                                          poll_timeout=30)), daemon=True)
        thread.start()
        assert recorder.started.wait(5)  # assigned, the callback is waiting
        assert proxy.reset_all() == 1
        thread.join(30)
        request = box["r"]
        assert request.state == JOB_COMPLETE and request.result == b"w"
        # The first run's result died with the connection; gearmand re-queued the job.
        assert recorder.runs["reset-worker"] == 2
        assert proxy.accepted == 2


def test_cut_in_an_admin_reply(gearmand, proxy):
    with gearman.GearmanAdminClient([proxy.address], poll_timeout=30) as admin:
        assert admin.get_pid() == gearmand.pid
        proxy.cut_next(DOWN, b"")
        start = time.monotonic()
        with pytest.raises(errors.ConnectionError, match="workers"):
            admin.get_workers()
        assert time.monotonic() - start < PROMPT
        assert admin.get_pid() == gearmand.pid  # a fresh connection next time
