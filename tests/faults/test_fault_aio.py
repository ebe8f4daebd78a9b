"""The asyncio front end under faults: the event loop never stalls while a server is
dead, blackholed, unreachable or frozen (a ticker task measures it), and gearmand
SIGKILLed and restarted under a waiting AsyncGearmanClient and under an
AsyncGearmanWorker."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import Any, List

import pytest

from gearman import JOB_COMPLETE, JOB_UNKNOWN, errors
from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient, AsyncGearmanWorker
from gearman.testing import GearmandProcess, free_port

from aio_support import WAIT, Ticker, async_worker, run
from faultkit import _LoopbackListener

pytestmark = pytest.mark.gearmand

#: The longest the loop may go without a turn.  A blocking connect, read or name
#: lookup would show up as a gap of its whole timeout (1 s and more here).
STALL = 0.5
#: A call that loses its server must return this fast.
PROMPT = 2.0


class Blackhole(_LoopbackListener):
    """Accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.held: List[socket.socket] = []
        self._listen(16)

    def _accepted(self, sock: socket.socket) -> None:
        self.held.append(sock)

    def close(self) -> None:
        self._stop_listening()
        for sock in self.held:
            sock.close()


class FullBacklog:
    """A listener whose accept queue is full: the kernel drops further SYNs, so a
    connect neither succeeds nor fails until its own timeout."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)

    def close(self) -> None:
        for sock in self.fillers + [self.listener]:
            sock.close()


def test_loop_never_stalls_on_a_dead_server():
    async def scenario() -> None:
        with Ticker() as ticker:
            async with AsyncGearmanClient(["127.0.0.1:1"]) as client:
                request = await client.submit_job("t", b"", poll_timeout=WAIT)
                assert request.connection_failed
            worker = AsyncGearmanWorker(["127.0.0.1:1"], concurrency=4)
            worker.register_task("t", lambda job: b"")
            working = asyncio.ensure_future(worker.work(poll_timeout=0.2))
            await asyncio.sleep(1.5)  # several reconnect attempts with backoff
            worker.shutdown()
            await asyncio.wait_for(working, WAIT)
            await worker.close()
        assert ticker.longest < STALL, ticker.longest

    run(scenario())


def test_loop_never_stalls_on_a_blackholed_server():
    hole = Blackhole()

    async def scenario() -> None:
        with Ticker() as ticker:
            async with AsyncGearmanClient([hole.address]) as client:
                request = await client.submit_job("t", b"", poll_timeout=1.5)
                assert request.timed_out and not request.complete
            async with AsyncGearmanAdminClient([hole.address], poll_timeout=1.0) as admin:
                with pytest.raises(errors.InvalidAdminClientState):
                    await admin.get_status()
        assert ticker.longest < STALL, ticker.longest

    try:
        run(scenario())
    finally:
        hole.close()


def test_loop_never_stalls_while_a_connect_hangs():
    backlog = FullBacklog()

    async def scenario() -> None:
        with Ticker() as ticker:
            started = time.monotonic()
            async with AsyncGearmanClient(["127.0.0.1:%d" % backlog.port],
                                          connect_timeout=1.5) as client:
                request = await client.submit_job("t", b"", poll_timeout=WAIT)
            assert request.connection_failed
            assert 1.0 < time.monotonic() - started < WAIT  # connect_timeout bounded it
        assert ticker.longest < STALL, ticker.longest

    try:
        run(scenario())
    finally:
        backlog.close()


def test_loop_never_stalls_on_a_frozen_server(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            assert await client.echo(b"up") == b"up"
            gearmand.pause()
            try:
                with Ticker() as ticker:
                    request = await client.submit_job("t", b"", poll_timeout=1.5)
                    assert request.timed_out
                assert ticker.longest < STALL, ticker.longest
            finally:
                gearmand.resume()
            assert await client.echo(b"again") == b"again"  # the connection still works

    run(scenario())


def test_sigkill_under_a_waiting_client(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            waiting = asyncio.ensure_future(client.submit_job("never", b"", poll_timeout=60))
            await asyncio.sleep(0.3)
            with Ticker() as ticker:
                gearmand.kill(signal.SIGKILL)
                killed_at = time.monotonic()
                request = await asyncio.wait_for(waiting, WAIT)
                assert time.monotonic() - killed_at < PROMPT
                assert request.connection_failed and request.state == JOB_UNKNOWN
            assert ticker.longest < STALL
            gearmand.restart()
            async with async_worker(gearmand.address, {"back": lambda job: b"back"}):
                again = await client.submit_job("back", b"", poll_timeout=WAIT)
            assert again.result == b"back"

    run(scenario())


def test_sigkill_retry_goes_to_the_next_server(gearmand_factory):
    first, second = gearmand_factory(), gearmand_factory()

    async def scenario() -> None:
        async with async_worker([second.address], {"job": lambda job: b"served"}):
            async with AsyncGearmanClient([first.address, second.address]) as client:
                unique = next(u for u in ("u%d" % n for n in range(100))
                              if client._connection_order(u)[0].address == first.address)
                waiting = asyncio.ensure_future(client.submit_job(
                    "job", b"", unique=unique, max_retries=1, poll_timeout=WAIT))
                await asyncio.sleep(0.3)
                first.kill(signal.SIGKILL)
                request = await asyncio.wait_for(waiting, WAIT)
                assert request.state == JOB_COMPLETE and request.result == b"served"
                assert request.job.connection.address == second.address

    run(scenario())


def test_sigkill_and_restart_under_a_worker(gearmand, caplog):
    caplog.set_level(logging.WARNING, logger="gearman")

    async def scenario() -> None:
        started = asyncio.Event()

        async def slow(job: Any) -> bytes:
            started.set()
            await asyncio.sleep(1.5)
            return b"from the old session"

        async with async_worker(gearmand.address, {"slow": slow, "quick": lambda job: b"ok"},
                                concurrency=2) as worker:
            async with AsyncGearmanClient([gearmand.address]) as client:
                await client.submit_job("slow", b"", background=True, poll_timeout=WAIT)
                await asyncio.wait_for(started.wait(), WAIT)
            with Ticker() as ticker:
                gearmand.kill(signal.SIGKILL)
                gearmand.restart()
                async with AsyncGearmanClient([gearmand.address]) as client:
                    request = await client.submit_job("quick", b"", poll_timeout=WAIT)
                    assert request.result == b"ok"  # reconnected and re-registered
                    await asyncio.sleep(1.5)  # the old job ends on the new session
            assert ticker.longest < STALL
            assert worker.jobs_running == 0
        assert "WORK_COMPLETE not sent" in caplog.text

    run(scenario())


def test_worker_started_before_its_server():
    port = free_port()
    server = GearmandProcess(port=port)

    async def scenario() -> None:
        async with async_worker(["127.0.0.1:%d" % port], {"late": lambda job: b"late"}):
            await asyncio.sleep(0.5)
            await asyncio.get_running_loop().run_in_executor(None, server.start)
            async with AsyncGearmanClient([server.address]) as client:
                request = await client.submit_job("late", b"", poll_timeout=WAIT)
                assert request.result == b"late"

    try:
        run(scenario())
    finally:
        server.stop()
