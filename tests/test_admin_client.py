"""GearmanAdminClient against a real gearmand in a known situation, plus the
reply assembly of its command handler without sockets."""
from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

from gearman import (JOB_CREATED, JOB_FAILED, PRIORITY_HIGH, PRIORITY_LOW, GearmanAdminClient,
                     GearmanClient, GearmanWorker, errors)
from gearman.admin_client import (parse_jobs_line, parse_status_line, parse_workers_line,
                                  split_err_line)
from gearman.admin_client_handler import AdminQuery, GearmanAdminClientCommandHandler
from gearman.protocol import RES, Command, Packet, TextLine
from gearman.testing import GearmandProcess, require_gearmand

WAIT = 10.0  # bound for every wait on an event
HOLD_LIMIT = 600.0  # a held job: released by teardown, this only bounds a broken one
WORKER_ID = "admin-test-worker"


# -- the known situation ------------------------------------------------------------
class Busy:
    """A gearmand with one worker (functions ``slow`` and ``idle``) busy on the
    high-priority ``slow`` job, and three more ``slow`` jobs queued behind it."""

    def __init__(self, server: GearmandProcess) -> None:
        self.server = server
        self.address = server.address
        self.started = threading.Event()
        self.release = threading.Event()
        self.jobs_started = 0
        self.handles: Dict[str, str] = {}  # unique -> handle
        self.running_unique = "slow-high"

    def submit(self) -> None:
        jobs = [("slow-high", PRIORITY_HIGH), ("slow-n1", None), ("slow-n2", None),
                ("slow-low", PRIORITY_LOW)]
        with GearmanClient([self.address]) as client:
            for unique, priority in jobs:
                request = client.submit_job("slow", b"x", unique=unique, priority=priority,
                                            background=True, poll_timeout=WAIT)
                assert request.state == JOB_CREATED, request
                self.handles[unique] = request.job.handle

    def slow(self, job: Any) -> bytes:
        # Held until the module's teardown releases it (an event, not a timer: the
        # tests' exact counts must not change because the machine was slow).  The
        # bound only keeps a broken teardown from hanging the run.
        self.jobs_started += 1
        self.started.set()
        assert self.release.wait(HOLD_LIMIT), "the held job was never released"
        return b"done"

    def assert_intact(self) -> None:
        """The scene the tests count on: the first job still held, no other started."""
        assert self.jobs_started == 1 and not self.release.is_set(), \
            f"the {type(self).__name__} scene changed: {self.jobs_started} jobs started"

    def start_worker(self) -> None:
        self.worker = GearmanWorker([self.address])
        self.worker.set_client_id(WORKER_ID)
        self.worker.register_task("slow", self.slow)
        self.worker.register_task("idle", lambda job: job.data)
        self.thread = threading.Thread(target=self.worker.work, kwargs={"poll_timeout": 0.5},
                                       daemon=True)
        self.thread.start()
        assert self.started.wait(WAIT), "the worker never started the high-priority job"

    def stop(self) -> None:
        self.release.set()
        self.worker.shutdown()
        self.thread.join(WAIT)


@pytest.fixture(scope="module")
def busy() -> Iterator[Busy]:
    require_gearmand()
    with GearmandProcess() as server:
        state = Busy(server)
        state.submit()  # before the worker exists, so it takes the HIGH job first
        state.start_worker()
        try:
            yield state
        finally:
            state.stop()


@pytest.fixture
def admin(busy: Busy) -> Iterator[GearmanAdminClient]:
    busy.assert_intact()
    with GearmanAdminClient([busy.address], poll_timeout=5.0) as client:
        yield client
    busy.assert_intact()


