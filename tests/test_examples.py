"""The seed README's examples (examples/*.py), run as a person would, against gearmand."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading

import pytest

import gearman
from gearman.testing import GearmandProcess, free_port
from readme_encoders import JSONDataEncoder, PickleDataEncoder

pytestmark = pytest.mark.gearmand
ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class PickleWorker(gearman.GearmanWorker):
    data_encoder = PickleDataEncoder


def run_worker(worker: gearman.GearmanWorker):
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.5}, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def workers(gearmand):
    plain = gearman.GearmanWorker([gearmand.address])
    plain.register_task("task_name", lambda job: job.data.upper())
    plain.register_task("other_task", lambda job: job.data[::-1])
    pickler = PickleWorker([gearmand.address])
    pickler.register_task("pickle_echo", lambda job: {"got": job.data})
    threads = [run_worker(plain), run_worker(pickler)]
    yield gearmand
    for worker, thread in zip((plain, pickler), threads):
        worker.shutdown()
        thread.join(5)


def example(name: str, servers: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, GEARMAN_SERVERS=servers,
               PYTHONPATH=os.pathsep.join([str(ROOT), str(EXAMPLES)]))
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, str(EXAMPLES / name)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def output_of(name: str, servers: str, **kwargs) -> str:
    process = example(name, servers, **kwargs)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


def test_client_1_single_job(workers):
    # 'otherhost' of the README is a second server that is down: the job fails over.
    dead = f"127.0.0.1:{free_port()}"
    out = output_of("client_1_single_job.py", f"{workers.address},{dead}")
    assert "finished!  Result: COMPLETE - b'ARBITRARY BINARY DATA'" in out


def test_client_2_background_high(workers):
    out = output_of("client_2_background_high.py", workers.address)
    assert "finished!  Result: CREATED - None" in out


def test_client_3_multiple_jobs(workers):
    out = output_of("client_3_multiple_jobs.py", workers.address)
    assert "COMPLETE - b'BINARY DATA'" in out
    assert "COMPLETE - b'atad yranib rehto'" in out


def test_client_4_recovering_from_failed_connections():
    port = free_port()
    worker = gearman.GearmanWorker([f"127.0.0.1:{port}"])
    worker.register_task("task_name", lambda job: job.data.upper())
    worker.register_task("other_task", lambda job: job.data[::-1])
    thread = run_worker(worker)
    process = example("client_4_recovering.py", f"127.0.0.1:{port}", stdin=subprocess.PIPE)
    try:
        assert "all connections failed" in process.stdout.readline()
        with GearmandProcess(port=port):
            process.stdin.write("\n")
            process.stdin.flush()
            out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, out
        assert "task_name COMPLETE b'TASK BINARY STRING'" in out
        assert "other_task COMPLETE b'gnirts yranib rehto'" in out
    finally:
        process.kill()
        worker.shutdown()
        thread.join(5)


def test_client_5_pickle_and_logging(workers):
    out = output_of("client_5_pickle_logging.py", workers.address)
    assert "Waiting for jobs to complete..." in out
    assert "Finished waiting for jobs to complete..." in out
    assert "COMPLETE {'got': {'numbers': [1, 2, 3], 'text': 'héllo'}}" in out


def test_worker_1_reverse(gearmand):
    process = example("worker_1_reverse.py", gearmand.address)
    try:
        with gearman.GearmanClient([gearmand.address]) as client:
            request = client.submit_job("reverse", "stressed", poll_timeout=20)
        assert request.result == b"desserts"
        ids = [w["client_id"] for w in gearman.GearmanAdminClient([gearmand.address])
               .get_workers()]
        assert "your_worker_client_id_name" in ids
    finally:
        process.kill()
        process.communicate()


def test_worker_2_json_encoder_and_after_poll(gearmand):
    process = example("worker_2_json_after_poll.py", gearmand.address,
                      env={"EXAMPLE_JOBS": "2"})

    class JSONClient(gearman.GearmanClient):
        data_encoder = JSONDataEncoder

    with JSONClient([gearmand.address]) as client:
        first = client.submit_job("json_sum", {"numbers": [1, 2, 3]}, poll_timeout=20)
        second = client.submit_job("json_sum", {"numbers": [10, 20]}, poll_timeout=20)
    assert (first.result, second.result) == ({"sum": 6}, {"sum": 30})
    out, _ = process.communicate(timeout=20)  # after_poll returned False: work() ended
    assert process.returncode == 0, out
    assert "worker stopped after 2 jobs" in out


def test_admin_1_single_host(workers):
    out = output_of("admin_1_single_host.py", workers.address)
    assert "version: 1.1" in out
    assert "'task': 'task_name'" in out and "'tasks': (" in out


def test_the_main_demo_runs_end_to_end(gearmand):
    out = output_of("demo.py", gearmand.address)
    assert "reverse('hello gearman') -> b'namraeg olleh' (COMPLETE)" in out
    assert "2000 jobs in one batch: 2000 results matched" in out
    assert "8 jobs of 0.2 s on a worker with concurrency=4: 8 done" in out
    assert "asyncio: 100 concurrent submit_job calls, 100 results matched" in out
    assert "metric: gearman_up 1" in out
    assert "HELLO FROM THE CLI" in out
    assert out.rstrip().endswith("demo finished")


def test_the_asyncio_demo_runs_end_to_end(gearmand):
    out = output_of("asyncio_demo.py", gearmand.address)
    assert "results: ['JOB 0', 'JOB 1', 'JOB 2'] ..." in out
    assert "update: status 4 of 4" in out
    assert "word_count: COMPLETE b'4'" in out
    assert "cancelled a wait" in out and "still usable: b'OK'" in out
    assert "'task': 'slow_upper'" in out
