"""gearman-py exporter against real gearmands: its numbers equal what the C
``gearadmin`` tool says, per function and per priority, across two servers; a
killed and a stopped server are ``gearman_up 0`` and the scrape still answers in
time."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import gearman
from gearman.exporter import GearmanExporter
from gearman.metrics import Registry
from gearman.testing import GearmandProcess
from test_worker import WorkerThread, wait_for

pytestmark = pytest.mark.gearmand

GEARADMIN = shutil.which("gearadmin") or "/usr/bin/gearadmin"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Key = Tuple[str, Tuple[Tuple[str, str], ...]]


def samples(text: str) -> Dict[Key, float]:
    """{(name, sorted labels): value} from exposition text (comments skipped)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = tuple(sorted(LABEL.findall(labels or "")))
        found[(name, pairs)] = float(value)
    return found


def gearadmin(server: GearmandProcess, option: str) -> List[List[str]]:
    """The C gearadmin's answer to ``option``, one list of fields per line."""
    done = subprocess.run([GEARADMIN, "-h", server.host, "-p", str(server.port), option],
                          capture_output=True, text=True, timeout=10, check=True)
    lines = [line for line in done.stdout.splitlines() if line and line != "."]
    if option == "--workers":
        return [line.split(" ") for line in lines]
    return [line.split("\t") for line in lines]


def expected_from_gearadmin(server: GearmandProcess, label: Dict[str, str]) -> Dict[Key, float]:
    """What the exporter should say about ``server``, from gearadmin alone."""
    expect: Dict[Key, float] = {}

    def put(name: str, labels: Dict[str, str], value: str) -> None:
        expect[(name, tuple(sorted({**labels, **label}.items())))] = float(value)

    for function, total, running, workers in gearadmin(server, "--status"):
        where = {"function": function}
        put("gearman_function_jobs", where, total)
        put("gearman_function_jobs_running", where, running)
        put("gearman_function_jobs_waiting", where, str(int(total) - int(running)))
        put("gearman_function_workers", where, workers)
    for function, high, normal, low, _workers in gearadmin(server, "--priority-status"):
        for priority, count in (("high", high), ("normal", normal), ("low", low)):
            put("gearman_function_jobs_waiting_by_priority",
                {"function": function, "priority": priority}, count)
    with_functions = [row for row in gearadmin(server, "--workers") if row[-1] != ":"]
    put("gearman_workers_connected", {}, str(len(with_functions)))
    put("gearman_up", {}, "1")
    return expect


@pytest.fixture
def holding_worker() -> Iterator[Any]:
    """``holding_worker(server, task)``: a worker that takes one job of ``task`` and
    holds it (running) until the test ends."""
    release = threading.Event()
    runners: List[WorkerThread] = []

    def start(server: GearmandProcess, task: str) -> threading.Event:
        taken = threading.Event()

        def hold(job: Any) -> bytes:
            taken.set()
            release.wait(60)
            return b""

        worker = gearman.GearmanWorker([server.address])
        worker.register_task(task, hold)
        runners.append(WorkerThread(worker, poll_timeout=1).start())
        return taken

    yield start
    release.set()
    for runner in runners:
        runner.stop()


def submit_background(server: GearmandProcess, task: str, counts: Dict[str, int]) -> None:
    priorities = {"low": "LOW", "normal": None, "high": "HIGH"}
    jobs = [{"task": task, "data": f"{name}-{i}", "priority": priorities[name]}
            for name, count in counts.items() for i in range(count)]
    with gearman.GearmanClient([server.address]) as client:
        requests = client.submit_multiple_jobs(jobs, background=True, poll_timeout=10)
    assert all(r.complete for r in requests)


def test_numbers_equal_gearadmin_across_two_servers(gearmand_factory: Any,
                                                    holding_worker: Any) -> None:
    one, two = gearmand_factory(), gearmand_factory()
    submit_background(one, "resize", {"low": 2, "normal": 3, "high": 4})
    submit_background(two, "resize", {"low": 1, "normal": 0, "high": 5})
    submit_background(two, "mail", {"low": 0, "normal": 6, "high": 0})
    taken = holding_worker(one, "held")  # one running and two waiting on server one
    submit_background(one, "held", {"low": 1, "normal": 1, "high": 1})
    assert taken.wait(30)
    wait_for(lambda: ["held", "3", "1", "1"] in gearadmin(one, "--status"),
             what="gearmand to count the held job as running")

    exporter = GearmanExporter([one.address, two.address], timeout=10)
    registry = Registry()
    registry.add_collector(exporter.collect)
    found = samples(registry.render())

    expected: Dict[Key, float] = {}
    for server in (one, two):
        expected.update(expected_from_gearadmin(server, {"server": server.address}))
    measured = {key: value for key, value in found.items()
                if key[0] not in ("gearman_version_info", "gearman_scrape_duration_seconds")}
    assert measured == expected
    # The sums a person checks by eye: nothing counted twice or lost.
    waiting = {k: v for k, v in found.items() if k[0] == "gearman_function_jobs_waiting"}
    assert sum(waiting.values()) == 9 + 6 + 6 + 2
    by_priority = {k: v for k, v in found.items()
                   if k[0] == "gearman_function_jobs_waiting_by_priority"}
    assert sum(by_priority.values()) == sum(waiting.values())
    for server in (one, two):
        version = [k for k in found if k[0] == "gearman_version_info"
                   and ("server", server.address) in k[1]]
        assert len(version) == 1 and dict(version[0][1])["version"].startswith("1.")


