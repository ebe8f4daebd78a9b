"""gearman-py pool with a real gearmand and real processes.

Each test writes its TARGET module into a temporary directory; every job appends
its unique id to a file (one write(2) with O_APPEND), so "each side effect exactly
once" is a count of lines.  Processes are stopped by PID (the pool's children are
found through /proc by their parent PID); every wait is bounded.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List

import pytest

import gearman
from gearman.constants import JOB_COMPLETE
from gearman.testing import GearmandProcess, free_port
from test_worker import status_of, wait_for, workers_of

pytestmark = pytest.mark.gearmand

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET = '''
import os, time
import gearman

LOG = os.environ["POOL_TEST_LOG"]
VERSION = "v1"


def _note(text):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\\n").encode())
    finally:
        os.close(fd)


def record(job):
    time.sleep(float(job.data.split(b":")[1]) if b":" in job.data else 0)
    _note(job.data.decode())
    return ("%s %d %s" % (job.data.decode(), os.getpid(), VERSION)).encode()


def block(job):
    _note("start %d" % os.getpid())
    time.sleep(1.0)
    return str(os.getpid()).encode()


def broken(job):
    raise RuntimeError("broken on purpose")


TASKS = {"record": record, "block": block, "broken": broken}


class RecordWorker(gearman.GearmanWorker):
    def __init__(self):
        super().__init__()
        for task, callback in TASKS.items():
            self.register_task(task, callback)


def make_worker():
    worker = gearman.GearmanWorker()
    worker.register_task("record", record)
    return worker
'''


def child_pids(pid: int) -> List[int]:
    """The PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(name))
    return found


class Pool:
    """One ``gearman-py pool`` process and its log."""

    def __init__(self, directory: str, gearmand: GearmandProcess, *args: str,
                 target: str = "pooltarget:TASKS") -> None:
        self.directory = directory
        self.log_path = os.path.join(directory, "jobs.log")
        self.stderr_path = os.path.join(directory, "pool.stderr")
        env = dict(os.environ, PYTHONPATH=REPO, POOL_TEST_LOG=self.log_path)
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gearman", "pool", target, "--host", gearmand.address,
                 *args], cwd=directory, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> List[int]:
        return child_pids(self.pid)

    def lines(self) -> List[str]:
        try:
            with open(self.log_path) as log:
                return log.read().splitlines()
        except FileNotFoundError:
            return []

    def stderr(self) -> str:
        with open(self.stderr_path, errors="replace") as err:
            return err.read()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the pool did not exit within {timeout}s:\n"
                                 f"{self.stderr()[-3000:]}") from None

    def kill(self) -> None:
        """Teardown: the pool and its children, by PID."""
        pids = self.children() if self.process.poll() is None else []
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def start_pool(tmp_path: Any, gearmand: GearmandProcess) -> Iterator[Callable[..., Pool]]:
    pools: List[Pool] = []

    def start(*args: str, target: str = "pooltarget:TASKS", source: str = TARGET) -> Pool:
        (tmp_path / "pooltarget.py").write_text(source)
        pool = Pool(str(tmp_path), gearmand, *args, target=target)
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.kill()


def ready_workers(gearmand: GearmandProcess, task: str, count: int, timeout: float = 20
                  ) -> None:
    wait_for(lambda: status_of(gearmand, task)[2] >= count, timeout=timeout,
             what=f"{count} workers for {task}")


def run_jobs(gearmand: GearmandProcess, prefix: str, count: int, sleep: float = 0.0,
             timeout: float = 60) -> List[Any]:
    data = [f"{prefix}-{i}" + (f":{sleep}" if sleep else "") for i in range(count)]
    with gearman.GearmanClient([gearmand.address]) as client:
        done = client.submit_multiple_jobs([{"task": "record", "data": d} for d in data],
                                           poll_timeout=timeout)
    assert [r.state for r in done] == [JOB_COMPLETE] * count
    assert [r.result.split()[0].decode() for r in done] == data
    return done


