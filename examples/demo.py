"""The main demo: a worker, a client and an admin client against a real gearmand.

Uses the gearmand named by $GEARMAN_SERVERS (first entry) or 127.0.0.1:4730 if one
answers there; otherwise starts a private gearmand on a free loopback port.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import gearman
from gearman.aio import AsyncGearmanClient
from gearman.exporter import GearmanExporter
from gearman.metrics import Registry
from gearman.testing import GearmandProcess


def running_server(address: str) -> bool:
    admin = gearman.GearmanAdminClient([address], poll_timeout=2.0, connect_timeout=1.0)
    try:
        admin.get_version()
        return True
    except gearman.errors.GearmanError:
        return False
    finally:
        admin.close()


def start_worker(address: str, concurrency: int = 1) -> tuple:
    worker = gearman.GearmanWorker([address], concurrency=concurrency)
    worker.set_client_id("demo-worker")

    def reverse(job):
        return job.data[::-1]

    def count_words(worker, job):
        words = job.data.split()
        for done, _ in enumerate(words, 1):
            worker.send_job_status(job, done, len(words))
        return str(len(words))

    def nap(job):
        time.sleep(0.2)  # waits on "I/O": four run at once on the worker's job threads
        return job.data

    worker.register_task("reverse", reverse)
    worker.register_task("count_words", count_words)
    worker.register_task("nap", nap)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 1.0}, daemon=True)
    thread.start()
    return worker, thread


async def asyncio_demo(address: str) -> None:
    """The same jobs from asyncio: many tasks await one AsyncGearmanClient."""
    async with AsyncGearmanClient([address]) as client:
        requests = await asyncio.gather(*(client.submit_job("reverse", f"async {i}",
                                                            poll_timeout=30)
                                          for i in range(100)))
        good = sum(r.result == f"async {i}".encode()[::-1] for i, r in enumerate(requests))
        print(f"asyncio: 100 concurrent submit_job calls, {good} results matched")


def exporter_demo(address: str) -> None:
    """What Prometheus would scrape from ``gearman-py exporter``."""
    registry = Registry()
    registry.add_collector(GearmanExporter([address]).collect)
    wanted = ("gearman_up", "gearman_function_workers{")
    for line in registry.render().splitlines():
        if line.startswith(wanted):
            print(f"  metric: {line}")


def demo(address: str) -> None:
    print(f"gearmand at {address}")
    worker, thread = start_worker(address, concurrency=4)
    with gearman.GearmanClient([address]) as client:
        request = client.submit_job("reverse", "hello gearman", poll_timeout=10)
        print(f"reverse('hello gearman') -> {request.result!r} ({request.state})")

        request = client.submit_job("count_words", "one two three four", poll_timeout=10)
        print(f"count_words -> {request.result!r}, last status {request.status.get('numerator')}"
              f"/{request.status.get('denominator')}")

        start = time.monotonic()
        jobs = [{"task": "reverse", "data": f"job {i}"} for i in range(2000)]
        requests = client.submit_multiple_jobs(jobs, poll_timeout=60)
        elapsed = time.monotonic() - start
        good = sum(r.result == f"job {i}".encode()[::-1] for i, r in enumerate(requests))
        print(f"2000 jobs in one batch: {good} results matched in {elapsed:.2f}s "
              f"({2000 / elapsed:.0f} jobs/s)")

        start = time.monotonic()
        naps = client.submit_multiple_jobs([{"task": "nap", "data": str(i)} for i in range(8)],
                                           poll_timeout=30)
        print(f"8 jobs of 0.2 s on a worker with concurrency=4: "
              f"{sum(r.complete for r in naps)} done in {time.monotonic() - start:.2f}s")

        background = client.submit_job("reverse", "later", background=True, poll_timeout=10)
        print(f"background job accepted with handle {background.job.handle}")

    admin = gearman.GearmanAdminClient([address])
    try:
        print(f"server version {admin.get_version()}, ping {admin.ping_server() * 1000:.2f} ms")
        for row in admin.get_status():
            print(f"  status: {row}")
        for row in admin.get_workers():
            if row["tasks"]:
                print(f"  worker: {row['client_id']} can do {', '.join(row['tasks'])}")
    finally:
        admin.close()
    asyncio.run(asyncio_demo(address))
    exporter_demo(address)
    cli_demo(address)
    worker.shutdown()
    thread.join(10)
    print("demo finished")


def cli_demo(address: str) -> None:
    """The same through the command line: a shell command as a worker, a submit, status."""
    cli = [sys.executable, "-m", "gearman", "--host", address]
    print(f"$ python -m gearman --host {address} work shout -- tr a-z A-Z &")
    worker = subprocess.Popen(cli + ["work", "shout", "--", "tr", "a-z", "A-Z"])
    try:
        print(f"$ python -m gearman --host {address} submit shout 'hello from the cli'")
        subprocess.run(cli + ["submit", "shout", "hello from the cli"], check=True, timeout=30)
        print()
        print(f"$ python -m gearman --host {address} status")
        subprocess.run(cli + ["status"], check=True, timeout=30)
    finally:
        worker.terminate()
        worker.wait(10)


def main() -> int:
    servers = os.environ.get("GEARMAN_SERVERS", "127.0.0.1:4730")
    address = servers.split(",")[0].strip()
    if running_server(address):
        demo(address)
        return 0
    print(f"no gearmand answers at {address}; starting a private one")
    with GearmandProcess() as server:
        demo(server.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
