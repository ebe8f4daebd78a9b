"""gearman-py end to end, run as a person runs it: ``python -m gearman ...`` in a
subprocess against a real gearmand, and next to the C ``gearman`` tool."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest

from gearman import JOB_CREATED, GearmanAdminClient, GearmanClient, GearmanWorker
from gearman.testing import GearmandProcess, require_gearmand

ROOT = pathlib.Path(__file__).resolve().parent.parent
WAIT = 15.0  # bound for every wait
HOLD_LIMIT = 600.0  # a held job: released by teardown, this only bounds a broken one
SUBCOMMANDS = ["status", "workers", "version", "ping", "submit", "work", "top", "cancel"]



def cli_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GEARMAN_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def cli(*args: str, input: bytes = b"", env: Optional[Dict[str, str]] = None,
        timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Run ``python -m gearman ARGS``; stdout stays bytes, stderr is text."""
    proc = subprocess.run([sys.executable, "-m", "gearman", *args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=cli_env(env), timeout=timeout)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def stderr_is_one_error_line(proc: subprocess.CompletedProcess) -> bool:
    lines = proc.stderr.splitlines()
    return len(lines) == 1 and lines[0].startswith("gearman-py: ") and "Traceback" not in \
        proc.stderr


def table(stdout: bytes) -> List[List[str]]:
    return [line.split() for line in stdout.decode().splitlines()]


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start long-running processes (workers); any still running at teardown is killed."""
    procs: List[subprocess.Popen] = []

    def start(argv: List[str], **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=cli_env(), **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def start_work(spawn: Any, address: str, *args: str) -> subprocess.Popen:
    return spawn([sys.executable, "-m", "gearman", "--host", address, "work", *args])


def wait_for_worker(address: str, client_id: str) -> None:
    """Bounded wait until gearmand lists a worker with ``client_id`` (another
    process: there is no event to wait on, so poll the server)."""
    deadline = time.monotonic() + WAIT
    with GearmanAdminClient([address], poll_timeout=WAIT) as admin:
        while not any(w["client_id"] == client_id and w["tasks"] for w in admin.get_workers()):
            assert time.monotonic() < deadline, f"worker {client_id} never registered"
            time.sleep(0.02)


# -- a server in a known state, for the read-only commands ---------------------------------
class Scene:
    """gearmand with a worker (``cli-scene``: functions ``slow`` and ``echo``) busy on
    one ``slow`` job while two more wait."""

    def __init__(self, server: GearmandProcess) -> None:
        self.server, self.address = server, server.address
        self.started, self.release = threading.Event(), threading.Event()
        self.jobs_started = 0
        with GearmanClient([self.address]) as client:
            for n in range(3):
                request = client.submit_job("slow", b"x", unique=f"slow-{n}", background=True,
                                            poll_timeout=WAIT)
                assert request.state == JOB_CREATED
        self.worker = GearmanWorker([self.address])
        self.worker.set_client_id("cli-scene")
        self.worker.register_task("slow", self.slow)
        self.worker.register_task("echo", lambda job: job.data)
        self.thread = threading.Thread(target=self.worker.work, kwargs={"poll_timeout": 0.5},
                                       daemon=True)
        self.thread.start()
        assert self.started.wait(WAIT)

    def slow(self, job: Any) -> bytes:
        # Held until the module's teardown releases it (an event, not a timer: the
        # tests' exact counts must not change because the machine was slow).  The
        # bound only keeps a broken teardown from hanging the run.
        self.jobs_started += 1
        self.started.set()
        assert self.release.wait(HOLD_LIMIT), "the held job was never released"
        return b"done"

    def assert_intact(self) -> None:
        """The scene the tests count on: the first job still held, no other started."""
        assert self.jobs_started == 1 and not self.release.is_set(), \
            f"the {type(self).__name__} scene changed: {self.jobs_started} jobs started"

    def stop(self) -> None:
        self.release.set()
        self.worker.shutdown()
        self.thread.join(WAIT)


@pytest.fixture(scope="module")
def scene_for_module() -> Iterator[Scene]:
    require_gearmand()
    with GearmandProcess() as server:
        state = Scene(server)
        try:
            yield state
        finally:
            state.stop()


@pytest.fixture
def scene(scene_for_module: Scene) -> Iterator[Scene]:
    """The module's scene, checked intact before and after each test."""
    scene_for_module.assert_intact()
    yield scene_for_module
    scene_for_module.assert_intact()


# -- help and usage -------------------------------------------------------------------------
def test_help_for_the_tool_and_every_subcommand():
    top = cli("--help")
    assert top.returncode == 0 and top.stdout.startswith(b"usage: gearman-py")
    for name in SUBCOMMANDS:
        assert name.encode() in top.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: gearman-py {name}".encode()), sub.stdout


def test_usage_errors_are_one_line_and_exit_2():
    for argv in ([], ["submit"], ["frobnicate"], ["--timeout", "soon", "status"],
                 ["work", "f"], ["work", "f", "--", "/no/such/program"],
                 ["--host", "127.0.0.1:notaport", "status"]):
        proc = cli(*argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert stderr_is_one_error_line(proc), (argv, proc.stderr)
        assert proc.stdout == b""


# -- status, workers, version, ping, top --------------------------------------------------------
@pytest.mark.gearmand
def test_status_prints_a_table(scene):
    proc = cli("--host", scene.address, "status")
    assert proc.returncode == 0, proc.stderr
    rows = table(proc.stdout)
    assert rows[0] == ["FUNCTION", "QUEUED", "RUNNING", "WORKERS"]
    assert ["slow", "2", "1", "1"] in rows[1:]  # two waiting, one running
    assert ["echo", "0", "0", "1"] in rows[1:]


@pytest.mark.gearmand
def test_status_json(scene):
    proc = cli("--host", scene.address, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["function"]: row for row in json.loads(proc.stdout)}
    assert rows["slow"] == {"server": scene.address, "function": "slow", "queued": 2,
                            "running": 1, "workers": 1, "total": 3}


@pytest.mark.gearmand
def test_workers_lists_workers_with_their_functions(scene):
    rows = table(cli("--host", scene.address, "workers").stdout)
    assert rows[0] == ["FD", "IP", "CLIENT_ID", "FUNCTIONS"]
    ours = [row for row in rows[1:] if row[2] == "cli-scene"]
    assert len(ours) == 1 and sorted(ours[0][3:]) == ["echo", "slow"]
    assert all(len(row) > 3 for row in rows[1:])  # connections without functions hidden
    everyone = table(cli("--host", scene.address, "workers", "--all").stdout)
    assert any(row[2:] == ["-"] for row in everyone[1:])  # e.g. this admin connection

    listed = json.loads(cli("--host", scene.address, "--json", "workers").stdout)
    worker = [w for w in listed if w["client_id"] == "cli-scene"][0]
    assert sorted(worker["functions"]) == ["echo", "slow"]
    assert isinstance(worker["file_descriptor"], int) and worker["ip"] == "127.0.0.1"


@pytest.mark.gearmand
def test_version_and_ping(scene):
    with GearmanAdminClient([scene.address]) as admin:
        version = admin.get_version()
    proc = cli("--host", scene.address, "version")
    assert (proc.returncode, proc.stdout.decode()) == (0, version + "\n")
    assert json.loads(cli("--host", scene.address, "version", "--json").stdout) == [
        {"server": scene.address, "version": version}]

    proc = cli("--host", scene.address, "ping")
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith(f"{scene.address}: answered in ")
    pings = json.loads(cli("--json", "--host", scene.address, "ping").stdout)
    assert [p["server"] for p in pings] == [scene.address]
    assert 0 < pings[0]["seconds"] < 1


@pytest.mark.gearmand
def test_several_servers_add_a_server_column(scene, gearmand):
    hosts = ["--host", scene.address, "--host", gearmand.address]
    rows = table(cli(*hosts, "status").stdout)
    assert rows[0] == ["SERVER", "FUNCTION", "QUEUED", "RUNNING", "WORKERS"]
    assert [scene.address, "slow", "2", "1", "1"] in rows
    assert {row[0] for row in rows[1:]} == {scene.address}  # the other server is empty

    versions = json.loads(cli(*hosts, "--json", "version").stdout)
    assert [v["server"] for v in versions] == [scene.address, gearmand.address]
    assert table(cli(*hosts, "version").stdout)[0] == ["SERVER", "VERSION"]


@pytest.mark.gearmand
def test_servers_come_from_gearman_servers_unless_host_is_given(scene, gearmand):
    env = {"GEARMAN_SERVERS": f"{scene.address}, {gearmand.address}"}
    pings = json.loads(cli("--json", "ping", env=env).stdout)
    assert [p["server"] for p in pings] == [scene.address, gearmand.address]
    only = json.loads(cli("--json", "--host", gearmand.address, "ping",
                          env={"GEARMAN_SERVERS": "127.0.0.1:1"}).stdout)
    assert [p["server"] for p in only] == [gearmand.address]


@pytest.mark.gearmand
def test_top_refreshes_count_times(scene):
    proc = cli("--host", scene.address, "top", "--count", "2", "--interval", "0.1")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.count("gearman-py top") == 2 and text.count("FUNCTION") == 2
    assert "\x1b[" not in text  # no screen clearing when stdout is not a terminal
    lines = cli("--host", scene.address, "--json", "top", "-n", "2", "--interval", "0.1")
    snapshots = [json.loads(line) for line in lines.stdout.decode().splitlines()]
    assert len(snapshots) == 2
    assert any(row["function"] == "slow" for row in snapshots[0]["status"])


# -- unreachable servers -------------------------------------------------------------------------
def test_a_bad_host_gives_one_line_and_a_failure_code():
    for argv in (["status"], ["workers"], ["version"], ["ping"], ["cancel", "H:x:1"],
                 ["submit", "f", "data"], ["submit", "--background", "f", "data"],
                 ["top", "--count", "1"], ["work", "f", "--", "cat"]):
        proc = cli("--host", "127.0.0.1:1", *argv)
        assert proc.returncode == 1, (argv, proc.stderr)
        assert stderr_is_one_error_line(proc), (argv, proc.stderr)
        assert "127.0.0.1:1" in proc.stderr, (argv, proc.stderr)


@pytest.mark.gearmand
def test_one_bad_server_among_several_is_reported_and_the_rest_shown(gearmand):
    proc = cli("--host", gearmand.address, "--host", "127.0.0.1:1", "version")
    assert proc.returncode == 1
    assert stderr_is_one_error_line(proc) and "127.0.0.1:1" in proc.stderr
    assert gearmand.address in proc.stdout.decode()


# -- submit and work -----------------------------------------------------------------------------
@pytest.mark.gearmand
def test_submit_and_work_round_trip(gearmand, spawn):
    worker = start_work(spawn, gearmand.address, "upper", "--client-id", "cli-upper",
                        "--count", "3", "--", "tr", "a-z", "A-Z")
    wait_for_worker(gearmand.address, "cli-upper")
    host = ["--host", gearmand.address]
    proc = cli(*host, "submit", "upper", "hello world")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"HELLO WORLD", "")
    proc = cli(*host, "submit", "upper", "-", input=b"from stdin\n")
    assert proc.stdout == b"FROM STDIN\n"
    summary = json.loads(cli(*host, "--json", "submit", "upper", "json").stdout)
    assert summary["state"] == "COMPLETE" and summary["result"] == "JSON"
    assert summary["result_hex"] == b"JSON".hex() and summary["server"] == gearmand.address
    assert summary["handle"].startswith("H:")
    assert worker.wait(WAIT) == 0  # --count 3


@pytest.mark.gearmand
def test_work_passes_bytes_through_and_names_the_job(gearmand, spawn):
    payload = bytes(range(256))
    start_work(spawn, gearmand.address, "copy", "--count", "1", "--", "cat")
    proc = cli("--host", gearmand.address, "submit", "copy", "-", input=payload)
    assert proc.stdout == payload
    start_work(spawn, gearmand.address, "env", "--count", "1", "--", "sh", "-c",
               'printf "%s %s" "$GEARMAN_FUNCTION" "$GEARMAN_UNIQUE"')
    proc = cli("--host", gearmand.address, "submit", "env", "--unique", "u-7", "x")
    assert proc.stdout == b"env u-7"


@pytest.mark.gearmand
def test_a_failing_command_fails_the_job_with_its_stderr(gearmand, spawn):
    start_work(spawn, gearmand.address, "broken", "--count", "2", "--", "sh", "-c",
               "cat >/dev/null; echo 'disk on fire' >&2; exit 3")
    proc = cli("--host", gearmand.address, "submit", "broken", "x")
    assert proc.returncode == 1 and proc.stdout == b""
    assert stderr_is_one_error_line(proc)
    assert proc.stderr.startswith("gearman-py: job H:") and "failed: disk on fire" in proc.stderr
    summary = json.loads(cli("--host", gearmand.address, "--json", "submit", "broken",
                             "x").stdout)
    assert summary["state"] == "FAILED" and summary["warnings"] == ["disk on fire"]


def reverse_worker(address: str) -> Any:
    worker = GearmanWorker([address])
    worker.register_task("rev", lambda job: job.data[::-1])
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.5}, daemon=True)
    thread.start()
    return worker, thread


