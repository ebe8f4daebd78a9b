"""Logs that name the job: the worker's records about a job carry its task, handle
and unique id (extra fields and message), and ``--log-format json`` emits one JSON
object per record."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any, Callable, Iterator, List

import pytest

import gearman
from gearman.constants import JOB_COMPLETE, JOB_FAILED
from gearman.logs import JsonLogFormatter, describe_job, job_log_fields
from gearman.testing import GearmandProcess
from test_worker import WorkerThread, has_worker, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run_worker() -> Iterator[Callable[[Any], None]]:
    started: List[WorkerThread] = []
    yield lambda worker: started.append(WorkerThread(worker, poll_timeout=30).start())
    for runner in started:
        runner.stop()


def broken(job: Any) -> bytes:
    raise KeyError(f"no such image {job.data!r}")


@pytest.mark.gearmand
def test_records_of_a_failing_job_carry_its_handle_task_and_unique(
        gearmand: GearmandProcess, run_worker: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gearman")
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("resize", broken)
    run_worker(worker)
    wait_for(lambda: has_worker(gearmand, "-", "resize"))
    with gearman.GearmanClient([gearmand.address]) as client:
        failed = client.submit_job("resize", "cat.png", unique="img-7", poll_timeout=10)
    assert failed.state == JOB_FAILED
    handle = failed.job.handle
    records = [r for r in caplog.records if getattr(r, "gearman_handle", None) == handle]
    assert len(records) == 1
    [record] = records
    assert (record.gearman_task, record.gearman_unique) == ("resize", "img-7")
    message = record.getMessage()
    assert handle in message and "'resize'" in message and "'img-7'" in message
    assert record.exc_info and record.exc_info[0] is KeyError
    assert record.funcName == "on_job_exception"  # the caller, not the helper

    # Every job record names its job: none of the worker's records lacks the fields.
    for record in caplog.records:
        if record.getMessage().startswith("job "):
            assert record.gearman_handle and record.gearman_task


def test_json_formatter_output_parses_with_the_gearman_fields() -> None:
    job = gearman.job.GearmanJob(None, "H:host:42", "resize", "img-7", b"")
    log = logging.getLogger("gearman.test_logs")
    try:
        raise ValueError("bad pixel")
    except ValueError:
        exc_info = sys.exc_info()
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "%s raised", (
        describe_job(job),), exc_info, extra=job_log_fields(job))
    entry = json.loads(JsonLogFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "gearman.test_logs"
    assert entry["message"] == "job H:host:42 (task 'resize', unique 'img-7') raised"
    assert (entry["gearman_task"], entry["gearman_handle"], entry["gearman_unique"]) == (
        "resize", "H:host:42", "img-7")
    assert "ValueError: bad pixel" in entry["exception"]
    assert entry["time"].endswith("Z") and entry["time"][:4].isdigit()
    # A value JSON cannot hold is written as its repr, not an error.
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "x", (), None,
                            extra={"thing": object()})
    assert json.loads(JsonLogFormatter().format(record))["thing"].startswith("<object")


@pytest.mark.gearmand
def test_log_format_json_on_the_command_line(gearmand: GearmandProcess) -> None:
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearman", "--log-format", "json", "-v", "work", "fails",
         "--host", gearmand.address, "--count", "1", "--", "sh", "-c", "echo no >&2; exit 3"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        wait_for(lambda: has_worker(gearmand, "-", "fails"), timeout=20)
        with gearman.GearmanClient([gearmand.address]) as client:
            request = client.submit_job("fails", "x", unique="u-1", poll_timeout=10)
        assert request.state != JOB_COMPLETE
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    entries = [json.loads(line) for line in err.decode().splitlines()]  # every line is JSON
    [failed] = [e for e in entries if e.get("gearman_handle") == request.job.handle]
    assert failed["gearman_task"] == "fails" and failed["gearman_unique"] == "u-1"
    assert failed["level"] == "INFO" and "failed: no" in failed["message"]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
