"""AsyncGearmanClient against a real gearmand: results matched per request under
concurrency, timeouts and cancellation, updates, status, bad input; and the same
behaviour as GearmanClient where one parametrised test can show it."""
from __future__ import annotations

import asyncio
import random
import subprocess
import threading
from typing import Any

import pytest

import gearman
from gearman import JOB_COMPLETE, JOB_CREATED, JOB_FAILED, errors
from gearman.aio import AsyncGearmanClient, Update
from gearman.job import GearmanJob, GearmanJobRequest

from aio_support import (WAIT, async_worker, gearman_tool, maybe_await, reverse, run,
                         thread_worker)

pytestmark = pytest.mark.gearmand

DRIVERS = ["blocking", "asyncio"]


def make_client(driver: str, hosts: Any, **options: Any) -> Any:
    cls = gearman.GearmanClient if driver == "blocking" else AsyncGearmanClient
    return cls(hosts, **options)


async def close(client: Any) -> None:
    await maybe_await(client.close())


# -- the same behaviour from both drivers --------------------------------------------------
@pytest.mark.parametrize("driver", DRIVERS)
def test_result_states_and_job_objects(gearmand, driver):
    async def scenario() -> None:
        client = make_client(driver, [gearmand.address])
        try:
            request = await maybe_await(client.submit_job("reverse", b"abc\0def",
                                                          poll_timeout=WAIT))
            assert isinstance(request, GearmanJobRequest) and isinstance(request.job, GearmanJob)
            assert request.state == JOB_COMPLETE and request.complete
            assert request.result == b"fed\0cba"
            assert request.job.handle and request.job.task == "reverse"
            background = await maybe_await(client.submit_job("reverse", "x", background=True,
                                                             poll_timeout=WAIT))
            assert background.state == JOB_CREATED and background.complete
            failed = await maybe_await(client.submit_job("explode", b"", poll_timeout=WAIT))
            assert failed.state == JOB_FAILED and "ValueError: no" in failed.exception
        finally:
            await close(client)

    def explode(job: Any) -> None:
        raise ValueError("no")

    with thread_worker(gearmand.address, {"reverse": reverse, "explode": explode}):
        run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("call, error", [
    (lambda c: c.submit_job("t\0x", b""), ValueError),
    (lambda c: c.submit_job("t", b"", unique="u" * 64), ValueError),
    (lambda c: c.submit_job("t", 12), TypeError),
    (lambda c: c.submit_job("t", b"", priority="urgent"), ValueError),
    (lambda c: c.submit_multiple_jobs({"task": "t", "data": b""}), TypeError),
    (lambda c: c.submit_multiple_jobs([{"task": "t"}]), ValueError),
    (lambda c: c.submit_job("t", b"", max_retries=-1), ValueError),
    (lambda c: c.get_job_status_by_handle("H" * 64), ValueError),
])
def test_bad_input_is_refused_before_anything_is_sent(gearmand, driver, call, error):
    async def scenario() -> None:
        client = make_client(driver, [gearmand.address])
        try:
            with pytest.raises(error):
                await maybe_await(call(client))
            assert not any(c.connected for c in client.connection_list)
        finally:
            await close(client)

    run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
def test_equal_unique_ids_coalesce_and_each_gets_the_result(gearmand, driver):
    release = threading.Event()

    def slow(job: Any) -> bytes:
        release.wait(WAIT)
        return b"once:" + job.data

    async def scenario() -> None:
        client = make_client(driver, [gearmand.address])
        try:
            jobs = [{"task": "slow", "data": b"a", "unique": "same"} for _ in range(3)]
            requests = await maybe_await(client.submit_multiple_jobs(
                jobs, wait_until_complete=False, poll_timeout=WAIT))
            assert len({r.job.handle for r in requests}) == 1
            release.set()
            await maybe_await(client.wait_until_jobs_completed(requests, poll_timeout=WAIT))
            assert [r.result for r in requests] == [b"once:a"] * 3
        finally:
            await close(client)

    with thread_worker(gearmand.address, {"slow": slow}):
        run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
