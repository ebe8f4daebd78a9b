"""Benchmark of the concurrent worker and ``gearman-py pool`` (issue 14's targets).

    .venv/bin/python bench/pool_bench.py --quick      # smoke run, a tenth of the jobs
    .venv/bin/python bench/pool_bench.py --repeat 3   # full run; writes results/pool.md

Scenarios (each variant: a fresh gearmand, its workers started and registered,
then the jobs queued as one background batch; the time runs from the first
submission to gearmand's ``status`` showing the queue empty).  The variants of a
scenario take turns run by run, in a rotating order, so a drift of the machine
(a neighbour's load, CPU frequency) falls on both alike; and beside jobs/s each
row gives the CPU the worker processes used per job (the pool's supervisor
included), which a busy neighbour disturbs less than wall time:

``pool-cpu``       CPU-bound jobs: one worker process by hand vs ``pool --processes
                   2`` (target: 1.8x or better on 2 cores);
``concurrency``    10 ms sleeps through ``GearmanWorker(concurrency=32)`` in one
                   process vs the ideal, jobs x 10 ms / 32 (target: half or more);
``pool-overhead``  echo jobs: 2 workers started by hand vs ``pool --processes 2``
                   (target: within 5%).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

from run import Admin, cpu_seconds_of, prequeue  # also puts the working tree first on sys.path

from gearman.testing import GearmandProcess

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

#: (scenario, task, jobs in a full run, [(variant, how, processes, concurrency)])
SCENARIOS: List[Tuple[str, str, int, List[Tuple[str, str, int, int]]]] = [
    ("pool-cpu", "cpu", 2000, [("1 process by hand", "hand", 1, 1),
                               ("pool --processes 2", "pool", 2, 1)]),
    ("concurrency", "sleep10", 6400, [("concurrency=32, 1 process", "hand", 1, 32)]),
    ("pool-overhead", "echo", 20000, [("2 processes by hand", "hand", 2, 1),
                                      ("pool --processes 2", "pool", 2, 1)]),
]


def start_workers(how: str, address: str, processes: int, concurrency: int
                  ) -> List[subprocess.Popen[bytes]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, BENCH]))
    py = sys.executable
    if how == "pool":
        args = [py, "-m", "gearman", "pool", "pool_workers:TASKS", "--host", address,
                "--processes", str(processes), "--graceful-timeout", "5"]
        if concurrency > 1:
            args += ["--concurrency", str(concurrency)]
        return [subprocess.Popen(args, cwd=BENCH, env=env, stderr=subprocess.DEVNULL)]
    return [subprocess.Popen([py, os.path.join(BENCH, "pool_workers.py"), address,
                              str(concurrency)], cwd=BENCH, env=env)
            for _ in range(processes)]


def process_tree(pid: int) -> List[int]:
    """``pid`` and its descendants (Linux /proc)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as fh:
                todo.extend(int(child) for child in fh.read().split())
        except OSError:
            pass
    return pids


def tree_cpu(procs: List[subprocess.Popen[bytes]]) -> float:
    total = 0.0
    for proc in procs:
        for pid in process_tree(proc.pid):
            try:
                total += cpu_seconds_of(pid)
            except OSError:  # gone meanwhile
                pass
    return total


def measure(task: str, jobs: int, how: str, processes: int, concurrency: int
            ) -> Tuple[float, float]:
    """Seconds to drain ``jobs`` jobs of ``task``, and the CPU seconds the worker
    processes (with the supervisor) used meanwhile."""
    server = GearmandProcess(verbose="ERROR").start()
    procs: List[subprocess.Popen[bytes]] = []
    admin = Admin(server.port)
    try:
        procs = start_workers(how, server.address, processes, concurrency)
        if not admin.wait_for(task, lambda row: row[2] >= processes, 30, 0.02):
            raise RuntimeError(f"{processes} workers did not register for {task}")
        cpu_before = tree_cpu(procs)
        started = time.perf_counter()
        prequeue(server.address, task, jobs)
        if not admin.wait_for(task, lambda row: row[0] == 0, 600, 0.005):
            raise RuntimeError(f"{task}: jobs still queued after 600 s")
        return time.perf_counter() - started, tree_cpu(procs) - cpu_before
    finally:
        admin.close()
        for proc in procs:  # by PID; the pool drains its own children
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the jobs, one run")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    rows: List[str] = ["| scenario | variant | jobs | jobs/s (median) | worker CPU "
                       "us/job (median) | runs (jobs/s) |",
                       "| --- | --- | --- | --- | --- | --- |"]
    rates: Dict[Tuple[str, str], float] = {}
    cpus: Dict[Tuple[str, str], float] = {}
    for name, task, full_jobs, variants in SCENARIOS:
        jobs = full_jobs // 10 if args.quick else full_jobs
        runs: Dict[str, List[Tuple[float, float]]] = {v[0]: [] for v in variants}
        for rep in range(repeat):
            turn = rep % len(variants)
            for variant, how, processes, concurrency in variants[turn:] + variants[:turn]:
                seconds, cpu = measure(task, jobs, how, processes, concurrency)
                runs[variant].append((jobs / seconds, 1e6 * cpu / jobs))
        for variant, *_ in variants:
            rates[(name, variant)] = statistics.median(r for r, _ in runs[variant])
            cpu_per_job = cpus[(name, variant)] = statistics.median(c for _, c in runs[variant])
            rows.append(f"| {name} | {variant} | {jobs} | {rates[(name, variant)]:,.0f} | "
                        f"{cpu_per_job:,.0f} | "
                        + ", ".join(f"{r:,.0f}" for r, _ in runs[variant]) + " |")
            print(rows[-1], flush=True)
    cpu = rates[("pool-cpu", "pool --processes 2")] / rates[("pool-cpu", "1 process by hand")]
    ideal = 32 / 0.01
    io = rates[("concurrency", "concurrency=32, 1 process")] / ideal
    cost = rates[("pool-overhead", "pool --processes 2")] / rates[
        ("pool-overhead", "2 processes by hand")]
    targets = [f"- pool-cpu: pool --processes 2 at {cpu:.2f}x one process (target 1.8x)",
               f"- concurrency: {io:.2f} of the ideal {ideal:,.0f} jobs/s (target 0.5)",
               f"- pool-overhead: pool at {cost:.2f}x the same workers by hand "
               "(target 0.95 or more); CPU per job "
               f"{cpus[('pool-overhead', 'pool --processes 2')]:.0f} us with the pool, "
               f"{cpus[('pool-overhead', '2 processes by hand')]:.0f} us by hand"]
    report = "\n".join(["# Pool and concurrent worker", "",
                        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}, {repeat} runs a cell, "
                        "variants taking turns (`cd bench && .venv/bin/python pool_bench.py`).",
                        "", *rows, "", *targets, ""])
    print("\n".join(targets))
    if not args.quick:
        with open(os.path.join(BENCH, "results", "pool.md"), "w") as out:
            out.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