@pytest.mark.gearmand
def test_submit_lines_prints_results_in_order_and_no_progress_when_piped(gearmand):
    worker, thread = reverse_worker(gearmand.address)
    try:
        lines = b"".join(b"line %d\n" % i for i in range(500))
        proc = cli("--host", gearmand.address, "submit", "rev", "--lines", "-", input=lines)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == [(b"line %d" % i)[::-1] for i in range(500)]
        assert proc.stderr == ""  # stderr is a pipe: no progress bar
    finally:
        worker.shutdown()
        thread.join(5)


@pytest.mark.gearmand
def test_submit_lines_shows_a_progress_bar_on_a_terminal(gearmand, tmp_path):
    import pty

    worker, thread = reverse_worker(gearmand.address)
    source = tmp_path / "jobs.txt"
    source.write_bytes(b"".join(b"job %d\n" % i for i in range(2000)))
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "gearman", "--host", gearmand.address,
                               "submit", "rev", "--lines", str(source)],
                              stdout=subprocess.PIPE, stderr=slave, env=cli_env(),
                              timeout=WAIT)
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
        assert proc.returncode == 0
        assert len(proc.stdout.splitlines()) == 2000
        assert b"2000/2000 jobs" in drawn and b"[" in drawn
    finally:
        os.close(master)
        worker.shutdown()
        thread.join(5)


