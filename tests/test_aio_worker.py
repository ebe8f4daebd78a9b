"""AsyncGearmanWorker against a real gearmand: both callback kinds and signatures,
the concurrency limit as gearmand's own ``status`` shows it, grabbing only with a
free slot, WORK_EXCEPTION, updates, CAN_DO_TIMEOUT, shutdown letting jobs finish,
idle sleep, and interop with the blocking client and the C gearman tool."""
from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import threading
import time
from typing import Any, Dict, List

import pytest

import gearman
from gearman import JOB_COMPLETE, JOB_FAILED, errors
from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient, AsyncGearmanWorker

from aio_support import WAIT, async_worker, gearman_tool, run

pytestmark = pytest.mark.gearmand


async def status_of(admin: AsyncGearmanAdminClient, task: str) -> Dict[str, Any]:
    for line in await admin.get_status():
        if line["task"] == task:
            return line
    return {"task": task, "queued": 0, "running": 0, "workers": 0}


def test_async_and_plain_callbacks_in_both_signatures(gearmand):
    loop_thread: List[int] = []
    job_threads: List[int] = []

    async def async_job(job: Any) -> bytes:
        loop_thread.append(threading.get_ident())
        return b"async:" + job.data

    async def async_worker_job(worker: Any, job: Any) -> bytes:
        assert isinstance(worker, AsyncGearmanWorker)
        return b"async2:" + job.data

    def plain_job(job: Any) -> bytes:
        job_threads.append(threading.get_ident())
        return b"plain:" + job.data

    def plain_worker_job(worker: Any, job: Any) -> str:
        return "plain2:" + job.data.decode()

    tasks = {"a1": async_job, "a2": async_worker_job, "p1": plain_job, "p2": plain_worker_job}

    async def scenario() -> None:
        async with async_worker(gearmand.address, tasks, concurrency=2):
            async with AsyncGearmanClient([gearmand.address]) as client:
                results = [(await client.submit_job(task, b"x", poll_timeout=WAIT)).result
                           for task in ("a1", "a2", "p1", "p2")]
        assert results == [b"async:x", b"async2:x", b"plain:x", b"plain2:x"]
        assert loop_thread == [threading.get_ident()]
        assert job_threads and job_threads[0] != threading.get_ident()

    run(scenario())


@pytest.mark.parametrize("concurrency", [1, 3])
def test_never_more_than_concurrency_jobs_as_gearmand_sees_it(gearmand, concurrency):
    async def scenario() -> None:
        release = asyncio.Event()
        peak = 0

        async def hold(worker: Any, job: Any) -> bytes:
            nonlocal peak
            peak = max(peak, worker.jobs_running)
            await release.wait()
            return job.data

        async with AsyncGearmanClient([gearmand.address]) as client, \
                AsyncGearmanAdminClient([gearmand.address]) as admin:
            jobs = [{"task": "hold", "data": b"%d" % i} for i in range(8)]
            requests = await client.submit_multiple_jobs(jobs, wait_until_complete=False,
                                                         poll_timeout=WAIT)
            async with async_worker(gearmand.address, {"hold": hold},
                                    concurrency=concurrency):
                for _ in range(200):
                    line = await status_of(admin, "hold")
                    if line["running"] >= concurrency:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # room for a grab too many to show up
                line = await status_of(admin, "hold")
                assert line["running"] == concurrency and line["queued"] == 8, line
                release.set()
                await client.wait_until_jobs_completed(requests, poll_timeout=WAIT)
            assert [r.result for r in requests] == [j["data"] for j in jobs]
            assert peak == concurrency

    run(scenario())


