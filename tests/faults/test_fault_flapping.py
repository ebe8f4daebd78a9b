"""Two servers, one flapping (SIGKILL, restart) every second for 30 s while
10,000 jobs run: every job completes or is reported failed, none is missing,
and a job runs twice only when the client resubmitted it (max_retries)."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import gearman
from gearman.constants import JOB_COMPLETE

from faultkit import executions_by_unique

pytestmark = pytest.mark.gearmand

JOBS = int(os.environ.get("GEARMAN_FLAP_JOBS", "10000"))
SECONDS = float(os.environ.get("GEARMAN_FLAP_SECONDS", "30"))
BATCH = 100
MAX_RETRIES = 2


class Flapper(threading.Thread):
    """Kills a gearmand with SIGKILL and restarts it on its port, once a second."""

    def __init__(self, server, period=1.0, down=0.5):
        super().__init__(daemon=True)
        self.server, self.period, self.down = server, period, down
        self.flaps = 0
        #: restarts that failed and were tried again (another process on this busy
        #: machine can hold the freed port for a moment, as a connection's source port)
        self.restart_failures = []
        self.errors = []
        self.stop_event = threading.Event()

    def run(self):
        try:
            while not self.stop_event.wait(self.period - self.down):
                self.server.kill(signal.SIGKILL)
                self.flaps += 1
                if self.stop_event.wait(self.down):
                    break
                self.restart()
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)
        finally:
            if not self.server.is_running():
                self.restart()

    def restart(self, attempts=20):
        for _ in range(attempts):
            try:
                self.server.restart()
                return
            except RuntimeError as exc:
                self.restart_failures.append(str(exc).splitlines()[0])
                time.sleep(0.1)
        raise RuntimeError(f"gearmand would not restart: {self.restart_failures[-3:]}")

    def stop(self):
        self.stop_event.set()
        self.join(30)


def test_flapping_server_loses_no_job(gearmand_factory, worker_processes, fault_figures):
    stable, flappy = gearmand_factory(), gearmand_factory()
    hosts = [stable.address, flappy.address]
    workers = [worker_processes(hosts) for _ in range(2)]
    client = gearman.GearmanClient(hosts)
    flapper = Flapper(flappy)
    batches = [[{"task": "record", "data": b"%d" % i, "unique": f"flap-{i}"}
                for i in range(start, min(start + BATCH, JOBS))]
               for start in range(0, JOBS, BATCH)]
    requests = []
    flapper.start()
    started = time.monotonic()
    try:
        for number, batch in enumerate(batches):
            # Spread the jobs over the flapping period, so every phase of it is hit.
            delay = started + number * SECONDS / len(batches) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            requests += client.submit_multiple_jobs(batch, max_retries=MAX_RETRIES,
                                                    poll_timeout=30)
    finally:
        flapper.stop()
    elapsed = time.monotonic() - started
    assert not flapper.errors, flapper.errors
    client.close()

    completed = [r for r in requests if r.state == JOB_COMPLETE]
    failed = [r for r in requests if r.connection_failed]
    missing = [r for r in requests if r.state != JOB_COMPLETE and not r.connection_failed]
    assert len(requests) == JOBS
    assert missing == [], missing[:5]  # nothing silently lost, nothing timed out
    assert all(r.result == r.job.data for r in completed)
    # A worker logs a job before it returns the result: every completed job is counted.
    runs = executions_by_unique(workers)
    never_ran = [r for r in completed if runs.get(r.job.unique, 0) == 0]
    assert never_ran == []
    # A job runs more than once only if the client sent it more than once.
    too_many = [(r.job.unique, runs[r.job.unique], r.connection_attempts) for r in requests
                if runs.get(r.job.unique, 0) > r.connection_attempts]
    assert too_many == []
    twice = [r for r in requests if runs.get(r.job.unique, 0) > 1]
    assert flapper.flaps >= SECONDS / 2, flapper.flaps
    fault_figures["flapping"] = {
        "jobs": JOBS, "seconds": round(elapsed, 1), "flaps": flapper.flaps,
        "completed": len(completed), "reported_failed": len(failed), "missing": len(missing),
        "resubmitted": sum(1 for r in requests if r.connection_attempts > 1),
        "ran_twice_after_client_resubmit": len(twice), "max_retries": MAX_RETRIES,
        "restart_failures": flapper.restart_failures,
    }