@pytest.mark.gearmand
def test_submit_times_out_with_one_line(gearmand):
    started = time.monotonic()
    proc = cli("--host", gearmand.address, "submit", "--timeout", "0.3", "nobody", "x")
    assert proc.returncode == 1 and stderr_is_one_error_line(proc)
    assert "did not finish within 0.3 seconds" in proc.stderr
    assert time.monotonic() - started < 5


@pytest.mark.gearmand
def test_background_submit_prints_the_handle_and_honours_priority_and_unique(gearmand):
    host = ["--host", gearmand.address]
    proc = cli(*host, "submit", "--background", "--priority", "low", "--unique", "u-low",
               "later", "data")
    assert proc.returncode == 0, proc.stderr
    handle = proc.stdout.decode().strip()
    summary = json.loads(cli(*host, "--json", "submit", "-b", "--priority", "high", "later",
                             "x").stdout)
    assert summary["state"] == "CREATED" and summary["background"] is True
    with GearmanAdminClient([gearmand.address]) as admin:
        assert {job["handle"] for job in admin.get_jobs()} == {handle, summary["handle"]}
        assert "u-low" in {entry["unique"] for entry in admin.get_unique_jobs()}
        assert admin.get_priority_status() == [{"task": "later", "high": 1, "normal": 0,
                                                "low": 1, "workers": 0}]


