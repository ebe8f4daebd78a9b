"""One benchmark cell in a fresh process: one library, one role, one measurement.

The orchestrator (``run.py``) starts this script once per (library, scenario,
repetition), so the peak RSS it reports (``ru_maxrss``) belongs to that cell
alone.  Only the library under test is imported: pygearman and this project are
both the package ``gearman``, so run.py puts pygearman first on PYTHONPATH for
its cells.

Roles (``--role``):

``client``  time one client scenario; print one JSON line with the result.
``worker``  build the library's worker, print ``ready``, wait for a line on
            stdin, register ``--task`` and work until killed.
``idle``    submit a foreground job nobody can run, print ``waiting`` and block
            in the library's wait (run.py measures the CPU it burns).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from typing import Any, Callable, List, Optional

from aio_libs import ASYNC_LIBRARIES
from bare import Bare

#: Seconds any single wait in a cell may take before the cell counts as failed.
WAIT_LIMIT = 900.0


def peak_rss_kib() -> int:
    """Peak RSS of this process image, in KiB.  (Not ``ru_maxrss``: after a vfork +
    exec it starts from the parent's peak, which would hide small numbers.)"""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- the libraries
class TwoXClient:
    """The client calls both python-gearman 2.x APIs share (ours and pygearman)."""

    client: Any

    def sequential(self, task: str, payloads: List[bytes]) -> List[Any]:
        submit = self.client.submit_job
        return [submit(task, data, poll_timeout=WAIT_LIMIT).result for data in payloads]

    def batch(self, task: str, payloads: List[bytes]) -> List[Any]:
        jobs = [{"task": task, "data": data} for data in payloads]
        requests = self.client.submit_multiple_jobs(jobs, poll_timeout=WAIT_LIMIT)
        return [request.result for request in requests]

    def background(self, task: str, payloads: List[bytes]) -> int:
        jobs = [{"task": task, "data": data} for data in payloads]
        requests = self.client.submit_multiple_jobs(jobs, background=True,
                                                    wait_until_complete=False,
                                                    poll_timeout=WAIT_LIMIT)
        return sum(1 for request in requests if request.job.handle)

    def wait_forever(self, task: str) -> None:
        self.client.submit_job(task, b"never done", poll_timeout=3600)


class Ours(TwoXClient):
    """This project's gearman package."""

    name = "gearman"

    def __init__(self, address: str) -> None:
        import gearman
        self.gearman = gearman
        self.address = address
        self.client: Any = None

    def connect(self) -> None:
        self.client = self.gearman.GearmanClient([self.address])
        self.client.echo(b"warm-up", poll_timeout=10)  # connect outside the timing

    def work(self, task: str, ready: Callable[[], None]) -> None:
        worker = self.gearman.GearmanWorker([self.address])
        worker.establish_worker_connections()
        ready()
        worker.register_task(task, lambda job: job.data)
        worker.work(poll_timeout=None)


class PyGearman(TwoXClient):
    """pygearman (python-gearman 2.x for Python 3).  Its waits end only with an
    explicit poll_timeout (None means "do not wait for completion"), and its
    worker needs the task name as bytes to match what the server sends back."""

    name = "pygearman"

    def __init__(self, address: str) -> None:
        import gearman
        if not hasattr(gearman, "compat"):
            raise RuntimeError(f"expected pygearman, imported {gearman.__file__}")
        self.gearman = gearman
        self.address = address
        self.client: Any = None

    def connect(self) -> None:
        self.client = self.gearman.GearmanClient([self.address])
        # Connect outside the timing: one tiny background job to a task nobody runs.
        self.client.submit_job("bench-warm-up", b"x", background=True,
                               wait_until_complete=False, poll_timeout=10)

    def work(self, task: str, ready: Callable[[], None]) -> None:
        worker = self.gearman.GearmanWorker([self.address])
        ready()
        # Registered before work() connects: a CAN_DO sent on a live connection is
        # not followed by a GRAB, and the jobs already queued would wait for ever.
        worker.register_task(task.encode(), lambda worker, job: job.data)
        worker.work(poll_timeout=3600)


class Gear:
    """gear (OpenStack).  submitJob blocks until JOB_CREATED, so jobs are submitted
    one at a time; completion is signalled from its poll thread (we count
    WORK_COMPLETE/FAIL/EXCEPTION in a subclass instead of polling job.complete)."""

    name = "gear"

    def __init__(self, address: str) -> None:
        import gear
        self.gear = gear
        self._nodelay()
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.client: Any = None

    def _nodelay(self) -> None:
        """gear leaves Nagle on: a worker's WORK_COMPLETE + GRAB_JOB then wait for a
        delayed ACK, about 45 ms a job (22 jobs/s).  Give it TCP_NODELAY, as the
        other two libraries set, so it shows its best."""
        import socket
        connect = self.gear.Connection.connect

        def connect_nodelay(conn: Any) -> None:
            connect(conn)
            if conn.conn is not None:
                conn.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        self.gear.Connection.connect = connect_nodelay

    def connect(self) -> None:
        gear = self.gear

        class Client(gear.Client):
            done = 0
            target = -1
            event = threading.Event()

            def _finished(self) -> None:
                self.done += 1
                if self.done == self.target:
                    self.event.set()

            def handleWorkComplete(self, packet: Any) -> Any:
                job = super().handleWorkComplete(packet)
                self._finished()
                return job

            def handleWorkFail(self, packet: Any) -> Any:
                job = super().handleWorkFail(packet)
                self._finished()
                return job

            def handleWorkException(self, packet: Any) -> Any:
                job = super().handleWorkException(packet)
                self._finished()
                return job

        self.client = Client("bench")
        self.client.addServer(self.host, self.port)
        self.client.waitForServer(10)

    def _expect(self, count: int) -> None:
        self.client.done = 0
        self.client.target = count
        self.client.event.clear()

    def _wait(self) -> None:
        if not self.client.event.wait(WAIT_LIMIT):
            raise TimeoutError(f"gear: {self.client.done} of {self.client.target} jobs done")

    def sequential(self, task: str, payloads: List[bytes]) -> List[Any]:
        results = []
        for data in payloads:
            job = self.gear.Job(task, data)
            self._expect(1)
            self.client.submitJob(job, timeout=WAIT_LIMIT)
            self._wait()
            results.append(b"".join(job.data))
        return results

    def batch(self, task: str, payloads: List[bytes]) -> List[Any]:
        jobs = [self.gear.Job(task, data) for data in payloads]
        self._expect(len(jobs))
        for job in jobs:
            self.client.submitJob(job, timeout=WAIT_LIMIT)
        self._wait()
        return [b"".join(job.data) for job in jobs]

    def background(self, task: str, payloads: List[bytes]) -> int:
        jobs = [self.gear.Job(task, data) for data in payloads]
        for job in jobs:
            self.client.submitJob(job, background=True, timeout=WAIT_LIMIT)
        return sum(1 for job in jobs if job.handle)

    def wait_forever(self, task: str) -> None:
        self._expect(1)
        self.client.submitJob(self.gear.Job(task, b"never done"), timeout=60)
        self.client.event.wait(3600)

    def work(self, task: str, ready: Callable[[], None]) -> None:
        worker = self.gear.Worker("bench-worker")
        worker.addServer(self.host, self.port)
        worker.waitForServer(10)
        ready()
        worker.registerFunction(task)
        while True:
            job = worker.getJob()
            job.sendWorkComplete(job.arguments)


LIBRARIES = {cls.name: cls for cls in (Ours, PyGearman, Gear, Bare, *ASYNC_LIBRARIES)}


# ---------------------------------------------------------------- the roles
def make_payloads(count: int, size: int) -> List[bytes]:
    """Distinct small payloads (so results can be checked one by one), or one
    shared ``size``-byte object for big ones (so the harness holds one copy)."""
    if size <= 0:
        return [b"job-%07d" % i for i in range(count)]
    big = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    return [big] * count


def windows(lib: Any, task: str, payloads: List[bytes], size: int) -> int:
    """Submit ``size`` jobs at a time, each batch waited for and its results
    checked and dropped before the next: what a streaming caller holds."""
    done = 0
    for start in range(0, len(payloads), size):
        chunk = payloads[start:start + size]
        done += sum(1 for got, sent in zip(lib.batch(task, chunk), chunk) if got == sent)
    return done


def run_client(lib: Any, args: argparse.Namespace) -> dict:
    payloads = make_payloads(args.jobs, args.size)
    lib.connect()
    rss_before = peak_rss_kib()
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    if args.mode == "sequential":
        outcome: Any = lib.sequential(args.task, payloads)
    elif args.mode == "batch":
        outcome = lib.batch(args.task, payloads)
    elif args.mode == "gather":  # many awaits at once; a blocking library runs its batch
        outcome = (lib.gather if hasattr(lib, "gather") else lib.batch)(args.task, payloads)
    elif args.mode == "background":
        outcome = lib.background(args.task, payloads)
    elif args.mode == "windows":
        outcome = windows(lib, args.task, payloads, args.window)
    else:
        raise SystemExit(f"unknown mode {args.mode!r}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started  # all threads (gear polls in its own)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    rss = peak_rss_kib()
    if args.mode in ("background", "windows"):
        done = outcome
    else:
        done = sum(1 for got, sent in zip(outcome, payloads) if got == sent)
    result = {"elapsed": elapsed, "cpu_s": cpu, "jobs": args.jobs, "done": done,
              "ok": done == args.jobs,
              "peak_rss_kib": rss, "rss_before_kib": rss_before}
    if not result["ok"]:
        result["error"] = (f"{done} of {args.jobs} jobs came back right "
                           f"(at {args.jobs / elapsed:,.0f} jobs/s)")
    return result


def run_worker(lib: Any, args: argparse.Namespace) -> None:
    def ready() -> None:
        print("ready", flush=True)
        sys.stdin.readline()

    if args.sleep_ms or args.concurrency > 1:  # the asyncio workers' I/O-bound jobs
        lib.work(args.task, ready, sleep_ms=args.sleep_ms, concurrency=args.concurrency)
    else:
        lib.work(args.task, ready)


def run_idle(lib: Any, args: argparse.Namespace) -> None:
    lib.connect()
    print("waiting", flush=True)
    lib.wait_forever(args.task)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", choices=sorted(LIBRARIES), required=True)
    parser.add_argument("--role", choices=("client", "worker", "idle"), default="client")
    parser.add_argument("--address", required=True, help="gearmand host:port")
    parser.add_argument("--task", default="echo")
    parser.add_argument("--mode", choices=("sequential", "batch", "gather", "background",
                                           "windows"), default="batch")
    parser.add_argument("--sleep-ms", type=int, default=0,
                        help="worker: each job awaits this long (asyncio workers)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="worker: jobs at once (asyncio workers)")
    parser.add_argument("--window", type=int, default=10, help="jobs per batch in windows mode")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=0, help="payload bytes (0: small, distinct)")
    parser.add_argument("--profile", help="write a cProfile dump of the timed part here")
    args = parser.parse_args(argv)
    lib = LIBRARIES[args.lib](args.address)
    if args.role == "worker":
        run_worker(lib, args)
    elif args.role == "idle":
        run_idle(lib, args)
    else:
        try:
            result = run_client(lib, args)
        except Exception as exc:  # reported as a failed cell, not a crash of the run
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "peak_rss_kib": peak_rss_kib()}
        print(json.dumps(result), flush=True)
        os._exit(0)  # skip interpreter teardown (gear's threads, big heaps): not measured


if __name__ == "__main__":
    main()
