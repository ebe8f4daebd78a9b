"""The sans-IO protocol core: packing, incremental parsing, malformed input."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gearman.errors import ProtocolError, UnknownCommandError
from gearman.protocol import (ARGS, HEADER, REQ, RES, AdminReplyReader, Command, Packet,
                              PacketParser, TextLine, pack, pack_header_and_body, pack_text,
                              parse_err_line, submit_command)
from gearman.constants import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE


def sample_args(command: Command) -> tuple:
    """Distinct argument values for a command; the last one carries NULs."""
    names = ARGS[command]
    values = [f"{name}-{i}".encode() for i, name in enumerate(names)]
    if values:
        values[-1] += b"\0tail\0"
    return tuple(values)


def parse_all(wire: bytes, **kwargs) -> list:
    parser = PacketParser(**kwargs)
    parser.feed(wire)
    return list(parser)


def test_every_command_from_1_to_42_is_known_with_its_arguments():
    codes = sorted(int(command) for command in Command)
    assert codes == [c for c in range(1, 43) if c != 5]
    assert set(ARGS) == set(Command)
    assert ARGS[Command.SUBMIT_REDUCE_JOB] == ("task", "unique", "reducer", "aggregate", "data")
    assert ARGS[Command.STATUS_RES_UNIQUE][0] == "unique"
    assert len(ARGS[Command.SUBMIT_JOB_SCHED]) == 8


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.name)
@pytest.mark.parametrize("magic", [REQ, RES])
def test_every_packet_type_round_trips(command, magic):
    packet = Packet(command, sample_args(command), magic)
    wire = pack(packet)
    assert wire[:4] == magic
    assert struct.unpack("!I", wire[4:8])[0] == int(command)
    assert parse_all(wire, expect_magic=magic) == [packet]


def test_worked_example_from_protocol_md():
    packet = Packet(Command.SUBMIT_JOB_BG, (b"resize", b"img-42", bytes.fromhex("89504e4700")))
    assert pack(packet) == bytes.fromhex(
        "00524551" "00000012" "00000013" "726573697a6500" "696d672d343200" "89504e4700")


def test_last_argument_keeps_its_nul_bytes():
    wire = pack(Packet(Command.WORK_DATA, (b"H:x:1", b"part\0ial\0"), RES))
    [packet] = parse_all(wire)
    assert packet.args == (b"H:x:1", b"part\0ial\0")


def test_empty_arguments_are_legal_anywhere():
    packet = Packet(Command.SUBMIT_JOB, (b"f", b"", b""), REQ)
    assert pack(packet)[8:12] == b"\0\0\0\x03"
    assert parse_all(pack(packet), expect_magic=REQ) == [packet]


def test_parser_accepts_one_byte_at_a_time():
    packets = [Packet(c, sample_args(c), RES) for c in Command]
    wire = b"".join(pack(p) for p in packets)
    parser, events = PacketParser(), []
    for i in range(len(wire)):
        parser.feed(wire[i:i + 1])
        events.extend(parser)
    assert events == packets
    assert parser.buffered == 0


def test_large_body_splits_without_losing_bytes():
    payload = bytes(range(256)) * 4096 + b"\0end"  # 1 MiB and a bit
    packet = Packet(Command.JOB_ASSIGN_UNIQ, (b"H:x:9", b"task", b"uniq", payload), RES)
    wire = pack(packet)
    parser, events = PacketParser(), []
    for start in range(0, len(wire), 65536):
        parser.feed(wire[start:start + 65536])
        events.extend(parser)
    assert events == [packet]


def test_header_and_body_packing_matches_pack():
    for command in Command:
        args = sample_args(command)
        head, tail = pack_header_and_body(command, args, REQ)
        assert head + tail == pack(Packet(command, args, REQ))


def test_text_lines_and_packets_mix_in_order():
    wire = b"OK 1.1.20\n" + pack(Packet(Command.NOOP, (), RES)) + b"a\tb\r\n.\n"
    events = parse_all(wire)
    assert events == [TextLine(b"OK 1.1.20"), Packet(Command.NOOP, (), RES),
                      TextLine(b"a\tb"), TextLine(b".")]
    assert [e.crlf for e in events if isinstance(e, TextLine)] == [False, True, False]


def test_text_line_trickle_is_linear(monkeypatch):
    parser = PacketParser()
    for byte in b"x" * 5000:
        parser.feed(bytes([byte]))
        assert parser.next_event() is None
    parser.feed(b"\n")
    assert parser.next_event() == TextLine(b"x" * 5000)


# -- malformed input: ProtocolError naming the command and the reason -----------------------

def test_bad_magic_raises():
    wire = pack(Packet(Command.NOOP, (), REQ))
    with pytest.raises(ProtocolError, match="bad magic"):
        parse_all(wire)  # a server must never send \0REQ


def test_bad_magic_is_seen_before_the_header_is_complete():
    parser = PacketParser()
    parser.feed(b"\0RX")
    with pytest.raises(ProtocolError, match="bad magic"):
        parser.next_event()


def test_unknown_command_number_raises():
    wire = HEADER.pack(RES, 99, 0)
    with pytest.raises(UnknownCommandError, match="unknown command number 99"):
        parse_all(wire)
    with pytest.raises(UnknownCommandError):
        parse_all(HEADER.pack(RES, 5, 0))  # the unused number


def test_missing_nul_separator_raises_with_the_command():
    wire = HEADER.pack(RES, Command.WORK_COMPLETE, 5) + b"H:x:1"
    with pytest.raises(ProtocolError, match="missing NUL") as info:
        parse_all(wire)
    assert info.value.command is Command.WORK_COMPLETE
    assert "WORK_COMPLETE" in str(info.value)


def test_oversized_length_raises_before_buffering():
    parser = PacketParser(max_packet_size=1024)
    parser.feed(HEADER.pack(RES, Command.WORK_DATA, 3 * 1024 ** 3))
    with pytest.raises(ProtocolError, match="exceeds") as info:
        parser.next_event()
    assert info.value.command is Command.WORK_DATA


def test_payload_on_a_zero_argument_command_raises():
    with pytest.raises(ProtocolError, match="no arguments"):
        parse_all(HEADER.pack(RES, Command.NOOP, 3) + b"abc")


def test_endless_text_line_is_bounded():
    parser = PacketParser(max_packet_size=100)
    parser.feed(b"y" * 101)
    with pytest.raises(ProtocolError, match="longer than"):
        parser.next_event()


def test_text_refused_where_only_binary_is_allowed():
    with pytest.raises(ProtocolError, match="text data"):
        parse_all(b"garbage\n", allow_text=False)


# -- building packets: local mistakes are caught before anything is sent ------------------

def test_make_checks_names_and_nul():
    assert Packet.make(Command.CAN_DO, task=b"x") == Packet(Command.CAN_DO, (b"x",), REQ)
    with pytest.raises(TypeError, match="takes arguments"):
        Packet.make(Command.CAN_DO, name=b"x")
    with pytest.raises(ValueError, match="task must not contain a NUL"):
        Packet.make(Command.SUBMIT_JOB, task=b"a\0", unique=b"", data=b"")
    with pytest.raises(TypeError, match="must be bytes"):
        Packet.make(Command.CAN_DO, task="text")


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview,
                                  lambda raw: memoryview(bytearray(raw))],
                         ids=["bytes", "bytearray", "memoryview", "memoryview-of-bytearray"])
def test_make_refuses_a_nul_inside_any_bytes_like_argument_but_the_last(wrap):
    """Defect 7: ``NULL in memoryview`` is always False, so a memoryview task with a
    NUL passed and pack() framed a packet whose arguments no longer lined up."""
    with pytest.raises(ValueError, match="task must not contain a NUL"):
        Packet.make(Command.SUBMIT_JOB, task=wrap(b"ab\0cd"), unique=b"u", data=b"d")
    with pytest.raises(ValueError, match="unique must not contain a NUL"):
        Packet.make(Command.SUBMIT_JOB, task=b"t", unique=wrap(b"\0"), data=b"d")
    with pytest.raises(ValueError, match="NUL"):
        pack_header_and_body(Command.SUBMIT_JOB, (wrap(b"ab\0cd"), b"u", b"d"))
    # The last argument may carry NULs, whatever its type; the wire bytes are literal.
    packet = Packet.make(Command.WORK_DATA, job_handle=wrap(b"H:1"), data=wrap(b"a\0b"))
    assert packet.args == (b"H:1", b"a\0b") and all(type(a) is bytes for a in packet.args)
    assert pack(packet) == b"\0REQ\x00\x00\x00\x1c\x00\x00\x00\x07H:1\0a\0b"


def test_a_memoryview_of_wide_items_is_framed_by_its_bytes():
    import array
    words = memoryview(array.array("H", [0x4142, 0x4344]))  # 2 items, 4 bytes
    header, body = pack_header_and_body(Command.ECHO_REQ, (words,))
    assert header + body == b"\0REQ\x00\x00\x00\x10\x00\x00\x00\x04" + words.tobytes()
    packet = Packet.make(Command.ECHO_REQ, data=words)
    assert pack(packet) == header + body


def test_submit_command_table():
    assert submit_command(False, PRIORITY_NONE) is Command.SUBMIT_JOB
    assert submit_command(True, PRIORITY_HIGH) is Command.SUBMIT_JOB_HIGH_BG
    assert submit_command(False, PRIORITY_LOW) is Command.SUBMIT_JOB_LOW
    with pytest.raises(ValueError, match="priority"):
        submit_command(False, "URGENT")


# -- text admin protocol ---------------------------------------------------------------------

def test_pack_text_uses_crlf_and_refuses_whitespace():
    assert pack_text("maxqueue", "f", "10") == b"maxqueue f 10\r\n"
    with pytest.raises(ValueError, match="whitespace"):
        pack_text("cancel", "job", "H:x 1")
    with pytest.raises(ValueError, match="at most 5"):
        pack_text("a", "b", "c", "d", "e", "f")


def test_admin_reply_reader_list_single_and_err():
    reader = AdminReplyReader("status")
    assert reader.add(TextLine(b"f\t1\t0\t1")) is None
    assert reader.add(TextLine(b".")) == ["f\t1\t0\t1"]
    assert AdminReplyReader("version").add(TextLine(b"OK 1.1.20+ds")) == "OK 1.1.20+ds"
    err = AdminReplyReader("workers").add(
        TextLine(b"ERR UNKNOWN_COMMAND Unknown+server+command", crlf=True))
    assert err.startswith("ERR ")
    # A list entry that merely starts with "ERR " (a function of that name) ends in LF.
    reader = AdminReplyReader("status")
    assert reader.add(TextLine(b"ERR fn\t1\t0\t1")) is None
    assert reader.add(TextLine(b".")) == ["ERR fn\t1\t0\t1"]
    assert parse_err_line(err) == ("UNKNOWN_COMMAND", "Unknown server command")


# -- properties ------------------------------------------------------------------------------

commands = st.sampled_from(list(Command))


@st.composite
def packets(draw):
    command = draw(commands)
    count = len(ARGS[command])
    head = [draw(st.binary(max_size=20).filter(lambda b: b"\0" not in b))
            for _ in range(max(count - 1, 0))]
    tail = [draw(st.binary(max_size=300))] if count else []
    return Packet(command, tuple(head + tail), RES)


@settings(max_examples=200, deadline=None)
@given(st.lists(packets(), min_size=1, max_size=8), st.lists(st.integers(1, 64), max_size=30))
def test_any_packets_parse_back_under_any_slicing(packet_list, cuts):
    wire = b"".join(pack(p) for p in packet_list)
    parser, events, pos = PacketParser(), [], 0
    for cut in cuts:
        parser.feed(wire[pos:pos + cut])
        events.extend(parser)
        pos += cut
    parser.feed(wire[pos:])
    events.extend(parser)
    assert events == packet_list


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_random_bytes_raise_only_protocol_error_and_stay_bounded(chunks):
    limit = 256
    parser = PacketParser(max_packet_size=limit)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            for _ in parser:
                pass
            # Never more than one maximal packet (plus its header) waits in the buffer.
            assert parser.buffered <= limit + HEADER.size + 200
    except ProtocolError:
        pass


# Every command pinned to literal wire bytes, written from protocol.md and not derived
# from ARGS: its number, and its argument count as a body of "a", "b", ... joined by
# NULs whose last argument ends in a NUL of its own (the last may carry NULs).
PINNED = [
    ("CAN_DO", b"\x00REQ\x00\x00\x00\x01\x00\x00\x00\x02" b"a\0"),
    ("CANT_DO", b"\x00REQ\x00\x00\x00\x02\x00\x00\x00\x02" b"a\0"),
    ("RESET_ABILITIES", b"\x00REQ\x00\x00\x00\x03\x00\x00\x00\x00" b""),
    ("PRE_SLEEP", b"\x00REQ\x00\x00\x00\x04\x00\x00\x00\x00" b""),
    ("NOOP", b"\x00REQ\x00\x00\x00\x06\x00\x00\x00\x00" b""),
    ("SUBMIT_JOB", b"\x00REQ\x00\x00\x00\x07\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("JOB_CREATED", b"\x00REQ\x00\x00\x00\x08\x00\x00\x00\x02" b"a\0"),
    ("GRAB_JOB", b"\x00REQ\x00\x00\x00\x09\x00\x00\x00\x00" b""),
    ("NO_JOB", b"\x00REQ\x00\x00\x00\x0a\x00\x00\x00\x00" b""),
    ("JOB_ASSIGN", b"\x00REQ\x00\x00\x00\x0b\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("WORK_STATUS", b"\x00REQ\x00\x00\x00\x0c\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("WORK_COMPLETE", b"\x00REQ\x00\x00\x00\x0d\x00\x00\x00\x04" b"a\0b\0"),
    ("WORK_FAIL", b"\x00REQ\x00\x00\x00\x0e\x00\x00\x00\x02" b"a\0"),
    ("GET_STATUS", b"\x00REQ\x00\x00\x00\x0f\x00\x00\x00\x02" b"a\0"),
    ("ECHO_REQ", b"\x00REQ\x00\x00\x00\x10\x00\x00\x00\x02" b"a\0"),
    ("ECHO_RES", b"\x00REQ\x00\x00\x00\x11\x00\x00\x00\x02" b"a\0"),
    ("SUBMIT_JOB_BG", b"\x00REQ\x00\x00\x00\x12\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("ERROR", b"\x00REQ\x00\x00\x00\x13\x00\x00\x00\x04" b"a\0b\0"),
    ("STATUS_RES", b"\x00REQ\x00\x00\x00\x14\x00\x00\x00\x0a" b"a\0b\0c\0d\0e\0"),
    ("SUBMIT_JOB_HIGH", b"\x00REQ\x00\x00\x00\x15\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("SET_CLIENT_ID", b"\x00REQ\x00\x00\x00\x16\x00\x00\x00\x02" b"a\0"),
    ("CAN_DO_TIMEOUT", b"\x00REQ\x00\x00\x00\x17\x00\x00\x00\x04" b"a\0b\0"),
    ("ALL_YOURS", b"\x00REQ\x00\x00\x00\x18\x00\x00\x00\x00" b""),
    ("WORK_EXCEPTION", b"\x00REQ\x00\x00\x00\x19\x00\x00\x00\x04" b"a\0b\0"),
    ("OPTION_REQ", b"\x00REQ\x00\x00\x00\x1a\x00\x00\x00\x02" b"a\0"),
    ("OPTION_RES", b"\x00REQ\x00\x00\x00\x1b\x00\x00\x00\x02" b"a\0"),
    ("WORK_DATA", b"\x00REQ\x00\x00\x00\x1c\x00\x00\x00\x04" b"a\0b\0"),
    ("WORK_WARNING", b"\x00REQ\x00\x00\x00\x1d\x00\x00\x00\x04" b"a\0b\0"),
    ("GRAB_JOB_UNIQ", b"\x00REQ\x00\x00\x00\x1e\x00\x00\x00\x00" b""),
    ("JOB_ASSIGN_UNIQ", b"\x00REQ\x00\x00\x00\x1f\x00\x00\x00\x08" b"a\0b\0c\0d\0"),
    ("SUBMIT_JOB_HIGH_BG", b"\x00REQ\x00\x00\x00\x20\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("SUBMIT_JOB_LOW", b"\x00REQ\x00\x00\x00\x21\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("SUBMIT_JOB_LOW_BG", b"\x00REQ\x00\x00\x00\x22\x00\x00\x00\x06" b"a\0b\0c\0"),
    ("SUBMIT_JOB_SCHED", b"\x00REQ\x00\x00\x00\x23\x00\x00\x00\x10" b"a\0b\0c\0d\0e\0f\0g\0h\0"),
    ("SUBMIT_JOB_EPOCH", b"\x00REQ\x00\x00\x00\x24\x00\x00\x00\x08" b"a\0b\0c\0d\0"),
    ("SUBMIT_REDUCE_JOB", b"\x00REQ\x00\x00\x00\x25\x00\x00\x00\x0a" b"a\0b\0c\0d\0e\0"),
    ("SUBMIT_REDUCE_JOB_BACKGROUND", b"\x00REQ\x00\x00\x00\x26\x00\x00\x00\x0a" b"a\0b\0c\0d\0e\0"),
    ("GRAB_JOB_ALL", b"\x00REQ\x00\x00\x00\x27\x00\x00\x00\x00" b""),
    ("JOB_ASSIGN_ALL", b"\x00REQ\x00\x00\x00\x28\x00\x00\x00\x0a" b"a\0b\0c\0d\0e\0"),
    ("GET_STATUS_UNIQUE", b"\x00REQ\x00\x00\x00\x29\x00\x00\x00\x02" b"a\0"),
    ("STATUS_RES_UNIQUE", b"\x00REQ\x00\x00\x00\x2a\x00\x00\x00\x0c" b"a\0b\0c\0d\0e\0f\0"),
]


@pytest.mark.parametrize("name, wire", PINNED, ids=[name for name, _ in PINNED])
def test_every_command_is_pinned_to_literal_bytes(name, wire):
    command = Command[name]
    [packet] = parse_all(wire, expect_magic=REQ)
    assert packet.command is command
    argc = wire[12:].count(b"\0")
    letters = tuple(bytes([ord("a") + i]) for i in range(argc))
    expected = letters[:-1] + (letters[-1] + b"\0",) if argc else ()
    assert packet.args == expected
    assert pack(Packet(command, expected, REQ)) == wire
    header, body = pack_header_and_body(command, expected, REQ)
    assert header + body == wire
    assert len(ARGS[command]) == argc


def test_the_pinned_table_covers_every_command():
    assert sorted(Command[name] for name, _ in PINNED) == sorted(Command)
