"""Failover and retries of issue 12, with scripted servers (the fault suite's
``faultkit.FakeServer``, a thread on 127.0.0.1) beside real gearmands.

- Defect 1: a retry goes to the NEXT server in the failover order, not back to the
  server that dropped the job (a server that accepts and closes every connection,
  like a TCP proxy in front of a dead gearmand).
- Defect 2: a job that had its JOB_CREATED keeps its retries when its connection
  drops while the batch still waits for another job's JOB_CREATED, or while a
  status query runs.
- The failover order of three servers, wrap-around included, and the exact
  number of submissions for max_retries 0 and 1.
"""
from __future__ import annotations

import threading
import time
import zlib
from typing import Any, Iterator, List

import pytest

import gearman
from gearman.constants import JOB_COMPLETE, JOB_UNKNOWN
from gearman.protocol import Command

from faults.faultkit import FakeServer, PeerReader, ThreadWorker, packet

pytestmark = pytest.mark.gearmand
TIMEOUT = 20.0


def unique_for(index: int, servers: int, prefix: str) -> str:
    """A unique id whose crc32 picks server ``index`` first."""
    n = 0
    while zlib.crc32(f"{prefix}-{n}".encode()) % servers != index:
        n += 1
    return f"{prefix}-{n}"


class Counter:
    def __init__(self) -> None:
        self.submits = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.submits += 1


def drop_after_submit(counter: Counter) -> Any:
    """A script: read up to the first SUBMIT_JOB, count it, close the connection."""
    def script(sock: Any, number: int, server: FakeServer) -> None:
        if PeerReader(sock).until(Command.SUBMIT_JOB, timeout=5) is not None:
            counter.add()
    return script


@pytest.fixture
def fakes() -> Iterator[List[FakeServer]]:
    made: List[FakeServer] = []
    yield made
    for server in made:
        server.close()
    assert not [e for server in made for e in server.errors]


def upper(job: Any) -> bytes:
    return bytes(job.data).upper()


@pytest.fixture
def upper_worker() -> Iterator[Any]:
    """``start(*addresses)``: a worker thread for task ``upper``; stopped at teardown."""
    started: List[ThreadWorker] = []

    def start(*addresses: str) -> None:
        worker = gearman.GearmanWorker(list(addresses))
        worker.register_task("upper", upper)
        started.append(ThreadWorker(worker).start())

    yield start
    assert all([runner.stop() for runner in started]), "a worker thread did not stop"
    assert not [e for runner in started for e in runner.errors]


# -- defect 1 ------------------------------------------------------------------------------

def test_a_retry_goes_to_the_next_server_not_back_to_the_one_that_dropped_it(
        gearmand: Any, fakes: List[FakeServer], upper_worker: Any) -> None:
    counter = Counter()
    closer = FakeServer(drop_after_submit(counter), hold=False)
    fakes.append(closer)
    upper_worker(gearmand.address)
    client = gearman.GearmanClient([closer.address, gearmand.address])
    jobs = [{"task": "upper", "data": b"job %d" % n, "unique": unique_for(n % 2, 2, f"d1-{n}")}
            for n in range(6)]
    requests = client.submit_multiple_jobs(jobs, max_retries=1, poll_timeout=TIMEOUT)
    assert [(r.state, r.result) for r in requests] == [
        (JOB_COMPLETE, b"JOB %d" % n) for n in range(6)], requests
    assert {r.accepted_by.address for r in requests} == {gearmand.address}
    assert [r.connection_attempts for r in requests] == [2, 1] * 3
    assert counter.submits >= 1  # the closer did take (and drop) the first tries
    client.close()


# -- the failover order of three servers --------------------------------------------------------

@pytest.mark.parametrize("closer_at", [1, 2])
def test_three_servers_each_unique_lands_on_its_server_and_retries_on_the_next(
        gearmand_factory: Any, fakes: List[FakeServer], upper_worker: Any,
        closer_at: int) -> None:
    counter = Counter()
    closer = FakeServer(drop_after_submit(counter), hold=False)
    fakes.append(closer)
    real = [gearmand_factory(), gearmand_factory()]
    upper_worker(*(server.address for server in real))
    addresses = [server.address for server in real]
    addresses.insert(closer_at, closer.address)
    client = gearman.GearmanClient(addresses)
    jobs = [{"task": "upper", "data": b"x%d" % i, "unique": unique_for(i, 3, "three")}
            for i in range(3)]
    requests = client.submit_multiple_jobs(jobs, max_retries=1, poll_timeout=TIMEOUT)
    assert all(r.state == JOB_COMPLETE for r in requests), requests
    landed = [r.accepted_by.address for r in requests]
    expected = list(addresses)
    # The job whose unique picks the closer is retried on the next server: with the
    # closer last (index 2) that wraps around to the first.
    expected[closer_at] = addresses[(closer_at + 1) % 3]
    assert landed == expected
    assert [r.connection_attempts for r in requests] == [
        2 if i == closer_at else 1 for i in range(3)]
    assert counter.submits == 1
    client.close()


