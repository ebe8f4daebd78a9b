"""Property tests (hypothesis) of the whole receive path: socket -> parser ->
handler -> client/worker/admin state, fed streams of valid, malformed and random
packets by a fake server on the other end of a socketpair.

Invariants: nothing but a GearmanError ever leaves a public call; the poll loop
never raises; when a connection is dropped, every request on it is finished or
marked ``connection_failed``.  tests/test_protocol.py covers the parser alone.

Example counts: ``GEARMAN_FUZZ_EXAMPLES`` per test (CI default below); a long
run by hand: ``GEARMAN_FUZZ_EXAMPLES=100000 python -m pytest -p no:cacheprovider
tests/faults/test_fault_fuzz.py``.
"""
from __future__ import annotations

import logging
import os
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gearman
from gearman import errors
from gearman.connection import GearmanConnection
from gearman.constants import JOB_COMPLETE
from gearman.protocol import ARGS, REQ, RES, Command, Packet, pack

EXAMPLES = int(os.environ.get("GEARMAN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_PACKET = 4096

HANDLES = [b"H:fuzz:1", b"H:fuzz:2"]


class ScriptedConnection(GearmanConnection):
    """Connects to a socketpair whose other end has already sent ``script``."""

    script = b""
    peers: list = []

    def connect(self, timeout=None):
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        try:
            peer.send(type(self).script)
        except BlockingIOError:
            pass
        type(self).peers.append(peer)
        self.use_socket(ours)


def scripted(manager_class, script):
    """A subclass of ``manager_class`` whose connections get ``script`` from the server."""
    connection = type("Conn", (ScriptedConnection,), {"script": script, "peers": []})
    return type(manager_class.__name__, (manager_class,), {"connection_class": connection}), \
        connection


def close_peers(connection_class):
    for peer in connection_class.peers:
        peer.close()


#: ERROR records of the example being run: the poll loop logs a library bug met on a
#: connection's bytes (``unexpected error handling data``) instead of raising it.
BUGS: list = []


class ErrorRecords(logging.Handler):
    def emit(self, record):
        BUGS.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(autouse=True)
def bug_records():
    """Warnings about the hostile input come by the thousand: keep them out of
    pytest's log capture (a 100,000-example run would hold them all in memory), but
    collect anything at ERROR: each example asserts there is none."""
    logger = logging.getLogger("gearman")
    handler, level = ErrorRecords(logging.ERROR), logger.level
    logger.setLevel(logging.ERROR)
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)


def no_bug_logged():
    bugs, BUGS[:] = list(BUGS), []
    assert bugs == []


# -- strategies -------------------------------------------------------------------------
def arg_for(name):
    if name == "job_handle":
        return st.sampled_from(HANDLES * 6 + [None]).flatmap(
            lambda h: st.just(h) if h is not None else st.binary(max_size=12))
    if name in ("known", "running"):
        return st.sampled_from([b"0", b"1"]) | st.binary(max_size=3)
    if name in ("numerator", "denominator", "client_count"):
        return st.integers(0, 10 ** 6).map(lambda n: b"%d" % n) | st.binary(max_size=6)
    if name == "option_name":
        return st.sampled_from([b"exceptions"]) | st.binary(max_size=12)
    if name == "task":
        return st.sampled_from([b"f"]) | st.binary(max_size=6)
    return st.binary(max_size=24)


@st.composite
def packets(draw):
    command = draw(st.sampled_from(list(Command)))
    args = tuple(draw(arg_for(name)) for name in ARGS[command])
    magic = draw(st.sampled_from([RES] * 9 + [REQ]))
    return pack(Packet(command, args, magic))


@st.composite
def bad_headers(draw):
    code = draw(st.integers(0, 2 ** 32 - 1) | st.sampled_from([0, 5, 43, 99]))
    size = draw(st.integers(0, 2 ** 32 - 1) | st.integers(0, 64))
    return struct.pack("!4sII", RES, code, size) + draw(st.binary(max_size=16))


def mutated(data):
    """Flip one byte of a valid stream."""
    return st.integers(0, max(0, len(data) - 1)).flatmap(
        lambda i: st.integers(0, 255).map(lambda b: data[:i] + bytes([b]) + data[i + 1:]))


def well_formed(commands):
    """Valid RES packets of ``commands``: NUL-free leading arguments, plausible values."""
    @st.composite
    def build(draw):
        command = draw(st.sampled_from(commands))
        names = ARGS[command]
        args = []
        for position, name in enumerate(names):
            value = draw(arg_for(name))
            if position < len(names) - 1:
                value = value.replace(b"\0", b"")
            args.append(value)
        return pack(Packet(command, tuple(args), RES))
    return build()


def stream_of(commands):
    """Mostly well-formed replies of a role, now and then anything at all; sometimes
    one byte of the whole stream flipped."""
    kinds = {"reply": well_formed(commands), "packet": packets(), "header": bad_headers(),
             "bytes": st.binary(max_size=40)}
    # sampled_from keeps the weights (one_of would pick each branch equally often).
    event = st.sampled_from(["reply"] * 30 + ["packet", "header", "bytes"]).flatmap(
        kinds.__getitem__)
    plain = st.lists(event, max_size=12).map(b"".join)
    flip = plain.flatmap(lambda s: mutated(s) if s else st.just(s))
    return st.sampled_from(["plain"] * 3 + ["flip"]).flatmap(
        {"plain": plain, "flip": flip}.__getitem__)


C = Command
#: In context (weighted up) and out of context (once each: they drop the connection).
CLIENT_REPLIES = [C.JOB_CREATED] * 6 + [C.WORK_COMPLETE] * 4 + [C.WORK_DATA, C.WORK_WARNING,
                  C.WORK_STATUS, C.WORK_FAIL, C.WORK_EXCEPTION, C.ERROR] * 2 + [
                  C.STATUS_RES, C.ECHO_RES, C.OPTION_RES, C.NOOP]
WORKER_REPLIES = [C.NOOP, C.NO_JOB, C.JOB_ASSIGN, C.JOB_ASSIGN_UNIQ, C.JOB_ASSIGN_ALL] * 3 + [
                  C.ERROR, C.ECHO_RES, C.OPTION_RES, C.JOB_CREATED]
any_stream = stream_of(CLIENT_REPLIES)
worker_stream = stream_of(WORKER_REPLIES)


# -- the client -------------------------------------------------------------------------------
@FUZZ
@given(script=any_stream)
def test_client_survives_any_server_stream(script):
    BUGS.clear()
    valid_start = pack(Packet(Command.OPTION_RES, (b"exceptions",), RES))
    client_class, connection_class = scripted(gearman.GearmanClient, valid_start + script)
    client = client_class(["fuzz:4730"], max_packet_size=MAX_PACKET)
    try:
        jobs = [{"task": "f", "data": b"a", "unique": "same"},
                {"task": "f", "data": b"b", "unique": "same"},
                {"task": "f", "data": b"c"}]
        requests = client.submit_multiple_jobs(jobs, wait_until_complete=False, poll_timeout=0)
        requests += client.submit_multiple_jobs([{"task": "f", "data": b"d"}], background=True,
                                                wait_until_complete=False, poll_timeout=0)
        for _ in range(20):
            if not client.poll_connections_once(client.connection_list, 0):
                break
        connection = client.connection_list[0]
        for request in requests:
            assert request.state in ("UNKNOWN", "PENDING", "CREATED", "COMPLETE", "FAILED")
            if not connection.connected:
                assert request.complete or request.connection_failed, request
            if request.state == JOB_COMPLETE:
                assert isinstance(request.result, bytes)
        if connection.connected:
            assert connection._parser.buffered <= MAX_PACKET + 12 + len(script)
        no_bug_logged()
    finally:
        client.close()
        close_peers(connection_class)


# -- the worker --------------------------------------------------------------------------------
class FuzzWorker(gearman.GearmanWorker):
    passes = 0

    def after_poll(self, any_activity):
        self.passes += 1
        return self.passes < 15


@FUZZ
@given(script=worker_stream)
def test_worker_survives_any_server_stream(script):
    BUGS.clear()
    worker_class, connection_class = scripted(FuzzWorker, script)
    worker = worker_class(["fuzz:4730"], max_packet_size=MAX_PACKET)
    ran = []
    worker.register_task("f", lambda job: ran.append(job.handle) or job.data)
    try:
        worker.work(poll_timeout=0)  # returns: no exception out of the loop
        assert all(isinstance(handle, str) for handle in ran)
        no_bug_logged()
    finally:
        worker.close()
        close_peers(connection_class)


# -- the admin client ------------------------------------------------------------------------
lines = st.one_of(
    st.sampled_from([b".", b"OK", b"OK 1.1.20", b"ERR UNKNOWN_COMMAND Unknown+server+command",
                     b"ERR", b"f\t1\t0\t1", b"f\tx\t0\t1", b"1 127.0.0.1 - : f g",
                     b"H:x:1\t0\t0\t1", b"\t\t\t"]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\0", b"")),
).map(lambda line: line + b"\r\n")
admin_streams = st.lists(st.one_of(lines, lines, packets(), st.binary(max_size=20)),
                         max_size=10).map(b"".join)


@FUZZ
@given(script=admin_streams, method=st.sampled_from(
    ["get_status", "get_workers", "get_jobs", "get_version", "get_pid", "ping_server",
     "get_priority_status", "get_unique_jobs", "send_maxqueue", "cancel_job"]))
def test_admin_client_raises_only_gearman_errors(script, method):
    BUGS.clear()
    admin_class, connection_class = scripted(gearman.GearmanAdminClient, script)
    admin = admin_class(["fuzz:4730"], poll_timeout=0.01, max_packet_size=MAX_PACKET)
    args = {"send_maxqueue": ("f", 5), "cancel_job": ("H:x:1",)}.get(method, ())
    try:
        result = getattr(admin, method)(*args)
    except errors.GearmanError:
        pass
    else:
        assert isinstance(result, (list, str, int, float, bytes))
    finally:
        admin.close()
        close_peers(connection_class)
    no_bug_logged()