def test_status_echo_and_poll_timeout(gearmand, driver):
    async def scenario() -> None:
        client = make_client(driver, [gearmand.address])
        try:
            request = await maybe_await(client.submit_job("nobody", b"x", poll_timeout=0.3))
            assert request.timed_out and request.state == JOB_CREATED and not request.complete
            await maybe_await(client.get_job_status(request, poll_timeout=WAIT))
            assert request.status["known"] and not request.status["running"]
            by_handle = await maybe_await(client.get_job_status_by_handle(request.job.handle))
            assert by_handle["known"] and by_handle["handle"] == request.job.handle
            by_unique = await maybe_await(client.get_job_status_by_unique(request.unique))
            assert by_unique["known"] and by_unique["waiting_clients"] >= 1
            assert await maybe_await(client.echo(b"\0ping\0")) == b"\0ping\0"
        finally:
            await close(client)

    run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_error_in_place_of_job_created_fails_that_request_only(gearmand, driver):
    with gearman.GearmanAdminClient([gearmand.address]) as admin:
        admin.create_function("full")
        admin.send_maxqueue("full", 1)

    async def scenario() -> None:
        client = make_client(driver, [gearmand.address])
        try:
            jobs = [{"task": "full", "data": b"1"}, {"task": "full", "data": b"2"},
                    {"task": "reverse", "data": b"3"}]
            queued, refused, fine = await maybe_await(client.submit_multiple_jobs(
                jobs, wait_until_complete=False, poll_timeout=WAIT))
            await maybe_await(client.wait_until_jobs_completed([refused, fine],
                                                               poll_timeout=WAIT))
            assert queued.state == JOB_CREATED and not queued.complete
            assert refused.state == JOB_FAILED and not refused.connection_failed
            assert isinstance(refused.exception, errors.ServerError)
            assert refused.exception.code == "QUEUE_ERROR"
            assert fine.result == b"3"
            assert client.connection_list[0].connected
        finally:
            await close(client)

    with thread_worker(gearmand.address, {"reverse": reverse}):
        run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_dropped_job_is_retried_on_the_next_server(gearmand_factory, driver):
    """max_retries: the server that took the job dies; the retry goes to the next one
    in the failover order (where a worker serves it), not back to the dead one."""
    first, second = gearmand_factory(), gearmand_factory()
    hosts = [first.address, second.address]

    async def scenario() -> None:
        client = make_client(driver, hosts)
        try:
            unique = next(u for u in ("r%d" % n for n in range(100))
                          if client._connection_order(u)[0].address == first.address)
            request = await maybe_await(client.submit_job(
                "job", b"x", unique=unique, max_retries=1, wait_until_complete=False,
                poll_timeout=WAIT))
            assert request.job.connection.address == first.address
            first.kill()
            await maybe_await(client.wait_until_jobs_completed([request], poll_timeout=WAIT))
            assert request.state == JOB_COMPLETE and request.result == b"served"
            assert request.job.connection.address == second.address
            assert request.connection_attempts == 2
        finally:
            await close(client)

    with thread_worker(second.address, {"job": lambda job: b"served"}):
        run(scenario())


# -- concurrency --------------------------------------------------------------------------
def test_a_thousand_concurrent_submits_each_get_their_own_result(gearmand):
    """Jobs finish out of order (an async worker, random sleeps); every task still
    gets the result of its own job."""
    async def echo_later(job: Any) -> bytes:
        await asyncio.sleep(random.uniform(0, 0.01))
        return b"result-of-" + job.data

    async def scenario() -> None:
        async with async_worker(gearmand.address, {"echo": echo_later}, concurrency=50):
            async with AsyncGearmanClient([gearmand.address]) as client:
                requests = await asyncio.gather(*(
                    client.submit_job("echo", b"%d" % i, poll_timeout=60) for i in range(1000)))
        assert [r.result for r in requests] == [b"result-of-%d" % i for i in range(1000)]
        assert all(r.state == JOB_COMPLETE for r in requests)

    run(scenario(), timeout=120)