def test_one_server_has_no_server_label_and_go_names_mirror(gearmand: GearmandProcess) -> None:
    submit_background(gearmand, "resize", {"low": 0, "normal": 2, "high": 0})
    registry = Registry()
    registry.add_collector(GearmanExporter([gearmand.address], go_names=True).collect)
    found = samples(registry.render())
    assert found[("gearman_up", ())] == 1
    assert found[("gearman_function_jobs_waiting", (("function", "resize"),))] == 2
    assert found[("gearman_jobs_waiting", (("function", "resize"),))] == 2
    assert found[("gearman_workers", (("function", "resize"),))] == 0
    labelled = GearmanExporter([gearmand.address], server_label=True).collect()
    assert dict(labelled[0].samples[0].labels) == {"server": gearmand.address}


def test_killed_and_stopped_servers_are_down_and_the_scrape_stays_in_time(
        gearmand_factory: Any) -> None:
    live, killed, stopped = gearmand_factory(), gearmand_factory(), gearmand_factory()
    submit_background(live, "resize", {"low": 0, "normal": 1, "high": 0})
    killed.kill()
    stopped.pause()
    try:
        timeout = 2.0
        exporter = GearmanExporter([live.address, killed.address, stopped.address],
                                   timeout=timeout)
        registry = Registry()
        registry.add_collector(exporter.collect)
        for _ in range(2):  # and again: nothing left over from the first scrape blocks
            started = time.monotonic()
            found = samples(registry.render())
            took = time.monotonic() - started
            assert took < timeout + 1.5, f"scrape took {took:.2f}s"
            assert {server: found[("gearman_up", (("server", server),))]
                    for server in exporter.servers} == {
                live.address: 1, killed.address: 0, stopped.address: 0}
            assert found[("gearman_function_jobs_waiting",
                          (("function", "resize"), ("server", live.address)))] == 1
            assert not [k for k in found if ("server", stopped.address) in k[1]
                        and k[0].startswith("gearman_function")]
    finally:
        stopped.resume()
    # A continued server answers the next scrape.
    found = samples(registry.render())
    assert found[("gearman_up", (("server", stopped.address),))] == 1


def test_bad_exporter_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="one or more"):
        GearmanExporter([])
    with pytest.raises(ValueError, match="one or more"):
        GearmanExporter("127.0.0.1:4730")
    with pytest.raises(ValueError, match="timeout"):
        GearmanExporter(["127.0.0.1:4730"], timeout=0)


# -- the command -----------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "gearman", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_exporter_command_serves_metrics_and_health_and_stops_on_sigterm(
        gearmand: GearmandProcess) -> None:
    submit_background(gearmand, "resize", {"low": 1, "normal": 0, "high": 0})
    proc = run_cli("exporter", "--listen", "127.0.0.1:0", "--host", gearmand.address,
                   "--timeout", "3")
    try:
        banner = proc.stderr.readline()
        url = re.search(r"serving (http://\S+)/metrics", banner)
        assert url, banner
        with urllib.request.urlopen(url.group(1) + "/metrics", timeout=10) as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = response.read().decode()
        assert samples(text)[("gearman_function_jobs_waiting_by_priority",
                              (("function", "resize"), ("priority", "low")))] == 1
        parser = pytest.importorskip("prometheus_client.parser")
        names = {family.name for family in parser.text_string_to_metric_families(text)}
        assert {"gearman_up", "gearman_function_jobs", "gearman_version_info"} <= names
        with urllib.request.urlopen(url.group(1) + "/healthz", timeout=10) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("listen, message", [("9418", "needs a port"),
                                             ("host:x", "not a number")])
def test_exporter_command_says_what_is_wrong_with_listen(listen: str, message: str) -> None:
    proc = run_cli("exporter", "--listen", listen)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and message in err and err.count("\n") == 1
