"""GearmanWorker against a real gearmand (1.1.x).

Clients are gearman.GearmanClient and, as an independent implementation, the
C ``gearman`` tool from gearman-tools.  Workers run ``work()`` in a thread (or,
to measure idle CPU, in a subprocess); every wait is bounded.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import gearman
from gearman.client_handler import GearmanClientCommandHandler
from gearman.constants import JOB_COMPLETE, JOB_CREATED, JOB_FAILED
from gearman.testing import GearmandProcess, free_port
from readme_encoders import JSONDataEncoder

pytestmark = pytest.mark.gearmand

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEARMAN_CLI = shutil.which("gearman") or "/usr/bin/gearman"


# -- helpers -----------------------------------------------------------------------------
def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def cli(server: GearmandProcess, *args: str, timeout: float = 10.0
        ) -> subprocess.CompletedProcess[bytes]:
    """Run the C gearman tool (a libgearman client) against ``server``."""
    return subprocess.run([GEARMAN_CLI, "-h", server.host, "-p", str(server.port), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def workers_of(server: GearmandProcess) -> List[Tuple[str, Tuple[str, ...]]]:
    """(client_id, sorted tasks) of every connection in gearmand's ``workers`` list."""
    rows = []
    for line in server.admin("workers").splitlines():
        if line == ".":
            break
        left, _, right = line.partition(" :")
        rows.append((left.split()[2], tuple(sorted(right.split()))))
    return rows


def has_worker(server: GearmandProcess, client_id: str, *tasks: str) -> bool:
    return (client_id, tuple(sorted(tasks))) in workers_of(server)


def status_of(server: GearmandProcess, task: str) -> Tuple[int, int, int]:
    """(total, running, available workers) for ``task``; total includes running."""
    for line in server.admin("status").splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[0] == task:
            return int(fields[1]), int(fields[2]), int(fields[3])
    return 0, 0, 0


class WorkerThread:
    """Runs ``worker.work(**kwargs)`` in a daemon thread and keeps what it raised."""

    def __init__(self, worker: Any, **work_kwargs: Any) -> None:
        self.worker = worker
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(work_kwargs,), daemon=True)

    def _run(self, work_kwargs: Dict[str, Any]) -> None:
        try:
            self.worker.work(**work_kwargs)
        except BaseException as exc:  # reported by stop()/finished()
            self.error = exc

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    def finished(self, timeout: float = 10.0) -> bool:
        """True once work() returned by itself within ``timeout``."""
        self.thread.join(timeout)
        if self.error is not None:
            raise AssertionError("work() raised") from self.error
        return not self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        # shutdown() before work() has started only closes connections: repeat it.
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and time.monotonic() < deadline:
            self.worker.shutdown()
            self.thread.join(0.2)
        assert not self.thread.is_alive(), "work() did not end after shutdown()"
        if self.error is not None:
            raise AssertionError("work() raised") from self.error


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerThread]]:
    """``start_worker(worker, **work_kwargs)``; every worker is shut down at teardown."""
    started: List[WorkerThread] = []

    def start(worker: Any, **work_kwargs: Any) -> WorkerThread:
        runner = WorkerThread(worker, **work_kwargs).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture
def client(gearmand: GearmandProcess) -> Iterator[gearman.GearmanClient]:
    with gearman.GearmanClient([gearmand.address]) as gm_client:
        yield gm_client


# -- the seed README ------------------------------------------------------------------------
def test_readme_worker_example_1(gearmand: GearmandProcess, client: Any,
                                 start_worker: Any) -> None:
    gm_worker = gearman.GearmanWorker([gearmand.address])

    def task_listener_reverse(gearman_job: Any) -> bytes:
        # The README returns reversed(...), an iterator; a worker must return bytes or
        # str (see test_unsendable_results_fail_the_job_and_the_worker_goes_on).
        return gearman_job.data[::-1]

    gm_worker.set_client_id("your_worker_client_id_name")
    gm_worker.register_task("reverse", task_listener_reverse)
    start_worker(gm_worker)  # gm_worker.work()

    wait_for(lambda: has_worker(gearmand, "your_worker_client_id_name", "reverse"),
             what="the worker in gearmand's workers list")
    with gearman.GearmanAdminClient([gearmand.address]) as admin:
        rows = admin.get_workers()
    assert [r["tasks"] for r in rows if r["client_id"] == "your_worker_client_id_name"] == [
        ("reverse",)]

    request = client.submit_job("reverse", "arbitrary binary data", poll_timeout=10)
    assert (request.state, request.result) == (JOB_COMPLETE, b"atad yranib yrartibra")
    done = cli(gearmand, "-f", "reverse", "abc")
    assert (done.returncode, done.stdout) == (0, b"cba")