def test_batches_and_single_jobs_mixed_in_many_tasks(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            async def batch(n: int) -> None:
                jobs = [{"task": "reverse", "data": b"b%d-%d" % (n, i)} for i in range(50)]
                requests = await client.submit_multiple_jobs(jobs, poll_timeout=WAIT)
                assert [r.result for r in requests] == [j["data"][::-1] for j in jobs]

            async def single(n: int) -> None:
                request = await client.submit_job("reverse", b"s%d" % n, poll_timeout=WAIT)
                assert request.result == (b"s%d" % n)[::-1]

            await asyncio.gather(*(batch(n) for n in range(10)), *(single(n) for n in range(100)))
            assert len(client.connection_list) == 1

    with thread_worker(gearmand.address, {"reverse": reverse}):
        run(scenario())


# -- cancellation ---------------------------------------------------------------------------
def test_cancelled_waits_leave_the_connection_usable_and_drop_late_replies(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.submit_job("later", b"w"), 0.3)
            tasks = [asyncio.ensure_future(client.submit_job("later", b"%d" % i))
                     for i in range(200)]
            await asyncio.sleep(0.3)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            handler = client.server_pool.handler_for(client.connection_list[0])
            assert handler.requests_in_flight == 201
            assert not client._registry.waits  # nobody waits for them any more
            # Now a worker runs them: their replies arrive and are dropped.
            async with async_worker(gearmand.address, {"later": reverse}, concurrency=20):
                fresh = await client.submit_job("later", b"fresh", poll_timeout=WAIT)
                assert fresh.result == b"hserf"
                for _ in range(200):
                    if handler.requests_in_flight == 0:
                        break
                    await asyncio.sleep(0.05)
            assert handler.requests_in_flight == 0
            assert client.connection_list[0].connected
            assert not client._registry.waits and not client._answers

    run(scenario())


def test_poll_timeout_zero_returns_at_once(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            request = await client.submit_job("nobody", b"", poll_timeout=0)
            assert request.timed_out and not request.complete
            await client.wait_until_jobs_accepted([request], poll_timeout=WAIT)
            assert request.state == JOB_CREATED and not request.timed_out

    run(scenario())


# -- updates --------------------------------------------------------------------------------
def test_updates_arrive_in_order_and_end_with_the_job(gearmand):
    async def chatty(worker: Any, job: Any) -> bytes:
        await worker.send_job_data(job, b"one")
        await worker.send_job_warning(job, b"careful")
        await worker.send_job_status(job, 1, 2)
        await worker.send_job_data(job, b"two")
        return b"done"

    async def scenario() -> None:
        async with async_worker(gearmand.address, {"chatty": chatty}):
            async with AsyncGearmanClient([gearmand.address]) as client:
                request = await client.submit_job("chatty", b"", wait_until_complete=False)
                seen = [update async for update in client.updates(request)]
                assert [(u.kind, u.value if u.kind != "status" else
                         (u.value["numerator"], u.value["denominator"])) for u in seen] == [
                    ("data", b"one"), ("warning", b"careful"), ("status", (1, 2)),
                    ("data", b"two")]
                assert all(isinstance(u, Update) for u in seen)
                assert request.state == JOB_COMPLETE and request.result == b"done"
                background = await client.submit_job("chatty", b"", background=True)
                with pytest.raises(ValueError, match="background"):
                    async for _ in client.updates(background):
                        pass

    run(scenario())


# -- servers ----------------------------------------------------------------------------------
def test_failover_order_is_the_blocking_clients(gearmand_factory):
    first, second = gearmand_factory(), gearmand_factory()
    hosts = [first.address, second.address]
    blocking = gearman.GearmanClient(hosts)

    async def scenario() -> None:
        async with AsyncGearmanClient(hosts) as client:
            for n in range(20):
                request = await client.submit_job("t", b"", unique="u%d" % n, background=True,
                                                  poll_timeout=WAIT)
                expected = blocking._connection_order("u%d" % n)[0]
                assert request.job.connection.address == expected.address
            first.kill()
            request = await client.submit_job("t", b"", unique="u0", background=True,
                                              poll_timeout=WAIT)
            assert request.state == JOB_CREATED
            assert request.job.connection.address == second.address

    try:
        run(scenario())
    finally:
        blocking.close()


def test_a_dead_server_fails_the_request_without_raising():
    async def scenario() -> None:
        async with AsyncGearmanClient(["127.0.0.1:1"], connect_timeout=2) as client:
            request = await client.submit_job("t", b"", max_retries=2, poll_timeout=WAIT)
            assert request.connection_failed and not request.complete
            with pytest.raises(errors.ConnectionError):
                await client.echo(b"x")

    run(scenario())


def test_shutdown_fails_waiting_requests_and_the_client_reconnects(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            waiting = asyncio.ensure_future(client.submit_job("nobody", b"", max_retries=3,
                                                              poll_timeout=WAIT))
            await asyncio.sleep(0.3)
            await client.shutdown()
            request = await asyncio.wait_for(waiting, WAIT)
            assert request.connection_failed and not request.complete
            assert await client.echo(b"back") == b"back"

    run(scenario())


def test_closed_client_refuses_work(gearmand):
    async def scenario() -> None:
        client = AsyncGearmanClient([gearmand.address])
        await client.close()
        with pytest.raises(errors.InvalidClientState):
            await client.submit_job("t", b"")

    run(scenario())


# -- interop with the C gearman tool ----------------------------------------------------------
def test_c_gearman_worker_serves_the_async_client(gearmand, tmp_path):
    tool = gearman_tool()
    worker = subprocess.Popen([tool, "-h", "127.0.0.1", "-p", str(gearmand.port), "-w",
                               "-f", "upper", "--", "tr", "a-z", "A-Z"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            requests = await asyncio.gather(*(client.submit_job("upper", b"job %d" % i,
                                                                poll_timeout=WAIT)
                                              for i in range(5)))
            assert [r.result for r in requests] == [b"JOB %d" % i for i in range(5)]

    try:
        run(scenario())
    finally:
        worker.kill()
        worker.wait(5)

