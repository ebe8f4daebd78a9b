"""SIGSTOP of gearmand: a server that accepts connections but never answers.

The kernel still completes the TCP handshake (the listen backlog), so only the
library's own timeouts can end each call: every one must return by its timeout.
"""
from __future__ import annotations

import time

import pytest

import gearman
from gearman import errors
from gearman.constants import JOB_COMPLETE

from faultkit import cpu_used_during, wait_for

pytestmark = pytest.mark.gearmand

TIMEOUT = 1.0
#: Slack allowed past a call's timeout (scheduling on a shared 2-core machine).
SLACK = 0.75


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.start
        return False


def returned_by_timeout(timer, timeout=TIMEOUT):
    return timer.elapsed < timeout + SLACK


@pytest.fixture
def paused(gearmand, worker_processes):
    """A gearmand with a worker that served once, then frozen with SIGSTOP."""
    worker_processes(gearmand.address)
    client = gearman.GearmanClient([gearmand.address])
    assert client.submit_job("echo", b"before", poll_timeout=10).state == JOB_COMPLETE
    client.close()
    gearmand.pause()
    yield gearmand
    gearmand.resume()


def test_submit_job_returns_by_its_timeout(paused):
    with gearman.GearmanClient([paused.address]) as client:
        with Timer() as timer:
            request = client.submit_job("echo", b"x", poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer), timer.elapsed
        assert request.timed_out and not request.complete and not request.connection_failed


def test_background_submit_and_batch_return_by_their_timeout(paused):
    with gearman.GearmanClient([paused.address]) as client:
        jobs = [{"task": "echo", "data": b"%d" % i} for i in range(1000)]
        with Timer() as timer:
            requests = client.submit_multiple_jobs(jobs, background=True, poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer), timer.elapsed
        assert all(r.timed_out and not r.complete for r in requests)
        with Timer() as timer:
            client.wait_until_jobs_completed(requests, poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer)


def test_status_and_echo_raise_by_their_timeout(paused):
    with gearman.GearmanClient([paused.address]) as client:
        with Timer() as timer, pytest.raises(errors.InvalidClientState, match="in time"):
            client.echo(b"x", poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer)
        with Timer() as timer, pytest.raises(errors.InvalidClientState, match=paused.address):
            client.get_job_status_by_handle("H:host:1", poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer)
        with Timer() as timer, pytest.raises(errors.InvalidClientState):
            client.get_job_status_by_unique("some-unique", poll_timeout=TIMEOUT)
        assert returned_by_timeout(timer)


@pytest.mark.parametrize("method", ["ping_server", "get_status", "get_workers", "get_version",
                                    "get_pid", "get_jobs"])
def test_admin_commands_raise_by_their_timeout(paused, method):
    with gearman.GearmanAdminClient([paused.address], poll_timeout=TIMEOUT) as admin:
        with Timer() as timer, pytest.raises(errors.InvalidAdminClientState) as info:
            getattr(admin, method)()
        assert returned_by_timeout(timer), timer.elapsed
        assert paused.address in str(info.value)


def test_worker_keeps_polling_and_stops_promptly(paused, thread_workers):
    worker = gearman.GearmanWorker([paused.address])
    worker.register_task("echo", lambda job: job.data)
    polls = []
    worker.after_poll = lambda any_activity: polls.append(time.monotonic()) or True
    runner = thread_workers(worker, poll_timeout=0.2)
    # after_poll keeps its rhythm: nothing blocks on the frozen server.
    assert wait_for(lambda: len(polls) >= 3, 2)
    assert cpu_used_during(1.0) < 0.2
    with Timer() as timer:
        assert runner.stop(timeout=5)
    assert timer.elapsed < 2


def test_everything_works_again_after_resume(paused):
    with gearman.GearmanClient([paused.address]) as client:
        request = client.submit_job("echo", b"queued while frozen", poll_timeout=TIMEOUT)
        assert request.timed_out
        paused.resume()
        client.wait_until_jobs_completed([request], poll_timeout=10)
        assert request.state == JOB_COMPLETE and request.result == b"queued while frozen"
        assert client.submit_job("echo", b"after", poll_timeout=10).result == b"after"