class FakeDB:
    def __init__(self) -> None:
        self.rollbacks = 0

    def rollback(self) -> None:
        self.rollbacks += 1


class DBRollbackJSONWorker(gearman.GearmanWorker):
    data_encoder = JSONDataEncoder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db_connections = FakeDB()
        self.quit = False

    def after_poll(self, any_activity: bool) -> bool:
        # After every select loop, let's rollback our DB connections just to be safe
        continue_working = not self.quit
        self.db_connections.rollback()
        return continue_working


class JSONClient(gearman.GearmanClient):
    data_encoder = JSONDataEncoder


def test_readme_worker_example_2_json_encoder_and_after_poll_ending_work(
        gearmand: GearmandProcess, start_worker: Any) -> None:
    worker = DBRollbackJSONWorker([gearmand.address])

    def handle(gearman_worker: Any, gearman_job: Any) -> Any:
        if gearman_job.data.get("quit"):
            gearman_worker.quit = True
            return {"bye": True}
        return {"sum": sum(gearman_job.data["numbers"]), "task": gearman_job.task}

    worker.register_task("sum", handle)
    runner = start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "sum"))
    with JSONClient([gearmand.address]) as json_client:
        request = json_client.submit_job("sum", {"numbers": [1, 2, 3]}, poll_timeout=10)
        assert request.result == {"sum": 6, "task": "sum"}
        request = json_client.submit_job("sum", {"quit": True}, poll_timeout=10)
        assert request.result == {"bye": True}
    # after_poll returned False: work() returns by itself and closes its connection.
    assert runner.finished(10)
    assert worker.db_connections.rollbacks >= 2
    assert not any(tasks == ("sum",) for _, tasks in workers_of(gearmand))


# -- callbacks and registration --------------------------------------------------------------
def test_callbacks_of_one_and_two_arguments_and_many_tasks(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("one", lambda job: b"one:" + job.data)

    def two(gearman_worker: Any, gearman_job: Any) -> bytes:
        assert gearman_worker is worker
        return b"two:" + gearman_job.data

    worker.register_task("two", two)
    names = [f"task-{i}" for i in range(30)]
    for i, name in enumerate(names):
        worker.register_task(name, functools.partial(lambda n, job: f"{n}:{job.task}", i))
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "one", "two", *names))

    jobs = [{"task": "one", "data": "a"}, {"task": "two", "data": "b"}]
    jobs += [{"task": name, "data": ""} for name in names]
    requests = client.submit_multiple_jobs(jobs, poll_timeout=20)
    assert [r.result for r in requests] == [b"one:a", b"two:b"] + [
        f"{i}:{name}".encode() for i, name in enumerate(names)]
    assert cli(gearmand, "-f", "two", "c").stdout == b"two:c"


def test_unregister_task_sends_cant_do_and_the_task_is_no_longer_taken(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.set_client_id("unreg")
    worker.register_task("keep", lambda job: b"kept")
    worker.register_task("drop", lambda job: b"must not run")

    def drop_myself(gearman_worker: Any, gearman_job: Any) -> bytes:
        gearman_worker.unregister_task("self-drop")  # from inside a callback
        return b"bye"

    worker.register_task("self-drop", drop_myself)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "unreg", "keep", "drop", "self-drop"))

    worker.unregister_task("drop")  # from another thread while work() sleeps
    wait_for(lambda: has_worker(gearmand, "unreg", "keep", "self-drop"), what="CANT_DO drop")
    assert client.submit_job("self-drop", "", poll_timeout=10).result == b"bye"
    wait_for(lambda: has_worker(gearmand, "unreg", "keep"), what="CANT_DO self-drop")

    client.submit_job("drop", "x", background=True, poll_timeout=10)
    # A round trip after it: the worker grabbed again and still did not take "drop".
    assert client.submit_job("keep", "y", poll_timeout=10).result == b"kept"
    assert status_of(gearmand, "drop") == (1, 0, 0)


