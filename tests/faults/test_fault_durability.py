"""Background jobs and gearmand's persistent queue (``-q libsqlite3``).

What the library promises is only "acknowledged" (JOB_CREATED); whether an
acknowledged background job survives a server crash is the server's queue's
business.  These tests measure both sides: with the sqlite queue nothing
acknowledged is lost across SIGKILLs, without it everything queued is.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading

import pytest

import gearman
from gearman.constants import JOB_CREATED
from gearman.testing import GearmandProcess

from faultkit import executions_by_unique, wait_for

pytestmark = pytest.mark.gearmand

JOBS = 10000


@pytest.fixture
def queue_dir():
    # tmpfs when there is one: the test is about a crashed *process* (SIGKILL), which
    # loses nothing the kernel already has, and 10,000 fsyncs on disk take ~25 s.
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix="gearman-queue-", dir=base)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sqlite_gearmand(queue_dir):
    db = os.path.join(queue_dir, "queue.sqlite3")
    server = GearmandProcess(extra_args=["-q", "libsqlite3", f"--libsqlite3-db={db}"])
    server.start()
    yield server
    server.stop()


def queued(server, task="record"):
    for line in server.admin("status").splitlines():
        fields = line.split("\t")
        if fields[0] == task:
            return int(fields[1])
    return 0


def submit_background(client, uniques, **kwargs):
    jobs = [{"task": "record", "data": unique.encode(), "unique": unique} for unique in uniques]
    return client.submit_multiple_jobs(jobs, background=True, **kwargs)


def test_acknowledged_background_jobs_survive_sigkill_with_sqlite_queue(
        sqlite_gearmand, worker_processes, fault_figures):
    uniques = [f"durable-{i}" for i in range(JOBS)]
    with gearman.GearmanClient([sqlite_gearmand.address]) as client:
        requests = submit_background(client, uniques, poll_timeout=120)
    assert all(r.state == JOB_CREATED and r.complete for r in requests)  # all acknowledged
    sqlite_gearmand.kill(signal.SIGKILL)
    sqlite_gearmand.restart()
    assert queued(sqlite_gearmand) == JOBS  # reloaded from sqlite
    workers = [worker_processes(sqlite_gearmand.address) for _ in range(2)]
    # A second SIGKILL in the middle of the draining, for good measure.
    assert wait_for(lambda: len(executions_by_unique(workers)) >= JOBS // 3, 60)
    sqlite_gearmand.kill(signal.SIGKILL)
    sqlite_gearmand.restart()
    assert wait_for(lambda: len(executions_by_unique(workers)) == JOBS, 90)
    runs = executions_by_unique(workers)
    assert set(runs) == set(uniques)  # every acknowledged job done, nothing else
    assert wait_for(lambda: queued(sqlite_gearmand) == 0, 10)
    fault_figures["durability_sqlite"] = {
        "acknowledged": JOBS, "sigkills": 2, "done": len(runs), "lost": JOBS - len(runs),
        # A job finished by a worker but not yet deleted from sqlite at the kill runs again.
        "ran_twice": sum(1 for n in runs.values() if n > 1),
    }


def test_sigkill_during_submission_with_sqlite_queue(sqlite_gearmand, worker_processes,
                                                     fault_figures):
    """Every acknowledged job runs after the restart; a request reported failed may
    or may not have reached the queue (the server can die before its JOB_CREATED)."""
    uniques = [f"mid-{i}" for i in range(JOBS)]
    client = gearman.GearmanClient([sqlite_gearmand.address])
    sent = []
    original = client.send_job_request
    client.send_job_request = lambda request, *args: (sent.append(request),
                                                      original(request, *args))
    box = {}
    thread = threading.Thread(target=lambda: box.update(
        r=submit_background(client, uniques, poll_timeout=120)), daemon=True)
    thread.start()
    assert wait_for(lambda: sum(r.state == JOB_CREATED for r in list(sent)) >= JOBS // 4, 60)
    sqlite_gearmand.kill(signal.SIGKILL)
    thread.join(30)
    requests = box["r"]
    acknowledged = {r.job.unique for r in requests if r.state == JOB_CREATED}
    failed = {r.job.unique for r in requests if r.connection_failed}
    assert acknowledged and failed and len(acknowledged) + len(failed) == JOBS
    sqlite_gearmand.restart()
    workers = [worker_processes(sqlite_gearmand.address) for _ in range(2)]
    assert wait_for(lambda: queued(sqlite_gearmand) == 0, 60)
    runs = executions_by_unique(workers)
    assert acknowledged <= set(runs)
    assert set(runs) <= set(uniques)
    client.close()
    fault_figures["durability_sqlite_mid_submit"] = {
        "acknowledged": len(acknowledged), "reported_failed": len(failed),
        "acknowledged_lost": len(acknowledged - set(runs)),
        "reported_failed_but_ran": len(failed & set(runs)),
    }


def test_background_jobs_die_with_a_server_without_persistent_queue(gearmand, fault_figures):
    """The other side of the promise: acknowledged is not durable without a queue."""
    with gearman.GearmanClient([gearmand.address]) as client:
        requests = submit_background(client, [f"volatile-{i}" for i in range(1000)],
                                     poll_timeout=30)
    assert all(r.state == JOB_CREATED for r in requests)
    assert queued(gearmand) == 1000
    gearmand.kill(signal.SIGKILL)
    gearmand.restart()
    assert queued(gearmand) == 0
    fault_figures["no_queue"] = {"acknowledged": 1000, "after_sigkill": 0}
