"""SIGKILL of gearmand at the worst moments, and a restart on the same port.

Each time: the client returns promptly with ``connection_failed`` on exactly the
requests the dead server held, the worker reconnects and serves again, the admin
client raises a clear error, and nothing is left spinning.
"""
from __future__ import annotations

import signal
import threading
import time

import pytest

import gearman
from gearman import errors
from gearman.constants import JOB_COMPLETE, JOB_CREATED, JOB_UNKNOWN

from faultkit import cpu_used_during, wait_for

pytestmark = pytest.mark.gearmand

#: A call that loses its server must return this fast (its own timeout is far longer).
PROMPT = 2.0
#: CPU seconds a process may use in one idle second while a server is down.
IDLE_CPU = 0.2


def run_in_thread(target, *args, **kwargs):
    """Run ``target`` in a thread; return (thread, box) where box gets result/error/elapsed."""
    box = {}

    def body():
        start = time.monotonic()
        try:
            box["result"] = target(*args, **kwargs)
        except BaseException as exc:  # handed to the test
            box["error"] = exc
        box["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def tracked(client):
    """The requests ``client`` sends, visible to the test while the call runs."""
    requests = []
    original = client.send_job_request

    def keep(request, *args, **kwargs):
        requests.append(request)
        original(request, *args, **kwargs)

    client.send_job_request = keep
    return requests


def count(requests, predicate):
    return sum(1 for r in list(requests) if predicate(r))


def test_kill_while_background_jobs_are_submitted(gearmand, thread_baseline, fault_figures):
    """Requests acknowledged before the kill stay complete; exactly the others fail."""
    client = gearman.GearmanClient([gearmand.address])
    jobs = [{"task": "never_served", "data": b"%d" % i} for i in range(30000)]
    requests = tracked(client)
    thread, box = run_in_thread(client.submit_multiple_jobs, jobs, background=True,
                                poll_timeout=30)
    assert wait_for(lambda: count(requests, lambda r: r.state == JOB_CREATED) >= 500, 10)
    gearmand.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(30)
    assert time.monotonic() - killed_at < PROMPT
    assert "error" not in box, box.get("error")
    result = box["result"]
    acknowledged = [r for r in result if r.state == JOB_CREATED]
    failed = [r for r in result if r.connection_failed]
    assert len(acknowledged) >= 500 and failed, (len(acknowledged), len(failed))
    assert len(acknowledged) + len(failed) == len(jobs)
    assert all(r.complete and not r.connection_failed for r in acknowledged)
    assert all(r.state == JOB_UNKNOWN and not r.complete for r in failed)
    assert not any(r.timed_out for r in result)
    client.close()
    assert thread_baseline() == []
    fault_figures["kill_during_background_submit"] = {
        "jobs": len(jobs), "acknowledged": len(acknowledged), "reported_failed": len(failed),
        "missing": len(jobs) - len(acknowledged) - len(failed)}


def test_kill_while_foreground_jobs_are_submitted_and_served(gearmand, worker_processes,
                                                            fault_figures):
    """Foreground jobs that finished keep their result; all others fail at once."""
    worker_processes(gearmand.address)
    client = gearman.GearmanClient([gearmand.address])
    warm = client.submit_job("echo", b"warm", poll_timeout=10)
    assert warm.state == JOB_COMPLETE
    jobs = [{"task": "echo", "data": b"%d" % i} for i in range(30000)]
    requests = tracked(client)
    thread, box = run_in_thread(client.submit_multiple_jobs, jobs, poll_timeout=60)
    assert wait_for(lambda: count(requests, lambda r: r.state == JOB_COMPLETE) >= 500, 20)
    gearmand.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(60)
    assert time.monotonic() - killed_at < PROMPT
    result = box["result"]
    done = [r for r in result if r.state == JOB_COMPLETE]
    failed = [r for r in result if r.connection_failed]
    assert done and failed, (len(done), len(failed))
    assert len(done) + len(failed) == len(jobs)
    assert all(r.result == r.job.data for r in done)
    assert all(r.state == JOB_UNKNOWN and not r.complete for r in failed)
    client.close()
    fault_figures["kill_during_foreground_jobs"] = {
        "jobs": len(jobs), "completed": len(done), "reported_failed": len(failed),
        "missing": len(jobs) - len(done) - len(failed)}


def test_kill_while_a_foreground_job_runs(gearmand, thread_workers, thread_baseline):
    started, release = threading.Event(), threading.Event()

    def slow(job):
        started.set()
        release.wait(10)
        return b"late"

    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("slow", slow)
    worker.register_task("echo", lambda job: job.data)
    thread_workers(worker)
    client = gearman.GearmanClient([gearmand.address])
    thread, box = run_in_thread(client.submit_job, "slow", b"x", poll_timeout=30)
    assert started.wait(10)
    gearmand.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(PROMPT + 1)
    assert not thread.is_alive() and "error" not in box, box
    assert time.monotonic() - killed_at < PROMPT
    request = box["result"]
    assert request.connection_failed and request.state == JOB_UNKNOWN and not request.timed_out
    release.set()  # its WORK_COMPLETE has nowhere to go: logged, not raised
    assert cpu_used_during(1.0) < IDLE_CPU  # worker backing off, client idle: no spin
    gearmand.restart()
    again = client.submit_job("echo", b"after restart", poll_timeout=15)
    assert again.state == JOB_COMPLETE and again.result == b"after restart"
    client.close()


def test_kill_while_a_worker_sends_work_data(gearmand, thread_workers):
    streaming, sent, failures = threading.Event(), [], []

    def chatty(worker, job):
        streaming.set()
        for i in range(300):
            try:
                worker.send_job_data(job, b"part %d" % i)
            except Exception as exc:  # the contract: a dead server is not the callback's problem
                failures.append(exc)
            sent.append(i)
            time.sleep(0.01)
        return b"done"

    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("chatty", chatty)
    worker.register_task("echo", lambda job: job.data)
    runner = thread_workers(worker)
    client = gearman.GearmanClient([gearmand.address])
    thread, box = run_in_thread(client.submit_job, "chatty", b"x", poll_timeout=30)
    assert streaming.wait(10)
    assert wait_for(lambda: len(sent) >= 20, 5)
    gearmand.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(PROMPT + 1)
    assert time.monotonic() - killed_at < PROMPT
    request = box["result"]
    assert request.connection_failed and not request.complete
    assert len(request.data_updates) >= 10  # what came before the kill was kept
    assert list(request.data_updates) == [b"part %d" % i for i in range(len(request.data_updates))]
    assert failures == []
    assert wait_for(lambda: len(sent) == 300, 10)  # the callback ran to its end
    gearmand.restart()
    again = client.submit_job("echo", b"served again", poll_timeout=15)
    assert again.result == b"served again"
    assert runner.thread.is_alive() and runner.errors == []
    client.close()


def test_kill_while_an_admin_command_waits(gearmand, thread_baseline):
    admin = gearman.GearmanAdminClient([gearmand.address], poll_timeout=30)
    assert admin.get_pid() == gearmand.pid
    gearmand.pause()  # the command is sent and waits for an answer that never comes
    thread, box = run_in_thread(admin.get_status)
    # Sent and waiting: the handler holds the query.
    assert wait_for(lambda: any(h._queries for h in list(admin.server_pool.live().values())), 5)
    assert thread.is_alive()
    gearmand.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(PROMPT + 1)
    assert time.monotonic() - killed_at < PROMPT
    error = box.get("error")
    assert isinstance(error, errors.ConnectionError), box
    assert gearmand.address in str(error) and "status" in str(error)
    # Down: a clear error at once, not a hang.
    start = time.monotonic()
    with pytest.raises(errors.ConnectionError, match=gearmand.address.split(":")[1]):
        admin.get_version()
    assert time.monotonic() - start < PROMPT
    gearmand.restart()
    assert admin.get_pid() == gearmand.pid  # reconnects by itself
    admin.close()
    assert thread_baseline() == []


def test_worker_process_reconnects_after_each_of_several_restarts(gearmand, worker_processes):
    worker = worker_processes(gearmand.address)
    client = gearman.GearmanClient([gearmand.address])
    for round_number in range(3):
        request = client.submit_job("echo", b"round %d" % round_number, poll_timeout=15)
        assert request.result == b"round %d" % round_number
        gearmand.kill(signal.SIGKILL)
        assert cpu_used_during(0.5, worker.pid) < IDLE_CPU
        gearmand.restart()
    request = client.submit_job("echo", b"last", poll_timeout=15)
    assert request.result == b"last"
    client.close()


def test_worker_started_before_its_server(gearmand_factory, worker_processes, tmp_path):
    """Start order reversed: the worker waits for the server, then serves."""
    from gearman.testing import GearmandProcess, free_port

    port = free_port()
    worker = worker_processes(f"127.0.0.1:{port}")
    assert cpu_used_during(1.0, worker.pid) < IDLE_CPU  # retrying with backoff, not spinning
    server = GearmandProcess(port=port)
    try:
        server.start()
        client = gearman.GearmanClient([server.address])
        start = time.monotonic()
        request = client.submit_job("echo", b"late server", poll_timeout=15)
        assert request.result == b"late server"
        assert time.monotonic() - start < 5  # the worker's backoff is capped at 2 s
        client.close()
    finally:
        server.stop()


def test_client_created_before_its_server(tmp_path):
    from gearman.testing import GearmandProcess, free_port

    port = free_port()
    client = gearman.GearmanClient([f"127.0.0.1:{port}"])
    start = time.monotonic()
    request = client.submit_job("echo", b"x", poll_timeout=10)
    assert request.connection_failed and time.monotonic() - start < PROMPT
    with GearmandProcess(port=port) as server:
        admin = gearman.GearmanAdminClient([server.address], poll_timeout=5)
        assert admin.get_pid() == server.pid
        admin.close()
        request = client.submit_job("echo", b"x", background=True, poll_timeout=10)
        assert request.state == JOB_CREATED
    client.close()


def test_idle_connections_survive_a_restart_without_failing_a_call(gearmand, worker_processes):
    """A server restarted while client and admin sit idle: the next call of each
    notices the dead socket before using it, reconnects and succeeds first time."""
    worker_processes(gearmand.address)
    client = gearman.GearmanClient([gearmand.address])
    admin = gearman.GearmanAdminClient([gearmand.address], poll_timeout=5)
    assert client.submit_job("echo", b"1", poll_timeout=10).result == b"1"
    assert client.echo(b"e1") == b"e1" and admin.get_pid() == gearmand.pid
    gearmand.kill(signal.SIGKILL)
    gearmand.restart()
    assert admin.get_pid() == gearmand.pid
    assert client.echo(b"e2") == b"e2"
    gearmand.kill(signal.SIGKILL)
    gearmand.restart()
    request = client.submit_job("echo", b"2", poll_timeout=10)
    assert request.result == b"2" and request.connection_attempts == 1
    client.close()
    admin.close()