@pytest.mark.gearmand
def test_a_full_queue_fails_a_background_submit(gearmand):
    with GearmanAdminClient([gearmand.address]) as admin:
        admin.create_function("capped")
        admin.send_maxqueue("capped", 1)
    host = ["--host", gearmand.address]
    assert cli(*host, "submit", "-b", "capped", "1").returncode == 0
    proc = cli(*host, "submit", "-b", "capped", "2")
    assert proc.returncode == 1 and proc.stdout == b""
    assert stderr_is_one_error_line(proc) and "QUEUE_ERROR" in proc.stderr


@pytest.mark.gearmand
def test_cancel(gearmand, gearmand_factory):
    host = ["--host", gearmand.address]
    handle = cli(*host, "submit", "--background", "nobody", "x").stdout.decode().strip()
    proc = cli(*host, "cancel", handle)
    assert (proc.returncode, proc.stdout.decode()) == (
        0, f"cancelled {handle} on {gearmand.address}\n")
    with GearmanAdminClient([gearmand.address]) as admin:
        assert [job["ignore_job"] for job in admin.get_jobs()] == [True]
    proc = cli(*host, "cancel", "H:nowhere:1")
    assert proc.returncode == 1 and stderr_is_one_error_line(proc)
    assert "H:nowhere:1" in proc.stderr

    # With several servers the one whose queue holds the handle is used.
    other = gearmand_factory()
    both = ["--host", other.address, "--host", gearmand.address]
    second = cli(*host, "submit", "--background", "nobody", "y").stdout.decode().strip()
    proc = cli(*both, "--json", "cancel", second)
    assert json.loads(proc.stdout) == {"handle": second, "server": gearmand.address,
                                       "cancelled": True}


