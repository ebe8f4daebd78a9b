"""Hostile bytes from a fake gearmand (``faultkit.FakeServer``, a thread on 127.0.0.1).

For each input the connection is dropped (or, where the contract says so, the
packet is ignored: a packet for an unknown handle is logged and dropped), the
error is logged naming the server (and the command, when there is one), memory
stays bounded and the call returns by its timeout.  A background sampler checks
the process's VmRSS during every test of this module.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest

import gearman
from gearman import errors
from gearman.constants import JOB_COMPLETE
from gearman.protocol import REQ, Command

from faultkit import (FakeServer, PeerReader, cpu_used_during, matching_records, packet,
                      raw_header, rss_kb, stream_forever, wait_for)

TIMEOUT = 2.0
SLACK = 0.75
#: Bound on the growth of this process's memory during any one hostile test.
MEMORY_BOUND_KB = 50 * 1024

HANDLE = b"H:fake:1"

#: Every hostile input tried in this module, by name (reported in docs/reliability.rst).
TRIED = []


@pytest.fixture(autouse=True)
def memory_bound():
    """Sample VmRSS every 5 ms during the test; the peak may not grow by 50 MB."""
    baseline = rss_kb()
    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.005):
            peak[0] = max(peak[0], rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    yield
    stop.set()
    sampler.join()
    growth = max(peak[0], rss_kb()) - baseline
    assert growth < MEMORY_BOUND_KB, f"memory grew by {growth} KiB during the test"


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="gearman")
    return caplog


def serve(then):
    """A fake-server script: answer the client's OPTION_REQ, wait for its
    SUBMIT_JOB, then run ``then(sock)``."""
    def script(sock, number, server):
        reader = PeerReader(sock)
        if reader.until(Command.OPTION_REQ) is None:
            return
        sock.sendall(packet(Command.OPTION_RES, b"exceptions"))
        if reader.until(Command.SUBMIT_JOB) is None:
            return
        then(sock, server)
    return script


def sends(data):
    return lambda sock, server: sock.sendall(data)


def created_then(data):
    return sends(packet(Command.JOB_CREATED, HANDLE) + data)


#: name -> (what the server sends after SUBMIT_JOB, the command as the log names it, or None)
DROPPING_INPUTS = {
    "garbage text": (sends(b"garbage \xff\xfe no newline, no magic" * 10), None),
    "garbage with a newline": (sends(b"ERR garbage\r\n"), None),
    "garbage after a NUL": (sends(b"\0GARBAGE\xff\xff\xff\xff\xff\xff\xff\xff"), None),
    "header claiming a 3 GB body": (sends(raw_header(Command.WORK_COMPLETE, 3 * 2 ** 30)),
                                    "WORK_COMPLETE"),
    "request magic from a server": (sends(packet(Command.JOB_CREATED, HANDLE, magic=REQ)),
                                    "JOB_CREATED"),
    "unknown command number 99": (sends(raw_header(99, 0)), "command 99"),
    "unknown command number 0": (sends(raw_header(0, 4) + b"abcd"), "command 0"),
    "unused command number 5": (sends(raw_header(5, 0)), "command 5"),
    "JOB_CREATED nobody asked for": (created_then(packet(Command.JOB_CREATED, b"H:fake:2")),
                                     "JOB_CREATED"),
    "NUL-less WORK_COMPLETE": (created_then(raw_header(Command.WORK_COMPLETE, len(HANDLE))
                                            + HANDLE), "WORK_COMPLETE"),
    "NUL-less STATUS_RES": (created_then(packet(Command.STATUS_RES, b"H:fake:1 1 1 0 0")),
                            "STATUS_RES"),
    "NOOP with a body": (created_then(raw_header(Command.NOOP, 3) + b"abc"), "NOOP"),
    "worker-only JOB_ASSIGN to a client": (created_then(packet(Command.JOB_ASSIGN, HANDLE,
                                                               b"f", b"d")), "JOB_ASSIGN"),
    "endless garbage stream": (lambda sock, server: stream_forever(sock, b"A" * 65536, server),
                               None),
    "endless NUL stream": (lambda sock, server: stream_forever(sock, b"\0" * 65536, server),
                           None),
}


@pytest.mark.parametrize("name", sorted(DROPPING_INPUTS))
def test_client_drops_the_connection(name, logs):
    then, command = DROPPING_INPUTS[name]
    TRIED.append(f"client: {name}")
    fake = FakeServer(serve(then))
    client = gearman.GearmanClient([fake.address])
    try:
        start = time.monotonic()
        request = client.submit_job("f", b"data", poll_timeout=TIMEOUT)
        elapsed = time.monotonic() - start
        assert request.connection_failed and not request.complete, request
        assert elapsed < TIMEOUT, f"dropped only after {elapsed:.2f}s"  # at once, not by timeout
        assert not client.connection_list[0].connected
        needles = [fake.address] + ([command] if command else [])
        assert matching_records(logs.records, *needles), [r.getMessage() for r in logs.records]
        assert wait_for(lambda: fake.disconnects == 1, 5)  # the library closed its socket
    finally:
        client.close()
        fake.close()


def test_truncated_packet_then_silence_returns_by_the_timeout(logs):
    TRIED.append("client: truncated packet then silence")
    fake = FakeServer(serve(sends(raw_header(Command.JOB_CREATED, 40) + b"H:fa")))
    client = gearman.GearmanClient([fake.address])
    try:
        start = time.monotonic()
        request = client.submit_job("f", b"data", poll_timeout=TIMEOUT)
        elapsed = time.monotonic() - start
        assert TIMEOUT <= elapsed < TIMEOUT + SLACK
        assert request.timed_out and not request.complete
        assert cpu_used_during(0.5) < 0.1  # waiting for the rest of a packet is not a spin
    finally:
        client.close()
        fake.close()


def test_packets_for_unknown_handles_are_logged_and_dropped(logs):
    """The contract: not an error of the connection; the job still completes."""
    TRIED.append("client: WORK_* packets for an unknown handle")
    unknown = b"H:fake:999"
    junk = b"".join([packet(Command.WORK_COMPLETE, unknown, b"not yours"),
                     packet(Command.WORK_DATA, unknown, b"d"),
                     packet(Command.WORK_STATUS, unknown, b"1", b"2"),
                     packet(Command.WORK_FAIL, unknown),
                     packet(Command.WORK_EXCEPTION, unknown, b"e")])
    fake = FakeServer(serve(created_then(junk + packet(Command.WORK_COMPLETE, HANDLE, b"ok"))))
    client = gearman.GearmanClient([fake.address])
    try:
        request = client.submit_job("f", b"data", poll_timeout=TIMEOUT)
        assert request.state == JOB_COMPLETE and request.result == b"ok"
        assert client.connection_list[0].connected and fake.connections == 1
        for command in ("WORK_COMPLETE", "WORK_DATA", "WORK_STATUS", "WORK_FAIL",
                        "WORK_EXCEPTION"):
            assert matching_records(logs.records, fake.address, command, "H:fake:999")
    finally:
        client.close()
        fake.close()


def test_unsolicited_status_and_echo_answers_drop_the_connection(logs):
    TRIED.append("client: STATUS_RES / ECHO_RES nobody asked for")
    fake = FakeServer(serve(created_then(packet(Command.ECHO_RES, b"unasked"))))
    client = gearman.GearmanClient([fake.address])
    try:
        request = client.submit_job("f", b"data", poll_timeout=TIMEOUT)
        assert request.connection_failed
        assert matching_records(logs.records, fake.address, "ECHO_RES")
    finally:
        client.close()
        fake.close()


# -- the admin client ---------------------------------------------------------------------------
def admin_script(reply):
    def script(sock, number, server):
        if PeerReader(sock).next() is not None:
            sock.sendall(reply)
    return script


ADMIN_TIMEOUT_INPUTS = {
    "list reply with no terminating line": b"f\t1\t0\t1\nf2\t0\t0\t0\n",
    "nothing at all": b"",
    "half a line": b"f\t1\t0",
}

ADMIN_DROPPING_INPUTS = {
    "binary packet with unknown command": raw_header(77, 0),
    "request magic": packet(Command.ECHO_RES, b"x", magic=REQ),
    "header claiming a 3 GB body": raw_header(Command.ECHO_RES, 3 * 2 ** 30),
    "ECHO_RES instead of text": packet(Command.ECHO_RES, b"x"),
}


@pytest.mark.parametrize("name", sorted(ADMIN_TIMEOUT_INPUTS))
def test_admin_client_raises_by_its_timeout(name, logs):
    TRIED.append(f"admin: {name}")
    fake = FakeServer(admin_script(ADMIN_TIMEOUT_INPUTS[name]))
    admin = gearman.GearmanAdminClient([fake.address], poll_timeout=TIMEOUT)
    try:
        start = time.monotonic()
        with pytest.raises(errors.InvalidAdminClientState, match=fake.address):
            admin.get_status()
        assert time.monotonic() - start < TIMEOUT + SLACK
        assert not admin.connection_list[0].connected  # dropped: later replies would be out of step
        assert matching_records(logs.records, fake.address, "status")
    finally:
        admin.close()
        fake.close()


@pytest.mark.parametrize("name", sorted(ADMIN_DROPPING_INPUTS))
def test_admin_client_drops_the_connection(name, logs):
    TRIED.append(f"admin: {name}")
    fake = FakeServer(admin_script(ADMIN_DROPPING_INPUTS[name]))
    admin = gearman.GearmanAdminClient([fake.address], poll_timeout=TIMEOUT)
    try:
        start = time.monotonic()
        with pytest.raises(errors.GearmanError) as info:
            admin.get_status()
        assert time.monotonic() - start < TIMEOUT
        assert fake.address in str(info.value) or matching_records(logs.records, fake.address)
        assert not admin.connection_list[0].connected
    finally:
        admin.close()
        fake.close()


# -- the worker ----------------------------------------------------------------------------------
def worker_script(hostile):
    """Wait for the worker's first GRAB, then send ``hostile``."""
    def script(sock, number, server):
        reader = PeerReader(sock)
        if reader.until(Command.GRAB_JOB_ALL) is not None:
            sock.sendall(hostile)
    return script