def no_cr_anywhere(value: Any) -> bool:
    if isinstance(value, str):
        return "\r" not in value
    if isinstance(value, dict):
        return all(no_cr_anywhere(k) and no_cr_anywhere(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(no_cr_anywhere(v) for v in value)
    return True


# -- reading commands ----------------------------------------------------------------
@pytest.mark.gearmand
def test_ping_server_returns_the_round_trip_in_seconds(admin):
    seconds = admin.ping_server()
    assert isinstance(seconds, float) and 0 < seconds < 5


@pytest.mark.gearmand
def test_get_status_counts_queued_running_and_workers(admin):
    status = {row["task"]: row for row in admin.get_status()}
    # gearmand's total: three waiting plus the one running.
    assert status["slow"] == {"task": "slow", "queued": 4, "running": 1, "workers": 1}
    assert status["idle"] == {"task": "idle", "queued": 0, "running": 0, "workers": 1}
    assert all(isinstance(row[key], int) for row in status.values()
               for key in ("queued", "running", "workers"))


@pytest.mark.gearmand
def test_get_priority_status_counts_waiting_jobs_per_priority(admin):
    status = {row["task"]: row for row in admin.get_priority_status()}
    assert status["slow"] == {"task": "slow", "high": 0, "normal": 2, "low": 1, "workers": 1}


@pytest.mark.gearmand
def test_get_version_is_a_version_string(admin):
    version = admin.get_version()
    assert isinstance(version, str) and re.match(r"^\d+\.\d+\.\d+", version), version


@pytest.mark.gearmand
def test_get_pid_is_the_gearmand_process_id(admin, busy):
    assert admin.get_pid() == busy.server.pid


@pytest.mark.gearmand
def test_get_verbose_is_the_log_level(admin):
    assert admin.get_verbose() == "INFO"  # GearmandProcess runs --verbose=INFO


@pytest.mark.gearmand
def test_get_workers_lists_the_worker_and_the_admin_connection(admin):
    workers = admin.get_workers()
    ours = [w for w in workers if w["client_id"] == WORKER_ID]
    assert len(ours) == 1
    assert sorted(ours[0]["tasks"]) == ["idle", "slow"]
    assert isinstance(ours[0]["tasks"], tuple)
    assert isinstance(ours[0]["file_descriptor"], int) and ours[0]["ip"] == "127.0.0.1"
    # gearmand lists every connection, this admin client's own included.
    assert any(w["client_id"] == "-" and w["tasks"] == () for w in workers)
    assert all(set(w) == {"file_descriptor", "ip", "client_id", "tasks"} for w in workers)


@pytest.mark.gearmand
def test_get_jobs_lists_every_job_with_named_fields(admin, busy):
    jobs = {job["handle"]: job for job in admin.get_jobs()}
    assert set(jobs) == set(busy.handles.values())
    for job in jobs.values():
        assert set(job) == {"handle", "retries", "ignore_job", "job_queued"}
        assert job["retries"] == 0 and job["ignore_job"] is False
        assert isinstance(job["job_queued"], bool)


@pytest.mark.gearmand
def test_get_unique_jobs_lists_the_unique_ids(admin, busy):
    uniques = admin.get_unique_jobs()
    assert sorted(entry["unique"] for entry in uniques) == sorted(busy.handles)
    assert all(set(entry) == {"unique"} for entry in uniques)


@pytest.mark.gearmand
def test_no_reply_carries_a_carriage_return(admin):
    replies = [admin.get_status(), admin.get_priority_status(), admin.get_version(),
               admin.get_verbose(), admin.get_workers(), admin.get_jobs(),
               admin.get_unique_jobs()]
    assert all(no_cr_anywhere(reply) for reply in replies), replies


# -- errors --------------------------------------------------------------------------------
@pytest.mark.gearmand
def test_shutdown_is_refused_by_gearmand_1_1_20_and_raised(admin, busy):
    for graceful in (True, False):
        with pytest.raises(errors.AdminCommandError) as caught:
            admin.send_shutdown(graceful=graceful)
        assert caught.value.code == "UNKNOWN_COMMAND"
        assert "shutdown" in caught.value.text and "+" not in caught.value.text
        assert caught.value.server == busy.address and caught.value.command == "shutdown"
    assert busy.server.is_running()
    assert admin.get_pid() == busy.server.pid


@pytest.mark.gearmand
def test_an_err_reply_leaves_the_connection_in_step(admin, busy):
    admin.ping_server()
    connection = admin.connection_list[0]
    handler = admin.handler_for(connection)
    with pytest.raises(errors.AdminCommandError) as caught:
        admin.cancel_job("H:no-such-host:999")
    assert (caught.value.code, caught.value.text) == ("UNKNOWN_JOB", "")
    assert busy.address in str(caught.value) and "cancel job" in str(caught.value)
    # The next commands on the same connection get their own answers.
    assert admin.get_pid() == busy.server.pid
    assert {row["task"] for row in admin.get_status()} >= {"slow", "idle"}
    assert admin.ping_server() > 0
    assert admin.handler_for(connection) is handler and connection.connected


@pytest.mark.gearmand
def test_dropping_a_function_with_workers_raises(admin):
    with pytest.raises(errors.AdminCommandError) as caught:
        admin.drop_function("idle")
    assert caught.value.code == "ERR"
    assert caught.value.text == "there are still connected workers or executing clients"
    assert "idle" in {row["task"] for row in admin.get_status()}


@pytest.mark.gearmand
def test_admin_errors_are_gearman_errors(admin):
    with pytest.raises(errors.GearmanError):
        admin.cancel_job("H:no-such-host:1")
    with pytest.raises(ValueError):
        admin.get_status(server="127.0.0.1:1")  # not in the host list
    with pytest.raises(ValueError):
        admin.send_maxqueue("has space", 1)
    with pytest.raises(ValueError):
        admin.ask_all_servers("_ask", "status")


# -- commands that change the server (each on a fresh gearmand) --------------------------
def submit_bg(client: GearmanClient, task: str, unique: str, priority: Any = None) -> Any:
    return client.submit_job(task, b"x", unique=unique, priority=priority, background=True,
                             poll_timeout=WAIT)


@pytest.mark.gearmand
def test_maxqueue_with_one_size_makes_a_full_queue_refuse_jobs(gearmand):
    with GearmanAdminClient([gearmand.address], poll_timeout=5) as admin, \
            GearmanClient([gearmand.address]) as client:
        assert submit_bg(client, "capped", "c1").state == JOB_CREATED  # gearmand knows it now
        assert admin.send_maxqueue("capped", 2) == "OK"
        assert submit_bg(client, "capped", "c2").state == JOB_CREATED
        refused = submit_bg(client, "capped", "c3")
        assert refused.state == JOB_FAILED
        assert isinstance(refused.exception, errors.ServerError)
        assert refused.exception.code == "QUEUE_ERROR"
        assert admin.send_maxqueue("capped", None) == "OK"  # unlimited again
        assert submit_bg(client, "capped", "c4").state == JOB_CREATED
        assert {r["task"]: r["queued"] for r in admin.get_status()}["capped"] == 3


@pytest.mark.gearmand
def test_maxqueue_with_high_normal_low_sizes(gearmand):
    with GearmanAdminClient([gearmand.address], poll_timeout=5) as admin, \
            GearmanClient([gearmand.address]) as client:
        assert admin.create_function("tiered") == "OK"
        assert admin.send_maxqueue("tiered", (1, 2, 3)) == "OK"
        # Each limit is compared with the function's total, for submissions of its priority.
        assert submit_bg(client, "tiered", "n1").state == JOB_CREATED
        assert submit_bg(client, "tiered", "n2").state == JOB_CREATED
        assert submit_bg(client, "tiered", "n3").exception.code == "QUEUE_ERROR"
        assert submit_bg(client, "tiered", "h1", PRIORITY_HIGH).exception.code == "QUEUE_ERROR"
        assert submit_bg(client, "tiered", "l1", PRIORITY_LOW).state == JOB_CREATED
        assert submit_bg(client, "tiered", "l2", PRIORITY_LOW).exception.code == "QUEUE_ERROR"
        with pytest.raises(ValueError):
            admin.send_maxqueue("tiered", (1, 2))
        with pytest.raises(TypeError):
            admin.send_maxqueue("tiered", "3")


@pytest.mark.gearmand
def test_cancel_job_marks_a_queued_background_job_ignored(gearmand):
    with GearmanAdminClient([gearmand.address], poll_timeout=5) as admin, \
            GearmanClient([gearmand.address]) as client:
        keep = submit_bg(client, "nobody", "keep").job.handle
        gone = submit_bg(client, "nobody", "gone").job.handle
        assert admin.cancel_job(gone) == "OK"
        jobs = {job["handle"]: job for job in admin.get_jobs()}
        assert jobs[gone]["ignore_job"] is True
        assert jobs[keep]["ignore_job"] is False
        with pytest.raises(errors.AdminCommandError) as caught:
            admin.cancel_job("H:nowhere:12345")
        assert caught.value.code == "UNKNOWN_JOB"
        assert caught.value.server == gearmand.address
        assert sorted(e["unique"] for e in admin.get_unique_jobs()) == ["gone", "keep"]


@pytest.mark.gearmand
def test_names_that_start_with_err_are_list_entries_not_errors(gearmand):
    # gearmand ends ERR replies with CR LF and list lines with LF; only the first is an error.
    with GearmanClient([gearmand.address]) as client:
        client.submit_job("ERR fn", "x", unique="ERR boom", background=True, poll_timeout=10)
    admin = GearmanAdminClient([gearmand.address], poll_timeout=5)
    try:
        assert {"unique": "ERR boom"} in admin.get_unique_jobs()
        assert [row["task"] for row in admin.get_status()] == ["ERR fn"]
        assert admin.get_version().startswith("1.1")  # still in step afterwards
    finally:
        admin.close()


@pytest.mark.gearmand
def test_create_and_drop_function(gearmand):
    with GearmanAdminClient([gearmand.address], poll_timeout=5) as admin:
        assert admin.create_function("made") == "OK"
        # CR LF framing matters: with a bare LF gearmand would create "ma".
        assert admin.get_status() == [{"task": "made", "queued": 0, "running": 0,
                                       "workers": 0}]
        assert admin.drop_function("made") == "OK"
        assert admin.get_status() == []
        with pytest.raises(errors.AdminCommandError) as caught:
            admin.drop_function("made")
        assert (caught.value.code, caught.value.text) == ("ERR", "function not found")
        assert admin.get_pid() == gearmand.pid


# -- a silent or dead server ------------------------------------------------------------------
@pytest.mark.gearmand
def test_a_paused_server_raises_within_poll_timeout_and_recovers(gearmand):
    poll_timeout = 0.5
    with GearmanAdminClient([gearmand.address], poll_timeout=poll_timeout) as admin:
        admin.ping_server()
        gearmand.pause()
        try:
            for call in (admin.get_status, admin.get_pid):  # in flight, then reconnecting
                started = time.monotonic()
                with pytest.raises(errors.InvalidAdminClientState) as caught:
                    call()
                elapsed = time.monotonic() - started
                assert poll_timeout - 0.05 <= elapsed < poll_timeout + 3.0, elapsed
                assert gearmand.address in str(caught.value)
        finally:
            gearmand.resume()
        assert admin.get_pid() == gearmand.pid
        assert admin.get_status() == []


@pytest.mark.gearmand
def test_a_dead_server_raises_promptly(gearmand):
    with GearmanAdminClient([gearmand.address], poll_timeout=5) as admin:
        admin.ping_server()
        gearmand.kill()
        for call in (admin.get_status, admin.get_version):  # lost, then refused
            started = time.monotonic()
            with pytest.raises(errors.GearmanError) as caught:
                call()
            assert time.monotonic() - started < 3.0  # not the 5 s poll_timeout
            assert not isinstance(caught.value, errors.AdminCommandError)
            assert str(gearmand.port) in str(caught.value)


# -- several servers -----------------------------------------------------------------------------
@pytest.mark.gearmand
def test_ask_all_servers_says_whose_answer_is_whose(busy, gearmand):
    hosts = [busy.address, gearmand.address]
    with GearmanAdminClient(hosts, poll_timeout=5) as admin:
        assert admin.ask_all_servers("get_pid") == [(busy.address, busy.server.pid),
                                                    (gearmand.address, gearmand.pid)]
        statuses = dict(admin.ask_all_servers("get_status"))
        assert {row["task"] for row in statuses[busy.address]} >= {"slow", "idle"}
        assert statuses[gearmand.address] == []


@pytest.mark.gearmand
def test_server_argument_picks_one_server(busy, gearmand):
    with GearmanAdminClient([busy.address, gearmand.address], poll_timeout=5) as admin:
        assert admin.get_pid() == busy.server.pid  # the first by default
        assert admin.get_pid(server=gearmand.address) == gearmand.pid
        assert admin.get_pid(server=("127.0.0.1", gearmand.port)) == gearmand.pid
        assert admin.get_pid(server=admin.connection_list[1]) == gearmand.pid
        assert admin.get_status(server=gearmand.address) == []


@pytest.mark.gearmand
def test_ask_all_servers_reports_a_failing_server_without_stopping(busy, gearmand):
    gearmand.kill()
    with GearmanAdminClient([gearmand.address, busy.address], poll_timeout=5) as admin:
        answers = admin.ask_all_servers("get_version")
    assert [server for server, _ in answers] == [gearmand.address, busy.address]
    assert isinstance(answers[0][1], errors.ConnectionError)
    assert isinstance(answers[1][1], str)


# -- reply assembly without sockets ------------------------------------------------------------
class FakeConnection:
    address = "fake:4730"
    gearman_host, gearman_port = "fake", 4730

    def __init__(self) -> None:
        self.sent: List[Any] = []

    def send_text(self, line: bytes) -> None:
        self.sent.append(line)

    def send_command(self, command: Command, args: tuple) -> None:
        self.sent.append((command, args))


class FakeManager:
    def __init__(self) -> None:
        self.answered: List[AdminQuery] = []

    def note_status(self, query: AdminQuery) -> None:
        self.answered.append(query)


@pytest.fixture
def handler() -> GearmanAdminClientCommandHandler:
    return GearmanAdminClientCommandHandler(FakeManager(), FakeConnection())


def ask(handler: GearmanAdminClientCommandHandler, command: str, *args: Any) -> AdminQuery:
    query = AdminQuery(command, *args)
    handler.send_query(query)
    return query


def feed(handler: GearmanAdminClientCommandHandler, *lines: bytes) -> None:
    for line in lines:  # gearmand ends OK/ERR lines with CR LF, list lines with LF
        handler.dispatch(TextLine(line, crlf=line.startswith(b"ERR") or line == b"OK"))


def test_commands_go_out_as_crlf_text_lines_and_echo_as_a_packet(handler):
    ask(handler, "cancel job", b"H:x:1")
    ask(handler, "create function", "f")
    ask(handler, "echo", b"ping")
    assert handler.connection.sent == [b"cancel job H:x:1\r\n", b"create function f\r\n",
                                       (Command.ECHO_REQ, (b"ping",))]


def test_a_list_reply_ends_at_the_dot(handler):
    query = ask(handler, "status")
    feed(handler, b"a\t1\t0\t1", b"b\t0\t0\t0")
    assert not query.done
    feed(handler, b".")
    assert query.done and query.result == ["a\t1\t0\t1", "b\t0\t0\t0"]
    assert handler.connection_manager.answered == [query]


def test_an_empty_list_reply(handler):
    query = ask(handler, "show jobs")
    feed(handler, b".")
    assert query.result == []


def test_an_err_line_ends_a_list_reply_and_the_next_reply_is_matched(handler):
    first = ask(handler, "status")
    second = ask(handler, "version")
    feed(handler, b"ERR UNKNOWN_COMMAND Unknown+server+commandstatus", b"OK 1.1.20")
    assert first.result == "ERR UNKNOWN_COMMAND Unknown+server+commandstatus"
    assert second.result == "OK 1.1.20"


def test_replies_are_matched_in_order_across_kinds(handler):
    echo = ask(handler, "echo", b"hi")
    workers = ask(handler, "workers")
    pid = ask(handler, "getpid")
    handler.dispatch(Packet(Command.ECHO_RES, (b"hi",), RES))
    feed(handler, b"5 127.0.0.1 - :", b".", b"OK 42")
    assert (echo.result, workers.result, pid.result) == (b"hi", ["5 127.0.0.1 - :"], "OK 42")


def test_a_text_line_where_echo_res_was_expected_is_an_error(handler):
    echo = ask(handler, "echo", b"hi")
    status = ask(handler, "status")
    with pytest.raises(errors.InvalidAdminClientState) as caught:
        feed(handler, b".")
    assert "ECHO_RES" in str(caught.value) and "fake:4730" in str(caught.value)
    assert echo.done and echo.error is caught.value
    assert not status.done


def test_echo_res_where_a_text_reply_was_expected_is_an_error(handler):
    status = ask(handler, "status")
    ask(handler, "echo", b"hi")
    with pytest.raises(errors.InvalidAdminClientState) as caught:
        handler.dispatch(Packet(Command.ECHO_RES, (b"hi",), RES))
    assert "'status'" in str(caught.value)
    assert status.done and status.error is caught.value


def test_a_reply_nobody_asked_for_is_an_error(handler):
    with pytest.raises(errors.InvalidAdminClientState):
        feed(handler, b"OK")


def test_a_lost_connection_finishes_every_pending_query_without_a_result(handler):
    queries = [ask(handler, "status"), ask(handler, "echo", b"x")]
    handler.on_io_error()
    assert all(q.done and q.result is None and q.error is None for q in queries)


def test_err_lines_split_into_code_and_text():
    assert split_err_line("ERR UNKNOWN_COMMAND Unknown+server+commandshutdown") == (
        "UNKNOWN_COMMAND", "Unknown server commandshutdown")
    assert split_err_line("ERR UNKNOWN_JOB") == ("UNKNOWN_JOB", "")
    # The two drop function errors have no code and use ordinary spaces.
    assert split_err_line("ERR there are still connected workers or executing clients") == (
        "ERR", "there are still connected workers or executing clients")
    assert split_err_line("ERR function not found") == ("ERR", "function not found")


def test_list_lines_parse_into_typed_fields():
    assert parse_status_line("\t0\t0\t1") == {"task": "", "queued": 0, "running": 0,
                                              "workers": 1}
    assert parse_workers_line("12 ::1 w-1 : f1 f2") == {
        "file_descriptor": 12, "ip": "::1", "client_id": "w-1", "tasks": ("f1", "f2")}
    assert parse_workers_line("5 127.0.0.1 - :")["tasks"] == ()
    assert parse_jobs_line("H:h:1\t2\t1\t0") == {"handle": "H:h:1", "retries": 2,
                                                 "ignore_job": True, "job_queued": False}
    for bad in ("f\tx\t0\t0", "f\t1\t0"):
        with pytest.raises(ValueError):
            parse_status_line(bad)
    with pytest.raises(ValueError):
        parse_workers_line("5 127.0.0.1 -")


# -- through the whole client, against a scripted server --------------------------------------
class ScriptedServer:
    """Accepts one connection and answers each received chunk with the next reply."""

    def __init__(self, replies: List[bytes]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.replies = list(replies)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(WAIT)
            for reply in self.replies:
                if not conn.recv(65536):
                    return
                conn.sendall(reply)
            conn.recv(65536)  # hold the connection until the client closes it

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


def test_a_malformed_status_line_raises_protocol_error_naming_the_server():
    server = ScriptedServer([b"f\tmany\t0\t0\n.\n"])
    try:
        with GearmanAdminClient([server.address], poll_timeout=WAIT) as admin:
            with pytest.raises(errors.ProtocolError) as caught:
                admin.get_status()
        assert server.address in str(caught.value) and "'f\\tmany" in str(caught.value)
    finally:
        server.close()


def test_a_text_answer_to_echo_raises_invalid_state_not_connection_lost():
    server = ScriptedServer([b"OK\r\n"])
    try:
        with GearmanAdminClient([server.address], poll_timeout=WAIT) as admin:
            with pytest.raises(errors.InvalidAdminClientState) as caught:
                admin.ping_server()
        assert "ECHO_RES was expected" in str(caught.value)
    finally:
        server.close()
