"""Worker metrics (gearman.metrics.instrument_worker) against a real gearmand: the
counters equal the jobs done, by outcome, with jobs on several threads."""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

import gearman
from gearman.constants import JOB_COMPLETE, JOB_FAILED
from gearman.metrics import Registry, WorkerMetrics, instrument_worker
from gearman.testing import GearmandProcess
from test_worker import WorkerThread, has_worker, wait_for

pytestmark = pytest.mark.gearmand


@pytest.fixture
def run_worker() -> Iterator[Callable[..., WorkerThread]]:
    """``run_worker(worker)``: work() on a thread, shut down at teardown."""
    started: List[WorkerThread] = []
    yield lambda worker: started.append(WorkerThread(worker, poll_timeout=30).start())
    for runner in started:
        runner.stop()


def outcome_job(worker: Any, job: Any) -> bytes:
    """``ok-*`` completes, ``fail-*`` sends WORK_FAIL, ``raise-*`` raises."""
    kind = job.data.split(b"-")[0]
    if kind == b"fail":
        worker.send_job_failure(job)
        return b""
    if kind == b"raise":
        raise RuntimeError(f"asked to raise by {job.data!r}")
    return job.data


def samples(registry: Registry) -> Dict[tuple, float]:
    """{(sample name, sorted label pairs): value}, parsed from the rendered page."""
    parser = pytest.importorskip("prometheus_client.parser")
    found = {}
    for family in parser.text_string_to_metric_families(registry.render()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_counters_equal_jobs_by_outcome_across_worker_threads(
        gearmand: GearmandProcess, run_worker: Any) -> None:
    registry = Registry()
    for n in range(3):  # three workers on three threads, counting into one registry
        worker = gearman.GearmanWorker([gearmand.address])
        worker.set_client_id(f"metrics-{n}")
        worker.register_task("outcome", outcome_job)
        worker.register_task("other", lambda job: b"x")
        metrics = instrument_worker(worker, registry)
        assert isinstance(metrics, WorkerMetrics) and metrics.registry is registry
        assert instrument_worker(worker, registry) is metrics  # once per registry
        run_worker(worker)
    for n in range(3):
        wait_for(lambda n=n: has_worker(gearmand, f"metrics-{n}", "outcome", "other"))

    completes, fails, raises = 40, 25, 15
    jobs = ([{"task": "outcome", "data": f"ok-{i}"} for i in range(completes)]
            + [{"task": "outcome", "data": f"fail-{i}"} for i in range(fails)]
            + [{"task": "outcome", "data": f"raise-{i}"} for i in range(raises)]
            + [{"task": "other", "data": ""} for _ in range(7)])
    with gearman.GearmanClient([gearmand.address]) as client:
        requests = client.submit_multiple_jobs(jobs, poll_timeout=60)
    states = [r.state for r in requests]
    assert states.count(JOB_COMPLETE) == completes + 7
    assert states.count(JOB_FAILED) == fails + raises

    # The final answer is counted before it is sent, so the client has seen every
    # result only after every count: the numbers are exact now.
    found = samples(registry)

    def total(task: str, outcome: str) -> float:
        return found[("gearman_worker_jobs_total", (("outcome", outcome), ("task", task)))]

    assert (total("outcome", "complete"), total("outcome", "fail"),
            total("outcome", "exception")) == (completes, fails, raises)
    assert (total("other", "complete"), total("other", "fail"),
            total("other", "exception")) == (7, 0, 0)
    count = found[("gearman_worker_job_duration_seconds_count", (("task", "outcome"),))]
    inf = found[("gearman_worker_job_duration_seconds_bucket",
                 (("le", "+Inf"), ("task", "outcome")))]
    assert count == inf == completes + fails + raises
    assert found[("gearman_worker_jobs_in_progress", (("task", "outcome"),))] == 0


def test_in_progress_counts_a_running_job(gearmand: GearmandProcess,
                                          run_worker: Any) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(job: Any) -> bytes:
        started.set()
        release.wait(30)
        return b"done"

    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("slow", slow)
    metrics = instrument_worker(worker)  # a registry of its own
    run_worker(worker)
    wait_for(lambda: has_worker(gearmand, "-", "slow"))
    with gearman.GearmanClient([gearmand.address]) as client:
        request = client.submit_job("slow", "", background=False, wait_until_complete=False)
        assert started.wait(30)
        assert metrics.in_progress.labels("slow").get() == 1
        release.set()
        client.wait_until_jobs_completed([request], poll_timeout=30)
    assert request.state == JOB_COMPLETE
    assert metrics.in_progress.labels("slow").get() == 0
    assert metrics.jobs.labels("slow", "complete").get() == 1
    took = samples(metrics.registry)[("gearman_worker_job_duration_seconds_sum",
                                      (("task", "slow"),))]
    assert took > 0


def test_a_failing_observer_never_fails_the_job(gearmand: GearmandProcess,
                                                run_worker: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def job_started(self, job: Any) -> None:
            raise RuntimeError("observer broke")

        def job_finished(self, job: Any, outcome: str) -> None:
            raise RuntimeError("observer broke")

    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("echo", lambda job: job.data)
    worker.add_job_observer(Broken())
    metrics = instrument_worker(worker)
    run_worker(worker)
    wait_for(lambda: has_worker(gearmand, "-", "echo"))
    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("echo", "hi", poll_timeout=10).result == b"hi"
    assert metrics.jobs.labels("echo", "complete").get() == 1
    assert "observer broke" in caplog.text


def test_instrument_worker_refuses_what_is_not_a_worker() -> None:
    with pytest.raises(TypeError, match="needs a GearmanWorker"):
        instrument_worker(object())


def test_a_second_final_answer_is_not_counted_again(gearmand: GearmandProcess,
                                                    run_worker: Any) -> None:
    def twice(worker: Any, job: Any) -> None:
        worker.send_job_complete(job, b"first")
        worker.send_job_failure(job)  # refused: the job was already finished

    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("twice", twice)
    metrics = instrument_worker(worker)
    run_worker(worker)
    wait_for(lambda: has_worker(gearmand, "-", "twice"))
    with gearman.GearmanClient([gearmand.address]) as client:
        assert client.submit_job("twice", "", poll_timeout=10).result == b"first"
    assert [metrics.jobs.labels("twice", outcome).get() for outcome in
            ("complete", "fail", "exception")] == [1, 0, 0]
    assert metrics.in_progress.labels("twice").get() == 0
