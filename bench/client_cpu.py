"""The client's own cost, without gearmand and workers: CPU and Python calls per job.

A fake gearmand (``fake_gearmand`` below, in its own process) answers every
SUBMIT_JOB at once with JOB_CREATED and a WORK_COMPLETE echoing the payload, so
a run measures the client alone and moves far less with the load of a shared
machine than a bench cell.  Usage (from the repository root)::

    bench/.venv/bin/python bench/client_cpu.py --trees OLD_DIR,NEW_DIR \\
        --mode sequential --jobs 5000 --rounds 3 --runs 6 [--calls]

``--mode``: ``sequential``, ``batch`` and ``background`` drive GearmanClient;
``gather`` (an ``asyncio.gather`` of ``submit_job``) and ``async-multi`` (one
``submit_multiple_jobs``) drive gearman.aio's client on a loop of its own.

Trees are checkouts of this project (``git archive REV | tar -x -C DIR``); runs
alternate between them, each in a fresh process.  ``--calls`` counts Python
calls and ``epoll_wait`` per job with cProfile instead (deterministic).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

HEADER = struct.Struct("!4sII")
MODES = ("sequential", "batch", "background", "gather", "async-multi")


def fake_gearmand() -> None:
    """Serve one connection at a time on a free port (printed first), for ever."""
    def packet(command: int, *args: bytes) -> bytes:
        body = b"\0".join(args)
        return HEADER.pack(b"\0RES", command, len(body)) + body

    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    handles = 0
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            pos, out = 0, []
            while len(buf) - pos >= HEADER.size:
                _magic, command, size = HEADER.unpack_from(buf, pos)
                if len(buf) - pos - HEADER.size < size:
                    break
                body = bytes(buf[pos + HEADER.size:pos + HEADER.size + size])
                pos += HEADER.size + size
                if command in (16, 26):  # ECHO_REQ, OPTION_REQ
                    out.append(packet(command + 1, body))
                elif command in (7, 18):  # SUBMIT_JOB, SUBMIT_JOB_BG
                    handles += 1
                    handle = b"H:fake:%d" % handles
                    out.append(packet(8, handle))
                    if command == 7:
                        out.append(packet(13, handle, body.split(b"\0", 2)[2]))
            del buf[:pos]
            if out:
                conn.sendall(b"".join(out))
        conn.close()


def _blocking_once(port: int, mode: str, payloads: List[bytes]) -> Callable[[], bool]:
    """GearmanClient: submit_job one by one, or one submit_multiple_jobs."""
    import gearman
    client = gearman.GearmanClient([f"127.0.0.1:{port}"])
    client.echo(b"warm-up")

    def once() -> bool:
        if mode == "sequential":
            got = [client.submit_job("echo", data, poll_timeout=60).result for data in payloads]
            return got == payloads
        requests = client.submit_multiple_jobs(
            [{"task": "echo", "data": data} for data in payloads], background=mode == "background",
            wait_until_complete=mode != "background", poll_timeout=60)
        if mode == "background":
            return all(request.job.handle for request in requests)
        return [request.result for request in requests] == payloads

    return once


def _async_once(port: int, mode: str, payloads: List[bytes]) -> Callable[[], bool]:
    """gearman.aio on a loop of its own: a gather of submit_job, or one
    submit_multiple_jobs (bench/aio_libs.py's two cells)."""
    import asyncio

    from gearman.aio import AsyncGearmanClient
    loop = asyncio.new_event_loop()
    client = AsyncGearmanClient([f"127.0.0.1:{port}"])
    loop.run_until_complete(client.echo(b"warm-up"))

    async def gather() -> List[Any]:
        if mode == "async-multi":
            return await client.submit_multiple_jobs(
                [{"task": "echo", "data": data} for data in payloads], poll_timeout=60)
        return await asyncio.gather(*(client.submit_job("echo", data, poll_timeout=60)
                                      for data in payloads))

    def once() -> bool:
        return [request.result for request in loop.run_until_complete(gather())] == payloads

    return once


def measure(port: int, mode: str, jobs: int, rounds: int, calls: bool) -> Dict[str, Any]:
    """Run in a fresh process with the tree under test first on sys.path."""
    import gearman
    if not gearman.__file__.startswith(os.environ["PYTHONPATH"]):
        raise SystemExit(f"imported {gearman.__file__}, not the tree under test")
    payloads = [b"job-%07d" % i for i in range(jobs)]
    if mode in ("gather", "async-multi"):
        once = _async_once(port, mode, payloads)
    else:
        once = _blocking_once(port, mode, payloads)
    if calls:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        profiler.enable()
        ok = once()
        profiler.disable()
        stats = pstats.Stats(profiler)
        polls = sum(row[1] for key, row in stats.stats.items()  # type: ignore[attr-defined]
                    if "select.epoll" in key[2])
        return {"ok": ok, "calls_per_job": stats.total_calls / jobs,  # type: ignore[attr-defined]
                "epoll_per_job": polls / jobs}
    cpus = []
    ok = True
    for _ in range(rounds):
        started = time.process_time()
        ok = once() and ok
        cpus.append((time.process_time() - started) / jobs * 1e6)
    return {"ok": ok, "cpu_us_per_job": statistics.median(cpus)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", required=True, help="comma-separated checkouts to compare")
    parser.add_argument("--mode", choices=MODES, default="sequential")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run (median)")
    parser.add_argument("--runs", type=int, default=6, help="alternating runs per tree")
    parser.add_argument("--calls", action="store_true", help="count calls (one run)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        fake_gearmand()
        return 0
    if args.measure:
        port, mode, jobs, rounds, calls = json.loads(args.measure)
        print(json.dumps(measure(port, mode, jobs, rounds, calls)))
        return 0
    server = subprocess.Popen([sys.executable, __file__, "--trees", "-", "--serve"],
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        trees = args.trees.split(",")
        found: Dict[str, List[Dict[str, Any]]] = {tree: [] for tree in trees}
        for number in range(1 if args.calls else args.runs):
            for tree in trees if number % 2 == 0 else trees[::-1]:
                spec = json.dumps([port, args.mode, args.jobs, args.rounds, args.calls])
                out = subprocess.run([sys.executable, __file__, "--trees", "-", "--measure", spec],
                                     env=dict(os.environ, PYTHONPATH=os.path.abspath(tree)),
                                     stdout=subprocess.PIPE, check=True).stdout
                found[tree].append(json.loads(out))
        for tree, results in found.items():
            if not all(result["ok"] for result in results):
                print(f"{tree}: WRONG RESULTS")
            elif args.calls:
                print(f"{tree}: {results[0]['calls_per_job']:.1f} Python calls, "
                      f"{results[0]['epoll_per_job']:.2f} epoll_wait per job ({args.mode})")
            else:
                cpus = [result["cpu_us_per_job"] for result in results]
                print(f"{tree}: {statistics.median(cpus):.1f} µs of CPU per job ({args.mode}; "
                      f"runs {', '.join(f'{cpu:.1f}' for cpu in cpus)})")
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
