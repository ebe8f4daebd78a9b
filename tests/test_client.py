"""GearmanClient against a real gearmand and real GearmanWorkers.

Workers run in threads of this process (``Workers.start``) or, for the scale
test, as subprocesses (``Workers.spawn``).  Every wait is bounded.
"""
from __future__ import annotations

import gc
import math
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
import zlib
from typing import Any, Callable, Dict, Iterator, List, Sequence

import pytest

import gearman
from gearman import errors
from gearman.client_handler import GearmanClientCommandHandler
from gearman.constants import (
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
)
from gearman.testing import GearmandProcess, free_port
from readme_encoders import JSONDataEncoder, PickleDataEncoder

pytestmark = pytest.mark.gearmand

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER_POLL = 0.5


# -- helpers ----------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
               ) -> None:
    """Poll something only a server can tell us (admin state), for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def pump_until(client: gearman.GearmanClient, requests: Sequence[Any],
               predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the client read what the server sends until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; requests: {requests}")
        client.wait_until_jobs_completed(list(requests), poll_timeout=0.05)


class Gate:
    """Lets a worker callback block until the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def block(self) -> None:
        self.calls += 1
        self.started.set()
        assert self.release.wait(60), "gate never released"


WORKER_SCRIPT = r"""
import sys
import gearman
worker = gearman.GearmanWorker([sys.argv[1]])
worker.register_task(sys.argv[2], lambda job: job.data[::-1] + b"!")
worker.work(poll_timeout=1.0)
"""