def test_register_task_while_idle_serves_jobs_queued_before_it(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    # gearmand sends a sleeping worker no NOOP when it registers a task whose jobs
    # are already queued; the worker must grab by itself.
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("first", lambda job: b"")
    start_worker(worker, poll_timeout=60)
    wait_for(lambda: has_worker(gearmand, "-", "first"))
    early = client.submit_job("late", "queued early", wait_until_complete=False,
                              poll_timeout=10)
    worker.register_task("late", lambda job: b"served: " + job.data)  # from another thread
    client.wait_until_jobs_completed([early], poll_timeout=10)
    assert (early.state, early.result) == (JOB_COMPLETE, b"served: queued early")


def test_task_names_as_str_or_bytes_match_what_the_server_sends(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    seen: List[Any] = []

    def record(job: Any) -> str:
        seen.append(job.task)
        return job.task

    worker.register_task("str-task", record)
    worker.register_task(b"bytes-task", record)
    worker.register_task("t\u00e2che", record)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "str-task", "bytes-task", "t\u00e2che"))

    assert client.submit_job(b"str-task", "", poll_timeout=10).result == b"str-task"
    assert client.submit_job("bytes-task", "", poll_timeout=10).result == b"bytes-task"
    assert cli(gearmand, "-f", "t\u00e2che", "x").stdout == "t\u00e2che".encode()
    assert seen == ["str-task", "bytes-task", "t\u00e2che"]
    assert all(isinstance(task, str) for task in seen)


def test_bad_registrations_raise_and_reach_no_server(gearmand: GearmandProcess, client: Any,
                                                     start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.set_client_id("strict")
    worker.register_task("good", lambda job: b"ok")
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "strict", "good"))
    with pytest.raises(TypeError, match="callable"):
        worker.register_task("bad", "not a function")
    with pytest.raises(ValueError, match="empty"):
        worker.register_task("", lambda job: b"")
    with pytest.raises(ValueError, match="NUL"):
        worker.register_task("bad\0name", lambda job: b"")
    with pytest.raises(ValueError, match="whitespace"):
        worker.set_client_id("has spaces")
    with pytest.raises(ValueError, match="timeout"):
        worker.register_task("bad", lambda job: b"", timeout=0)
    assert client.submit_job("good", "", poll_timeout=10).result == b"ok"
    assert has_worker(gearmand, "strict", "good")


# -- inside a callback ------------------------------------------------------------------------
class RecordingClientHandler(GearmanClientCommandHandler):
    """Notes every WORK_* packet in arrival order on the client."""

    def recv_work_data(self, job_handle: bytes, data: bytes) -> None:
        self.connection_manager.events.append(("DATA", data))
        super().recv_work_data(job_handle, data)

    def recv_work_warning(self, job_handle: bytes, data: bytes) -> None:
        self.connection_manager.events.append(("WARNING", data))
        super().recv_work_warning(job_handle, data)

    def recv_work_status(self, job_handle: bytes, numerator: bytes, denominator: bytes) -> None:
        self.connection_manager.events.append(("STATUS", numerator, denominator))
        super().recv_work_status(job_handle, numerator, denominator)

    def recv_work_complete(self, job_handle: bytes, data: bytes) -> None:
        self.connection_manager.events.append(("COMPLETE", data))
        super().recv_work_complete(job_handle, data)


class RecordingClient(gearman.GearmanClient):
    command_handler_class = RecordingClientHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: List[tuple] = []