def assert_each_once(pool: Pool, prefix: str, count: int) -> None:
    lines = [line.split(":")[0] for line in pool.lines() if line.startswith(prefix + "-")]
    assert sorted(lines) == sorted(f"{prefix}-{i}" for i in range(count))


def pids_of(requests: List[Any]) -> set:
    return {r.result.split()[1] for r in requests}


# -- the tests -----------------------------------------------------------------------------
def test_usage_errors_exit_2_before_anything_starts(tmp_path: Any) -> None:
    def pool(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "gearman", "pool", *args],
                              env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                              timeout=30, cwd=str(tmp_path))

    for args, message in [(["nocolon"], b"module:attribute"),
                          (["m:a", "--dedicated", "x"], b"TASK=N"),
                          (["m:a", "--processes", "0"], b"nothing to run"),
                          (["m:a", "--lifetime-splay", "3"], b"needs --max-lifetime"),
                          (["m:a", "--concurrency", "0"], b"must be 1 or more"),
                          (["m:a", "--metrics", "nowhere"], b"")]:
        done = pool(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr


def test_max_jobs_recycling_runs_each_job_exactly_once(gearmand: GearmandProcess,
                                                       start_pool: Any) -> None:
    pool = start_pool("--processes", "2", "--max-jobs", "7")
    ready_workers(gearmand, "record", 2)
    done = run_jobs(gearmand, "mj", 200)
    assert_each_once(pool, "mj", 200)
    assert len(pids_of(done)) >= 200 // 7  # every child did 7 jobs at most
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0


def test_client_ids_name_the_host_the_pool_and_the_child(gearmand: GearmandProcess,
                                                         start_pool: Any) -> None:
    pool = start_pool("--processes", "2")
    ready_workers(gearmand, "record", 2)
    ids = sorted(client_id for client_id, tasks in workers_of(gearmand) if tasks)
    host = os.uname().nodename.split()[0]
    assert ids == [f"{host}-{pool.pid}-1", f"{host}-{pool.pid}-2"]


def test_target_forms_and_dedicated_processes(gearmand: GearmandProcess,
                                               start_pool: Any) -> None:
    start_pool("--processes", "1", "--dedicated", "block=2", target="pooltarget:RecordWorker")
    wait_for(lambda: sorted(tasks for _, tasks in workers_of(gearmand) if tasks) == [
        ("block",), ("block",), ("block", "broken", "record")], what="1 + 2 dedicated workers")
    run_jobs(gearmand, "cls", 5)


def test_a_factory_target_with_concurrency(gearmand: GearmandProcess, start_pool: Any) -> None:
    pool = start_pool("--processes", "1", "--concurrency", "4", "--max-jobs", "10",
                      target="pooltarget:make_worker")
    ready_workers(gearmand, "record", 1)
    done = run_jobs(gearmand, "cc", 60, sleep=0.05)
    assert_each_once(pool, "cc", 60)
    assert len(pids_of(done)) >= 2  # recycled after about 10 jobs each


def test_lifetime_recycling_runs_each_job_exactly_once(gearmand: GearmandProcess,
                                                       start_pool: Any) -> None:
    pool = start_pool("--processes", "2", "--max-lifetime", "0.5", "--lifetime-splay", "0.5")
    ready_workers(gearmand, "record", 2)
    done = run_jobs(gearmand, "lt", 120, sleep=0.02)
    assert_each_once(pool, "lt", 120)
    assert len(pids_of(done)) > 2
    assert "exited after its lifetime" in pool.stderr()


@pytest.mark.parametrize("threads", [[], ["--concurrency", "4"]], ids=["one-job", "threads"])
def test_sigterm_under_load_drains_and_exits_0(gearmand: GearmandProcess, start_pool: Any,
                                               threads: List[str]) -> None:
    pool = start_pool("--processes", "2", "--graceful-timeout", "20", *threads)
    ready_workers(gearmand, "record", 2)
    with gearman.GearmanClient([gearmand.address]) as client:
        client.submit_multiple_jobs([{"task": "record", "data": f"st-{i}:0.05"}
                                     for i in range(40)], background=True,
                                    wait_until_complete=False, poll_timeout=10)
    wait_for(lambda: len(pool.lines()) >= 4, what="some jobs done")
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    assert pool.children() == []
    lines = [line.split(":")[0] for line in pool.lines()]
    assert len(lines) == len(set(lines)) < 40
    # what did not run is still queued for the next worker: nothing lost
    wait_for(lambda: status_of(gearmand, "record")[0] == 40 - len(lines),
             what="the jobs not run still queued")


def test_graceful_timeout_kills_and_gearmand_requeues_the_job(gearmand: GearmandProcess,
                                                              start_pool: Any) -> None:
    pool = start_pool("--processes", "1", "--graceful-timeout", "0.3")
    ready_workers(gearmand, "block", 1)
    with gearman.GearmanClient([gearmand.address]) as client:
        client.submit_job("block", b"", background=True, poll_timeout=10)
    wait_for(lambda: pool.lines(), what="the job started")
    pool.signal(signal.SIGTERM)
    assert pool.wait(10) == 0
    assert "SIGKILL" in pool.stderr()
    # killed mid-job: the job is back in the queue for another worker
    wait_for(lambda: status_of(gearmand, "block") == (1, 0, 0), what="the job re-queued")


def test_second_signal_stops_at_once(gearmand: GearmandProcess, start_pool: Any) -> None:
    pool = start_pool("--processes", "1", "--graceful-timeout", "60")
    ready_workers(gearmand, "block", 1)
    with gearman.GearmanClient([gearmand.address]) as client:
        client.submit_job("block", b"", background=True, poll_timeout=10)
    wait_for(lambda: pool.lines(), what="the job started")
    children = pool.children()
    pool.signal(signal.SIGINT)
    time.sleep(0.1)
    pool.signal(signal.SIGINT)
    assert pool.wait(10) == 1
    assert children and not any(os.path.exists(f"/proc/{pid}") for pid in children)


def test_sighup_restarts_with_fresh_code_each_job_exactly_once(
        gearmand: GearmandProcess, start_pool: Any, tmp_path: Any) -> None:
    pool = start_pool("--processes", "2")
    ready_workers(gearmand, "record", 2)
    assert {r.result.split()[2] for r in run_jobs(gearmand, "warm", 4)} == {b"v1"}
    source = (tmp_path / "pooltarget.py").read_text()
    (tmp_path / "pooltarget.py").write_text(source.replace('VERSION = "v1"',
                                                           'VERSION = "v2-new"'))
    results: Dict[str, Any] = {}
    loader = threading.Thread(target=lambda: results.update(
        done=run_jobs(gearmand, "hup", 150, sleep=0.01)), daemon=True)
    loader.start()
    wait_for(lambda: len(pool.lines()) >= 10, what="load running")
    pool.signal(signal.SIGHUP)
    loader.join(60)
    assert "done" in results, "the jobs submitted during SIGHUP did not all complete"
    assert_each_once(pool, "hup", 150)

    def all_new() -> bool:
        after = run_jobs(gearmand, f"after{time.monotonic_ns()}", 4)
        return {r.result.split()[2] for r in after} == {b"v2-new"}

    wait_for(all_new, timeout=20, what="every child running the new code")
    assert "rolling restart" in pool.stderr()


def test_sigkill_of_a_child_mid_job_the_client_still_gets_its_result(
        gearmand: GearmandProcess, start_pool: Any) -> None:
    pool = start_pool("--processes", "2")
    ready_workers(gearmand, "block", 2)
    with gearman.GearmanClient([gearmand.address]) as client:
        request = client.submit_job("block", b"", wait_until_complete=False, poll_timeout=10)
        wait_for(lambda: pool.lines(), what="the job started")
        victim = int(pool.lines()[0].split()[1])
        before = set(pool.children())
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: set(pool.children()) - before, timeout=10, what="a replacement child")
        replaced_in = time.monotonic() - killed_at
        done = client.wait_until_jobs_completed([request], poll_timeout=20)[0]
    assert done.state == JOB_COMPLETE
    assert int(done.result) != victim
    assert replaced_in < 2.0, f"the replacement started {replaced_in:.2f}s after the kill"
    ready_workers(gearmand, "block", 2)
    assert "died (signal SIGKILL)" in pool.stderr()