WORKER_INPUTS = {
    "garbage text": (b"garbage\n", None),
    "header claiming a 3 GB body": (raw_header(Command.JOB_ASSIGN_UNIQ, 3 * 2 ** 30),
                                    "JOB_ASSIGN_UNIQ"),
    "request magic": (packet(Command.NOOP, magic=REQ), "NOOP"),
    "unknown command number": (raw_header(200, 0), "command 200"),
    "NUL-less JOB_ASSIGN_UNIQ": (raw_header(Command.JOB_ASSIGN_UNIQ, 5) + b"H:f:1",
                                 "JOB_ASSIGN_UNIQ"),
    "client-only JOB_CREATED to a worker": (packet(Command.JOB_CREATED, HANDLE), "JOB_CREATED"),
}


@pytest.mark.parametrize("name", sorted(WORKER_INPUTS))
def test_worker_drops_reconnects_and_does_not_spin(name, logs, thread_workers):
    hostile, command = WORKER_INPUTS[name]
    TRIED.append(f"worker: {name}")
    fake = FakeServer(worker_script(hostile))
    worker = gearman.GearmanWorker([fake.address])
    worker.register_task("f", lambda job: job.data)
    try:
        runner = thread_workers(worker, poll_timeout=0.5)
        assert wait_for(lambda: fake.connections >= 2, 5)  # dropped, then reconnected
        needles = [fake.address] + ([command] if command else [])
        assert matching_records(logs.records, *needles), [r.getMessage() for r in logs.records]
        cpu = cpu_used_during(1.0)
        assert cpu < 0.3, cpu
        # Each new connection fails the same way: the backoff grows instead of
        # reconnecting ten times a second (0.1 s doubling, capped at 2 s).
        assert fake.connections <= 12, fake.connections
        assert runner.thread.is_alive() and not runner.errors
    finally:
        worker.shutdown()
        fake.close()


def test_every_hostile_input_was_tried():
    """Keeps the count of hostile inputs honest (docs/reliability.rst quotes it)."""
    expected = (len(DROPPING_INPUTS) + 3 + len(ADMIN_TIMEOUT_INPUTS)
                + len(ADMIN_DROPPING_INPUTS) + len(WORKER_INPUTS))
    if len(TRIED) == expected:  # the whole module ran
        assert len(set(TRIED)) == expected