def test_in_callback_updates_reach_the_client_in_order_before_the_result(
        gearmand: GearmandProcess, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])

    def updates(gearman_worker: Any, job: Any) -> bytes:
        gearman_worker.send_job_data(job, b"d1,")
        gearman_worker.send_job_warning(job, "w1,")
        gearman_worker.send_job_status(job, 1, 3)
        gearman_worker.send_job_data(job, "d2,")
        gearman_worker.send_job_status(job, 2, 3)
        return b"done"

    worker.register_task("updates", updates)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "updates"))

    with RecordingClient([gearmand.address]) as recording:
        request = recording.submit_job("updates", "", poll_timeout=10)
        assert recording.events == [
            ("DATA", b"d1,"), ("WARNING", b"w1,"), ("STATUS", b"1", b"3"), ("DATA", b"d2,"),
            ("STATUS", b"2", b"3"), ("COMPLETE", b"done")]
    assert list(request.data_updates) == [b"d1,", b"d2,"]
    assert list(request.warning_updates) == [b"w1,"]
    assert (request.status["numerator"], request.status["denominator"]) == (2, 3)
    assert request.result == b"done"

    # libgearman sees the same: data and result on stdout, the warning on stderr.
    done = cli(gearmand, "-f", "updates", "x")
    assert done.returncode == 0 and done.stderr == b"w1,"
    assert done.stdout.startswith(b"d1,d2,done")
    assert b"33% Complete" in done.stdout and b"66% Complete" in done.stdout


# -- exceptions and bad results --------------------------------------------------------------
def _careless(job: Any) -> bytes:
    if job.data.startswith(b"bad"):
        raise ValueError(f"broken input {job.data.decode()}")
    return b"good:" + job.data


def test_exception_is_logged_sent_as_work_exception_alone_and_never_stalls(
        gearmand: GearmandProcess, client: Any, start_worker: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gearman")
    worker = gearman.GearmanWorker([gearmand.address], trace=True)
    worker.register_task("careless", _careless)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "careless"))

    request = client.submit_job("careless", "bad-0", poll_timeout=10)
    assert request.state == JOB_FAILED and request.complete
    assert request.exception == "ValueError: broken input bad-0"
    handle = request.job.handle
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info and record.exc_info[0] is ValueError and handle in record.getMessage()
    assert "in _careless" in caplog.text and "raise ValueError" in caplog.text
    sent = [r.getMessage() for r in caplog.records if " <- WORK_" in r.getMessage()]
    assert sent == [f"{worker.connection_list[0].address} <- WORK_EXCEPTION "
                    f"({handle.encode()!r}, b'ValueError: broken input bad-0')"]

    # 100 failures in a row, then a good job: every one answered, none stalled.
    jobs = [{"task": "careless", "data": f"bad-{i}"} for i in range(1, 101)]
    jobs.append({"task": "careless", "data": "fine"})
    requests = client.submit_multiple_jobs(jobs, poll_timeout=30)
    assert [r.state for r in requests] == [JOB_FAILED] * 100 + [JOB_COMPLETE]
    assert [r.exception for r in requests[:100]] == [
        f"ValueError: broken input bad-{i}" for i in range(1, 101)]
    assert requests[-1].result == b"good:fine"
    assert status_of(gearmand, "careless")[:2] == (0, 0)
    assert "WORK_FAIL" not in caplog.text and "JOB_NOT_FOUND" not in caplog.text


class WorkFailForLibgearman11(gearman.GearmanWorker):
    """Documented recipe: libgearman 1.1 clients never see a WORK_EXCEPTION end."""

    def on_job_exception(self, current_job: Any, exc_info: Any) -> bool:
        self.log.error("job %s failed", current_job.handle, exc_info=exc_info)
        self.send_job_failure(current_job)
        return True


def test_work_fail_recipe_for_libgearman_clients(gearmand: GearmandProcess,
                                                 start_worker: Any) -> None:
    worker = WorkFailForLibgearman11([gearmand.address])
    worker.register_task("careless", _careless)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "careless"))
    failed = cli(gearmand, "-f", "careless", "bad")
    assert failed.returncode != 0 and b"Job failed" in failed.stderr
    assert cli(gearmand, "-f", "careless", "ok").stdout == b"good:ok"