# -- signals -------------------------------------------------------------------------------------
@pytest.mark.gearmand
def test_work_stops_on_ctrl_c_with_130_and_on_sigterm_with_0(gearmand, spawn):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 0)):
        client_id = f"sig-{int(sig)}"
        worker = start_work(spawn, gearmand.address, "idle", "--client-id", client_id, "--",
                            "cat")
        wait_for_worker(gearmand.address, client_id)
        worker.send_signal(sig)
        assert worker.wait(WAIT) == code
        assert b"Traceback" not in worker.stderr.read()


# -- next to the C gearman tool ------------------------------------------------------------
@pytest.fixture
def c_gearman() -> str:
    path = shutil.which("gearman")
    assert path, "the C gearman tool (Debian package gearman-tools) is required"
    return path


@pytest.mark.gearmand
def test_a_job_from_our_cli_is_done_by_a_c_worker(gearmand, spawn, c_gearman):
    c_worker = spawn([c_gearman, "-h", "127.0.0.1", "-p", str(gearmand.port), "-w",
                      "-f", "c_upper", "-c", "1", "--", "tr", "a-z", "A-Z"])
    proc = cli("--host", gearmand.address, "submit", "c_upper", "made in python")
    assert (proc.returncode, proc.stdout) == (0, b"MADE IN PYTHON"), proc.stderr
    assert c_worker.wait(WAIT) == 0


@pytest.mark.gearmand
def test_a_job_from_the_c_client_is_done_by_our_work_command(gearmand, spawn, c_gearman):
    worker = start_work(spawn, gearmand.address, "py_rev", "--count", "1", "--", "rev")
    c_client = [c_gearman, "-h", "127.0.0.1", "-p", str(gearmand.port)]
    done = subprocess.run(c_client + ["-f", "py_rev", "made in C"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=WAIT)
    assert (done.returncode, done.stdout.strip()) == (0, b"C ni edam")
    # A failure reaches the C client too (as WORK_FAIL: it never matches the
    # WORK_FAIL gearmand makes out of a WORK_EXCEPTION, and would wait for ever).
    assert worker.wait(WAIT) == 0
    start_work(spawn, gearmand.address, "py_fail", "--count", "1", "--", "false")
    failed = subprocess.run(c_client + ["-f", "py_fail", "x"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=WAIT)
    assert failed.returncode != 0
    assert b"false exited with status 1" in failed.stdout + failed.stderr