class Workers:
    """Worker threads and processes for one test; all stopped at teardown."""

    def __init__(self) -> None:
        self.threads: List[Any] = []
        self.gates: List[Gate] = []
        self.procs: List[subprocess.Popen] = []

    def gate(self) -> Gate:
        gate = Gate()
        self.gates.append(gate)
        return gate

    def start(self, hosts: Any, tasks: Dict[str, Callable[..., Any]],
              worker_class: Any = gearman.GearmanWorker) -> gearman.GearmanWorker:
        worker = worker_class(hosts if isinstance(hosts, list) else [hosts])
        for name, callback in tasks.items():
            worker.register_task(name, callback)
        thread = threading.Thread(target=worker.work, args=(WORKER_POLL,), daemon=True,
                                  name=f"worker-{'-'.join(tasks)}")
        thread.start()
        self.threads.append((worker, thread))
        return worker

    def spawn(self, address: str, task: str, count: int) -> None:
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for _ in range(count):
            self.procs.append(subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, address, task],
                                               env=env, stdin=subprocess.DEVNULL))

    def close(self) -> None:
        for gate in self.gates:
            gate.release.set()
        for worker, _ in self.threads:
            worker.shutdown()
        for _, thread in self.threads:
            thread.join(15)
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        stuck = [thread.name for _, thread in self.threads if thread.is_alive()]
        assert not stuck, f"worker threads did not stop: {stuck}"


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers()
    yield pool
    pool.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., Any]]:
    made: List[Any] = []

    def factory(hosts: Any, client_class: Any = gearman.GearmanClient, **options: Any) -> Any:
        client = client_class(hosts if isinstance(hosts, list) else [hosts], **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def unstarted_server() -> Iterator[GearmandProcess]:
    """A gearmand with a fixed free port that the test starts itself (later)."""
    server = GearmandProcess(port=free_port())
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Turn a hang (README calls have no timeout) into a failure."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError("test ran longer than 120 s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def dead_address() -> str:
    """A loopback port with nothing listening: a server that is down."""
    return f"127.0.0.1:{free_port()}"


def unique_for(index: int, servers: int = 2, prefix: str = "u") -> str:
    """A unique id that the client's crc32 hash sends to server ``index`` first."""
    n = 0
    while zlib.crc32(f"{prefix}-{n}".encode()) % servers != index:
        n += 1
    return f"{prefix}-{n}"


def upper(job: Any) -> bytes:
    return job.data.upper()


# -- the seed README's client examples, in Python 3 -------------------------------------------

# The README's spelling is kept: %-formatting and super(Class, self).
def check_request_status(job_request: Any) -> None:
    if job_request.complete:
        print("Job %s finished!  Result: %s - %s" % (
            job_request.job.unique, job_request.state, job_request.result))
    elif job_request.timed_out:
        print("Job %s timed out!" % job_request.unique)
    elif job_request.connection_failed:
        print("Job %s connection failed!" % job_request.unique)


def test_readme_example_1_single_job_blocking(gearmand: GearmandProcess, workers: Workers,
                                              capsys: pytest.CaptureFixture) -> None:
    workers.start(gearmand.address, {"task_name": upper})
    # 'otherhost:4730' is a second server that cannot be reached.
    gm_client = gearman.GearmanClient([gearmand.address, dead_address()])

    completed_job_request = gm_client.submit_job("task_name", "arbitrary binary data",
                                                 wait_until_complete=True)
    check_request_status(completed_job_request)

    assert completed_job_request.result == b"ARBITRARY BINARY DATA"
    assert capsys.readouterr().out == (f"Job {completed_job_request.job.unique} finished!  "
                                       "Result: COMPLETE - b'ARBITRARY BINARY DATA'\n")
    gm_client.close()


def test_readme_example_2_high_priority_background(gearmand: GearmandProcess, workers: Workers,
                                                   capsys: pytest.CaptureFixture) -> None:
    ran = threading.Event()
    workers.start(gearmand.address, {"task_name": lambda job: (ran.set(), b"ignored")[1]})
    gm_client = gearman.GearmanClient([gearmand.address, dead_address()])

    submitted_job_request = gm_client.submit_job("task_name", "arbitrary binary data",
                                                 priority=gearman.PRIORITY_HIGH, background=True,
                                                 wait_until_complete=True)
    check_request_status(submitted_job_request)

    assert submitted_job_request.complete and submitted_job_request.state == JOB_CREATED
    assert capsys.readouterr().out == (f"Job {submitted_job_request.job.unique} finished!  "
                                       "Result: CREATED - None\n")
    assert ran.wait(10), "the background job never ran"
    gm_client.close()


@pytest.mark.parametrize("keyword", ["timeout", "poll_timeout"])
def test_readme_example_3_multiple_jobs_non_blocking(gearmand: GearmandProcess,
                                                     workers: Workers, keyword: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    workers.start(gearmand.address, {"task_name": upper, "other_task": lambda job: job.data[::-1]})
    gm_client = gearman.GearmanClient([gearmand.address])

    list_of_jobs = [dict(task="task_name", data="binary data"),
                    dict(task="other_task", data="other binary data")]
    # The heading says wait_until_complete=False (the beta API's default).
    submitted_requests = gm_client.submit_multiple_jobs(list_of_jobs, background=False,
                                                        wait_until_complete=False)
    assert all(r.state in (JOB_CREATED, JOB_COMPLETE) for r in submitted_requests)
    # (The README sleeps here to stand for "other stuff".)
    completed_requests = gm_client.wait_until_jobs_completed(submitted_requests,
                                                             **{keyword: 5.0})
    for completed_job_request in completed_requests:
        check_request_status(completed_job_request)

    assert completed_requests == submitted_requests
    assert [r.result for r in completed_requests] == [b"BINARY DATA", b"atad yranib rehto"]
    assert capsys.readouterr().out.count("finished!  Result: COMPLETE") == 2
    gm_client.close()


def test_readme_example_4_recovering_from_failed_connections(
        unstarted_server: GearmandProcess, workers: Workers) -> None:
    gm_client = gearman.GearmanClient([unstarted_server.address])

    list_of_jobs = [dict(task="task_name", data="task binary string"),
                    dict(task="other_task", data="other binary string")]
    started = time.monotonic()
    failed_requests = gm_client.submit_multiple_jobs(list_of_jobs, background=False)
    assert time.monotonic() - started < 3.0  # refused at once, not after the 5 s connect timeout

    # Our assigned requests' Gearman servers all failed.
    assert all(request.connection_failed for request in failed_requests), \
        "All connections didn't fail!"
    assert all(request.state == JOB_UNKNOWN for request in failed_requests)

    unstarted_server.start()
    gate = workers.gate()
    runs: List[bytes] = []

    def slow(job: Any) -> bytes:
        runs.append(job.data)
        gate.block()
        return b"slow: " + job.data

    # One worker per task: a worker runs one job at a time.
    workers.start(unstarted_server.address, {"task_name": upper})
    workers.start(unstarted_server.address, {"other_task": slow})
    connection = gm_client.connection_list[0]
    wait_until(lambda: gm_client.connection_is_due(connection), 6, "the reconnect backoff")

    # Our requests don't fail but one simply times out (other_task is held by the gate).
    retried_connection_failed_requests = gm_client.submit_multiple_requests(
        failed_requests, wait_until_complete=True, timeout=1.0)
    timed_out_requests = [job_request for job_request in retried_connection_failed_requests
                          if job_request.timed_out]
    assert timed_out_requests == [failed_requests[1]]
    assert failed_requests[0].result == b"TASK BINARY STRING"
    assert failed_requests[1].state == JOB_CREATED and not failed_requests[1].connection_failed

    # For our timed out requests, let's wait a little longer until they're complete.
    gate.release.set()
    retried_timed_out_requests = gm_client.submit_multiple_requests(
        timed_out_requests, wait_until_complete=True, timeout=4.0)
    assert retried_timed_out_requests == [failed_requests[1]]
    assert failed_requests[1].result == b"slow: other binary string"
    assert not failed_requests[1].timed_out
    assert runs == [b"other binary string"], "an accepted request was submitted twice"
    gm_client.close()


class LoggingPickleExampleClient(gearman.GearmanClient):
    data_encoder = PickleDataEncoder

    def wait_until_jobs_completed(self, job_requests: Any, timeout: Any = None) -> Any:
        self.log.info("Waiting for jobs to complete...")
        output_results = super(LoggingPickleExampleClient, self).wait_until_jobs_completed(  # noqa: UP008
            job_requests, timeout=timeout)
        self.log.info("Finished waiting for jobs to complete...")
        return output_results


class PickleWorker(gearman.GearmanWorker):
    data_encoder = PickleDataEncoder


def test_readme_example_5_pickle_encoder_and_logging(gearmand: GearmandProcess,
                                                     workers: Workers,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    workers.start(gearmand.address,
                  {"task_name": lambda job: {"sum": sum(job.data["numbers"]), "echo": job.data}},
                  worker_class=PickleWorker)
    gm_client = LoggingPickleExampleClient([gearmand.address])
    data = {"numbers": [1, 2, 3.5], "blob": b"\0\xff", "text": "h\u00e9"}
    caplog.set_level("INFO", logger="gearman")

    request = gm_client.submit_job("task_name", data, poll_timeout=10)
    assert request.result == {"sum": 6.5, "echo": data}
    messages = [r.getMessage() for r in caplog.records
                if r.name == "gearman.LoggingPickleExampleClient"]
    # submit_job waits through the overridable method, as in python-gearman 2.x.
    assert messages == ["Waiting for jobs to complete...",
                        "Finished waiting for jobs to complete..."]

    caplog.clear()
    requests = gm_client.submit_multiple_jobs([dict(task="task_name", data={"numbers": [n]})
                                               for n in range(3)], wait_until_complete=False,
                                              poll_timeout=10)
    done = gm_client.wait_until_jobs_completed(requests)
    assert [r.result["sum"] for r in done] == [0, 1, 2]
    assert "Finished waiting for jobs to complete..." in caplog.text
    gm_client.close()


# -- priorities --------------------------------------------------------------------------------

@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
def test_queued_high_runs_before_none_before_low(gearmand: GearmandProcess, workers: Workers,
                                                 make_client: Any, background: bool) -> None:
    client = make_client(gearmand.address)
    submitted = [(PRIORITY_LOW, "low-1"), (PRIORITY_NONE, "none-1"), (PRIORITY_HIGH, "high-1"),
                 (PRIORITY_LOW, "low-2"), (PRIORITY_HIGH, "high-2"), (PRIORITY_NONE, "none-2")]
    requests = client.submit_multiple_jobs(
        [dict(task="prio", data=name, priority=priority) for priority, name in submitted],
        background=background, wait_until_complete=False, poll_timeout=10)
    assert all(r.state == JOB_CREATED and r.background == background for r in requests)
    assert [r.priority for r in requests] == [p for p, _ in submitted]
    admin = gearman.GearmanAdminClient([gearmand.address])
    counts = {row["task"]: row for row in admin.get_priority_status()}
    assert (counts["prio"]["high"], counts["prio"]["normal"], counts["prio"]["low"]) == (2, 2, 2)
    admin.close()

    ran: List[bytes] = []
    workers.start(gearmand.address,
                  {"prio": lambda job: (ran.append(job.data), job.data + b"!")[1]})
    if background:
        wait_until(lambda: len(ran) == 6, 10, "six background jobs")
    else:
        client.wait_until_jobs_completed(requests, poll_timeout=10)
        assert [r.result for r in requests] == [name.encode() + b"!" for _, name in submitted]
    assert ran == [b"high-1", b"high-2", b"none-1", b"none-2", b"low-1", b"low-2"]


# -- updates and status ---------------------------------------------------------------------------

class StatusLogHandler(GearmanClientCommandHandler):
    """Records every WORK_STATUS as it arrives (a 2.x-style handler subclass)."""

    def recv_work_status(self, job_handle: bytes, numerator: bytes, denominator: bytes) -> None:
        super().recv_work_status(job_handle, numerator, denominator)
        self.connection_manager.status_log.append((int(numerator), int(denominator)))


class StatusLogClient(gearman.GearmanClient):
    command_handler_class = StatusLogHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status_log: List[Any] = []


def test_data_warning_and_status_updates_arrive_in_order(gearmand: GearmandProcess,
                                                         workers: Workers,
                                                         make_client: Any) -> None:
    gate = workers.gate()

    def progress(worker: Any, job: Any) -> bytes:
        worker.send_job_data(job, b"d1")
        worker.send_job_warning(job, b"w1")
        worker.send_job_status(job, 1, 4)
        worker.send_job_data(job, b"d\0 2")
        worker.send_job_warning(job, "w2 \u2713")
        worker.send_job_status(job, 2, 4)
        gate.block()
        worker.send_job_data(job, b"d3")
        worker.send_job_status(job, 3, 4)
        return b"done"

    workers.start(gearmand.address, {"progress": progress})
    client = make_client(gearmand.address, StatusLogClient)
    request = client.submit_job("progress", "x", wait_until_complete=False, poll_timeout=10)
    assert request.state == JOB_CREATED

    pump_until(client, [request], lambda: request.status.get("numerator") == 2)
    assert request.status["known"] and request.status["running"]
    # gearmand stores WORK_STATUS before forwarding it, so GET_STATUS sees it now.
    assert client.get_job_status(request, poll_timeout=5) is request
    assert (request.status["known"], request.status["running"]) == (True, True)
    assert (request.status["numerator"], request.status["denominator"]) == (2, 4)
    assert request.status["handle"] == request.job.handle
    by_handle = client.get_job_status(request.job.handle, poll_timeout=5)
    assert (by_handle["known"], by_handle["numerator"]) == (True, 2)
    assert not request.complete

    gate.release.set()
    client.wait_until_jobs_completed([request], poll_timeout=10)
    assert (request.state, request.result) == (JOB_COMPLETE, b"done")
    assert list(request.data_updates) == [b"d1", b"d\0 2", b"d3"]
    assert list(request.warning_updates) == [b"w1", "w2 \u2713".encode()]
    assert client.status_log == [(1, 4), (2, 4), (3, 4)]

    # Finished and unknown jobs read as unknown.
    client.get_job_status(request, poll_timeout=5)
    assert (request.status["known"], request.status["running"]) == (False, False)
    unknown = client.get_job_status_by_handle("H:nowhere:1", poll_timeout=5)
    assert (unknown["known"], unknown["running"], unknown["handle"]) == (False, False,
                                                                         "H:nowhere:1")
    statuses = client.get_job_statuses([request], poll_timeout=5)
    assert statuses == [request] and request.status["known"] is False


# -- unique ids -----------------------------------------------------------------------------------

class TerminalCountClient(gearman.GearmanClient):
    """Counts how often each request is reported finished."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.terminal: Dict[int, int] = {}

    def note_updated(self, request: Any) -> None:
        if request.state in (JOB_COMPLETE, JOB_FAILED):
            self.terminal[id(request)] = self.terminal.get(id(request), 0) + 1
        super().note_updated(request)


def counting_worker(runs: List[bytes]) -> Callable[..., bytes]:
    def callback(worker: Any, job: Any) -> bytes:
        runs.append(job.data)
        worker.send_job_data(job, b"progress:" + job.data)
        return job.data.upper()
    return callback


def test_equal_uniques_from_two_clients_run_once(gearmand: GearmandProcess, workers: Workers,
                                                 make_client: Any) -> None:
    first = make_client(gearmand.address, TerminalCountClient)
    second = make_client(gearmand.address, TerminalCountClient)
    r1 = first.submit_job("co", "first", unique="same-1", wait_until_complete=False,
                          poll_timeout=10)
    r2 = second.submit_job("co", "second", unique="same-1", wait_until_complete=False,
                           poll_timeout=10)
    assert r1.job.handle == r2.job.handle and r1.unique == r2.unique == "same-1"

    runs: List[bytes] = []
    workers.start(gearmand.address, {"co": counting_worker(runs)})
    first.wait_until_jobs_completed([r1], poll_timeout=10)
    second.wait_until_jobs_completed([r2], poll_timeout=10)
    assert runs == [b"first"]  # the later payload is ignored by gearmand
    for client, request in ((first, r1), (second, r2)):
        assert (request.state, request.result) == (JOB_COMPLETE, b"FIRST")
        assert list(request.data_updates) == [b"progress:first"]
        assert client.terminal == {id(request): 1}


def test_equal_uniques_on_one_connection_run_once(gearmand: GearmandProcess, workers: Workers,
                                                  make_client: Any) -> None:
    client = make_client(gearmand.address, TerminalCountClient)
    jobs = [dict(task="co", data="a", unique="dup"), dict(task="co", data="b", unique="dup"),
            dict(task="co", data="c", unique="other")]
    requests = client.submit_multiple_jobs(jobs, wait_until_complete=False, poll_timeout=10)
    assert requests[0].job.handle == requests[1].job.handle != requests[2].job.handle

    runs: List[bytes] = []
    workers.start(gearmand.address, {"co": counting_worker(runs)})
    client.wait_until_jobs_completed(requests, poll_timeout=10)
    assert sorted(runs) == [b"a", b"c"]
    assert [r.result for r in requests] == [b"A", b"A", b"C"]
    assert [list(r.data_updates) for r in requests] == [[b"progress:a"], [b"progress:a"],
                                                        [b"progress:c"]]
    assert client.terminal == {id(r): 1 for r in requests}
    handler = client.handler_for(client.connection_list[0])
    assert handler._requests_by_handle == {}

    # Coalescing lasts only while the job exists: the same unique runs again now.
    again = client.submit_job("co", "d", unique="dup", poll_timeout=10)
    assert again.result == b"D" and sorted(runs) == [b"a", b"c", b"d"]


def test_uniques_pick_the_same_server_from_every_client(gearmand_factory: Any,
                                                        make_client: Any) -> None:
    servers = [gearmand_factory(), gearmand_factory()]
    hosts = [s.address for s in servers]
    uniques = [f"job-{n}" for n in range(16)]
    jobs = [dict(task="spread", data="x", unique=u) for u in uniques]
    one, two = make_client(hosts), make_client(list(hosts))
    from_one = one.submit_multiple_jobs(jobs, background=True, poll_timeout=10)
    from_two = two.submit_multiple_jobs(jobs, background=True, poll_timeout=10)

    expected = {u: hosts[zlib.crc32(u.encode()) % 2] for u in uniques}
    for unique, a, b in zip(uniques, from_one, from_two):
        assert a.accepted_by.address == b.accepted_by.address == expected[unique]
        assert a.job.handle == b.job.handle  # coalesced on that server
    admin = gearman.GearmanAdminClient(hosts)
    for host in hosts:
        mine = {u for u in uniques if expected[u] == host}
        assert mine, "the test uniques should spread over both servers"
        assert {row["unique"] for row in admin.get_unique_jobs(server=host)} == mine
        queued = {row["task"]: row["queued"] for row in admin.get_status(server=host)}
        assert queued["spread"] == len(mine)
    admin.close()


# -- failures reported by the server or the worker -----------------------------------------------

def test_worker_exception_fails_the_request_with_its_text(gearmand: GearmandProcess,
                                                          workers: Workers,
                                                          make_client: Any) -> None:
    def boom(job: Any) -> bytes:
        raise ValueError("boom on " + job.data.decode())

    workers.start(gearmand.address, {"boom": boom, "fine": upper})
    client = make_client(gearmand.address)
    request = client.submit_job("boom", "job 1", poll_timeout=10)
    assert request.state == JOB_FAILED and request.complete
    assert not request.timed_out and not request.connection_failed
    assert isinstance(request.exception, str) and "boom on job 1" in request.exception
    assert request.result is None
    # The worker and the connection go on.
    assert client.submit_job("fine", "next", poll_timeout=10).result == b"NEXT"
    requests = client.submit_multiple_jobs([dict(task="boom", data="a"),
                                            dict(task="fine", data="b")], poll_timeout=10)
    assert [r.state for r in requests] == [JOB_FAILED, JOB_COMPLETE]


def test_error_in_place_of_job_created_fails_that_request_only(gearmand: GearmandProcess,
                                                               workers: Workers,
                                                               make_client: Any) -> None:
    admin = gearman.GearmanAdminClient([gearmand.address])
    admin.create_function("full")
    admin.send_maxqueue("full", 1)
    admin.close()
    workers.start(gearmand.address, {"fine": upper})
    client = make_client(gearmand.address)
    requests = client.submit_multiple_jobs(
        [dict(task="full", data="1"), dict(task="full", data="2"), dict(task="fine", data="3"),
         dict(task="full", data="4"), dict(task="fine", data="5")],
        wait_until_complete=False, poll_timeout=10)
    queued, refused, fine, refused_too, fine_too = requests
    client.wait_until_jobs_completed(requests[1:], poll_timeout=10)

    assert queued.state == JOB_CREATED and not queued.complete
    for request in (refused, refused_too):
        assert request.state == JOB_FAILED and request.complete and not request.connection_failed
        assert isinstance(request.exception, errors.ServerError)
        assert (request.exception.code, request.exception.text) == ("QUEUE_ERROR",
                                                                    "Job queue is full")
        assert request.exception.server == gearmand.address
    assert (fine.result, fine_too.result) == (b"3", b"5")
    assert client.connection_list[0].connected

    single = client.submit_job("full", "6", poll_timeout=10)
    assert single.state == JOB_FAILED and single.exception.code == "QUEUE_ERROR"


# -- connection failures ----------------------------------------------------------------------

def test_all_servers_down_fails_fast_then_same_requests_complete(workers: Workers,
                                                                 make_client: Any) -> None:
    ports = [free_port(), free_port()]
    client = make_client([f"127.0.0.1:{port}" for port in ports])
    jobs = [dict(task="later", data=f"job {n}") for n in range(20)]
    started = time.monotonic()
    requests = client.submit_multiple_jobs(jobs, poll_timeout=None)
    single = client.submit_job("later", "single", max_retries=3)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"took {elapsed:.3f}s on loopback (refused: no 5 s connect timeout)"
    for request in requests + [single]:
        assert request.connection_failed and request.state == JOB_UNKNOWN
        assert not request.complete and not request.timed_out

    server = GearmandProcess(port=ports[0])
    try:
        server.start()
        workers.start(server.address, {"later": upper})
        wait_until(lambda: all(client.connection_is_due(c) for c in client.connection_list), 6,
                   "the reconnect backoff")
        again = client.submit_multiple_requests(requests + [single], poll_timeout=10)
        assert again == requests + [single]
        for n, request in enumerate(requests):
            assert request.result == f"JOB {n}".encode() and not request.connection_failed
            assert request.accepted_by.address == server.address
        assert single.result == b"SINGLE"
    finally:
        server.stop()


def test_first_server_dead_everything_runs_on_the_second(gearmand: GearmandProcess,
                                                         workers: Workers,
                                                         make_client: Any) -> None:
    workers.start(gearmand.address, {"failover": upper})
    client = make_client([dead_address(), gearmand.address])
    uniques = [unique_for(0, prefix="first"), unique_for(1, prefix="second")]
    jobs = [dict(task="failover", data=f"j{n}", unique=f"{n}-{u}") for n, u in
            enumerate(uniques * 10)]
    requests = client.submit_multiple_jobs(jobs, poll_timeout=10)
    assert [r.result for r in requests] == [f"J{n}".encode() for n in range(20)]
    assert {r.accepted_by.address for r in requests} == {gearmand.address}
    assert all(r.connection_attempts == 1 for r in requests)  # a refusal costs no try
    background = client.submit_job("failover", "bg", background=True, poll_timeout=10)
    assert background.complete and background.accepted_by.address == gearmand.address


def test_sigkill_mid_job_ends_the_wait_promptly(gearmand: GearmandProcess, workers: Workers,
                                                make_client: Any) -> None:
    gate = workers.gate()
    workers.start(gearmand.address, {"hang": lambda job: (gate.block(), b"late")[1]})
    client = make_client(gearmand.address)
    request = client.submit_job("hang", "x", wait_until_complete=False, poll_timeout=10)
    assert gate.started.wait(10)

    killer = threading.Timer(0.2, gearmand.kill)
    killer.start()
    started = time.monotonic()
    client.wait_until_jobs_completed([request], poll_timeout=30)
    elapsed = time.monotonic() - started
    killer.join()
    assert request.connection_failed and request.state == JOB_UNKNOWN
    assert not request.timed_out and not request.complete
    assert elapsed < 0.2 + 5.0, f"wait returned {elapsed:.2f}s after start"  # not the 30 s
    assert not client.connection_list[0].connected


def test_max_retries_resubmits_on_the_next_server(gearmand_factory: Any, workers: Workers,
                                                  make_client: Any) -> None:
    first, second = gearmand_factory(), gearmand_factory()
    gate = workers.gate()

    def flaky(job: Any) -> bytes:
        if gate.calls == 0:
            gate.block()
        return job.data.upper()

    workers.start([first.address, second.address], {"flaky": flaky})
    client = make_client([first.address, second.address])
    request = client.submit_job("flaky", "retry me", unique=unique_for(0, prefix="retry"),
                                max_retries=1, wait_until_complete=False, poll_timeout=10)
    assert request.accepted_by.address == first.address
    assert gate.started.wait(10)
    first.kill()
    gate.release.set()
    client.wait_until_jobs_completed([request], poll_timeout=10)
    assert (request.state, request.result) == (JOB_COMPLETE, b"RETRY ME")
    assert request.accepted_by.address == second.address
    assert request.connection_attempts == 2 and not request.connection_failed


# -- timeouts ------------------------------------------------------------------------------------

def test_poll_timeout_marks_slow_jobs_timed_out(gearmand: GearmandProcess, workers: Workers,
                                                make_client: Any) -> None:
    gate = workers.gate()
    workers.start(gearmand.address, {"slow": lambda job: (gate.block(), job.data.upper())[1]})
    client = make_client(gearmand.address)
    assert client.echo(b"warm up") == b"warm up"  # connect outside the timed calls

    started = time.monotonic()
    slow = client.submit_job("slow", "a", poll_timeout=0.5)
    elapsed = time.monotonic() - started
    assert slow.timed_out and not slow.complete and slow.state == JOB_CREATED
    assert 0.5 <= elapsed < 0.5 + 2.5, f"returned after {elapsed:.3f}s"  # the job blocks 60 s

    started = time.monotonic()
    one_pass = client.submit_job("slow", "b", poll_timeout=0)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"poll_timeout=0 took {elapsed:.3f}s"  # one pass, not the 60 s job
    assert one_pass.state in (JOB_PENDING, JOB_CREATED) and not one_pass.complete
    assert one_pass.timed_out

    started = time.monotonic()
    client.wait_until_jobs_completed([slow, one_pass], timeout=0)
    assert time.monotonic() - started < 2.0 and slow.timed_out

    gate.release.set()
    client.wait_until_jobs_completed([slow, one_pass])  # None: as long as it takes
    assert (slow.result, one_pass.result) == (b"A", b"B")
    assert not slow.timed_out and not one_pass.timed_out


# -- payloads ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def echo_address() -> Iterator[str]:
    """One gearmand with an echo worker for the payload tests."""
    with GearmandProcess() as server:
        worker = gearman.GearmanWorker([server.address])
        worker.register_task("echo", lambda job: job.data)
        thread = threading.Thread(target=worker.work, args=(WORKER_POLL,), daemon=True)
        thread.start()
        yield server.address
        worker.shutdown()
        thread.join(15)
        assert not thread.is_alive()


@pytest.mark.parametrize("payload", [
    b"", b"\0", b"a\0b\0\0c\0", bytes(range(256)),
    os.urandom(1 << 20), os.urandom(16 << 20),
], ids=["empty", "nul", "inner-nuls", "all-bytes", "1MiB", "16MiB"])
def test_payload_round_trips_byte_for_byte(echo_address: str, make_client: Any,
                                           payload: bytes) -> None:
    client = make_client(echo_address)
    request = client.submit_job("echo", payload, poll_timeout=30)
    assert request.state == JOB_COMPLETE
    assert type(request.result) is bytes and len(request.result) == len(payload)
    assert request.result == payload


def test_str_payload_goes_as_utf8(echo_address: str, make_client: Any) -> None:
    client = make_client(echo_address)
    text = "h\u00e9llo w\u00f6rld \u2713 \U0001f600"
    assert client.submit_job("echo", text, poll_timeout=10).result == text.encode("utf-8")
    assert client.submit_job("echo", bytearray(b"ba"), poll_timeout=10).result == b"ba"
    assert client.submit_job(b"echo", memoryview(b"mv"), poll_timeout=10).result == b"mv"


def test_non_utf8_unique_and_task_bytes_are_sent_as_given(gearmand: GearmandProcess,
                                                          make_client: Any) -> None:
    client = make_client(gearmand.address)
    request = client.submit_job(b"t\xff", "d", unique=b"u\xfe", background=True, poll_timeout=10)
    assert request.complete
    admin = gearman.GearmanAdminClient([gearmand.address])
    assert [row["unique"] for row in admin.get_unique_jobs()] == ["u\ufffd"]
    admin.close()
    status = client.get_job_status_by_unique(b"u\xfe", poll_timeout=5)
    assert status["known"] and status["unique"] == "u\udcfe"


@pytest.mark.parametrize("encoder", [PickleDataEncoder, JSONDataEncoder], ids=["pickle", "json"])
def test_custom_encoders_on_client_and_worker(gearmand: GearmandProcess, workers: Workers,
                                              make_client: Any, encoder: Any) -> None:
    client_class = type("EncodedClient", (gearman.GearmanClient,), {"data_encoder": encoder})
    worker_class = type("EncodedWorker", (gearman.GearmanWorker,), {"data_encoder": encoder})

    def describe(worker: Any, job: Any) -> Any:
        worker.send_job_data(job, {"partial": job.data["n"]})
        return {"n": job.data["n"] * 2, "words": job.data["words"][::-1]}

    workers.start(gearmand.address, {"describe": describe}, worker_class=worker_class)
    client = make_client(gearmand.address, client_class)
    data = {"n": 21, "words": ["caf\u00e9", "\u2713", None]}
    request = client.submit_job("describe", data, poll_timeout=10)
    assert request.result == {"n": 42, "words": [None, "\u2713", "caf\u00e9"]}
    assert list(request.data_updates) == [{"partial": 21}]


# -- scale -----------------------------------------------------------------------------------------

def test_100k_jobs_in_one_call_each_get_their_own_result(gearmand: GearmandProcess,
                                                         workers: Workers,
                                                         make_client: Any) -> None:
    workers.spawn(gearmand.address, "scale", 2)
    client = make_client(gearmand.address)
    count = 100_000
    jobs = [dict(task="scale", data=b"%d" % n) for n in range(count)]
    started = time.monotonic()
    requests = client.submit_multiple_jobs(jobs, poll_timeout=90)
    elapsed = time.monotonic() - started
    assert len(requests) == count
    bad = [n for n, r in enumerate(requests)
           if r.state != JOB_COMPLETE or r.result != (b"%d" % n)[::-1] + b"!"]
    assert not bad, f"{len(bad)} wrong results, first: {requests[bad[0]]!r}"
    assert len({r.job.handle for r in requests}) == count
    handler = client.handler_for(client.connection_list[0])
    assert handler._requests_by_handle == {} and handler.requests_in_flight == 0
    print(f"100k jobs in {elapsed:.1f}s")


# -- beyond python-gearman 2.x -----------------------------------------------------------------

def test_status_by_handle_alone_with_server(gearmand_factory: Any, workers: Workers,
                                            make_client: Any) -> None:
    servers = [gearmand_factory(), gearmand_factory()]
    hosts = [s.address for s in servers]
    gate = workers.gate()
    workers.start(hosts, {"held": lambda job: (gate.block(), b"ok")[1]})
    submitter = make_client(hosts)
    request = submitter.submit_job("held", "x", unique=unique_for(1, prefix="held"),
                                   wait_until_complete=False, poll_timeout=10)
    assert request.accepted_by.address == hosts[1]
    assert gate.started.wait(10)

    observer = make_client(list(hosts))  # another client, knowing only the handle
    status = observer.get_job_status(request.job.handle, server=hosts[1], poll_timeout=5)
    assert (status["known"], status["running"], status["handle"]) == (True, True,
                                                                      request.job.handle)
    elsewhere = observer.get_job_status_by_handle(request.job.handle, server=hosts[0],
                                                  poll_timeout=5)
    assert elsewhere["known"] is False
    with pytest.raises(ValueError, match="server"):
        observer.get_job_status(request.job.handle)
    gate.release.set()
    submitter.wait_until_jobs_completed([request], poll_timeout=10)
    assert request.result == b"ok"


def test_status_by_unique_while_queued(gearmand: GearmandProcess, make_client: Any) -> None:
    client = make_client(gearmand.address)
    client.submit_job("nobody", "bg", unique="queued-bg", background=True, poll_timeout=10)
    waiting = client.submit_job("nobody", "fg", unique="queued-fg", wait_until_complete=False,
                                poll_timeout=10)
    assert waiting.state == JOB_CREATED
    bg = client.get_job_status_by_unique("queued-bg", poll_timeout=5)
    assert (bg["known"], bg["running"], bg["waiting_clients"]) == (True, False, 0)
    assert bg["unique"] == "queued-bg"
    fg = client.get_job_status_by_unique(b"queued-fg", poll_timeout=5)
    assert (fg["known"], fg["running"], fg["waiting_clients"]) == (True, False, 1)
    assert client.get_job_status_by_unique("never-submitted", poll_timeout=5)["known"] is False


def test_scheduled_job_runs_no_earlier_than_when(gearmand: GearmandProcess, workers: Workers,
                                                 make_client: Any) -> None:
    ran: List[Any] = []
    workers.start(gearmand.address, {"sched": lambda job: (ran.append((time.time(), job.data)),
                                                           b"")[1]})
    client = make_client(gearmand.address)
    when = math.ceil(time.time()) + 1
    request = client.submit_job("sched", "scheduled", background=True, when=when,
                                poll_timeout=10)
    assert request.complete and request.state == JOB_CREATED and request.job.when == when
    admin = gearman.GearmanAdminClient([gearmand.address])
    assert {r["task"]: r["queued"] for r in admin.get_status()}["sched"] == 1
    admin.close()

    # gearmand 1.1 looks at an epoch job only when something else wakes the queue (#101).
    deadline = time.monotonic() + 15
    while not any(data == b"scheduled" for _, data in ran):
        assert time.monotonic() < deadline, f"the scheduled job never ran: {ran}"
        client.submit_job("sched", "wake", background=True, poll_timeout=10)
        time.sleep(0.1)
    started_at = next(t for t, data in ran if data == b"scheduled")
    assert started_at >= when, f"ran {when - started_at:.2f}s early"
    assert any(data == b"wake" and t < when for t, data in ran), \
        "the queue was not woken before `when` (the test proves nothing)"


def test_reduce_job_hands_the_reducer_to_the_worker(gearmand: GearmandProcess,
                                                    workers: Workers, make_client: Any) -> None:
    seen: List[Any] = []
    workers.start(gearmand.address,
                  {"mapper": lambda job: (seen.append((job.reducer, job.data)), b"mapped")[1]})
    client = make_client(gearmand.address)
    request = client.submit_job("mapper", "a b c", reducer="counter", poll_timeout=10)
    assert (request.state, request.result) == (JOB_COMPLETE, b"mapped")
    assert seen == [("counter", b"a b c")]


def test_close_and_context_manager(gearmand: GearmandProcess, workers: Workers) -> None:
    workers.start(gearmand.address, {"ctx": upper})
    admin = gearman.GearmanAdminClient([gearmand.address])
    wait_until(lambda: any(row["task"] == "ctx" and row["workers"] == 1
                           for row in admin.get_status()), 10, "the worker to register")
    baseline = len(admin.get_workers())  # the worker's and the admin's own connection

    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("ctx", "inside", poll_timeout=10).result == b"INSIDE"
        connection = client.connection_list[0]
        assert connection.connected
        assert len(admin.get_workers()) == baseline + 1
    assert not connection.connected
    wait_until(lambda: len(admin.get_workers()) == baseline, 5, "gearmand to see the close")
    with pytest.raises(errors.InvalidClientState, match="closed"):
        client.submit_job("ctx", "after", poll_timeout=1)
    client.close()  # closing twice is harmless

    other = gearman.GearmanClient([gearmand.address])
    other.submit_job("ctx", "x", poll_timeout=10)
    other.close()
    assert not other.connection_list[0].connected
    admin.close()


def test_finished_requests_are_not_kept(gearmand: GearmandProcess, workers: Workers,
                                        make_client: Any) -> None:
    workers.start(gearmand.address, {"keep": upper})
    client = make_client(gearmand.address)
    foreground = client.submit_job("keep", "fg", poll_timeout=10)
    background = client.submit_job("keep", "bg", background=True, poll_timeout=10)
    many = client.submit_multiple_jobs([dict(task="keep", data="m", unique="same")] * 3,
                                       poll_timeout=10)
    client.get_job_status(foreground, poll_timeout=5)
    assert foreground.result == b"FG" and background.complete
    assert [r.result for r in many] == [b"M"] * 3
    handler = client.handler_for(client.connection_list[0])
    assert handler._requests_by_handle == {} and handler.requests_in_flight == 0

    refs = [weakref.ref(r) for r in [foreground, background] + many]
    del foreground, background, many
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)


def test_request_finished_during_a_status_query_is_not_kept(gearmand: GearmandProcess,
                                                            workers: Workers,
                                                            make_client: Any) -> None:
    gate = workers.gate()
    workers.start(gearmand.address, {"late": lambda job: (gate.block(), b"done")[1]})
    client = make_client(gearmand.address)
    request = client.submit_job("late", "x", wait_until_complete=False, poll_timeout=10)
    assert gate.started.wait(10)
    gate.release.set()
    deadline = time.monotonic() + 10
    while not request.complete:  # the WORK_COMPLETE is read by a status round trip
        assert time.monotonic() < deadline, request
        client.get_job_status(request, poll_timeout=5)
    assert request.result == b"done"
    ref = weakref.ref(request)
    del request
    gc.collect()
    assert ref() is None


# -- bad input, before anything is sent ------------------------------------------------------

@pytest.mark.parametrize("call, error, words", [
    (lambda c: c.submit_multiple_jobs({"task": "t", "data": "d"}), TypeError,
     ["jobs_to_submit", "single dict"]),
    (lambda c: c.submit_job("t", "d", priority="URGENT"), ValueError, ["priority"]),
    (lambda c: c.submit_job("t", object()), TypeError, ["data:", "object"]),
    (lambda c: c.submit_job("t", "d", unique="u" * 64), ValueError, ["unique", "63"]),
    (lambda c: c.submit_job("t\0x", "d"), ValueError, ["task", "NUL"]),
    (lambda c: c.submit_multiple_jobs([{"task": "t", "data": "d"}, {"task": "t"}]), ValueError,
     ["jobs_to_submit[1]"]),
    (lambda c: c.get_job_status_by_handle("H:" + "x" * 80), ValueError, ["handle"]),
], ids=["single-dict", "priority", "data-object", "long-unique", "nul-task", "missing-data",
        "long-handle"])
def test_bad_input_raises_before_connecting(gearmand_session: GearmandProcess, call: Any,
                                            error: Any, words: List[str]) -> None:
    client = gearman.GearmanClient([gearmand_session.address])
    try:
        with pytest.raises(error) as info:
            call(client)
        for word in words:
            assert word in str(info.value)
        assert client.connection_list[0].connected is False
    finally:
        client.close()


@pytest.mark.parametrize("host", ["host:notaport", "host:99999", "127.0.0.1:0"])
def test_malformed_host_raises_value_error(host: str) -> None:
    with pytest.raises(ValueError, match="host_list entry") as info:
        gearman.GearmanClient(["127.0.0.1:4730", host])
    assert host.split(":")[1] in str(info.value)