def test_a_busy_worker_holds_no_job_another_worker_could_run(gearmand):
    """concurrency=1 and busy: the second job goes to the other (blocking) worker."""
    started = threading.Event()

    async def scenario() -> None:
        release = asyncio.Event()

        async def hold(job: Any) -> bytes:
            started.set()
            await release.wait()
            return b"async"

        async with async_worker(gearmand.address, {"job": hold}, concurrency=1), \
                AsyncGearmanClient([gearmand.address]) as client:
            first = await client.submit_job("job", b"", wait_until_complete=False)
            for _ in range(200):
                if started.is_set():
                    break
                await asyncio.sleep(0.02)
            other = gearman.GearmanWorker([gearmand.address])
            other.register_task("job", lambda job: b"blocking")
            thread = threading.Thread(target=other.work, kwargs={"poll_timeout": 0.2})
            thread.start()
            try:
                second = await client.submit_job("job", b"", poll_timeout=WAIT)
                assert second.result == b"blocking"
            finally:
                other.shutdown()
                await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)
            release.set()
            await client.wait_until_jobs_completed([first], poll_timeout=WAIT)
            assert first.result == b"async"

    run(scenario())


def test_exceptions_fail_the_job_alone_and_updates_reach_the_client(gearmand):
    async def boom(job: Any) -> None:
        raise KeyError("missing")

    def plain_updates(worker: Any, job: Any) -> bytes:
        worker.send_job_data(job, b"from a thread")  # called plainly: it waits itself
        worker.send_job_status(job, 3, 4)
        return b"ok"

    def not_encodable(job: Any) -> object:
        return object()

    tasks = {"boom": boom, "updates": plain_updates, "bad": not_encodable}

    async def scenario() -> None:
        async with async_worker(gearmand.address, tasks, concurrency=2), \
                AsyncGearmanClient([gearmand.address]) as client:
            failed = await client.submit_job("boom", b"", poll_timeout=WAIT)
            assert failed.state == JOB_FAILED and "KeyError" in failed.exception
            bad = await client.submit_job("bad", b"", poll_timeout=WAIT)
            assert bad.state == JOB_FAILED and "not sendable" in bad.exception
            done = await client.submit_job("updates", b"", poll_timeout=WAIT)
            assert done.result == b"ok" and list(done.data_updates) == [b"from a thread"]
            assert (done.status["numerator"], done.status["denominator"]) == (3, 4)

    run(scenario())


def test_shutdown_lets_running_jobs_finish(gearmand):
    async def scenario() -> None:
        started = asyncio.Event()
        worker = AsyncGearmanWorker([gearmand.address], concurrency=2)

        async def slow(job: Any) -> bytes:
            started.set()
            await asyncio.sleep(0.5)
            return b"finished"

        worker.register_task("slow", slow)
        working = asyncio.ensure_future(worker.work(poll_timeout=1))
        async with AsyncGearmanClient([gearmand.address]) as client:
            request = await client.submit_job("slow", b"", wait_until_complete=False)
            await asyncio.wait_for(started.wait(), WAIT)
            worker.shutdown()
            await asyncio.wait_for(working, WAIT)
            await client.wait_until_jobs_completed([request], poll_timeout=WAIT)
            assert request.result == b"finished"
            late = await client.submit_job("slow", b"", poll_timeout=0.5)
            assert late.timed_out  # a worker that shut down grabs nothing more
        assert not any(c.connected for c in worker.connection_list)
        await worker.close()

    run(scenario())


def test_can_do_timeout_requeues_a_job_held_too_long(gearmand):
    """CAN_DO_TIMEOUT as in the blocking worker: gearmand takes back a job held longer
    than the timeout and hands it out again (gearmand sends no NOOP for it: the
    worker looks again when a job ends, as the blocking one does); the late result
    of the first run is refused by gearmand, the second run's counts.  gearmand
    1.1 forgets the timeout when the worker sends another packet (a GRAB for a free
    slot), so it holds with concurrency=1 only (docs/asyncio.rst)."""
    async def scenario() -> None:
        runs: List[str] = []

        async def slow(job: Any) -> bytes:
            runs.append(job.handle)
            if len(runs) == 1:
                await asyncio.sleep(2.5)
                return b"too late"
            return b"second run"

        async with async_worker(gearmand.address, {}, concurrency=1) as worker:
            worker.register_task("slow", slow, timeout=1)
            async with AsyncGearmanClient([gearmand.address]) as client:
                request = await client.submit_job("slow", b"", poll_timeout=15)
                assert (request.state, request.result) == (JOB_COMPLETE, b"second run")
                assert runs == [request.job.handle] * 2  # the same job ran again

    run(scenario())


