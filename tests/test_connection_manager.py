"""The poll loop: timeouts, dead connections, interest updates, no spinning when idle."""
from __future__ import annotations

import resource
import selectors
import socket
import threading
import time

import pytest

from gearman import errors as gearman_errors
from gearman.command_handler import GearmanCommandHandler
from gearman.connection import GearmanConnection
from gearman.connection_manager import GearmanConnectionManager
from gearman.protocol import RES, Command, Packet, pack


class RecordingHandler(GearmanCommandHandler):
    def __init__(self, connection_manager, connection):
        super().__init__(connection_manager, connection)
        self.received, self.io_errors = [], 0

    def recv_noop(self):
        self.received.append("NOOP")

    def on_io_error(self):
        self.io_errors += 1


class PairedConnection(GearmanConnection):
    """Connects to the test's end of a socketpair instead of a TCP port."""

    peer: socket.socket

    def connect(self, timeout=None):
        ours, self.peer = socket.socketpair()
        self.use_socket(ours)


class Manager(GearmanConnectionManager):
    command_handler_class = RecordingHandler
    connection_class = PairedConnection


@pytest.fixture
def manager():
    manager = Manager(["fake:4730"])
    connection = manager.connection_list[0]
    assert manager.establish_connection(connection)
    yield manager, connection, manager.handler_for(connection)
    manager.close()
    connection.peer.close()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_timeout_zero_does_exactly_one_pass(manager):
    mgr, connection, _ = manager
    calls = []
    mgr.poll_connections_until_stopped([connection], lambda activity: calls.append(activity)
                                       or True, timeout=0)
    assert calls == [False]


def test_timeout_n_returns_after_n_seconds(manager):
    mgr, connection, _ = manager
    start = time.monotonic()
    mgr.poll_connections_until_stopped([connection], lambda activity: True, timeout=0.3)
    assert 0.29 <= time.monotonic() - start < 3.0


def test_timeout_none_polls_until_the_callback_says_stop(manager):
    mgr, connection, handler = manager
    timer = threading.Timer(0.2, connection.peer.sendall, [pack(Packet(Command.NOOP, (), RES))])
    timer.start()
    activity = mgr.poll_connections_until_stopped(
        [connection], lambda any_activity: not handler.received, timeout=None)
    timer.join()
    assert activity and handler.received == ["NOOP"]


def test_dead_connection_is_closed_and_reported_never_raised(manager):
    mgr, connection, handler = manager
    connection.peer.close()
    mgr.poll_connections_until_stopped([connection], lambda activity: connection.connected,
                                       timeout=2)
    assert not connection.connected
    assert handler.io_errors == 1
    assert mgr.handler_for(connection) is None


def test_garbage_costs_the_connection_not_the_process(manager):
    mgr, connection, handler = manager
    connection.peer.sendall(b"\0RES\0\0\0\x07\0\0\0\x01")  # SUBMIT_JOB from a server
    connection.peer.sendall(b"x")
    mgr.poll_connections_once([connection], 1)
    assert not connection.connected and handler.io_errors == 1


def test_write_interest_only_while_bytes_wait(manager):
    mgr, connection, _ = manager
    mgr.poll_connections_once([connection], 0)
    assert mgr.server_pool.record(connection).interest == selectors.EVENT_READ
    connection.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection.send_command(Command.ECHO_REQ, (b"x" * (512 << 10),))
    mgr.poll_connections_once([connection], 0)
    assert connection.wants_write
    interest = mgr.server_pool.record(connection).interest
    assert interest == selectors.EVENT_READ | selectors.EVENT_WRITE
    connection.peer.settimeout(2)
    received = 0
    while received < 512 << 10:
        received += len(connection.peer.recv(1 << 20))
        mgr.poll_connections_once([connection], 0)
    mgr.poll_connections_once([connection], 0)
    assert mgr.server_pool.record(connection).interest == selectors.EVENT_READ


def test_idle_loop_sleeps_instead_of_spinning(manager):
    mgr, connection, _ = manager
    before = cpu_seconds()
    mgr.poll_connections_until_stopped([connection], lambda activity: True, timeout=1.0)
    used = cpu_seconds() - before
    assert used < 0.2, f"an idle second cost {used:.3f}s of CPU"  # a spin costs ~1 s


