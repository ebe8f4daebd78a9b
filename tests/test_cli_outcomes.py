"""Defect 6: ``gearman-py submit`` names why each job did not complete -- timed
out, lost its server, never submitted, refused, WORK_FAIL, WORK_EXCEPTION --
in the single-job and the ``--lines`` paths alike (one function decides both:
gearman.cli.outcome.why_not_done).  Real gearmand, real subprocesses."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any, List

import pytest

from gearman import GearmanAdminClient, GearmanWorker
from gearman.testing import GearmandProcess, free_port
from test_cli import WAIT, cli, cli_env

pytestmark = pytest.mark.gearmand


def error_lines(stderr: str) -> List[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("gearman-py: ")]


def test_lines_that_time_out_say_so_not_work_fail(gearmand: GearmandProcess) -> None:
    proc = cli("--host", gearmand.address, "submit", "nobody-works", "--timeout", "0.5",
               "--lines", "-", input=b"a\nb\n")
    assert proc.returncode == 1 and proc.stdout == b"\n\n"
    lines = error_lines(proc.stderr)
    assert len(lines) == 2, proc.stderr
    for number, line in enumerate(lines, 1):
        assert line.startswith(f"gearman-py: line {number}: job H:")
        assert line.endswith("timed out: did not finish within 0.5 seconds")
    assert "WORK_FAIL" not in proc.stderr


def test_lines_with_no_server_reachable_say_not_submitted() -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = cli("--host", dead, "submit", "f", "--timeout", "5", "--lines", "-",
               input=b"a\nb\n")
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert lines == [f"gearman-py: line {n}: job for 'f': not submitted: no gearmand "
                     f"reachable among {dead}" for n in (1, 2)]
    single = cli("--host", dead, "submit", "f", "x", "--timeout", "5")
    assert single.returncode == 1
    assert error_lines(single.stderr) == [
        f"gearman-py: job for 'f': not submitted: no gearmand reachable among {dead}"]


def wait_until_queued(server: GearmandProcess, task: str, count: int) -> None:
    """Wait (bounded) until gearmand's status shows ``count`` jobs of ``task``."""
    deadline = time.monotonic() + WAIT
    with GearmanAdminClient([server.address]) as admin:
        while True:
            queued = {row["task"]: row["queued"] for row in admin.get_status()}
            if queued.get(task, 0) >= count:
                return
            assert time.monotonic() < deadline, f"{count} {task} jobs never queued"
            time.sleep(0.02)


def test_lines_whose_server_stops_say_lost_the_connection(
        gearmand_factory: Any, tmp_path: Any) -> None:
    server = gearmand_factory()
    source = tmp_path / "jobs.txt"
    source.write_bytes(b"a\nb\nc\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearman", "--host", server.address, "submit", "held",
         "--timeout", "30", "--lines", str(source)], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    try:
        wait_until_queued(server, "held", 3)  # every job has its JOB_CREATED
        server.stop()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and out == b"\n\n\n"
    lines = error_lines(err.decode())
    assert len(lines) == 3, err
    for number, line in enumerate(lines, 1):
        assert line.startswith(f"gearman-py: line {number}: job H:")
        assert line.endswith(f"lost the connection to gearmand at {server.address} "
                             "while waiting for it")


def test_lines_refused_by_a_full_queue_give_the_servers_code(
        gearmand: GearmandProcess) -> None:
    with GearmanAdminClient([gearmand.address]) as admin:
        admin.create_function("capped")
        admin.send_maxqueue("capped", 1)
    proc = cli("--host", gearmand.address, "submit", "capped", "-b", "--lines", "-",
               input=b"1\n2\n")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith(b"H:")
    [line] = error_lines(proc.stderr)
    assert line.startswith("gearman-py: line 2: job for 'capped': refused by the server: "
                           f"gearmand at {gearmand.address} answered")
    assert "QUEUE_ERROR" in line


def test_lines_that_fail_give_the_exception_text_or_work_fail(
        gearmand: GearmandProcess) -> None:
    from gearman.errors import GearmanError
    worker = GearmanWorker([gearmand.address])

    def judge(gearman_worker: Any, job: Any) -> bytes:
        if job.data == b"raise":
            raise GearmanError("disk on fire")
        if job.data == b"fail":
            gearman_worker.send_job_failure(job)
            return b""
        return job.data.upper()

    worker.register_task("judge", judge)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.5}, daemon=True)
    thread.start()
    try:
        proc = cli("--host", gearmand.address, "submit", "judge", "--timeout", "20",
                   "--lines", "-", input=b"ok\nraise\nfail\n")
    finally:
        worker.shutdown()
        thread.join(10)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [b"OK", b"", b""]
    lines = error_lines(proc.stderr)
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("gearman-py: line 2: job H:")
    assert "failed:" in lines[0] and "disk on fire" in lines[0]
    assert lines[1].startswith("gearman-py: line 3: job H:")
    assert lines[1].endswith("failed: WORK_FAIL, no details")
