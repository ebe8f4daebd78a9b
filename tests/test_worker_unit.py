"""GearmanWorker and GearmanWorkerCommandHandler without a server.

A fake connection records every packet the worker sends and replays scripted
server packets; readability comes from a pipe, so the real ``work()`` loop and
its ``selectors`` poll run unchanged, with no socket at all.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import threading
import time
from typing import Any, Callable, Deque, List, Optional

import pytest

import gearman
from gearman import errors
from gearman.protocol import RES, Command, Packet, validate_args
from gearman.util import Backoff
from gearman.worker_handler import GearmanWorkerCommandHandler
from readme_encoders import JSONDataEncoder

C = Command


# -- the fake connection --------------------------------------------------------------
class FakeConnection:
    """Looks like GearmanConnection to the manager; every connect starts a new session."""

    def __init__(self, host: str, port: int = 4730, *args: Any, **kwargs: Any) -> None:
        self.gearman_host, self.gearman_port = host, port
        self.connected = False
        self.refuse = False
        self.sessions: List[List[Packet]] = []
        self.send_threads: List[int] = []
        self.on_send: Optional[Callable[[Packet], None]] = None
        self._inbox: Deque[Any] = collections.deque()
        self._eof = False
        self._r: Optional[int] = None
        self._w: Optional[int] = None

    @property
    def address(self) -> str:
        return f"{self.gearman_host}:{self.gearman_port}"

    @property
    def sent(self) -> List[Packet]:
        return self.sessions[-1]

    def commands(self) -> List[Command]:
        return [p.command for p in self.sent]

    def connect(self, timeout: Optional[float] = None) -> None:
        if self.refuse:
            raise errors.ConnectionError(self.gearman_host, self.gearman_port, "refused")
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._inbox.clear()
        self._eof = False
        self.sessions.append([])
        self.connected = True

    def fileno(self) -> int:
        assert self._r is not None
        return self._r

    def close(self) -> None:
        for fd in (self._r, self._w):
            if fd is not None:
                os.close(fd)
        self._r = self._w = None
        self.connected = False

    def send_command(self, command: Command, args: Any = ()) -> None:
        validate_args(command, tuple(args))
        if not self.connected:
            raise errors.ConnectionError(self.gearman_host, self.gearman_port, "not connected")
        packet = Packet(command, tuple(bytes(a) for a in args))
        self.sent.append(packet)
        self.send_threads.append(threading.get_ident())
        if self.on_send is not None:
            self.on_send(packet)

    wants_write = False

    def flush(self) -> None:
        pass

    def has_buffered_input(self) -> bool:
        return False

    # -- scripting the server --------------------------------------------------------
    def push(self, *packets: Packet) -> None:
        self._inbox.extend(packets)
        assert self._w is not None
        os.write(self._w, b"x")

    def push_eof(self) -> None:
        self._eof = True
        assert self._w is not None
        os.write(self._w, b"x")

    def read(self) -> Any:
        try:
            os.read(self.fileno(), 4096)
        except BlockingIOError:
            pass
        if self._eof:
            raise errors.ConnectionError(self.gearman_host, self.gearman_port,
                                         "server closed the connection")
        events = list(self._inbox)
        self._inbox.clear()
        return iter(events)


def res(command: Command, *args: Any) -> Packet:
    return Packet(command, tuple(a.encode() if isinstance(a, str) else a for a in args), RES)


def req(command: Command, *args: Any) -> Packet:
    return Packet(command, tuple(a.encode() if isinstance(a, str) else a for a in args))


NOOP, NO_JOB = res(C.NOOP), res(C.NO_JOB)
GRAB, PRE_SLEEP = req(C.GRAB_JOB_ALL), req(C.PRE_SLEEP)


def assign(handle: str, task: str, data: Any = b"", unique: Any = "u") -> Packet:
    return res(C.JOB_ASSIGN_UNIQ, handle, task, unique, data)


class FakeWorker(gearman.GearmanWorker):
    connection_class = FakeConnection


def make_worker(*hosts: str, cls: Any = FakeWorker) -> Any:
    worker = cls(list(hosts or ["fake:1"]))
    worker.reconnect_backoff = Backoff(base=0.0, cap=0.0)  # reconnect at once
    return worker


def connect(worker: Any) -> List[FakeConnection]:
    worker.establish_worker_connections()
    return list(worker.connection_list)


def run_until(worker: Any, done: Callable[[], bool], passes: int = 200) -> int:
    """Run the real work() loop (non-blocking polls) until ``done()``; return the passes."""
    count = [0]

    def after_poll(any_activity: bool) -> bool:
        count[0] += 1
        if count[0] > passes:
            raise AssertionError(f"work() did not reach the condition in {passes} passes")
        return not done()

    worker.after_poll = after_poll
    worker.work(poll_timeout=0)
    del worker.after_poll
    return count[0]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Bounded wait for something another thread does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def completes(conn: FakeConnection) -> List[Packet]:
    return [p for p in conn.sent if p.command in (C.WORK_COMPLETE, C.WORK_FAIL,
                                                   C.WORK_EXCEPTION)]


# -- registration on connect ---------------------------------------------------------------
def test_connect_sends_client_id_then_abilities_then_one_grab() -> None:
    worker = make_worker()
    worker.set_client_id("unit-1")
    worker.register_task("a", lambda job: b"")
    worker.register_task(b"b", lambda job: b"", timeout=2.5)
    [conn] = connect(worker)
    assert conn.sent == [req(C.SET_CLIENT_ID, "unit-1"), req(C.CAN_DO, "a"),
                         req(C.CAN_DO_TIMEOUT, "b", "2500"), GRAB]


@pytest.mark.parametrize("seconds, wire", [(1, b"1000"), (0.25, b"250"), (0.0001, b"1"),
                                           (3.0004, b"3000")])
def test_can_do_timeout_is_sent_in_milliseconds_never_zero(seconds: float, wire: bytes) -> None:
    worker = make_worker()
    worker.register_task("t", lambda job: b"", timeout=seconds)
    [conn] = connect(worker)
    assert req(C.CAN_DO_TIMEOUT, b"t", wire) in conn.sent


def test_registrations_while_connected_are_sent_at_once() -> None:
    worker = make_worker()
    [conn] = connect(worker)
    conn.sent.clear()
    worker.set_client_id("later")
    worker.register_task("x", lambda job: b"")
    worker.unregister_task("x")
    assert conn.sent == [req(C.SET_CLIENT_ID, "later"), req(C.CAN_DO, "x"), req(C.CANT_DO, "x")]
    assert C.RESET_ABILITIES not in conn.commands()
    assert "x" not in worker.worker_abilities and worker.worker_client_id == "later"


# -- NOOP, NO_JOB, PRE_SLEEP ---------------------------------------------------------------
def test_no_job_sends_pre_sleep_and_no_grab_until_noop() -> None:
    worker = make_worker()
    worker.register_task("a", lambda job: b"")
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    conn.push(NO_JOB)
    idle_passes: List[int] = []

    def after_poll(any_activity: bool) -> bool:
        if handler.sleeping:
            idle_passes.append(len(conn.sent))
        return len(idle_passes) < 20

    worker.after_poll = after_poll
    worker.work(poll_timeout=0)
    assert conn.sent == [req(C.CAN_DO, "a"), GRAB, PRE_SLEEP]
    # Twenty more idle passes sent nothing: no polling of an idle server.
    assert idle_passes == [3] * 20


def test_noop_while_sleeping_grabs_once_even_if_duplicated() -> None:
    worker = make_worker()
    worker.register_task("a", lambda job: b"")
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    handler.dispatch(NO_JOB)
    conn.sent.clear()
    handler.dispatch(NOOP)
    handler.dispatch(NOOP)
    assert conn.sent == [GRAB]
    assert handler.grab_outstanding and not handler.sleeping


def test_noop_while_grab_outstanding_sends_nothing() -> None:
    worker = make_worker()
    [conn] = connect(worker)
    assert conn.commands()[-1] == C.GRAB_JOB_ALL
    conn.sent.clear()
    worker.handler_for(conn).dispatch(NOOP)
    assert conn.sent == []


def test_noop_while_a_job_is_held_or_running_sends_nothing_until_it_is_done() -> None:
    worker = make_worker("fake:1", "fake:2")
    a, b = connect(worker)
    seen: List[List[Command]] = []

    def callback(job: Any) -> bytes:
        # A NOOP on either connection during the job: one job at a time, so no grab.
        worker.handler_for(a).dispatch(NOOP)
        worker.handler_for(b).dispatch(NOOP)
        seen.append(a.commands() + b.commands())
        return b"ok"

    worker.register_task("t", callback)
    worker.handler_for(b).dispatch(NO_JOB)
    worker.handler_for(a).dispatch(assign("H:1", "t"))  # held, not started yet
    a.sent.clear()
    b.sent.clear()
    worker.handler_for(a).dispatch(NOOP)
    worker.handler_for(b).dispatch(NOOP)
    assert a.sent == [] and b.sent == []
    run_until(worker, lambda: bool(completes(a)) and GRAB in a.sent + b.sent)
    assert seen == [[]]
    # Once the job is done: its result, then ONE grab, on the other server first
    # (servers take turns; one GRAB in flight, so no job is held while another runs).
    assert a.sent == [req(C.WORK_COMPLETE, "H:1", "ok")]
    assert b.sent == [GRAB]


def test_noop_after_stop_requested_does_not_grab() -> None:
    worker = make_worker("fake:1", "fake:2")
    a, b = connect(worker)

    def callback(job: Any) -> bytes:
        worker.shutdown()
        worker.handler_for(b).dispatch(NOOP)
        return b"r"

    worker.register_task("t", callback)
    worker.handler_for(b).dispatch(NO_JOB)
    a.push(assign("H:1", "t"))
    a.sent.clear()
    b.sent.clear()
    worker.work(poll_timeout=5)
    assert a.sent == [req(C.WORK_COMPLETE, "H:1", "r")] and b.sent == []


def test_register_task_while_sleeping_grabs_for_jobs_already_queued() -> None:
    # gearmand does not NOOP a sleeping worker for jobs queued under a new ability.
    worker = make_worker()
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    handler.dispatch(NO_JOB)
    conn.sent.clear()

    def after_poll(any_activity: bool) -> bool:
        if "late" not in worker.worker_abilities:
            worker.register_task("late", lambda job: b"")
            return True
        return False

    worker.after_poll = after_poll
    worker.work(poll_timeout=0)
    assert conn.sent == [req(C.CAN_DO, "late"), GRAB]


# -- ERROR ------------------------------------------------------------------------------------
def test_error_never_stalls_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    worker = make_worker()
    done: List[str] = []
    worker.register_task("t", lambda job: done.append(job.handle) or b"r")
    [conn] = connect(worker)
    # ERROR (say JOB_NOT_FOUND for a late result) and a job in one read.
    conn.push(res(C.ERROR, "JOB_NOT_FOUND", "Job given in work result not found"),
              assign("H:7", "t"), res(C.ERROR, "X", "y"), NOOP)
    with caplog.at_level(logging.WARNING, logger="gearman"):
        run_until(worker, lambda: bool(done) and bool(completes(conn)))
    assert done == ["H:7"]
    assert req(C.WORK_COMPLETE, "H:7", "r") in conn.sent
    assert "JOB_NOT_FOUND" in caplog.text and "fake:1" in caplog.text


def test_error_answering_the_grab_means_sleep_and_a_later_noop_grabs() -> None:
    worker = make_worker()
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    conn.sent.clear()
    handler.dispatch(res(C.ERROR, "QUEUE_ERROR", "odd"))
    assert conn.sent == [PRE_SLEEP] and not handler.grab_outstanding
    handler.dispatch(NOOP)
    assert conn.sent == [PRE_SLEEP, GRAB]


def test_error_without_a_grab_outstanding_changes_nothing() -> None:
    worker = make_worker()
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    handler.dispatch(NO_JOB)
    conn.sent.clear()
    handler.dispatch(res(C.ERROR, "JOB_NOT_FOUND", "late"))
    assert conn.sent == [] and handler.sleeping


# -- job assignment ------------------------------------------------------------------------
@pytest.mark.parametrize("packet, unique, reducer", [
    (res(C.JOB_ASSIGN, "H:x:1\0", "t", b"da\0ta"), None, None),
    (res(C.JOB_ASSIGN_UNIQ, "H:x:1", "t", "uniq-1", b"da\0ta"), "uniq-1", None),
    (res(C.JOB_ASSIGN_UNIQ, "H:x:1", "t", "", b"da\0ta"), "", None),
    (res(C.JOB_ASSIGN_ALL, "H:x:1", "t", "uniq-2", "red", b"da\0ta"), "uniq-2", "red"),
])
def test_job_assign_variants(packet: Packet, unique: Optional[str],
                             reducer: Optional[str]) -> None:
    worker = make_worker()
    jobs: List[Any] = []
    worker.register_task("t", lambda job: jobs.append(job) or b"ok")
    [conn] = connect(worker)
    conn.push(packet)
    run_until(worker, lambda: bool(completes(conn)))
    [job] = jobs
    assert (job.handle, job.task, job.unique, job.reducer, job.data) == (
        "H:x:1", "t", unique, reducer, b"da\0ta")
    assert isinstance(job.task, str) and isinstance(job.handle, str)
    assert job.connection is conn
    assert completes(conn) == [req(C.WORK_COMPLETE, "H:x:1", "ok")]


def test_task_registered_as_bytes_or_str_matches_the_wire_bytes() -> None:
    worker = make_worker()
    got: List[str] = []
    worker.register_task(b"bytes-task", lambda job: got.append(job.task) or b"")
    worker.register_task("t\u00e2che", lambda job: got.append(job.task) or b"")
    worker.register_task(b"\xff\xfe", lambda job: got.append(job.task) or b"")
    [conn] = connect(worker)
    assert req(C.CAN_DO, b"\xff\xfe") in conn.sent
    conn.push(assign("H:1", b"bytes-task"), assign("H:2", "t\u00e2che".encode()),
              assign("H:3", b"\xff\xfe"))
    run_until(worker, lambda: len(completes(conn)) == 3)
    assert got == ["bytes-task", "t\u00e2che", "\udcff\udcfe"]
    assert all(p.command == C.WORK_COMPLETE for p in completes(conn))


def test_one_grab_at_a_time_and_servers_take_turns() -> None:
    worker = make_worker("fake:1", "fake:2")
    order: List[str] = []
    worker.register_task("t", lambda job: order.append(job.handle) or b"")
    a, b = connect(worker)
    # One GRAB in flight for the whole worker: never a job held while another runs.
    assert a.commands().count(C.GRAB_JOB_ALL) == 1 and C.GRAB_JOB_ALL not in b.commands()
    worker.handler_for(a).dispatch(NO_JOB)  # a is empty: b's turn
    assert a.sent[-1] == PRE_SLEEP and b.sent[-1] == GRAB
    worker.handler_for(a).dispatch(NOOP)  # a has work now, but b's GRAB is in flight
    assert a.sent[-1] == PRE_SLEEP
    b.push(assign("B:1", "t"))

    def done() -> bool:
        if completes(b) and a.sent[-1] == GRAB and not completes(a):
            a.push(assign("A:1", "t"))  # after b's job, a got the next GRAB: turns
        return bool(completes(a)) and b.sent[-1] == GRAB

    run_until(worker, done)
    assert order == ["B:1", "A:1"]
    assert a.commands()[-2:] == [C.GRAB_JOB_ALL, C.WORK_COMPLETE]
    assert b.commands()[-1] == C.GRAB_JOB_ALL


def test_an_unanswered_grab_does_not_stall_the_other_server() -> None:
    worker = make_worker("fake:1", "fake:2")
    worker.grab_patience = 0.05
    worker.register_task("t", lambda job: b"")
    a, b = connect(worker)
    assert a.sent[-1] == GRAB  # a never answers (a stopped gearmand)
    worker.handler_for(b).dispatch(NOOP)
    assert GRAB not in b.sent
    start = time.monotonic()
    run_until(worker, lambda: GRAB in b.sent, passes=100000)
    assert time.monotonic() - start >= 0.04


def test_a_job_assigned_before_gearmand_saw_cant_do_is_not_run_nor_answered() -> None:
    # gearmand re-queues every job of a task when it gets CANT_DO for it [run, 1.1.20],
    # also one it assigned in answer to a GRAB that crossed the CANT_DO.
    worker = make_worker()
    ran: List[str] = []
    worker.register_task("t", lambda job: ran.append(job.handle) or b"")
    worker.register_task("u", lambda job: ran.append(job.handle) or b"")
    [conn] = connect(worker)  # GRAB outstanding
    worker.unregister_task("t")
    conn.push(assign("H:1", "t"), assign("H:2", "u"))
    run_until(worker, lambda: bool(completes(conn)))
    assert ran == ["H:2"]
    assert completes(conn) == [req(C.WORK_COMPLETE, "H:2", "")]


def test_registrations_from_inside_a_callback_go_out_after_its_result() -> None:
    worker = make_worker("fake:1", "fake:2")
    ran: List[str] = []

    def retire(gearman_worker: Any, job: Any) -> bytes:
        ran.append(job.handle)
        gearman_worker.unregister_task("retire")  # its own task: CANT_DO now would
        gearman_worker.register_task("next", lambda job: b"")  # re-queue this very job
        assert C.CANT_DO not in a.commands() + b.commands()
        return b"bye"

    worker.register_task("retire", retire)
    a, b = connect(worker)
    worker.handler_for(a).dispatch(assign("A:1", "retire"))
    worker.handler_for(b).dispatch(assign("B:1", "retire"))  # held behind A:1
    run_until(worker, lambda: bool(completes(a)) and C.CANT_DO in b.commands())
    assert ran == ["A:1"]  # B:1 went back to gearmand's queue with the CANT_DO
    assert a.sent[-3:] == [req(C.WORK_COMPLETE, "A:1", "bye"), req(C.CANT_DO, "retire"),
                           req(C.CAN_DO, "next")]
    assert b.sent[-3:] == [req(C.CANT_DO, "retire"), req(C.CAN_DO, "next"), GRAB]
    assert completes(b) == []


# -- reconnect ----------------------------------------------------------------------------------
def test_reregistration_on_reconnect_with_current_abilities() -> None:
    worker = make_worker()
    worker.set_client_id("phoenix")
    worker.register_task("a", lambda job: b"")
    worker.register_task("b", lambda job: b"", timeout=5)
    ran: List[str] = []
    worker.register_task("c", lambda job: ran.append(job.handle) or b"")
    [conn] = connect(worker)
    handler = worker.handler_for(conn)
    handler.dispatch(assign("H:1", "c"))  # assigned, not started
    handler.dispatch(assign("H:2", "c"))
    conn.push_eof()
    # The loss is noticed in the poll; jobs held from that connection are dropped
    # (gearmand re-queues them), and registrations change while it is down.
    passes = [0]

    def after_poll(any_activity: bool) -> bool:
        passes[0] += 1
        if passes[0] == 1:
            worker.unregister_task("a")
            worker.register_task("d", lambda job: b"")
        return len(conn.sessions) < 2 and passes[0] < 50

    worker.after_poll = after_poll
    worker.work(poll_timeout=0)
    assert len(conn.sessions) == 2
    assert ran == []
    assert conn.sessions[1] == [req(C.SET_CLIENT_ID, "phoenix"), req(C.CAN_DO_TIMEOUT, "b", "5000"),
                                req(C.CAN_DO, "c"), req(C.CAN_DO, "d"), GRAB]


def test_refused_connect_backs_off_and_work_keeps_running() -> None:
    worker = make_worker()
    worker.reconnect_backoff = Backoff(base=0.001, cap=0.002)
    worker.register_task("a", lambda job: b"")
    [conn] = worker.connection_list
    conn.refuse = True
    tries = [0]

    def after_poll(any_activity: bool) -> bool:
        tries[0] += 1
        if tries[0] == 5:
            conn.refuse = False
        return not conn.connected and tries[0] < 500

    worker.after_poll = after_poll
    worker.work(poll_timeout=1.0)
    assert conn.connected is False  # work() closed it on the way out
    assert conn.sessions and conn.sessions[0] == [req(C.CAN_DO, "a"), GRAB]


# -- callbacks, results, exceptions ------------------------------------------------------
class Handlers:
    """Callbacks of every accepted shape."""

    def method(self, job: Any) -> bytes:
        return b"method:" + job.data

    def method2(self, worker: Any, job: Any) -> bytes:
        assert isinstance(worker, gearman.GearmanWorker)
        return b"method2:" + job.data


def _two(worker: Any, job: Any) -> bytes:
    assert isinstance(worker, gearman.GearmanWorker)
    return b"two:" + job.data


def _star(*args: Any) -> bytes:
    worker, job = args
    return b"star:" + job.data


def _partial(prefix: bytes, job: Any) -> bytes:
    return prefix + job.data


@pytest.mark.parametrize("callback, expected", [
    (lambda job: b"one:" + job.data, b"one:x"),
    (lambda job, extra=b"!": b"one" + extra, b"one!"),
    (_two, b"two:x"),
    (lambda worker, job, extra=b"?": b"two" + extra, b"two?"),
    (_star, b"star:x"),
    (Handlers().method, b"method:x"),
    (Handlers().method2, b"method2:x"),
    (functools.partial(_partial, b"p:"), b"p:x"),
])
def test_callback_of_one_or_two_arguments(callback: Any, expected: bytes) -> None:
    worker = make_worker()
    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"x"))
    run_until(worker, lambda: bool(completes(conn)))
    assert completes(conn) == [req(C.WORK_COMPLETE, "H:1", expected)]


@pytest.mark.parametrize("result, wire", [
    (b"raw\0bytes", b"raw\0bytes"), ("t\u00e9xt", "t\u00e9xt".encode()),
    (bytearray(b"ba"), b"ba"), (memoryview(b"mv"), b"mv"), (b"", b""),
])
def test_return_value_encoding(result: Any, wire: bytes) -> None:
    worker = make_worker()
    worker.register_task("t", lambda job: result)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t"))
    run_until(worker, lambda: bool(completes(conn)))
    assert completes(conn) == [req(C.WORK_COMPLETE, "H:1", wire)]


class JSONWorker(FakeWorker):
    data_encoder = JSONDataEncoder


def test_data_encoder_subclass_decodes_jobs_and_encodes_results_and_updates() -> None:
    worker = make_worker(cls=JSONWorker)

    def callback(worker: Any, job: Any) -> Any:
        worker.send_job_data(job, {"partial": job.data["n"]})
        return {"n": job.data["n"] + 1}

    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b'{"n": 41}'), assign("H:2", "t", b"not json"))
    run_until(worker, lambda: len(completes(conn)) == 2)
    assert req(C.WORK_DATA, "H:1", '{"partial": 41}') in conn.sent
    # The undecodable job fails as soon as it is assigned, before H:1 runs.
    second, first = completes(conn)
    assert first == req(C.WORK_COMPLETE, "H:1", '{"n": 42}')
    assert second.command == C.WORK_EXCEPTION and second.args[0] == b"H:2"
    assert b"not decodable" in second.args[1]


def test_exception_sends_work_exception_alone_logs_traceback_and_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    worker = make_worker()

    def callback(job: Any) -> bytes:
        if job.data == b"bad":
            raise ValueError("broken 42")
        return b"fine"

    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"bad"), assign("H:2", "t", b"good"))
    with caplog.at_level(logging.ERROR, logger="gearman"):
        run_until(worker, lambda: len(completes(conn)) == 2)
    assert completes(conn) == [req(C.WORK_EXCEPTION, "H:1", "ValueError: broken 42"),
                               req(C.WORK_COMPLETE, "H:2", "fine")]
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is ValueError and "H:1" in record.getMessage()
    assert "raise ValueError" in caplog.text  # the traceback itself


class Unencodable(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object: Any) -> bytes:
        if encodable_object == "explode":
            raise RuntimeError("encoder exploded")
        return gearman.DataEncoder.encode(encodable_object)


class ExplodingEncoderWorker(FakeWorker):
    data_encoder = Unencodable


@pytest.mark.parametrize("result, reason", [
    (object(), b"object"), (reversed(b"abc"), b"reversed"), (iter([b"a"]), b"iterator"),
    (None, b"NoneType"), (b"x" * 2000, b"max_packet_size"), ("explode", b"encoder exploded"),
])
def test_unsendable_result_fails_that_job_with_the_reason(result: Any, reason: bytes) -> None:
    worker = ExplodingEncoderWorker(["fake:1"], max_packet_size=1000)
    worker.register_task("t", lambda job: result if job.data == b"bad" else "ok")
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"bad"), assign("H:2", "t", b"good"))
    run_until(worker, lambda: len(completes(conn)) == 2)
    failed, good = completes(conn)
    assert failed.command == C.WORK_EXCEPTION and failed.args[0] == b"H:1"
    assert b"not sendable" in failed.args[1] and reason in failed.args[1]
    assert good == req(C.WORK_COMPLETE, "H:2", "ok")


def test_callback_finishing_the_job_itself_is_not_finished_twice(
        caplog: pytest.LogCaptureFixture) -> None:
    worker = make_worker()

    def callback(worker: Any, job: Any) -> Any:
        if job.data == b"fail":
            worker.send_job_failure(job)
        elif job.data == b"twice":
            worker.send_job_complete(job, b"first")
            worker.send_job_complete(job, b"second")  # InvalidWorkerState
        else:
            worker.send_job_complete(job, b"mine")
        return b"ignored"

    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"fail"), assign("H:2", "t", b"twice"),
              assign("H:3", "t", b"done"))
    with caplog.at_level(logging.ERROR, logger="gearman"):
        run_until(worker, lambda: len(completes(conn)) == 3)
    assert completes(conn) == [req(C.WORK_FAIL, "H:1"), req(C.WORK_COMPLETE, "H:2", "first"),
                               req(C.WORK_COMPLETE, "H:3", "mine")]
    assert "already finished" in caplog.text


def test_in_callback_updates_go_out_in_order_before_the_result() -> None:
    worker = make_worker()

    def callback(worker: Any, job: Any) -> bytes:
        worker.send_job_data(job, b"d1")
        worker.send_job_warning(job, "w1")
        worker.send_job_status(job, 1, 3)
        worker.send_job_data(job, b"d2")
        worker.send_job_status(job, 3.0, 3)
        with pytest.raises(ValueError, match="whole number"):
            worker.send_job_status(job, 0.5, 1)
        with pytest.raises(TypeError, match="numerator"):
            worker.send_job_status(job, "1", 2)
        return b"done"

    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t"))
    run_until(worker, lambda: bool(completes(conn)))
    start = conn.sent.index(req(C.WORK_DATA, "H:1", "d1"))
    assert conn.sent[start:start + 6] == [
        req(C.WORK_DATA, "H:1", "d1"), req(C.WORK_WARNING, "H:1", "w1"),
        req(C.WORK_STATUS, "H:1", "1", "3"), req(C.WORK_DATA, "H:1", "d2"),
        req(C.WORK_STATUS, "H:1", "3", "3"), req(C.WORK_COMPLETE, "H:1", "done")]


def test_callback_with_no_result_sent_gets_work_fail() -> None:
    class Silent(FakeWorker):
        def on_job_complete(self, current_job: Any, job_result: Any) -> bool:
            return True  # forgets to send anything

    worker = make_worker(cls=Silent)
    worker.register_task("t", lambda job: b"x")
    [conn] = connect(worker)
    conn.push(assign("H:1", "t"))
    run_until(worker, lambda: bool(completes(conn)))
    assert completes(conn) == [req(C.WORK_FAIL, "H:1")]


# -- hooks ----------------------------------------------------------------------------------------
class HookWorker(FakeWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[tuple] = []
        self.stop_after_jobs: Optional[int] = None

    def after_poll(self, any_activity: bool) -> bool:
        self.calls.append(("after_poll", any_activity))
        return len(self.calls) < 500 and not self.done()

    def done(self) -> bool:
        return sum(1 for c in self.calls if c[0] == "after_job") >= 2

    def after_job(self) -> bool:
        self.calls.append(("after_job",))
        jobs = sum(1 for c in self.calls if c[0] == "after_job")
        return self.stop_after_jobs is None or jobs < self.stop_after_jobs

    def on_job_execute(self, current_job: Any) -> bool:
        self.calls.append(("on_job_execute", current_job.handle))
        super().on_job_execute(current_job)
        return False  # ignored, as in 2.x

    def on_job_exception(self, current_job: Any, exc_info: Any) -> bool:
        self.calls.append(("on_job_exception", current_job.handle, exc_info[0]))
        super().on_job_exception(current_job, exc_info)
        return False  # ignored

    def on_job_complete(self, current_job: Any, job_result: Any) -> bool:
        self.calls.append(("on_job_complete", current_job.handle, job_result))
        super().on_job_complete(current_job, job_result.upper())
        return False  # ignored


def _raise_on_bad(job: Any) -> bytes:
    if job.data == b"bad":
        raise KeyError("k")
    return b"good"


def test_hooks_are_called_in_order_and_their_booleans_ignored() -> None:
    worker = make_worker(cls=HookWorker)
    worker.register_task("t", _raise_on_bad)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"ok"))
    conn.push(assign("H:2", "t", b"bad"))
    worker.work(poll_timeout=0)
    jobs = [c for c in worker.calls if c[0] != "after_poll"]
    assert jobs == [("on_job_execute", "H:1"), ("on_job_complete", "H:1", b"good"),
                    ("after_job",),
                    ("on_job_execute", "H:2"), ("on_job_exception", "H:2", KeyError),
                    ("after_job",)]
    # after_poll follows every pass, after_job included; a pass with a job is activity.
    for index, call in enumerate(worker.calls):
        if call[0] == "after_job":
            assert worker.calls[index + 1] == ("after_poll", True)
    assert completes(conn)[0] == req(C.WORK_COMPLETE, "H:1", "GOOD")
    assert completes(conn)[1].command == C.WORK_EXCEPTION
    assert conn.connected is False  # work() returned and closed its connections


def test_after_job_false_ends_work_after_that_job() -> None:
    worker = make_worker(cls=HookWorker)
    worker.stop_after_jobs = 1
    worker.register_task("t", _raise_on_bad)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"ok"))
    conn.push(assign("H:2", "t", b"ok"))
    worker.work(poll_timeout=0)
    assert [c for c in worker.calls if c[0] == "on_job_execute"] == [("on_job_execute", "H:1")]
    assert completes(conn) == [req(C.WORK_COMPLETE, "H:1", "GOOD")]
    assert conn.sent[-1] == req(C.WORK_COMPLETE, "H:1", "GOOD")  # no GRAB for a job not run


def test_after_poll_false_ends_work_after_the_first_pass() -> None:
    class OnePass(FakeWorker):
        passes = 0

        def after_poll(self, any_activity: bool) -> bool:
            self.passes += 1
            return False

    worker = make_worker(cls=OnePass)
    worker.work(poll_timeout=0)
    assert worker.passes == 1


def test_overridden_on_job_execute_that_raises_fails_the_job_and_work_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeWorker):
        def on_job_execute(self, current_job: Any) -> bool:
            if current_job.data == b"bad":
                raise RuntimeError("hook bug")
            return super().on_job_execute(current_job)

    worker = make_worker(cls=Broken)
    worker.register_task("t", lambda job: b"fine")
    [conn] = connect(worker)
    conn.push(assign("H:1", "t", b"bad"), assign("H:2", "t", b"good"))
    with caplog.at_level(logging.ERROR, logger="gearman"):
        run_until(worker, lambda: len(completes(conn)) == 2)
    assert completes(conn) == [req(C.WORK_EXCEPTION, "H:1", "RuntimeError: hook bug"),
                               req(C.WORK_COMPLETE, "H:2", "fine")]
    assert "hook bug" in caplog.text


# -- shutdown ----------------------------------------------------------------------------------
def test_shutdown_inside_a_callback_ends_work_after_that_job() -> None:
    worker = make_worker()
    ran: List[str] = []

    def callback(worker: Any, job: Any) -> bytes:
        ran.append(job.handle)
        worker.shutdown()
        return b"last"

    worker.register_task("t", callback)
    [conn] = connect(worker)
    conn.push(assign("H:1", "t"), assign("H:2", "t"))
    worker.work(poll_timeout=5)  # returns by itself
    assert ran == ["H:1"]
    assert conn.sent[-1] == req(C.WORK_COMPLETE, "H:1", "last")  # no grab after it
    assert conn.connected is False


def test_stop_from_another_thread_wakes_a_sleeping_work_loop() -> None:
    worker = make_worker()
    worker.register_task("t", lambda job: b"")
    [conn] = connect(worker)
    conn.push(NO_JOB)
    slept = threading.Event()
    conn.on_send = lambda packet: packet.command == C.PRE_SLEEP and slept.set()
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 30})
    thread.start()
    assert slept.wait(5)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive() and conn.connected is False


def test_shutdown_outside_work_closes_connections() -> None:
    worker = make_worker()
    [conn] = connect(worker)
    worker.shutdown()
    assert conn.connected is False


def test_registration_from_another_thread_is_sent_by_the_work_loop() -> None:
    worker = make_worker()
    worker.register_task("t", lambda job: b"")
    [conn] = connect(worker)
    conn.push(NO_JOB)
    slept = threading.Event()
    conn.on_send = lambda packet: packet == PRE_SLEEP and slept.set()
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 30})
    thread.start()
    try:
        assert slept.wait(5)
        first = len(conn.sent)
        worker.set_client_id("threaded")
        worker.register_task("late", lambda job: b"")
        worker.unregister_task("t")
        # The work thread sends them once it wakes up.
        wait_for(lambda: req(C.CANT_DO, "t") in conn.sent and GRAB in conn.sent[first:])
    finally:
        worker.shutdown()
        thread.join(5)
    assert not thread.is_alive()
    tail = conn.sent[conn.sent.index(PRE_SLEEP) + 1:]
    assert [p for p in tail if p != GRAB] == [req(C.SET_CLIENT_ID, "threaded"),
                                              req(C.CAN_DO, "late"), req(C.CANT_DO, "t")]
    assert tail.index(GRAB) > tail.index(req(C.CAN_DO, "late")) and tail.count(GRAB) == 1
    sent_after_sleep = conn.send_threads[conn.sent.index(PRE_SLEEP):]
    assert set(sent_after_sleep) == {thread.ident}  # only the work loop touched the socket


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("task, callback, error, match", [
    ("t", "not callable", TypeError, "callable"),
    ("t", None, TypeError, "callable"),
    ("", lambda job: b"", ValueError, "empty"),
    (b"", lambda job: b"", ValueError, "empty"),
    ("a\0b", lambda job: b"", ValueError, "NUL"),
    (123, lambda job: b"", TypeError, "task"),
])
def test_register_task_rejects_bad_input(task: Any, callback: Any, error: type,
                                         match: str) -> None:
    worker = make_worker()
    with pytest.raises(error, match=match):
        worker.register_task(task, callback)
    assert worker.worker_abilities == {}


@pytest.mark.parametrize("timeout", [0, -1, -0.5, "5", True])
def test_register_task_rejects_bad_timeouts(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        make_worker().register_task("t", lambda job: b"", timeout=timeout)


@pytest.mark.parametrize("client_id, error", [
    ("has space", ValueError), ("tab\there", ValueError), ("nl\n", ValueError),
    ("x" * 128, ValueError), ("nul\0", ValueError), ("", ValueError), (42, TypeError),
])
def test_set_client_id_rejects_bad_input(client_id: Any, error: type) -> None:
    worker = make_worker()
    with pytest.raises(error, match="client_id"):
        worker.set_client_id(client_id)
    assert worker.worker_client_id is None


def test_work_rejects_a_negative_poll_timeout() -> None:
    with pytest.raises(ValueError, match="poll_timeout"):
        make_worker().work(poll_timeout=-1)


def test_handler_class_is_the_2x_hook() -> None:
    assert gearman.GearmanWorker.command_handler_class is GearmanWorkerCommandHandler
    assert GearmanWorkerCommandHandler.grab_command == C.GRAB_JOB_ALL


def test_an_overridden_establish_worker_connections_runs_every_pass() -> None:
    """2.x subclasses override establish_worker_connections (peers.md): the loop
    keeps calling an override even while every server is up."""
    class Counting(FakeWorker):
        calls = 0

        def establish_worker_connections(self) -> List[Any]:
            self.calls += 1
            return super().establish_worker_connections()

    worker = make_worker(cls=Counting)
    worker.register_task("t", lambda job: b"")
    connect(worker)
    assert all(c.connected for c in worker.connection_list)
    before, passes = worker.calls, []
    worker.after_poll = lambda any_activity: passes.append(1) or len(passes) < 5
    worker.work(poll_timeout=0)
    assert (len(passes), worker.calls - before) == (5, 5)
