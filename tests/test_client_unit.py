"""GearmanClientCommandHandler and GearmanClient argument checks, without sockets.

The handler is driven with :class:`~gearman.protocol.Packet` objects and a fake
connection that records every ``send_command``; the client is given a
connection class whose ``connect`` only records that it was called.
"""
from __future__ import annotations

import datetime
import logging
import zlib
from typing import Any, List, Tuple

import pytest

import gearman
from gearman import errors
from gearman.client import GearmanClient, resolve_timeout
from gearman import request_fate
from gearman.request_checks import check_when
from gearman.client_handler import GearmanClientCommandHandler, StatusQuery, parse_number
from gearman.connection import GearmanConnection
from gearman.constants import (
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
)
from gearman.encoders import DataEncoder, to_wire_bytes
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.protocol import RES, Command, Packet

SERVER = "127.0.0.1:4730"


class FakeConnection:
    """Records what a handler sends; never touches a socket."""

    def __init__(self, address: str = SERVER) -> None:
        self.address = address
        self.gearman_host, port = address.rsplit(":", 1)
        self.gearman_port = int(port)
        self.connected = True
        self.sent: List[Tuple[Command, Tuple[bytes, ...]]] = []

    def send_command(self, command: Command, args: Tuple[bytes, ...] = ()) -> None:
        self.sent.append((command, tuple(args)))


class FakeClient:
    """The part of GearmanClient a handler calls back into."""

    data_encoder: Any = DataEncoder

    def __init__(self) -> None:
        self.updated: List[Any] = []
        self.statuses: List[StatusQuery] = []
        self.outcomes: List[str] = []

    def note_updated(self, request: Any) -> None:
        self.updated.append(request)

    def note_status(self, query: StatusQuery) -> None:
        self.statuses.append(query)

    def note_lost(self, request: Any) -> None:
        """As GearmanClient does: the request fate decides (no retries sent here)."""
        self.outcomes.append(request_fate.lose(request))
        self.updated.append(request)

    def encode_payload(self, data: Any) -> bytes:
        return to_wire_bytes(self.data_encoder.encode(data))


def res(command: Command, *args: bytes) -> Packet:
    return Packet(command, tuple(args), RES)


def make_request(task: str = "t", unique: str = "u", data: bytes = b"d",
                 background: bool = False, priority: Any = PRIORITY_NONE,
                 when: Any = None, reducer: Any = None) -> GearmanJobRequest:
    job = GearmanJob(None, None, task, unique, data, reducer=reducer, when=when)
    request = GearmanJobRequest(job, initial_priority=priority, background=background)
    request.encoded_data = data
    return request


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def conn() -> FakeConnection:
    return FakeConnection()


@pytest.fixture
def handler(client: FakeClient, conn: FakeConnection) -> GearmanClientCommandHandler:
    """A handler whose OPTION_REQ exceptions has been answered."""
    h = GearmanClientCommandHandler(client, conn)
    h.initial_state()
    h.dispatch(res(Command.OPTION_RES, b"exceptions"))
    conn.sent.clear()
    return h


def submit(handler: GearmanClientCommandHandler, *requests: GearmanJobRequest) -> None:
    for request in requests:
        request.state = JOB_PENDING
        handler.send_job_request(request)


# -- options ------------------------------------------------------------------------------

def test_initial_state_asks_for_exceptions(client: FakeClient, conn: FakeConnection) -> None:
    h = GearmanClientCommandHandler(client, conn)
    h.initial_state()
    assert conn.sent == [(Command.OPTION_REQ, (b"exceptions",))]
    assert not h.exceptions_enabled
    h.dispatch(res(Command.OPTION_RES, b"exceptions"))
    assert h.exceptions_enabled


