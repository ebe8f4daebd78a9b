"""AsyncGearmanAdminClient against a real gearmand, side by side with
GearmanAdminClient: both run the same command plans, so both give the same answers
and the same errors."""
from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import gearman
from gearman import errors
from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient

from aio_support import WAIT, maybe_await, run

pytestmark = pytest.mark.gearmand

DRIVERS = ["blocking", "asyncio"]


def make_admin(driver: str, hosts: Any, **options: Any) -> Any:
    cls = gearman.GearmanAdminClient if driver == "blocking" else AsyncGearmanAdminClient
    return cls(hosts, **options)


@pytest.mark.parametrize("driver", DRIVERS)
def test_commands_answer_alike(gearmand, driver):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            queued = await client.submit_multiple_jobs(
                [{"task": "waiting", "data": b"", "unique": "u%d" % i} for i in range(3)],
                background=True, poll_timeout=WAIT)
        admin = make_admin(driver, [gearmand.address], poll_timeout=WAIT)
        try:
            assert await maybe_await(admin.ping_server()) > 0
            assert await maybe_await(admin.get_version())
            assert await maybe_await(admin.get_pid()) == gearmand.pid
            assert await maybe_await(admin.get_status()) == [
                {"task": "waiting", "queued": 3, "running": 0, "workers": 0}]
            workers = await maybe_await(admin.get_workers())
            assert all(isinstance(w["file_descriptor"], int) for w in workers)
            assert await maybe_await(admin.send_maxqueue("waiting", 10)) == "OK"
            assert sorted(j["handle"] for j in await maybe_await(admin.get_jobs())) == sorted(
                r.job.handle for r in queued)
            assert sorted(u["unique"] for u in await maybe_await(admin.get_unique_jobs())) == [
                "u0", "u1", "u2"]
            with pytest.raises(errors.AdminCommandError):
                await maybe_await(admin.cancel_job("H:nowhere:1"))
            with pytest.raises(ValueError):
                await maybe_await(admin.send_maxqueue("has space", 1))
            answers = await maybe_await(admin.ask_all_servers("get_version"))
            assert [address for address, _ in answers] == [gearmand.address]
        finally:
            await maybe_await(admin.close())

    run(scenario())


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_silent_server_raises_within_poll_timeout(driver):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    address = "127.0.0.1:%d" % listener.getsockname()[1]

    async def scenario() -> None:
        admin = make_admin(driver, [address], poll_timeout=0.5)
        try:
            with pytest.raises(errors.InvalidAdminClientState, match="did not answer"):
                await maybe_await(admin.get_status())
            assert not admin.connection_list[0].connected  # replies would be out of step
        finally:
            await maybe_await(admin.close())

    try:
        run(scenario())
    finally:
        listener.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_dead_server_raises_connection_error(driver):
    async def scenario() -> None:
        admin = make_admin(driver, ["127.0.0.1:1"], poll_timeout=2)
        try:
            with pytest.raises(errors.ConnectionError, match="cannot connect"):
                await maybe_await(admin.get_status())
            answers = await maybe_await(admin.ask_all_servers("get_status"))
            assert isinstance(answers[0][1], errors.ConnectionError)
        finally:
            await maybe_await(admin.close())

    run(scenario())


def test_many_concurrent_commands_share_one_connection(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanAdminClient([gearmand.address]) as admin:
            results = await asyncio.gather(*(admin.get_pid() for _ in range(50)),
                                           *(admin.ping_server() for _ in range(50)))
            assert results[:50] == [gearmand.pid] * 50
            assert len([w for w in await admin.get_workers()]) >= 1

    run(scenario())
