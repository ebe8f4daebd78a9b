"""The server pool (gearman/server_pool.py) and the manager that drives it.

The pool alone is plain data: its tests need no sockets.  The defect-3 tests use
a real gearmand: a connection the user closes by hand must neither break
``shutdown()`` nor leave a stale selector entry that a reconnect would trust.
"""
from __future__ import annotations

import threading
import zlib
from typing import Any, Iterator, List

import pytest

import gearman
from gearman.constants import JOB_COMPLETE
from gearman.server_pool import ServerPool
from gearman.testing import GearmandProcess
from gearman.util import Backoff


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.address = name
        self.connected = False

    def __repr__(self) -> str:
        return self.address


def unique_hashing_to(index: int, servers: int, prefix: str = "u") -> str:
    n = 0
    while zlib.crc32(f"{prefix}-{n}".encode()) % servers != index:
        n += 1
    return f"{prefix}-{n}"


@pytest.fixture
def three() -> Any:
    pool = ServerPool(Backoff(base=10.0, cap=10.0))
    conns = [FakeConnection(name) for name in "ABC"]
    for conn in conns:
        pool.add(conn)
    return pool, conns


@pytest.mark.parametrize("first", [0, 1, 2])
def test_failover_order_of_three_servers_wraps_around(three: Any, first: int) -> None:
    pool, conns = three
    unique = unique_hashing_to(first, 3)
    order = pool.failover_order(unique)
    assert order == [conns[(first + step) % 3] for step in range(3)]
    # A retry after the first server dropped the request starts at the next one,
    # wrapping around; the server that dropped it comes last.
    assert pool.failover_order(unique, after=order[0]) == [order[1], order[2], order[0]]
    assert pool.failover_order(unique, after=order[2]) == order


def test_candidates_skip_backed_off_servers_without_using_a_try(three: Any) -> None:
    pool, conns = three
    unique = unique_hashing_to(0, 3)
    assert pool.connection_failed(conns[0], OSError("refused")) is not None
    assert list(pool.candidates(unique)) == [conns[1], conns[2]]
    assert pool.last_failure(conns[0]).args == ("refused",)
    pool.forget_backoff()
    assert list(pool.candidates(unique)) == conns
    assert pool.next_retry_in() is None


def test_sessions_are_counted_and_reported_per_record(three: Any) -> None:
    pool, conns = three
    pool.attach(conns[1], "handler-b")
    conns[1].connected = True
    assert pool.session_count() == 1 and pool.handler_for(conns[1]) == "handler-b"
    assert pool.live() == {conns[1]: "handler-b"} and pool.live_handlers() == ["handler-b"]
    assert pool.live_connection_for(unique_hashing_to(0, 3)) is conns[1]
    assert pool.detach(conns[1]) == "handler-b" and pool.detach(conns[1]) is None
    assert pool.session_count() == 0 and pool.live_connection_for("x") is None


# -- defect 3, against a real gearmand ------------------------------------------------------

@pytest.fixture
def echo_worker(gearmand: GearmandProcess) -> Iterator[gearman.GearmanWorker]:
    worker = gearman.GearmanWorker([gearmand.address])
    worker.register_task("echo", lambda job: job.data)
    thread = threading.Thread(target=worker.work, args=(0.5,), daemon=True)
    thread.start()
    yield worker
    worker.shutdown()
    thread.join(10)
    worker.close()


@pytest.mark.gearmand
def test_shutdown_after_the_user_closed_a_connection_does_not_raise(
        gearmand: GearmandProcess, echo_worker: Any) -> None:
    client = gearman.GearmanClient([gearmand.address])
    assert client.submit_job("echo", b"one", poll_timeout=10).state == JOB_COMPLETE
    client.connection_list[0].close()
    client.shutdown()  # used to raise ConnectionError: fileno() inside unregister
    client.close()


@pytest.mark.gearmand
def test_a_reconnect_after_a_user_close_is_polled_again(gearmand: GearmandProcess,
                                                        echo_worker: Any) -> None:
    client = gearman.GearmanClient([gearmand.address])
    results: List[Any] = []
    for round_ in range(3):
        request = client.submit_job("echo", b"round %d" % round_, poll_timeout=10)
        results.append((request.state, request.result))
        client.connection_list[0].close()  # the next submit reconnects
    assert results == [(JOB_COMPLETE, b"round %d" % n) for n in range(3)]
    client.close()