def test_error_in_place_of_option_res_is_consumed(client: FakeClient, conn: FakeConnection,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    h = GearmanClientCommandHandler(client, conn)
    h.initial_state()
    request = make_request()
    submit(h, request)
    with caplog.at_level(logging.INFO, logger="gearman"):
        h.dispatch(res(Command.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize"))
    assert not h.exceptions_enabled
    assert "OPTION_REQ" in caplog.text
    # The ERROR took the OPTION_REQ's slot, so the next reply belongs to the job.
    h.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    assert request.state == JOB_CREATED and request.job.handle == "H:x:1"


# -- submitting ---------------------------------------------------------------------------

@pytest.mark.parametrize("background, priority, command", [
    (False, PRIORITY_NONE, Command.SUBMIT_JOB),
    (False, PRIORITY_HIGH, Command.SUBMIT_JOB_HIGH),
    (False, PRIORITY_LOW, Command.SUBMIT_JOB_LOW),
    (True, PRIORITY_NONE, Command.SUBMIT_JOB_BG),
    (True, PRIORITY_HIGH, Command.SUBMIT_JOB_HIGH_BG),
    (True, PRIORITY_LOW, Command.SUBMIT_JOB_LOW_BG),
])
def test_submit_command_per_priority_and_background(handler: GearmanClientCommandHandler,
                                                    conn: FakeConnection, background: bool,
                                                    priority: Any, command: Command) -> None:
    submit(handler, make_request("reverse", "u1", b"a\0b", background, priority))
    assert conn.sent == [(command, (b"reverse", b"u1", b"a\0b"))]


def test_epoch_and_reduce_submissions(handler: GearmanClientCommandHandler,
                                      conn: FakeConnection) -> None:
    submit(handler, make_request("t", "u1", b"x", background=True, when=1700000000),
           make_request("t", "u2", b"y", reducer="sum"),
           make_request("t", "u3", b"z", background=True, reducer="sum"))
    assert conn.sent == [
        (Command.SUBMIT_JOB_EPOCH, (b"t", b"u1", b"1700000000", b"x")),
        (Command.SUBMIT_REDUCE_JOB, (b"t", b"u2", b"sum", b"", b"y")),
        (Command.SUBMIT_REDUCE_JOB_BACKGROUND, (b"t", b"u3", b"sum", b"", b"z")),
    ]


# -- FIFO matching ------------------------------------------------------------------------

def test_job_created_and_error_are_matched_fifo(handler: GearmanClientCommandHandler,
                                                client: FakeClient) -> None:
    r1, r2, r3 = make_request(unique="a"), make_request(unique="b"), make_request(unique="c")
    submit(handler, r1, r2, r3)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    handler.dispatch(res(Command.ERROR, b"QUEUE_ERROR", b"Job queue is full"))
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:3"))
    assert (r1.state, r1.job.handle) == (JOB_CREATED, "H:x:1")
    assert (r3.state, r3.job.handle) == (JOB_CREATED, "H:x:3")
    assert r2.state == JOB_FAILED and r2.complete and r2.job.handle is None
    assert isinstance(r2.exception, errors.ServerError)
    assert (r2.exception.code, r2.exception.text) == ("QUEUE_ERROR", "Job queue is full")
    assert r2.exception.server == SERVER and "QUEUE_ERROR" in str(r2.exception)
    assert r1.accepted_by is handler.connection and r2.accepted_by is None
    assert client.updated == [r1, r2, r3]
    # The other two still get their results.
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:3", b"three"))
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:1", b"one"))
    assert (r1.state, r1.result, r3.state, r3.result) == (JOB_COMPLETE, b"one",
                                                          JOB_COMPLETE, b"three")


def test_status_replies_interleave_with_submissions(handler: GearmanClientCommandHandler,
                                                    conn: FakeConnection,
                                                    client: FakeClient) -> None:
    r1, r2 = make_request(unique="a"), make_request(unique="b")
    other = make_request(unique="c")
    other.job.handle = "H:x:9"
    query = StatusQuery(b"H:x:9", other)
    submit(handler, r1)
    handler.send_get_status(query)
    unique_query = StatusQuery(b"c")
    handler.send_get_status_unique(unique_query)
    submit(handler, r2)
    assert [c for c, _ in conn.sent] == [Command.SUBMIT_JOB, Command.GET_STATUS,
                                         Command.GET_STATUS_UNIQUE, Command.SUBMIT_JOB]
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    handler.dispatch(res(Command.STATUS_RES, b"H:x:9", b"1", b"1", b"3", b"4"))
    handler.dispatch(res(Command.STATUS_RES_UNIQUE, b"c", b"1", b"0", b"0", b"0", b"2"))
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:2"))
    assert (r1.job.handle, r2.job.handle) == ("H:x:1", "H:x:2")
    assert query.done and other.status["known"] and other.status["running"]
    assert (other.status["numerator"], other.status["denominator"]) == (3, 4)
    assert other.status["handle"] == "H:x:9" and "time_received" in other.status
    assert unique_query.done and unique_query.result is not None
    assert unique_query.result["unique"] == "c" and unique_query.result["known"]
    assert unique_query.result["waiting_clients"] == 2 and not unique_query.result["running"]
    assert client.statuses == [query, unique_query]


def test_unknown_status_reads_known_false(handler: GearmanClientCommandHandler) -> None:
    query = StatusQuery(b"H:nope:1")
    handler.send_get_status(query)
    handler.dispatch(res(Command.STATUS_RES, b"H:nope:1", b"0", b"0", b"0", b"0"))
    assert query.result is not None
    assert (query.result["known"], query.result["running"]) == (False, False)


def test_error_in_place_of_status_res_is_kept_on_the_query(
        handler: GearmanClientCommandHandler) -> None:
    query = StatusQuery(b"H:x:1")
    handler.send_get_status(query)
    handler.dispatch(res(Command.ERROR, b"ARGUMENT_TOO_LARGE", b"too big"))
    assert query.done and query.result is not None
    assert isinstance(query.result["error"], errors.ServerError)
    assert query.result["error"].code == "ARGUMENT_TOO_LARGE"


def test_echo_round_trip(handler: GearmanClientCommandHandler, conn: FakeConnection) -> None:
    query = StatusQuery(b"pi\0ng")
    handler.send_echo(query)
    assert conn.sent == [(Command.ECHO_REQ, (b"pi\0ng",))]
    handler.dispatch(res(Command.ECHO_RES, b"pi\0ng"))
    assert query.done and query.result == {"data": b"pi\0ng"}


@pytest.mark.parametrize("packet", [
    res(Command.JOB_CREATED, b"H:x:1"),
    res(Command.STATUS_RES, b"H:x:1", b"0", b"0", b"0", b"0"),
    res(Command.OPTION_RES, b"exceptions"),
    res(Command.ECHO_RES, b"x"),
])
def test_reply_nobody_waits_for_is_a_client_state_error(handler: GearmanClientCommandHandler,
                                                        packet: Packet) -> None:
    with pytest.raises(errors.InvalidClientState, match=SERVER):
        handler.dispatch(packet)


def test_reply_of_the_wrong_kind_is_a_client_state_error(
        handler: GearmanClientCommandHandler) -> None:
    submit(handler, make_request())
    with pytest.raises(errors.InvalidClientState, match="STATUS_RES"):
        handler.dispatch(res(Command.STATUS_RES, b"H:x:1", b"0", b"0", b"0", b"0"))


def test_error_with_nothing_outstanding_is_logged(handler: GearmanClientCommandHandler,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gearman"):
        handler.dispatch(res(Command.ERROR, b"JOB_NOT_FOUND", b"Job given in work result"))
    assert "JOB_NOT_FOUND" in caplog.text


# -- work updates ---------------------------------------------------------------------------

def test_updates_arrive_in_order(handler: GearmanClientCommandHandler) -> None:
    request = make_request()
    submit(handler, request)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    for packet in (res(Command.WORK_DATA, b"H:x:1", b"d1"),
                   res(Command.WORK_WARNING, b"H:x:1", b"w1"),
                   res(Command.WORK_STATUS, b"H:x:1", b"1", b"3"),
                   res(Command.WORK_DATA, b"H:x:1", b"d\0 2"),
                   res(Command.WORK_STATUS, b"H:x:1", b"2", b"3"),
                   res(Command.WORK_WARNING, b"H:x:1", b"w2")):
        handler.dispatch(packet)
    assert list(request.data_updates) == [b"d1", b"d\0 2"]
    assert list(request.warning_updates) == [b"w1", b"w2"]
    assert (request.status["numerator"], request.status["denominator"]) == (2, 3)
    assert request.status["known"] and request.status["running"]
    assert request.state == JOB_CREATED and not request.complete
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:1", b"done"))
    assert request.state == JOB_COMPLETE and request.result == b"done" and request.complete


def test_coalesced_requests_each_get_every_update_once(handler: GearmanClientCommandHandler,
                                                       client: FakeClient) -> None:
    r1, r2 = make_request(unique="same"), make_request(unique="same")
    submit(handler, r1, r2)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:7"))
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:7"))
    # gearmand repeats every packet once per submission (protocol.md §5.1).
    for _ in range(2):
        handler.dispatch(res(Command.WORK_DATA, b"H:x:7", b"part1"))
    for _ in range(2):
        handler.dispatch(res(Command.WORK_DATA, b"H:x:7", b"part2"))
    for _ in range(2):
        handler.dispatch(res(Command.WORK_STATUS, b"H:x:7", b"5", b"10"))
    client.updated.clear()
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:7", b"result"))
    assert r1.complete and not r2.complete  # one copy each
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:7", b"result"))
    for request in (r1, r2):
        assert list(request.data_updates) == [b"part1", b"part2"]
        assert request.status["numerator"] == 5
        assert (request.state, request.result) == (JOB_COMPLETE, b"result")
    assert client.updated == [r1, r2]
    assert handler._requests_by_handle == {} and handler._rotation == {}
    assert handler.requests_in_flight == 0


@pytest.mark.parametrize("packet", [
    res(Command.WORK_COMPLETE, b"H:other:1", b"x"),
    res(Command.WORK_FAIL, b"H:other:1"),
    res(Command.WORK_EXCEPTION, b"H:other:1", b"boom"),
    res(Command.WORK_DATA, b"H:other:1", b"x"),
    res(Command.WORK_WARNING, b"H:other:1", b"x"),
    res(Command.WORK_STATUS, b"H:other:1", b"1", b"2"),
])
def test_unknown_handle_is_logged_and_dropped(handler: GearmanClientCommandHandler,
                                              client: FakeClient, packet: Packet,
                                              caplog: pytest.LogCaptureFixture) -> None:
    request = make_request()
    submit(handler, request)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    client.updated.clear()
    with caplog.at_level(logging.WARNING, logger="gearman"):
        handler.dispatch(packet)
    assert "unknown job handle" in caplog.text and "H:other:1" in caplog.text
    assert packet.command.name in caplog.text and SERVER in caplog.text
    assert client.updated == [] and request.state == JOB_CREATED
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:1", b"ok"))
    assert request.result == b"ok"


def test_trailing_nul_on_handles_is_stripped(handler: GearmanClientCommandHandler) -> None:
    r1, r2 = make_request(unique="a"), make_request(unique="b")
    submit(handler, r1, r2)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1\0"))
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:2"))
    assert r1.job.handle == "H:x:1"
    # gearmand's WORK_FAIL converted from an exception repeats the handle with its NUL.
    handler.dispatch(res(Command.WORK_FAIL, b"H:x:2\0"))
    handler.dispatch(res(Command.WORK_STATUS, b"H:x:1\0", b"1", b"2"))
    handler.dispatch(res(Command.WORK_COMPLETE, b"H:x:1\0", b"ok"))
    assert r2.state == JOB_FAILED and r2.complete
    assert r1.status["handle"] == "H:x:1" and r1.result == b"ok"
    assert handler._requests_by_handle == {}


def test_work_exception_fails_with_its_text(handler: GearmanClientCommandHandler) -> None:
    request = make_request()
    submit(handler, request)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    handler.dispatch(res(Command.WORK_EXCEPTION, b"H:x:1", b"ValueError: bad \xc3\xa9"))
    assert request.state == JOB_FAILED and request.complete
    assert request.exception == "ValueError: bad \u00e9"
    assert handler._requests_by_handle == {}


def test_work_fail_without_exception(handler: GearmanClientCommandHandler) -> None:
    request = make_request()
    submit(handler, request)
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    handler.dispatch(res(Command.WORK_FAIL, b"H:x:1"))
    assert request.state == JOB_FAILED and request.exception is None and request.complete


def test_background_request_is_complete_once_created(handler: GearmanClientCommandHandler,
                                                     ) -> None:
    request = make_request(background=True)
    submit(handler, request)
    assert not request.complete
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    assert request.complete and request.state == JOB_CREATED
    assert handler._requests_by_handle == {}  # nothing more will come for it


def test_a_result_the_encoder_cannot_decode_fails_that_request_only(
        client: FakeClient, conn: FakeConnection) -> None:
    class Strict(DataEncoder):
        @classmethod
        def decode(cls, decodable_string: bytes) -> Any:
            if decodable_string == b"bad":
                raise ValueError("cannot decode")
            return decodable_string.decode()

    client.data_encoder = Strict
    h = GearmanClientCommandHandler(client, conn)
    r1, r2 = make_request(unique="a"), make_request(unique="b")
    submit(h, r1, r2)
    h.dispatch(res(Command.JOB_CREATED, b"H:1"))
    h.dispatch(res(Command.JOB_CREATED, b"H:2"))
    h.dispatch(res(Command.WORK_DATA, b"H:1", b"bad"))
    h.dispatch(res(Command.WORK_COMPLETE, b"H:1", b"bad"))
    h.dispatch(res(Command.WORK_COMPLETE, b"H:2", b"good"))
    assert list(r1.data_updates) == [b"bad"]  # kept raw
    assert r1.state == JOB_FAILED and isinstance(r1.exception, ValueError)
    assert (r2.state, r2.result) == (JOB_COMPLETE, "good")


def test_connection_loss_fails_everything_outstanding(handler: GearmanClientCommandHandler,
                                                      client: FakeClient) -> None:
    created, pending = make_request(unique="a"), make_request(unique="b")
    submit(handler, created, pending)
    created.connection_attempts = pending.connection_attempts = 1  # their only try
    handler.dispatch(res(Command.JOB_CREATED, b"H:x:1"))
    status, echo = StatusQuery(b"H:x:1", created), StatusQuery(b"hi")
    handler.send_get_status(status)
    handler.send_echo(echo)
    client.updated.clear()
    handler.on_io_error()
    for request in (created, pending):
        assert request.connection_failed and request.state == JOB_UNKNOWN
        assert not request.complete and request.finished
    assert set(client.updated) == {created, pending}
    assert client.outcomes == [request_fate.FAILED, request_fate.FAILED]
    assert status.done and status.result is None
    assert echo.done and echo.result is None
    assert client.statuses == [status, echo]
    assert handler.requests_in_flight == 0


def test_parse_number_is_lenient() -> None:
    assert parse_number(b"12") == 12
    assert parse_number(b"0.5") == 0.5
    assert parse_number(b"junk") == 0


# -- the client's argument checks: nothing is sent, no connection is tried ------------------

class RecordingConnection(GearmanConnection):
    """A connection whose connect() is only recorded (and fails)."""

    attempts: List[str] = []

    def connect(self, timeout: Any = None) -> None:
        RecordingConnection.attempts.append(self.address)
        raise errors.ConnectionError(self.gearman_host, self.gearman_port, "test: no network")


class RecordingClient(GearmanClient):
    connection_class = RecordingConnection


@pytest.fixture
def offline_client() -> Any:
    RecordingConnection.attempts = []
    client = RecordingClient(["127.0.0.1:4730", "127.0.0.1:4731"])
    yield client
    client.close()
    assert RecordingConnection.attempts == [], "an argument check came after a connect"
    assert not any(c.connected for c in client.connection_list)


GOOD = {"task": "t", "data": "d"}


@pytest.mark.parametrize("call, error, words", [
    (lambda c: c.submit_multiple_jobs(dict(GOOD)), TypeError, ["jobs_to_submit", "single dict"]),
    (lambda c: c.submit_multiple_jobs("td"), TypeError, ["jobs_to_submit", "str"]),
    (lambda c: c.submit_multiple_jobs([GOOD, "x"]), TypeError, ["jobs_to_submit[1]"]),
    (lambda c: c.submit_multiple_jobs([GOOD, {"task": "t"}]), ValueError,
     ["jobs_to_submit[1]", "data"]),
    (lambda c: c.submit_multiple_jobs([dict(GOOD, colour="red")]), ValueError, ["colour"]),
    (lambda c: c.submit_job("t", "d", priority="URGENT"), ValueError, ["priority", "URGENT"]),
    (lambda c: c.submit_job("t", "d", priority="high"), ValueError, ["priority"]),
    (lambda c: c.submit_job("t", object()), TypeError,
     ["jobs_to_submit[0] data:", "object", "DataEncoder"]),
    (lambda c: c.submit_job("t", 42), TypeError, ["data:", "int"]),
    (lambda c: c.submit_job("t", "d", unique="u" * 64), ValueError, ["unique", "64", "63"]),
    (lambda c: c.submit_job("t", "d", unique="a\0b"), ValueError, ["unique", "NUL"]),
    (lambda c: c.submit_job("t", "d", unique=12), TypeError, ["unique"]),
    (lambda c: c.submit_job("ta\0sk", "d"), ValueError, ["task", "NUL"]),
    (lambda c: c.submit_job("", "d"), ValueError, ["task", "empty"]),
    (lambda c: c.submit_job(None, "d"), TypeError, ["task"]),
    (lambda c: c.submit_job("t", "d", reducer="r\0"), ValueError, ["reducer", "NUL"]),
    (lambda c: c.submit_job("t", "d", background="yes"), TypeError, ["background"]),
    (lambda c: c.submit_job("t", "d", max_retries=-1), ValueError, ["max_retries"]),
    (lambda c: c.submit_job("t", "d", poll_timeout=-1), ValueError, ["poll_timeout"]),
    (lambda c: c.submit_job("t", "d", poll_timeout="5"), ValueError, ["poll_timeout"]),
    (lambda c: c.submit_job("t", "d", poll_timeout=1, timeout=2), ValueError,
     ["poll_timeout", "timeout"]),
    (lambda c: c.submit_job("t", "d", when=1700000000), ValueError, ["when", "background"]),
    (lambda c: c.submit_job("t", "d", background=True, when="soon"), ValueError, ["when"]),
    (lambda c: c.submit_job("t", "d", background=True, when=1, priority=PRIORITY_HIGH),
     ValueError, ["when", "priority"]),
    (lambda c: c.submit_job("t", b"x" * 65, background=True) and None, None, []),
    (lambda c: c.submit_multiple_requests({"task": "t"}), TypeError, ["job_requests"]),
    (lambda c: c.submit_multiple_requests([GOOD]), TypeError, ["GearmanJobRequest"]),
    (lambda c: c.get_job_status_by_handle("H:x:1"), ValueError, ["server"]),
    (lambda c: c.get_job_status_by_handle("H:" + "x" * 70, server="127.0.0.1:4730"),
     ValueError, ["handle", "63"]),
    (lambda c: c.get_job_status_by_handle("H:x:1", server="127.0.0.1:9"), ValueError,
     ["server", "host_list"]),
    (lambda c: c.get_job_status_by_unique("u" * 64), ValueError, ["unique"]),
    (lambda c: c.get_job_status_by_unique(""), ValueError, ["unique"]),
    (lambda c: c.get_job_status(make_request()), errors.InvalidClientState, ["handle"]),
])
def test_bad_arguments_fail_before_anything_is_sent(offline_client: Any, call: Any,
                                                    error: Any, words: List[str]) -> None:
    if error is None:  # a control case: a good call does try to connect
        call(offline_client)
        assert RecordingConnection.attempts
        RecordingConnection.attempts = []
        return
    with pytest.raises(error) as info:
        call(offline_client)
    for word in words:
        assert word in str(info.value)


def test_a_bad_job_anywhere_in_the_list_sends_none_of_them(offline_client: Any) -> None:
    jobs = [GOOD, GOOD, dict(GOOD, priority="urgent")]
    with pytest.raises(ValueError, match="priority"):
        offline_client.submit_multiple_jobs(jobs)


def test_payload_over_max_packet_size_is_refused() -> None:
    RecordingConnection.attempts = []
    client = RecordingClient(["127.0.0.1:4730"], max_packet_size=1024)
    try:
        with pytest.raises(ValueError, match="max_packet_size"):
            client.submit_job("t", b"x" * 1025)
        assert RecordingConnection.attempts == []
    finally:
        client.close()


@pytest.mark.parametrize("host", ["host:notaport", "host:99999", "host:0", "host:", "",
                                  "two words:4730", "[::1:4730", ("host",), ("h", "p")])
def test_malformed_host_is_refused_at_construction(host: Any) -> None:
    with pytest.raises(ValueError, match="host_list entry"):
        GearmanClient([host])


def test_host_list_must_be_a_list() -> None:
    with pytest.raises(TypeError, match="host_list"):
        GearmanClient(4730)


def test_resolve_timeout_spellings() -> None:
    assert resolve_timeout(None, None) is None
    assert resolve_timeout(0, None) == 0.0
    assert resolve_timeout(None, 2) == 2.0
    assert resolve_timeout(3, 3) == 3.0
    with pytest.raises(ValueError, match="disagree"):
        resolve_timeout(1, 2)
    with pytest.raises(ValueError, match="poll_timeout"):
        resolve_timeout(True, None)


# -- pure client behaviour ---------------------------------------------------------------------

def test_server_order_is_a_stable_crc32_of_the_unique(offline_client: Any) -> None:
    a, b = offline_client.connection_list
    for unique in ("job-1", "job-2", "job-3", "caf\u00e9"):
        first = zlib.crc32(unique.encode("utf-8")) % 2
        order = offline_client.server_pool.failover_order(unique)
        assert order == ([a, b] if first == 0 else [b, a])
        other = RecordingClient(["127.0.0.1:4730", "127.0.0.1:4731"])
        try:
            assert [c.address for c in other.server_pool.failover_order(unique)] == [
                c.address for c in order]
        finally:
            other.close()


def test_when_accepts_datetimes_and_unix_times(offline_client: Any) -> None:
    moment = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    check = check_when
    assert check(moment, True, PRIORITY_NONE) == int(moment.timestamp())
    assert check(1893456000.7, True, PRIORITY_NONE) == 1893456000
    assert check(None, False, PRIORITY_HIGH) is None


def test_random_uniques_are_distinct_and_sized(offline_client: Any) -> None:
    uniques = {offline_client._maker.unique(None) for _ in range(1000)}
    assert len(uniques) == 1000
    assert all(len(u) == 32 for u in uniques)
    assert offline_client._maker.unique(b"\xff\xfe") == "\udcff\udcfe"


def test_request_repr_and_2x_names() -> None:
    request = make_request("reverse", "u-1")
    text = repr(request)
    for word in ("reverse", "u-1", "UNKNOWN", "timed_out=False", "connection_failed=False"):
        assert word in text
    assert request.unique == request.job.unique == "u-1"
    assert request.job is request.gearman_job
    assert request.job.to_dict() == {"task": "reverse", "job_handle": None, "unique": "u-1",
                                     "data": b"d"}
    request.state = JOB_FAILED
    request.initialize_request()
    assert request.state == JOB_UNKNOWN and request.job.handle is None
    assert gearman.JOB_UNKNOWN == JOB_UNKNOWN


# -- review findings: hand-built requests, duck-typed jobs, waits, reset -------------------
def test_a_hand_built_request_may_name_its_task_with_a_bytearray(
        handler: GearmanClientCommandHandler, conn: FakeConnection) -> None:
    request = make_request(task=bytearray(b"tee"))  # type: ignore[arg-type]
    handler.send_job_request(request)
    assert conn.sent == [(Command.SUBMIT_JOB, (b"tee", b"u", b"d"))]


def test_a_job_class_not_derived_from_gearman_job_is_submitted(
        handler: GearmanClientCommandHandler, conn: FakeConnection) -> None:
    class PlainJob:  # a 2.x-style job_class: the five attributes, nothing else
        def __init__(self, connection: Any, handle: Any, task: str, unique: str,
                     data: Any) -> None:
            self.connection, self.handle = connection, handle
            self.task, self.unique, self.data = task, unique, data

    request = GearmanJobRequest(PlainJob(None, None, "t", "u", b"d"))  # type: ignore[arg-type]
    handler.send_job_request(request)
    assert conn.sent == [(Command.SUBMIT_JOB, (b"t", b"u", b"d"))]


class PollRaises(GearmanClient):
    def poll_connections_until_stopped(self, *args: Any, **kwargs: Any) -> bool:
        raise KeyboardInterrupt


class PollReturns(GearmanClient):
    def poll_connections_until_stopped(self, *args: Any, **kwargs: Any) -> bool:
        return False  # as if the timeout passed with nothing received


@pytest.mark.parametrize("cls, timed_out", [(PollReturns, True), (PollRaises, False)])
def test_a_wait_marks_timed_out_only_when_it_timed_out(cls: Any, timed_out: bool) -> None:
    request = make_request()
    request.state = JOB_PENDING
    with cls([]) as client:
        try:
            client.wait_until_jobs_completed([request, request], 0.01)
        except KeyboardInterrupt:
            pass
    assert request.timed_out is timed_out
    assert request._wait_token is None  # no stale mark for the next wait


def test_an_overridden_reset_is_called_before_a_first_submission(offline_client: Any) -> None:
    resets = []

    class Request(GearmanJobRequest):
        def reset(self) -> None:
            resets.append(self)
            super().reset()

    offline_client.job_request_class = Request
    offline_client.connection_list[:] = []  # nothing to connect to: fails without I/O
    with pytest.raises(errors.ServerUnavailable):
        offline_client.establish_request_connection(make_request())
    request = offline_client.submit_job("t", b"d", poll_timeout=0)
    assert resets == [request] and request.connection_failed


def test_requests_of_a_big_batch_stay_small(offline_client: Any) -> None:
    """What 100,000 jobs in flight cost is mostly these objects (bench: < 100 MiB):
    job + request + unique id, without the caller's payload, in under 400 bytes
    (378 on CPython 3.11; 410 before jobs and requests lost their rare slots)."""
    import tracemalloc
    jobs = [{"task": "t", "data": b"x"} for _ in range(10_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        requests = [offline_client._create_request_from_dictionary(job, True, 0, i)
                    for i, job in enumerate(jobs)]
        per_request = (tracemalloc.get_traced_memory()[0] - before) / len(requests)
    finally:
        tracemalloc.stop()
    assert per_request < 400, f"{per_request:.0f} bytes per request"


def test_a_resubmitted_request_forgets_what_the_last_attempt_left() -> None:
    """A request refused (say QUEUE_ERROR) and then sent again must not keep the old
    exception, result, updates or status once the new attempt starts."""
    request = make_request()
    request.state, request.result = JOB_FAILED, b"old"
    request.exception = errors.ServerError("QUEUE_ERROR", "full", SERVER, "SUBMIT_JOB")
    request.data_updates.append(b"partial")
    request.warning_updates.append(b"warned")
    request.status = {"known": True}
    request.reset()
    assert (request.state, request.result, request.exception) == (JOB_UNKNOWN, None, None)
    assert (list(request.data_updates), list(request.warning_updates), request.status) == (
        [], [], {})
