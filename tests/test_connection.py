"""GearmanConnection on real file descriptors: socketpair ends and loopback ports."""
from __future__ import annotations

import socket

import pytest

from gearman import errors
from gearman.connection import GearmanConnection
from gearman.protocol import REQ, RES, Command, Packet, PacketParser, TextLine, pack
from gearman.testing import free_port


@pytest.fixture
def pair():
    """A connection adopting one socketpair end; the test plays the server on the other."""
    ours, theirs = socket.socketpair()
    connection = GearmanConnection("fake-server", 4730)
    connection.use_socket(ours)
    yield connection, theirs
    connection.close()
    theirs.close()


def read_requests(sock: socket.socket, count: int) -> list:
    parser, packets = PacketParser(expect_magic=REQ), []
    sock.settimeout(2)
    while len(packets) < count:
        parser.feed(sock.recv(65536))
        packets.extend(parser)
    return packets


def test_sends_packets_in_order_after_flush(pair):
    connection, server = pair
    connection.send_command(Command.CAN_DO, (b"reverse",))
    connection.send_command(Command.GRAB_JOB_ALL, ())
    assert connection.wants_write
    connection.flush()
    assert not connection.wants_write
    assert read_requests(server, 2) == [Packet(Command.CAN_DO, (b"reverse",), REQ),
                                        Packet(Command.GRAB_JOB_ALL, (), REQ)]


def test_partial_reads_assemble_whole_packets(pair):
    connection, server = pair
    wire = pack(Packet(Command.WORK_COMPLETE, (b"H:x:1", b"result\0bytes"), RES))
    server.sendall(wire[:5])
    assert list(connection.read()) == []
    server.sendall(wire[5:17])
    assert list(connection.read()) == []
    server.sendall(wire[17:] + b"OK 1.1\n")
    assert list(connection.read()) == [
        Packet(Command.WORK_COMPLETE, (b"H:x:1", b"result\0bytes"), RES), TextLine(b"OK 1.1")]


def test_partial_writes_keep_the_rest_queued(pair):
    connection, server = pair
    connection._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 8192  # 2 MiB: far more than the socket takes at once
    connection.send_command(Command.SUBMIT_JOB, (b"f", b"u", payload))
    connection.flush()
    assert connection.wants_write and 0 < connection.pending_bytes < len(payload)
    parser, received = PacketParser(expect_magic=REQ), []
    server.settimeout(2)
    while not received:
        connection.flush()
        parser.feed(server.recv(1 << 20))
        received.extend(parser)
    assert received == [Packet(Command.SUBMIT_JOB, (b"f", b"u", payload), REQ)]
    assert not connection.wants_write


def test_large_payload_is_queued_by_reference(pair):
    connection, _server = pair
    payload = b"x" * (1 << 20)
    connection.send_command(Command.SUBMIT_JOB, (b"f", b"u", payload))
    assert any(chunk is payload for chunk in connection._out)


def test_eof_raises_connection_error_naming_the_server(pair):
    connection, server = pair
    server.close()
    with pytest.raises(errors.ConnectionError, match="fake-server:4730.*closed"):
        list(connection.read())


def test_garbage_raises_protocol_error_with_server(pair):
    connection, server = pair
    server.sendall(b"\0RES\0\0\0\x63\0\0\0\0")
    with pytest.raises(errors.UnknownCommandError) as info:
        list(connection.read())
    assert info.value.server == "fake-server:4730"


def test_packets_before_garbage_are_handed_out_before_the_error(pair):
    connection, server = pair
    good = pack(Packet(Command.NOOP, (), RES)) + pack(Packet(Command.ECHO_RES, (b"hi",), RES))
    server.sendall(good + b"\0RES\0\0\0\x63\0\0\0\0")
    events = connection.read()
    assert next(events) == Packet(Command.NOOP, (), RES)
    assert next(events) == Packet(Command.ECHO_RES, (b"hi",), RES)
    with pytest.raises(errors.UnknownCommandError) as info:
        next(events)
    assert info.value.server == "fake-server:4730"


def test_refused_connect_names_host_and_port():
    port = free_port()
    connection = GearmanConnection("127.0.0.1", port)
    with pytest.raises(errors.ConnectionError) as info:
        connection.connect()
    assert (info.value.host, info.value.port) == ("127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert not connection.connected


def test_connect_sets_nodelay_and_keepalive():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connection = GearmanConnection("127.0.0.1", port, keepalive=True)
    try:
        connection.connect()
        sock = connection._sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert sock.gettimeout() == 0.0  # non-blocking after the connect
    finally:
        connection.close()
        listener.close()


def test_ipv6_loopback_when_available():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback address configured")
    connection = GearmanConnection("::1", listener.getsockname()[1])
    try:
        connection.connect()
        assert connection.connected
        assert connection.address.startswith("[::1]:")
    finally:
        connection.close()
        listener.close()


def test_sending_while_disconnected_is_a_connection_error():
    connection = GearmanConnection("127.0.0.1", 1)
    with pytest.raises(errors.ConnectionError, match="not connected"):
        connection.send_command(Command.ECHO_REQ, (b"x",))


def test_bad_arguments_never_reach_the_buffer(pair):
    connection, _server = pair
    with pytest.raises(ValueError, match="NUL"):
        connection.send_command(Command.SUBMIT_JOB, (b"f\0", b"", b""))
    assert not connection.wants_write
