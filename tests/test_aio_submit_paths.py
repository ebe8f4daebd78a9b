"""The asyncio client's short submit path: a look for an unread close before a
write (the blocking client's pre-send poll, the asyncio way), shared expiry
timers for many waits, and both kept as guarantees, not only as speed."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, List

import pytest

from gearman import JOB_COMPLETE
from gearman.aio import AsyncGearmanClient
from gearman.aio.connection import AsyncConnection
from gearman.aio.waits import EXPIRY_GRAIN

from aio_support import WAIT, reverse, run, thread_worker


class NoticeCounting(AsyncGearmanClient):
    """Counts the times a submit lets the loop deliver what is due first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notices = 0

    async def _notice_closed_connections(self) -> None:
        self.notices += 1
        await super()._notice_closed_connections()


@pytest.mark.gearmand
def test_an_idle_client_notices_a_restarted_server_before_writing(gearmand):
    """max_retries=0: a request written into the dead connection would fail; the
    look finds the close the server left unread and the request goes to the new one."""
    async def scenario() -> None:
        async with NoticeCounting([gearmand.address]) as client:
            first = await client.submit_job("reverse", b"before", poll_timeout=WAIT)
            assert first.result == b"erofeb"
            gearmand.restart()
            # The worker (a thread) reconnects meanwhile; this loop is kept busy, so
            # the close waits unread, as under a loop with other work to do.
            time.sleep(0.3)
            client.notices = 0
            request = await client.submit_job("reverse", b"after", poll_timeout=WAIT)
            assert request.state == JOB_COMPLETE and request.result == b"retfa"
            assert not request.connection_failed
            assert client.notices >= 1

    with thread_worker(gearmand.address, {"reverse": reverse}):
        run(scenario())


@pytest.mark.gearmand
def test_a_busy_gather_looks_for_a_close_rarely(gearmand):
    """2,000 tasks submitting at once: a handful of looks, not one per task (each
    would cost every task a trip through the loop)."""
    async def scenario() -> None:
        async with NoticeCounting([gearmand.address]) as client:
            await client.echo(b"warm-up")
            client.notices = 0
            requests = await asyncio.gather(*(
                client.submit_job("reverse", b"%d" % i, poll_timeout=WAIT) for i in range(2000)))
            assert [r.result for r in requests] == [(b"%d" % i)[::-1] for i in range(2000)]
            assert client.notices <= 5

    with thread_worker(gearmand.address, {"reverse": reverse}):
        run(scenario())


@pytest.mark.gearmand
def test_many_waits_with_one_timeout_share_a_few_timers_and_leave_none(gearmand):
    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client:
            slots_seen: List[int] = []

            async def watch() -> None:
                while True:
                    slots_seen.append(len(client._expiries._slots))
                    await asyncio.sleep(0.05)

            watcher = asyncio.ensure_future(watch())
            started = time.monotonic()
            requests = await asyncio.gather(*(
                client.submit_job("nobody", b"%d" % i, poll_timeout=0.5) for i in range(500)))
            elapsed = time.monotonic() - started
            watcher.cancel()
            assert all(r.timed_out and not r.complete for r in requests)
            assert 0.5 <= elapsed < 5
            assert 0 < max(slots_seen) <= 50  # 500 waits, a few timers
            assert not client._expiries._slots and not client._registry.waits
            # a later wait still times out on its own
            started = time.monotonic()
            late = await client.submit_job("nobody", b"late", poll_timeout=0.3)
            elapsed = time.monotonic() - started
            assert late.timed_out and 0.3 <= elapsed < 1.3 + 10 * EXPIRY_GRAIN

    run(scenario())


def test_the_look_sees_a_close_and_not_bytes():
    """AsyncConnection.may_hold_close without the loop delivering anything: bytes
    waiting mean a live server; readable with nothing to read means a close."""
    async def scenario() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host, port = listener.getsockname()
        connection = AsyncConnection(host, port)
        await connection.connect()
        server, _ = listener.accept()
        try:
            assert not connection.may_hold_close()  # nothing came
            server.sendall(b"\0RES")
            time.sleep(0.05)  # blocking on purpose: the loop must not read it first
            assert not connection.may_hold_close()  # bytes: the server is talking
            await asyncio.sleep(0.05)  # the loop reads them
            server.close()
            time.sleep(0.05)
            assert connection.may_hold_close()  # the FIN alone
        finally:
            connection.close()
            listener.close()
        assert not connection.may_hold_close()  # closed: nothing to look at

    run(scenario())