def test_idle_worker_sleeps_and_wakes_on_noop(gearmand):
    async def scenario() -> None:
        async with async_worker(gearmand.address, {"wake": lambda job: b"awake"},
                                concurrency=4):
            await asyncio.sleep(0.3)
            before = resource.getrusage(resource.RUSAGE_SELF)
            await asyncio.sleep(1.0)
            after = resource.getrusage(resource.RUSAGE_SELF)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            assert used < 0.2, f"idle worker used {used:.2f}s CPU in 1s"
            async with AsyncGearmanClient([gearmand.address]) as client:
                request = await client.submit_job("wake", b"", poll_timeout=WAIT)
                assert request.result == b"awake"

    run(scenario())


def test_client_id_registration_and_unregistration_seen_by_gearmand(gearmand):
    async def scenario() -> None:
        async with async_worker(gearmand.address, {"a": lambda job: b"", "b": lambda job: b""}
                                ) as worker, AsyncGearmanAdminClient([gearmand.address]) as admin:
            worker.set_client_id("async-worker-1")
            worker.unregister_task("b")
            for _ in range(100):
                mine = [w for w in await admin.get_workers()
                        if w["client_id"] == "async-worker-1"]
                if mine and mine[0]["tasks"] == ("a",):
                    break
                await asyncio.sleep(0.05)
            assert mine and mine[0]["tasks"] == ("a",), await admin.get_workers()
            with pytest.raises(ValueError):
                worker.set_client_id("has space")
            with pytest.raises(ValueError):
                AsyncGearmanWorker([gearmand.address], concurrency=0)

    run(scenario())


def test_blocking_client_and_c_tool_are_served(gearmand):
    tool = gearman_tool()

    async def scenario() -> None:
        async def shout(job: Any) -> bytes:
            return job.data.upper()

        async with async_worker(gearmand.address, {"shout": shout}, concurrency=4):
            loop = asyncio.get_running_loop()

            def blocking_side() -> List[bytes]:
                with gearman.GearmanClient([gearmand.address]) as client:
                    jobs = [{"task": "shout", "data": b"b%d" % i} for i in range(20)]
                    return [r.result for r in client.submit_multiple_jobs(jobs, poll_timeout=WAIT)]

            assert await loop.run_in_executor(None, blocking_side) == [b"B%d" % i
                                                                       for i in range(20)]
            output = await loop.run_in_executor(None, lambda: subprocess.run(
                [tool, "-h", "127.0.0.1", "-p", str(gearmand.port), "-f", "shout", "from c"],
                capture_output=True, timeout=WAIT, env=dict(os.environ)).stdout)
            assert output.strip() == b"FROM C"

    run(scenario())


def test_closed_worker_refuses_to_work(gearmand):
    async def scenario() -> None:
        worker = AsyncGearmanWorker([gearmand.address])
        await worker.close()
        with pytest.raises(errors.InvalidWorkerState):
            await worker.work()

    run(scenario())


def test_results_go_out_before_work_returns_when_many_finish_at_once(gearmand):
    async def scenario() -> None:
        async def quick(job: Any) -> bytes:
            await asyncio.sleep(0.01)
            return job.data

        async with AsyncGearmanClient([gearmand.address]) as client:
            jobs = [{"task": "quick", "data": b"%d" % i} for i in range(300)]
            requests = await client.submit_multiple_jobs(jobs, wait_until_complete=False)
            start = time.monotonic()
            async with async_worker(gearmand.address, {"quick": quick}, concurrency=30):
                await client.wait_until_jobs_completed(requests, poll_timeout=WAIT)
            assert all(r.state == JOB_COMPLETE and r.result == r.job.data for r in requests)
            assert time.monotonic() - start < WAIT

    run(scenario())
