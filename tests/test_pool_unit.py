"""The pool's parts without processes: TARGET parsing and building, and the
supervisor's end of a child's report pipe (a child that babbles costs its pipe)."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import pytest

from gearman.pool.report import MAX_LINE, ReportReader, Reporter
from gearman.pool.target import build_worker, parse_target

MODULE = '''
import gearman

def job(job):
    return job.data

TASKS = {"a": job, "b": job}
NOT_CALLABLE = {"a": 42}

class Worker(gearman.GearmanWorker):
    def __init__(self):
        super().__init__(["127.0.0.1:1"])
        self.register_task("a", job)

def factory():
    return "not a worker"

NOTHING = {}
'''


@pytest.fixture
def target_module(tmp_path: Any) -> Iterator[str]:
    name = f"pool_unit_target_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    sys.path.insert(0, str(tmp_path))
    yield name
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


@pytest.mark.parametrize("text", ["", "mod", "mod:", ":attr", "mod:attr:x", "1mod:a",
                                  "mod:a b"])
def test_bad_target_spelling(text: str) -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        parse_target(text)


def test_target_forms(target_module: str) -> None:
    worker = build_worker(f"{target_module}:TASKS", ["127.0.0.1:4730"], concurrency=3)
    assert sorted(worker.worker_abilities) == ["a", "b"]
    assert [c.address for c in worker.connection_list] == ["127.0.0.1:4730"]
    assert worker.concurrency == 3
    own = build_worker(f"{target_module}:Worker", ["127.0.0.1:4730"])
    assert [c.address for c in own.connection_list] == ["127.0.0.1:1"]  # the worker's hosts
    only = build_worker(f"{target_module}:TASKS", ["127.0.0.1:4730"], task="b")
    assert list(only.worker_abilities) == ["b"]


@pytest.mark.parametrize("attribute, error, message", [
    ("NOT_CALLABLE", TypeError, "not callable"),
    ("factory", TypeError, "not a GearmanWorker"),
    ("NOTHING", ValueError, "registers no task"),
    ("missing", ValueError, "has no attribute"),
])
def test_target_errors_name_the_problem(target_module: str, attribute: str, error: type,
                                        message: str) -> None:
    with pytest.raises(error, match=message):
        build_worker(f"{target_module}:{attribute}", ["127.0.0.1:4730"])


def test_dedicated_task_must_exist(target_module: str) -> None:
    with pytest.raises(ValueError, match="no task 'zz'"):
        build_worker(f"{target_module}:TASKS", [], task="zz")


def test_reports_round_trip_and_garbage_is_skipped() -> None:
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(read_fd, False)
        reader = ReportReader(read_fd)
        reporter = Reporter(write_fd, buckets=(0.1, 1.0))
        reporter.send("ready", tasks=["a"])
        os.write(write_fd, b"not json\n[1, 2]\n{\"no_event\": 1}\n")
        reporter.job_started("a")
        reporter.job_ended("a", "complete", 0.5)
        reporter.send_jobs(force=True)
        events = reader.read()
        assert events is not None
        assert [e["event"] for e in events] == ["ready", "jobs"]
        assert events[1]["done"] == {"a": {"complete": 1}}
        assert events[1]["durations"] == {"a": [0, 1, 0, 0.5]}  # le 0.1, le 1, +Inf, sum
        assert events[1]["running"] == {"a": 0}
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_child_line_without_end_costs_its_pipe() -> None:
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        reader = ReportReader(read_fd)
        result: Any = []
        while result is not None:
            try:
                os.write(write_fd, b"x" * 65536)
            except BlockingIOError:
                pass
            result = reader.read()
        assert len(reader._buffer) <= MAX_LINE + 65536
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_broken_pipe_never_raises_into_the_job() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    reporter = Reporter(write_fd)
    reporter.send("ready")
    assert reporter.broken
    os.close(write_fd)