def test_unsendable_results_fail_the_job_and_the_worker_goes_on(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("obj", lambda job: object())
    worker.register_task("readme-reverse", lambda gearman_job: reversed(gearman_job.data))
    worker.register_task("none", lambda job: None)
    worker.register_task("ok", lambda job: b"still here")
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "obj", "readme-reverse", "none", "ok"))

    for task, reason in (("obj", "object"), ("readme-reverse", "reversed"),
                         ("none", "NoneType")):
        request = client.submit_job(task, "abc", poll_timeout=10)
        assert request.state == JOB_FAILED, task
        assert "not sendable" in request.exception and reason in request.exception
    assert client.submit_job("ok", "", poll_timeout=10).result == b"still here"


# -- hooks --------------------------------------------------------------------------------------
class HookWorker(gearman.GearmanWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[tuple] = []
        self.max_jobs: Optional[int] = None

    def after_poll(self, any_activity: bool) -> bool:
        self.calls.append(("after_poll", any_activity))
        return True

    def after_job(self) -> bool:
        self.calls.append(("after_job",))
        jobs = sum(1 for call in self.calls if call[0] == "after_job")
        return self.max_jobs is None or jobs < self.max_jobs

    def on_job_execute(self, current_job: Any) -> bool:
        self.calls.append(("on_job_execute", current_job.data))
        return super().on_job_execute(current_job)

    def on_job_exception(self, current_job: Any, exc_info: Any) -> bool:
        self.calls.append(("on_job_exception", current_job.data, exc_info[0]))
        super().on_job_exception(current_job, exc_info)
        return False  # ignored, as in 2.x

    def on_job_complete(self, current_job: Any, job_result: Any) -> bool:
        self.calls.append(("on_job_complete", current_job.data, job_result))
        super().on_job_complete(current_job, job_result.upper())
        return False  # ignored, as in 2.x

    def job_calls(self) -> List[tuple]:
        return [call for call in list(self.calls) if call[0] != "after_poll"]


def test_hooks_are_called_when_documented_and_can_be_overridden(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = HookWorker([gearmand.address])
    worker.register_task("careless", _careless)
    start_worker(worker, poll_timeout=0.05)
    wait_for(lambda: has_worker(gearmand, "-", "careless"))

    assert client.submit_job("careless", "x", poll_timeout=10).result == b"GOOD:X"
    assert client.submit_job("careless", "bad", poll_timeout=10).state == JOB_FAILED
    assert client.submit_job("careless", "y", poll_timeout=10).result == b"GOOD:Y"
    wait_for(lambda: len(worker.job_calls()) == 9)
    assert worker.job_calls() == [
        ("on_job_execute", b"x"), ("on_job_complete", b"x", b"good:x"), ("after_job",),
        ("on_job_execute", b"bad"), ("on_job_exception", b"bad", ValueError), ("after_job",),
        ("on_job_execute", b"y"), ("on_job_complete", b"y", b"good:y"), ("after_job",)]
    # after_poll follows every pass: right after each job, and every poll_timeout idle.
    calls = list(worker.calls)
    for index, call in enumerate(calls):
        if call == ("after_job",):
            assert calls[index + 1] == ("after_poll", True)
    idle_before = worker.calls.count(("after_poll", False))
    wait_for(lambda: worker.calls.count(("after_poll", False)) >= idle_before + 3,
             what="idle after_poll calls every poll_timeout")


def test_after_job_returning_false_ends_work_after_that_job(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = HookWorker([gearmand.address])
    worker.max_jobs = 2
    worker.register_task("careless", _careless)
    for data in ("1", "2", "3"):
        client.submit_job("careless", data, background=True, poll_timeout=10)
    runner = start_worker(worker, poll_timeout=30)
    assert runner.finished(10)
    assert [call[1] for call in worker.job_calls() if call[0] == "on_job_execute"] == [b"1", b"2"]
    # The third is still queued, never taken.  (gearmand may read the worker's last
    # answer and its close a moment after the status request: wait for them.)
    wait_for(lambda: status_of(gearmand, "careless")[:2] == (1, 0),
             what="gearmand to show 1 job queued, none running")


# -- sleeping ----------------------------------------------------------------------------------
def test_idle_worker_sleeps_with_pre_sleep_and_wakes_on_noop_at_once(
        gearmand: GearmandProcess, client: Any, start_worker: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gearman.connection")
    worker = gearman.GearmanWorker([gearmand.address], trace=True)
    started: List[float] = []
    worker.register_task("wake", lambda job: started.append(time.monotonic()) or b"awake")
    start_worker(worker, poll_timeout=60)
    address = worker.connection_list[0].address

    def sleeps() -> int:
        return sum(1 for r in caplog.records if r.getMessage() == f"{address} <- PRE_SLEEP ()")

    for round_number in range(1, 4):
        wait_for(lambda n=round_number: sleeps() == n, what=f"PRE_SLEEP #{round_number}")
        submitted = time.monotonic()
        assert client.submit_job("wake", "", poll_timeout=10).result == b"awake"
        assert started[-1] - submitted < 10  # woken by NOOP, not at the next 60 s poll timeout
    noops = [r for r in caplog.records if r.getMessage().startswith(f"{address} -> Packet(NOOP")]
    assert len(noops) == 3
    grabs = [r for r in caplog.records if r.getMessage() == f"{address} <- GRAB_JOB_ALL ()"]
    assert len(grabs) == 1 + 3 * 2  # first grab; then per job: after NOOP, and after the job


_IDLE_WORKER = """
import sys
import gearman
worker = gearman.GearmanWorker([sys.argv[1]])
worker.set_client_id(sys.argv[2])
worker.register_task("never-submitted", lambda job: b"")
worker.work(poll_timeout=float(sys.argv[3]))
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_idle_worker_uses_under_one_percent_of_a_core(gearmand: GearmandProcess) -> None:
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = {name: subprocess.Popen([sys.executable, "-c", _IDLE_WORKER, gearmand.address,
                                     name, poll_timeout], env=env)
             for name, poll_timeout in (("idle-60s", "60"), ("idle-half-second", "0.5"))}
    try:
        for name in procs:
            wait_for(lambda n=name: has_worker(gearmand, n, "never-submitted"), what=name)
        before = {name: _cpu_seconds(proc.pid) for name, proc in procs.items()}
        interval = 3.0
        time.sleep(interval)  # the measurement window itself
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited"
            used = _cpu_seconds(proc.pid) - before[name]
            assert used / interval < 0.01, f"{name} used {used:.3f}s CPU in {interval}s"
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait(10)


# -- several servers --------------------------------------------------------------------------
def test_worker_on_two_servers_serves_both_and_a_busy_one_never_starves_the_other(
        gearmand_factory: Any, start_worker: Any) -> None:
    server_a, server_b = gearmand_factory(), gearmand_factory()
    worker = gearman.GearmanWorker([server_a.address, server_b.address])
    served: List[int] = []

    def job(gearman_job: Any) -> bytes:
        served.append(gearman_job.connection.gearman_port)
        if gearman_job.data == b"slow":
            time.sleep(0.01)  # stands for 10 ms of real work
        return b"from %d" % gearman_job.connection.gearman_port

    worker.register_task("job", job)
    start_worker(worker, poll_timeout=30)
    for server in (server_a, server_b):
        wait_for(lambda s=server: has_worker(s, "-", "job"))

    with gearman.GearmanClient([server_a.address]) as client_a:
        assert client_a.submit_job("job", "", poll_timeout=10).result == b"from %d" % server_a.port
        assert cli(server_b, "-f", "job", "x").stdout == b"from %d" % server_b.port
        # Flood A with 300 background jobs (3 s of work); then one job on B.
        flood = [{"task": "job", "data": "slow"} for _ in range(300)]
        client_a.submit_multiple_jobs(flood, background=True, poll_timeout=10)
        wait_for(lambda: served.count(server_a.port) >= 5, what="A's flood being served")
        # Counted in jobs, not seconds (a loaded machine stretches time, not order):
        # from B's submission to its result, only a few of A's jobs may run.
        a_served_before = served.count(server_a.port)
        with gearman.GearmanClient([server_b.address]) as client_b:
            done = client_b.submit_job("job", "prompt", poll_timeout=30)
        a_served_meanwhile = served.count(server_a.port) - a_served_before
    assert done.result == b"from %d" % server_b.port
    assert a_served_meanwhile < 30, f"B's job waited behind {a_served_meanwhile} of A's jobs"
    assert status_of(server_a, "job")[0] > 200  # A still has most of its flood queued


def test_server_killed_and_restarted_worker_reconnects_and_reregisters(
        gearmand: GearmandProcess, start_worker: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gearman")
    worker = gearman.GearmanWorker([gearmand.address])
    worker.set_client_id("phoenix")
    worker.register_task("echo", lambda job: job.data)
    worker.register_task("echo-timeout", lambda job: job.data, timeout=30)
    runner = start_worker(worker, poll_timeout=60)
    wait_for(lambda: has_worker(gearmand, "phoenix", "echo", "echo-timeout"))
    assert cli(gearmand, "-f", "echo", "before").stdout == b"before"

    def failures() -> List[float]:
        return [float(m.group(1)) for r in caplog.records
                for m in [re.search(r"\(try \d+; next in ([0-9.]+)s\)", r.getMessage())] if m]

    gearmand.kill()  # SIGKILL
    down_at = time.monotonic()
    wait_for(lambda: len(failures()) >= 5, what="five failed reconnects")
    down_for = time.monotonic() - down_at
    assert runner.thread.is_alive() and runner.error is None  # work() did not raise
    gearmand.restart()
    wait_for(lambda: has_worker(gearmand, "phoenix", "echo", "echo-timeout"), timeout=10,
             what="client id and abilities sent again after reconnect")
    assert cli(gearmand, "-f", "echo", "after").stdout == b"after"
    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("echo-timeout", "too", poll_timeout=10).result == b"too"

    delays = failures()
    assert all(delay <= 2.0 for delay in delays), delays  # capped backoff
    assert delays[:4] == sorted(delays[:4])  # growing (jittered within each doubling)
    assert len(delays) <= 5 + down_for / 0.05  # no busy reconnect loop


def test_all_servers_down_at_start_worker_waits_and_connects_when_they_come_up(
        start_worker: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gearman")
    servers = [GearmandProcess(port=free_port()), GearmandProcess(port=free_port())]
    try:
        worker = gearman.GearmanWorker([s.address for s in servers])
        worker.set_client_id("patient")
        worker.register_task("echo", lambda job: job.data)
        runner = start_worker(worker, poll_timeout=60)
        wait_for(lambda: sum("next in" in r.getMessage() for r in caplog.records) >= 4,
                 what="failed connects")
        assert runner.thread.is_alive() and runner.error is None
        for server in servers:
            server.start()
        for server in servers:
            wait_for(lambda s=server: has_worker(s, "patient", "echo"), what=server.address)
            assert cli(server, "-f", "echo", server.address).stdout == server.address.encode()
    finally:
        for server in servers:
            server.stop()


# -- shutdown ------------------------------------------------------------------------------------
def test_shutdown_inside_a_callback_ends_work_after_that_job(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])

    def last(gearman_worker: Any, job: Any) -> bytes:
        gearman_worker.shutdown()
        return b"done:" + job.data

    worker.register_task("last", last)
    first = client.submit_job("last", "1", wait_until_complete=False, poll_timeout=10)
    client.submit_job("last", "2", background=True, poll_timeout=10)
    runner = start_worker(worker, poll_timeout=60)
    assert runner.finished(10)  # work() returned by itself
    client.wait_until_jobs_completed([first], poll_timeout=10)
    assert (first.state, first.result) == (JOB_COMPLETE, b"done:1")
    assert status_of(gearmand, "last")[:2] == (1, 0)  # job 2 untouched; nothing half-done
    # gearmand notices the closed worker connection a moment later.
    wait_for(lambda: status_of(gearmand, "last") == (1, 0, 0), what="worker gone")


def test_stop_from_another_thread_ends_work_after_the_current_job_leaving_others_queued(
        gearmand_factory: Any, start_worker: Any) -> None:
    servers = [gearmand_factory(), gearmand_factory()]
    clients = [gearman.GearmanClient([s.address]) for s in servers]
    try:
        requests = [c.submit_job("hold", f"job-{i}", wait_until_complete=False, poll_timeout=10)
                    for i, c in enumerate(clients)]
        started, release = threading.Event(), threading.Event()
        ran: List[bytes] = []

        def hold(job: Any) -> bytes:
            ran.append(job.data)
            started.set()
            assert release.wait(10)
            return b"held " + job.data

        worker = gearman.GearmanWorker([s.address for s in servers])
        worker.register_task("hold", hold)
        runner = start_worker(worker, poll_timeout=60)
        assert started.wait(10)
        # One job runs; the other server's job is not grabbed while it does (one GRAB
        # or job at a time), so it stays queued for any other worker.
        first = 0 if ran[0] == b"job-0" else 1
        wait_for(lambda: status_of(servers[first], "hold")[:2] == (1, 1), what="one running")
        assert status_of(servers[1 - first], "hold")[:2] == (1, 0)
        worker.stop()
        release.set()
        assert runner.finished(10)

        assert len(ran) == 1
        done = 0 if ran[0] == b"job-0" else 1
        other = 1 - done
        clients[done].wait_until_jobs_completed([requests[done]], poll_timeout=10)
        assert requests[done].result == b"held " + ran[0]
        assert status_of(servers[done], "hold")[:2] == (0, 0)
        # The other job was never taken: still queued on its server.
        wait_for(lambda: status_of(servers[other], "hold")[:2] == (1, 0), what="still queued")
        assert requests[other].state == JOB_CREATED

        successor = gearman.GearmanWorker([servers[other].address])
        successor.register_task("hold", lambda job: b"successor " + job.data)
        start_worker(successor, poll_timeout=60)
        clients[other].wait_until_jobs_completed([requests[other]], poll_timeout=10)
        assert requests[other].result == b"successor job-%d" % other
    finally:
        for gm_client in clients:
            gm_client.close()


# -- beyond 2.x -------------------------------------------------------------------------------
def test_can_do_timeout_makes_gearmand_requeue_a_job_held_too_long(
        gearmand: GearmandProcess, client: Any, start_worker: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gearman")
    worker = gearman.GearmanWorker([gearmand.address], trace=True)
    runs: List[str] = []

    def slow(job: Any) -> bytes:
        runs.append(job.handle)
        if len(runs) == 1:
            # Hold the job until gearmand takes it back (timeout 1 s): it is queued
            # again, not running, and not failed.
            wait_for(lambda: status_of(gearmand, "slow")[:2] == (1, 0), timeout=10,
                     what="gearmand re-queueing the job after the timeout")
            return b"too late"
        return b"second run"

    worker.register_task("slow", slow, timeout=1)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "slow"))
    request = client.submit_job("slow", "", poll_timeout=15)
    assert (request.state, request.result) == (JOB_COMPLETE, b"second run")
    assert runs == [request.job.handle] * 2  # the same job ran again
    assert "<- CAN_DO_TIMEOUT (b'slow', b'1000')" in caplog.text
    assert "JOB_NOT_FOUND" in caplog.text  # the late result of the first run was refused


def test_grab_job_all_gives_the_unique_and_serves_map_reduce_jobs(
        gearmand: GearmandProcess, client: Any, start_worker: Any) -> None:
    worker = gearman.GearmanWorker([gearmand.address])
    jobs: List[Any] = []

    def record(job: Any) -> str:
        jobs.append(job)
        return f"{job.unique}|{job.reducer}"

    worker.register_task("uniq", record)
    start_worker(worker, poll_timeout=30)
    wait_for(lambda: has_worker(gearmand, "-", "uniq"))

    assert client.submit_job("uniq", "x", unique="my-unique-1", poll_timeout=10).result == \
        b"my-unique-1|None"
    random_unique = client.submit_job("uniq", "x", poll_timeout=10)
    assert jobs[-1].unique == random_unique.unique and random_unique.unique
    assert cli(gearmand, "-u", "cli-unique", "-f", "uniq", "y").stdout == b"cli-unique|None"
    reduced = client.submit_job("uniq", "z", unique="mr-1", reducer="r", poll_timeout=10)
    assert (reduced.state, reduced.result) == (JOB_COMPLETE, b"mr-1|r")
    assert (jobs[-1].reducer, jobs[-1].unique, jobs[-1].data) == ("r", "mr-1", b"z")