# -- exact submission counts -----------------------------------------------------------------

@pytest.mark.parametrize("max_retries", [0, 1, 2])
def test_max_retries_sends_exactly_one_plus_max_retries_submissions(
        fakes: List[FakeServer], max_retries: int) -> None:
    counter = Counter()
    closer = FakeServer(drop_after_submit(counter), hold=False)
    fakes.append(closer)
    client = gearman.GearmanClient([closer.address])
    request = client.submit_job("upper", b"d", max_retries=max_retries, poll_timeout=TIMEOUT)
    assert request.state == JOB_UNKNOWN and request.connection_failed
    assert request.connection_attempts == max_retries + 1
    client.close()
    time.sleep(0.2)  # a stray extra submission would have arrived by now
    assert counter.submits == max_retries + 1


# -- defect 2 ------------------------------------------------------------------------------------

def accept_first_then_drop(until: Command) -> Any:
    """A script: answer OPTION_REQ and the first SUBMIT_JOB (JOB_CREATED), read up to
    the next ``until`` packet, give the client time to take in the JOB_CREATED, stop
    listening (reconnects are refused) and drop the connection."""
    def script(sock: Any, number: int, server: FakeServer) -> None:
        reader = PeerReader(sock)
        assert reader.until(Command.OPTION_REQ) is not None
        sock.sendall(packet(Command.OPTION_RES, b"exceptions"))
        assert reader.until(Command.SUBMIT_JOB) is not None
        sock.sendall(packet(Command.JOB_CREATED, b"H:fake:1"))
        assert reader.until(until) is not None
        time.sleep(0.5)
        server._stop_listening()
    return script


def fake_then_real(gearmand: Any, fakes: List[FakeServer], upper_worker: Any,
                   until: Command) -> Any:
    """A client of [the scripted server, the real gearmand] (a worker on the real one)."""
    fake = FakeServer(accept_first_then_drop(until), hold=False)
    fakes.append(fake)
    upper_worker(gearmand.address)
    return fake, gearman.GearmanClient([fake.address, gearmand.address])


def test_an_accepted_job_keeps_its_retries_while_the_batch_waits_for_another(
        gearmand: Any, fakes: List[FakeServer], upper_worker: Any) -> None:
    _, client = fake_then_real(gearmand, fakes, upper_worker, Command.SUBMIT_JOB)
    jobs = [{"task": "upper", "data": b"job %d" % n, "unique": unique_for(0, 2, f"d2-{n}")}
            for n in range(2)]
    first, second = client.submit_multiple_jobs(jobs, max_retries=1, poll_timeout=TIMEOUT)
    assert_retried_on(gearmand.address, first, b"JOB 0")
    assert_retried_on(gearmand.address, second, b"JOB 1")
    client.close()


def assert_retried_on(address: str, request: Any, result: bytes) -> None:
    """Completed on its second (last) try, on ``address``."""
    assert (request.state, request.result) == (JOB_COMPLETE, result), request
    assert request.connection_attempts == 2 and not request.connection_failed
    assert request.accepted_by.address == address


def test_an_accepted_job_keeps_its_retries_when_a_status_query_notices_the_loss(
        gearmand: Any, fakes: List[FakeServer], upper_worker: Any) -> None:
    fake, client = fake_then_real(gearmand, fakes, upper_worker, Command.GET_STATUS)
    request = client.submit_job("upper", b"status", unique=unique_for(0, 2, "d2s"),
                                max_retries=1, wait_until_complete=False, poll_timeout=TIMEOUT)
    assert request.accepted_by.address == fake.address
    client.get_job_status(request, poll_timeout=TIMEOUT)
    client.wait_until_jobs_completed([request], poll_timeout=TIMEOUT)
    assert_retried_on(gearmand.address, request, b"STATUS")
    client.close()