def test_wakeup_ends_a_blocking_poll_from_another_thread(manager):
    mgr, connection, _ = manager
    threading.Timer(0.2, mgr.wakeup).start()
    start = time.monotonic()
    mgr.poll_connections_once([connection], 10)
    assert time.monotonic() - start < 2


def test_refused_server_is_backed_off_not_raised():
    from gearman.testing import free_port

    manager = GearmanConnectionManager([f"127.0.0.1:{free_port()}"])
    connection = manager.connection_list[0]
    assert manager.establish_connection(connection) is False
    assert not manager.connection_is_due(connection) or manager.next_retry_in() == 0
    assert manager.next_retry_in() is not None
    manager.close()


def test_host_list_forms_and_errors():
    manager = GearmanConnectionManager(["a:1", "b", ("c", 3), "[::1]:5", "::2",
                                        {"host": "d", "port": 6, "ca_certs": "/ca.pem"}])
    assert [(c.gearman_host, c.gearman_port, c.tls) for c in manager.connection_list] == [
        ("a", 1, False), ("b", 4730, False), ("c", 3, False), ("::1", 5, False),
        ("::2", 4730, False), ("d", 6, True)]
    manager.close()
    for bad in ["host:notaport", "host:99999", "", ("h",), {"port": 1}, {"host": "h", "x": 1},
                "[::1", 42]:
        with pytest.raises(ValueError):
            GearmanConnectionManager([bad])


@pytest.mark.parametrize("role, due_at_once", [("GearmanClient", True), ("GearmanWorker", False),
                                               ("GearmanAdminClient", False)])
def test_a_dropped_connection_backs_off_by_role(role, due_at_once, caplog):
    """A client reconnects at once after losing a connection (the request's retry
    needs it); a worker or admin client backs the server off as after a refused
    connect.  Either way the failure is logged with what happens next."""
    import gearman
    ours, theirs = socket.socketpair()
    manager = getattr(gearman, role)([])
    connection = manager.add_connection("127.0.0.1", 4730)
    connection.use_socket(ours)
    manager.server_pool.attach(connection, manager.command_handler_class(manager, connection))
    with caplog.at_level("WARNING"):
        manager._drop(connection, OSError("test: connection reset"))
    assert manager.connection_is_due(connection) is due_at_once
    expected = "may reconnect at once" if due_at_once else "next in"
    assert any(expected in r.getMessage() for r in caplog.records), caplog.text
    manager.close()
    theirs.close()


class BuggyHandler(RecordingHandler):
    """A handler with a bug in its own code (not a fault of the server)."""

    def recv_noop(self):
        raise KeyError("a bug in recv_noop")


def test_a_bug_in_a_handler_is_logged_at_error_with_its_traceback(caplog):
    class BuggyManager(Manager):
        command_handler_class = BuggyHandler

    manager = BuggyManager(["fake:4730"])
    connection = manager.connection_list[0]
    assert manager.establish_connection(connection)
    handler = manager.handler_for(connection)
    connection.peer.sendall(pack(Packet(Command.NOOP, (), RES)))
    with caplog.at_level("WARNING", logger="gearman"):
        manager.poll_connections_once([connection], 2)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, caplog.text
    assert "internal error" in errors[0].getMessage() and "fake:4730" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError
    # The connection is dropped (its bytes are out of step), but as a local fault: no
    # ProtocolError names the server as the culprit.
    assert not connection.connected and handler.io_errors == 1
    why = manager.server_pool.last_failure(connection)
    assert isinstance(why, gearman_errors.ConnectionError), why
    assert not isinstance(why, gearman_errors.ProtocolError)
    manager.close()
    connection.peer.close()


def test_a_remote_fault_is_a_warning_not_an_error(manager, caplog):
    mgr, connection, handler = manager
    connection.peer.sendall(b"\0RES\0\0\0\x07\0\0\0\x01x")  # SUBMIT_JOB from a server
    with caplog.at_level("WARNING", logger="gearman"):
        mgr.poll_connections_once([connection], 2)
    assert not connection.connected and handler.io_errors == 1
    assert [r.levelname for r in caplog.records] == ["WARNING"], caplog.text
