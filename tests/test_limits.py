"""Exact limits, both directions: a body of exactly the maximum passes and one byte
more is refused -- for binary packets, admin text lines and payloads; what we
refuse to send and what we refuse to receive.  An off-by-one in any size check
fails one of these."""
from __future__ import annotations

import socket
import threading
from typing import Iterator, Tuple

import pytest

import gearman
from gearman import errors
from gearman.connection import GearmanConnection
from gearman.connection_state import FIELD_HEADROOM
from gearman.constants import JOB_CREATED
from gearman.protocol import HEADER, RES, Command, Packet, PacketParser, TextLine, pack
from gearman.testing import GearmandProcess

LIMIT = 4096


def echo_res(body_size: int) -> bytes:
    """An ECHO_RES packet whose body is ``body_size`` bytes."""
    return pack(Packet(Command.ECHO_RES, (b"e" * body_size,), RES))


# -- the parser: what we refuse to receive --------------------------------------------------
def test_a_packet_body_of_exactly_the_maximum_is_parsed() -> None:
    parser = PacketParser(max_packet_size=LIMIT)
    wire = echo_res(LIMIT)
    assert HEADER.unpack_from(wire)[2] == LIMIT
    parser.feed(wire)
    assert parser.next_event() == Packet(Command.ECHO_RES, (b"e" * LIMIT,), RES)


def test_a_packet_body_one_byte_over_the_maximum_is_refused_from_its_header() -> None:
    parser = PacketParser(max_packet_size=LIMIT)
    parser.feed(echo_res(LIMIT + 1)[:HEADER.size])  # the header alone decides
    with pytest.raises(errors.ProtocolError, match=f"{LIMIT + 1}-byte packet exceeds the "
                                                   f"{LIMIT}-byte maximum"):
        parser.next_event()


def test_a_text_line_of_exactly_the_maximum_waits_for_its_end() -> None:
    parser = PacketParser(max_packet_size=LIMIT)
    parser.feed(b"x" * LIMIT)  # no line end yet: buffered, not refused
    assert parser.next_event() is None
    parser.feed(b"\n")
    assert parser.next_event() == TextLine(b"x" * LIMIT)


def test_a_text_line_one_byte_over_the_maximum_is_refused() -> None:
    parser = PacketParser(max_packet_size=LIMIT)
    parser.feed(b"x" * LIMIT)
    assert parser.next_event() is None
    parser.feed(b"x")
    with pytest.raises(errors.ProtocolError, match=f"text line longer than {LIMIT} bytes"):
        parser.next_event()


# -- a connection: its parser allows the payload maximum plus room for the fields --------------
@pytest.fixture
def pair() -> Iterator[Tuple[GearmanConnection, socket.socket]]:
    ours, theirs = socket.socketpair()
    connection = GearmanConnection("fake-server", 4730, max_packet_size=LIMIT)
    connection.use_socket(ours)
    yield connection, theirs
    connection.close()
    theirs.close()


def test_a_connection_takes_a_packet_of_payload_maximum_plus_field_room(pair) -> None:
    connection, server = pair
    server.sendall(echo_res(LIMIT + FIELD_HEADROOM))
    events = []
    while not events:
        events = list(connection.read())
    assert events == [Packet(Command.ECHO_RES, (b"e" * (LIMIT + FIELD_HEADROOM),), RES)]


def test_a_connection_refuses_one_byte_more(pair) -> None:
    connection, server = pair
    server.sendall(echo_res(LIMIT + FIELD_HEADROOM + 1)[:HEADER.size])
    with pytest.raises(errors.ProtocolError, match="exceeds") as info:
        list(connection.read())
    assert info.value.server == "fake-server:4730"


# -- payloads: what we refuse to send -------------------------------------------------------
@pytest.mark.gearmand
def test_a_payload_of_exactly_max_packet_size_is_sent_and_one_byte_more_is_refused(
        gearmand: GearmandProcess) -> None:
    with gearman.GearmanClient([gearmand.address], max_packet_size=LIMIT) as client:
        at_limit = client.submit_job("limits", b"p" * LIMIT, background=True, poll_timeout=10)
        assert at_limit.state == JOB_CREATED
        for over in (b"p" * (LIMIT + 1), bytearray(LIMIT + 1), "\u00e9" * (LIMIT // 2) + "x"):
            with pytest.raises(ValueError, match=f"{LIMIT + 1} bytes, above max_packet_size="
                                                 f"{LIMIT}"):
                client.submit_job("limits", over, background=True, poll_timeout=10)
    with gearman.GearmanAdminClient([gearmand.address]) as admin:
        [row] = admin.get_status()
    assert (row["task"], row["queued"]) == ("limits", 1)  # the refused ones never left


@pytest.mark.gearmand
def test_a_worker_refuses_to_send_a_result_one_byte_over(gearmand: GearmandProcess) -> None:
    worker = gearman.GearmanWorker([gearmand.address], max_packet_size=LIMIT)
    outcomes = []

    def callback(job) -> bytes:
        for size in (LIMIT, LIMIT + 1):
            try:
                worker.send_job_data(job, b"d" * size)
                outcomes.append((size, "sent"))
            except ValueError as exc:
                outcomes.append((size, str(exc)))
        worker.shutdown()
        return b"done"

    worker.register_task("limits", callback)
    with gearman.GearmanClient([gearmand.address]) as client:
        request = client.submit_job("limits", b"x", wait_until_complete=False, poll_timeout=10)
        thread = threading.Thread(target=worker.work, args=(1.0,), daemon=True)
        thread.start()
        client.wait_until_jobs_completed([request], poll_timeout=15)
        thread.join(15)
        if thread.is_alive():  # never ran the job: stop it, the asserts below say why
            worker.shutdown()
            thread.join(15)
    assert outcomes == [(LIMIT, "sent"),
                        (LIMIT + 1, f"data is {LIMIT + 1} bytes, above max_packet_size={LIMIT}")]
    assert request.result == b"done" and list(request.data_updates) == [b"d" * LIMIT]