def test_a_crash_looping_target_backs_off(gearmand: GearmandProcess, start_pool: Any) -> None:
    pool = start_pool("--processes", "1",
                      source="raise RuntimeError('cannot start on purpose')\n")
    time.sleep(5)
    starts = pool.stderr().count("started child")
    assert 2 <= starts <= 6, pool.stderr()
    assert "died at start" in pool.stderr()
    assert "RuntimeError: cannot start on purpose" in pool.stderr()
    pool.signal(signal.SIGTERM)
    assert pool.wait(10) == 0


def scrape(url: str) -> Any:
    parser = pytest.importorskip("prometheus_client.parser",
                                 reason="prometheus-client (requirements-test.txt)")
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples: Dict[Any, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_metrics_sum_the_children_and_healthz(gearmand: GearmandProcess,
                                              start_pool: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_pool("--processes", "2", "--max-jobs", "10", "--metrics", f"127.0.0.1:{port}")
    ready_workers(gearmand, "record", 2)
    wait_for(lambda: healthz(url) == 200, what="/healthz 200")
    run_jobs(gearmand, "m", 30)
    with gearman.GearmanClient([gearmand.address]) as client:
        failed = client.submit_multiple_jobs([{"task": "broken", "data": str(i)}
                                              for i in range(4)], poll_timeout=20)
    assert all(r.state == "FAILED" for r in failed)

    def settled() -> Any:
        """A scrape after the last job: a child that took its 10th job as the last one
        exits then, and its replacement (counted as a restart) comes a moment later.
        34 jobs, 2 children at a time, each leaving after 10: the two live ones hold 9
        at most, so 16 or more were done by children that left, 2 restarts or more
        (3 only if gearmand spread the jobs evenly enough)."""
        samples = scrape(url)
        ok = samples.get(("gearman_worker_jobs_total",
                          (("outcome", "complete"), ("task", "record"))))
        bad = samples.get(("gearman_worker_jobs_total",
                           (("outcome", "exception"), ("task", "broken"))))
        restarts = samples.get(("gearman_pool_restarts_total", (("reason", "max_jobs"),)), 0)
        processes = samples.get(("gearman_pool_processes", ()))
        seen[:] = [ok, bad, processes, restarts]
        return samples if (ok, bad, processes) == (30, 4, 2) and restarts >= 2 else None

    seen: List[Any] = []
    try:
        samples = wait_for(settled, what="the counters equal to the jobs done, 2 processes "
                                         "and 2 or more restarts")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last scrape: complete, exception, processes, "
                             f"restarts = {seen}") from None
    assert samples[("gearman_worker_job_duration_seconds_count", (("task", "record"),))] == 30
    assert samples[("gearman_worker_job_duration_seconds_bucket",
                    (("le", "+Inf"), ("task", "record")))] == 30
    assert samples[("gearman_worker_jobs_in_progress", (("task", "record"),))] == 0


def test_healthz_503_while_a_child_is_missing(gearmand: GearmandProcess,
                                              start_pool: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_pool("--processes", "1", "--dedicated", "nosuchtask=1",
               "--metrics", f"127.0.0.1:{port}")
    ready_workers(gearmand, "record", 1)
    wait_for(lambda: scrape(url).get(("gearman_pool_restarts_total",
                                      (("reason", "start_failed"),))),
             what="the dedicated child failing at start")
    assert healthz(url) == 503
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        assert answer.status == 200

