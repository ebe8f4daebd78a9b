"""python-gearman 2.0.2's module-level protocol names, as thin names over the core.

2.x code imports these from :mod:`gearman.protocol` (which loads this module on
first use of one of them); nothing here parses or packs by itself: the command
numbers are :class:`~gearman.protocol.Command` members, the argument lists come
from :data:`~gearman.protocol.ARGS`, and the parse/pack functions drive
:class:`~gearman.protocol.PacketParser` and :func:`~gearman.protocol.pack`.

What changed from 2.0.2: everything on the wire is ``bytes`` (2.x used ``str``);
an argument mistake (unknown command, wrong argument names, a non-bytes value,
a NUL inside an argument but the last) raises ``TypeError``/``ValueError``,
while ``ProtocolError`` stays for bytes that break the protocol.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple, Union

from gearman.constants import DEFAULT_MAX_PACKET_SIZE
from gearman.errors import ProtocolError
from gearman.protocol import (ARGS, HEADER_SIZE, NULL, REQ, RES, Command, Packet, PacketParser,
                              TextLine, pack, submit_command)

__all__ = [
    "NULL_CHAR", "MAGIC_REQ_STRING", "MAGIC_RES_STRING", "COMMAND_HEADER_SIZE",
    "GEARMAN_COMMAND_CAN_DO", "GEARMAN_COMMAND_CANT_DO", "GEARMAN_COMMAND_RESET_ABILITIES",
    "GEARMAN_COMMAND_PRE_SLEEP", "GEARMAN_COMMAND_NOOP", "GEARMAN_COMMAND_SUBMIT_JOB",
    "GEARMAN_COMMAND_JOB_CREATED", "GEARMAN_COMMAND_GRAB_JOB", "GEARMAN_COMMAND_NO_JOB",
    "GEARMAN_COMMAND_JOB_ASSIGN", "GEARMAN_COMMAND_WORK_STATUS",
    "GEARMAN_COMMAND_WORK_COMPLETE", "GEARMAN_COMMAND_WORK_FAIL", "GEARMAN_COMMAND_GET_STATUS",
    "GEARMAN_COMMAND_ECHO_REQ", "GEARMAN_COMMAND_ECHO_RES", "GEARMAN_COMMAND_SUBMIT_JOB_BG",
    "GEARMAN_COMMAND_ERROR", "GEARMAN_COMMAND_STATUS_RES", "GEARMAN_COMMAND_SUBMIT_JOB_HIGH",
    "GEARMAN_COMMAND_SET_CLIENT_ID", "GEARMAN_COMMAND_CAN_DO_TIMEOUT",
    "GEARMAN_COMMAND_ALL_YOURS", "GEARMAN_COMMAND_WORK_EXCEPTION",
    "GEARMAN_COMMAND_OPTION_REQ", "GEARMAN_COMMAND_OPTION_RES", "GEARMAN_COMMAND_WORK_DATA",
    "GEARMAN_COMMAND_WORK_WARNING", "GEARMAN_COMMAND_GRAB_JOB_UNIQ",
    "GEARMAN_COMMAND_JOB_ASSIGN_UNIQ", "GEARMAN_COMMAND_SUBMIT_JOB_HIGH_BG",
    "GEARMAN_COMMAND_SUBMIT_JOB_LOW", "GEARMAN_COMMAND_SUBMIT_JOB_LOW_BG",
    "GEARMAN_COMMAND_TEXT_COMMAND", "GEARMAN_PARAMS_FOR_COMMAND", "GEARMAN_COMMAND_TO_NAME",
    "GEARMAN_SERVER_COMMAND_STATUS", "GEARMAN_SERVER_COMMAND_VERSION",
    "GEARMAN_SERVER_COMMAND_WORKERS", "GEARMAN_SERVER_COMMAND_MAXQUEUE",
    "GEARMAN_SERVER_COMMAND_SHUTDOWN", "get_command_name", "submit_cmd_for_background_priority",
    "parse_binary_command", "pack_binary_command", "parse_text_command", "pack_text_command",
]

NULL_CHAR = NULL
MAGIC_REQ_STRING = REQ
MAGIC_RES_STRING = RES
COMMAND_HEADER_SIZE = HEADER_SIZE

GEARMAN_COMMAND_CAN_DO = Command.CAN_DO
GEARMAN_COMMAND_CANT_DO = Command.CANT_DO
GEARMAN_COMMAND_RESET_ABILITIES = Command.RESET_ABILITIES
GEARMAN_COMMAND_PRE_SLEEP = Command.PRE_SLEEP
GEARMAN_COMMAND_NOOP = Command.NOOP
GEARMAN_COMMAND_SUBMIT_JOB = Command.SUBMIT_JOB
GEARMAN_COMMAND_JOB_CREATED = Command.JOB_CREATED
GEARMAN_COMMAND_GRAB_JOB = Command.GRAB_JOB
GEARMAN_COMMAND_NO_JOB = Command.NO_JOB
GEARMAN_COMMAND_JOB_ASSIGN = Command.JOB_ASSIGN
GEARMAN_COMMAND_WORK_STATUS = Command.WORK_STATUS
GEARMAN_COMMAND_WORK_COMPLETE = Command.WORK_COMPLETE
GEARMAN_COMMAND_WORK_FAIL = Command.WORK_FAIL
GEARMAN_COMMAND_GET_STATUS = Command.GET_STATUS
GEARMAN_COMMAND_ECHO_REQ = Command.ECHO_REQ
GEARMAN_COMMAND_ECHO_RES = Command.ECHO_RES
GEARMAN_COMMAND_SUBMIT_JOB_BG = Command.SUBMIT_JOB_BG
GEARMAN_COMMAND_ERROR = Command.ERROR
GEARMAN_COMMAND_STATUS_RES = Command.STATUS_RES
GEARMAN_COMMAND_SUBMIT_JOB_HIGH = Command.SUBMIT_JOB_HIGH
GEARMAN_COMMAND_SET_CLIENT_ID = Command.SET_CLIENT_ID
GEARMAN_COMMAND_CAN_DO_TIMEOUT = Command.CAN_DO_TIMEOUT
GEARMAN_COMMAND_ALL_YOURS = Command.ALL_YOURS
GEARMAN_COMMAND_WORK_EXCEPTION = Command.WORK_EXCEPTION
GEARMAN_COMMAND_OPTION_REQ = Command.OPTION_REQ
GEARMAN_COMMAND_OPTION_RES = Command.OPTION_RES
GEARMAN_COMMAND_WORK_DATA = Command.WORK_DATA
GEARMAN_COMMAND_WORK_WARNING = Command.WORK_WARNING
GEARMAN_COMMAND_GRAB_JOB_UNIQ = Command.GRAB_JOB_UNIQ
GEARMAN_COMMAND_JOB_ASSIGN_UNIQ = Command.JOB_ASSIGN_UNIQ
GEARMAN_COMMAND_SUBMIT_JOB_HIGH_BG = Command.SUBMIT_JOB_HIGH_BG
GEARMAN_COMMAND_SUBMIT_JOB_LOW = Command.SUBMIT_JOB_LOW
GEARMAN_COMMAND_SUBMIT_JOB_LOW_BG = Command.SUBMIT_JOB_LOW_BG
#: Not a wire command: 2.x's code for one line of the text (admin) protocol.
GEARMAN_COMMAND_TEXT_COMMAND = 9999

#: The commands python-gearman 2.0.2 knew (1-34).
_COMMANDS_2X = [command for command in Command if command <= Command.SUBMIT_JOB_LOW_BG]

GEARMAN_PARAMS_FOR_COMMAND: Dict[int, List[str]] = {
    **{command: list(ARGS[command]) for command in _COMMANDS_2X},
    GEARMAN_COMMAND_TEXT_COMMAND: ["raw_text"],
}
GEARMAN_COMMAND_TO_NAME: Dict[int, str] = {
    **{command: f"GEARMAN_COMMAND_{command.name}" for command in _COMMANDS_2X},
    GEARMAN_COMMAND_TEXT_COMMAND: "GEARMAN_COMMAND_TEXT_COMMAND",
}

GEARMAN_SERVER_COMMAND_STATUS = "status"
GEARMAN_SERVER_COMMAND_VERSION = "version"
GEARMAN_SERVER_COMMAND_WORKERS = "workers"
GEARMAN_SERVER_COMMAND_MAXQUEUE = "maxqueue"
GEARMAN_SERVER_COMMAND_SHUTDOWN = "shutdown"

Buffer = Union[bytes, bytearray, memoryview]
#: (command, {argument name: value}, bytes used); (None, None, 0) until a whole one is there.
Parsed = Tuple[Optional[int], Optional[Dict[str, bytes]], int]


def get_command_name(cmd_type: int) -> Union[str, int]:
    """``GEARMAN_COMMAND_<NAME>`` for a command number; an unknown one comes back as is."""
    return GEARMAN_COMMAND_TO_NAME.get(cmd_type, cmd_type)


def submit_cmd_for_background_priority(background: bool, priority: Optional[str]) -> int:
    """The SUBMIT_JOB* command for a background flag and a ``PRIORITY_*``."""
    return submit_command(background, priority)


def _parser_for(in_buffer: Buffer, expect_magic: bytes, allow_text: bool) -> PacketParser:
    # The whole buffer is already in memory: bound packets by it, not by the default.
    parser = PacketParser(expect_magic=expect_magic, allow_text=allow_text,
                          max_packet_size=max(DEFAULT_MAX_PACKET_SIZE, len(in_buffer)))
    parser.feed(in_buffer)
    return parser


def parse_binary_command(in_buffer: Buffer, is_response: bool = True) -> Parsed:
    """The first binary packet in ``in_buffer`` as (command, argument dict, size);
    ``(None, None, 0)`` while it is incomplete.  Raises ProtocolError on bad bytes."""
    parser = _parser_for(in_buffer, RES if is_response else REQ, allow_text=False)
    packet = parser.next_event()
    if packet is None:
        return None, None, 0
    assert isinstance(packet, Packet)
    return packet.command, dict(zip(ARGS[packet.command], packet.args)), \
        len(in_buffer) - parser.buffered


def pack_binary_command(cmd_type: int, cmd_args: Mapping[str, bytes],
                        is_response: bool = False) -> bytes:
    """The wire bytes of command ``cmd_type`` with its arguments by name (all bytes)."""
    try:
        command = Command(cmd_type)
    except ValueError:
        raise ValueError(f"unknown binary command {get_command_name(cmd_type)!r}") from None
    return pack(Packet.make(command, RES if is_response else REQ, **cmd_args))


def parse_text_command(in_buffer: Buffer) -> Parsed:
    """The first text line in ``in_buffer`` as (GEARMAN_COMMAND_TEXT_COMMAND,
    {'raw_text': line without its LF}, size); ``(None, None, 0)`` until the LF."""
    data = bytes(in_buffer)
    newline = data.find(b"\n")
    if newline < 0:
        return None, None, 0
    if NULL in data[:newline]:
        raise ProtocolError(f"text line with a NUL byte: {data[:min(newline, 64)]!r}")
    line = _parser_for(data[:newline + 1], RES, allow_text=True).next_event()
    assert isinstance(line, TextLine)
    raw_text = line.line + (b"\r" if line.crlf else b"")
    return GEARMAN_COMMAND_TEXT_COMMAND, {"raw_text": raw_text}, len(raw_text) + 1


def pack_text_command(cmd_type: int, cmd_args: Mapping[str, Union[str, bytes]]) -> bytes:
    """The bytes of a text command: ``cmd_args['raw_text']`` (a str is UTF-8 encoded)."""
    if cmd_type != GEARMAN_COMMAND_TEXT_COMMAND:
        raise ValueError(f"pack_text_command takes GEARMAN_COMMAND_TEXT_COMMAND, got "
                         f"{get_command_name(cmd_type)!r}")
    raw_text = cmd_args.get("raw_text")
    if raw_text is None:
        raise ValueError(f"pack_text_command needs cmd_args['raw_text'], got {dict(cmd_args)!r}")
    return raw_text.encode("utf-8") if isinstance(raw_text, str) else bytes(raw_text)
