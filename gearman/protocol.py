"""The sans-IO protocol core: bytes to commands and back, no sockets.

Everything here is pure: :func:`pack` turns a :class:`Packet` into bytes,
:class:`PacketParser` turns any slicing of a byte stream back into packets and
admin text lines; :func:`pack_text` / :class:`AdminReplyReader` (in
:mod:`gearman.admin_text`, named here too) cover the text admin protocol.  The
rules come from gearmand 1.1 (``protocol.md``).
"""
from __future__ import annotations

import enum
import struct
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

from gearman.constants import DEFAULT_MAX_PACKET_SIZE, PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_NONE
from gearman.errors import ProtocolError, UnknownCommandError

REQ = b"\0REQ"
RES = b"\0RES"
HEADER = struct.Struct("!4sII")
HEADER_SIZE = HEADER.size
NULL = b"\0"

#: Bodies above this size are split without intermediate copies.
_LARGE_BODY = 64 * 1024


class Command(enum.IntEnum):
    """Binary command codes, as gearmand 1.1 numbers them."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_SUBMIT_ARGS = ("task", "unique", "data")

#: Argument names per command, in wire order.  Only the last may contain NUL.
ARGS: Dict[Command, Tuple[str, ...]] = {
    Command.CAN_DO: ("task",),
    Command.CANT_DO: ("task",),
    Command.RESET_ABILITIES: (),
    Command.PRE_SLEEP: (),
    Command.NOOP: (),
    Command.SUBMIT_JOB: _SUBMIT_ARGS,
    Command.JOB_CREATED: ("job_handle",),
    Command.GRAB_JOB: (),
    Command.NO_JOB: (),
    Command.JOB_ASSIGN: ("job_handle", "task", "data"),
    Command.WORK_STATUS: ("job_handle", "numerator", "denominator"),
    Command.WORK_COMPLETE: ("job_handle", "data"),
    Command.WORK_FAIL: ("job_handle",),
    Command.GET_STATUS: ("job_handle",),
    Command.ECHO_REQ: ("data",),
    Command.ECHO_RES: ("data",),
    Command.SUBMIT_JOB_BG: _SUBMIT_ARGS,
    Command.ERROR: ("error_code", "error_text"),
    Command.STATUS_RES: ("job_handle", "known", "running", "numerator", "denominator"),
    Command.SUBMIT_JOB_HIGH: _SUBMIT_ARGS,
    Command.SET_CLIENT_ID: ("client_id",),
    Command.CAN_DO_TIMEOUT: ("task", "timeout"),
    Command.ALL_YOURS: (),
    Command.WORK_EXCEPTION: ("job_handle", "data"),
    Command.OPTION_REQ: ("option_name",),
    Command.OPTION_RES: ("option_name",),
    Command.WORK_DATA: ("job_handle", "data"),
    Command.WORK_WARNING: ("job_handle", "data"),
    Command.GRAB_JOB_UNIQ: (),
    Command.JOB_ASSIGN_UNIQ: ("job_handle", "task", "unique", "data"),
    Command.SUBMIT_JOB_HIGH_BG: _SUBMIT_ARGS,
    Command.SUBMIT_JOB_LOW: _SUBMIT_ARGS,
    Command.SUBMIT_JOB_LOW_BG: _SUBMIT_ARGS,
    Command.SUBMIT_JOB_SCHED: ("task", "unique", "minute", "hour", "day_of_month",
                               "month", "day_of_week", "data"),
    Command.SUBMIT_JOB_EPOCH: ("task", "unique", "epoch", "data"),
    Command.SUBMIT_REDUCE_JOB: ("task", "unique", "reducer", "aggregate", "data"),
    Command.SUBMIT_REDUCE_JOB_BACKGROUND: ("task", "unique", "reducer", "aggregate", "data"),
    Command.GRAB_JOB_ALL: (),
    Command.JOB_ASSIGN_ALL: ("job_handle", "task", "unique", "reducer", "data"),
    Command.GET_STATUS_UNIQUE: ("unique",),
    Command.STATUS_RES_UNIQUE: ("unique", "known", "running", "numerator", "denominator",
                                "client_count"),
}

_COMMANDS_BY_CODE: Dict[int, Command] = {int(command): command for command in Command}
_ARGC_BY_CODE: Dict[int, int] = {int(command): len(ARGS[command]) for command in Command}
#: code -> (command, argument count): one lookup per packet parsed
_SPEC_BY_CODE: Dict[int, Tuple[Command, int]] = {
    int(command): (command, len(ARGS[command])) for command in Command}

#: (background, priority) -> the SUBMIT_* command that expresses it.
SUBMIT_COMMANDS = {
    (False, PRIORITY_NONE): Command.SUBMIT_JOB,
    (False, PRIORITY_LOW): Command.SUBMIT_JOB_LOW,
    (False, PRIORITY_HIGH): Command.SUBMIT_JOB_HIGH,
    (True, PRIORITY_NONE): Command.SUBMIT_JOB_BG,
    (True, PRIORITY_LOW): Command.SUBMIT_JOB_LOW_BG,
    (True, PRIORITY_HIGH): Command.SUBMIT_JOB_HIGH_BG,
}


def submit_command(background: bool, priority: Optional[str]) -> Command:
    """The SUBMIT_* command for a job's background flag and priority."""
    try:
        return SUBMIT_COMMANDS[(bool(background), priority)]
    except KeyError:
        raise ValueError(
            f"priority must be PRIORITY_NONE, PRIORITY_LOW or PRIORITY_HIGH, got {priority!r}"
        ) from None


class Packet:
    """One binary packet: a command, its arguments (bytes) and its magic."""

    __slots__ = ("command", "args", "magic")

    def __init__(self, command: Command, args: Tuple[bytes, ...] = (), magic: bytes = REQ) -> None:
        self.command = command
        self.args = args
        self.magic = magic

    @classmethod
    def make(cls, command: Command, magic: bytes = REQ, **args: bytes) -> Packet:
        """Build a packet from named arguments, checking names, types and NULs."""
        names = ARGS[command]
        if set(args) != set(names):
            raise TypeError(f"{command.name} takes arguments {names}, got {tuple(args)}")
        values = tuple(args[name] for name in names)
        validate_args(command, values)
        # The packet keeps its own immutable copy: a caller's bytearray or memoryview
        # stays theirs, and the packet stays hashable.
        return cls(command, tuple(v if type(v) is bytes else bytes(v) for v in values), magic)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (self.command, self.args, self.magic) == (other.command, other.args, other.magic)

    def __hash__(self) -> int:
        return hash((self.command, self.args, self.magic))

    def __repr__(self) -> str:
        shown = tuple(arg if len(arg) <= 64 else arg[:64] + b"..." for arg in self.args)
        return f"Packet({self.command.name}, {shown!r}, {self.magic!r})"

    def arg(self, name: str) -> bytes:
        """The argument called ``name`` (see :data:`ARGS`)."""
        return self.args[ARGS[self.command].index(name)]


def validate_args(command: Command, args: Tuple[bytes, ...]) -> None:
    """Raise if ``args`` cannot be framed as ``command``: wrong count, type or a NUL."""
    names = ARGS[command]
    if len(args) != len(names):  # a local mistake (nothing came off the network): ValueError
        raise ValueError(f"{Command(command).name} takes {len(names)} arguments {names}, "
                         f"got {len(args)}")
    # Every packet sent passes here: a plain loop (3x faster than zip and unpacking).
    last = len(args) - 1
    for position, value in enumerate(args):
        if type(value) is not bytes and not isinstance(value, (bytearray, memoryview)):
            raise TypeError(f"{command.name} argument {names[position]} must be bytes, "
                            f"got {type(value).__name__}")
        # ``NULL in memoryview`` compares items, never finds a NUL: test its bytes.
        if position < last and NULL in (value.tobytes() if isinstance(value, memoryview)
                                        else value):
            raise ValueError(f"{command.name} argument {names[position]} must not contain "
                             "a NUL byte")


def pack(packet: Packet) -> bytes:
    """The wire bytes of ``packet``.  Arguments are joined by single NULs."""
    body = NULL.join(packet.args)
    return HEADER.pack(packet.magic, packet.command, len(body)) + body


def pack_header_and_body(command: Command, args: Tuple[bytes, ...], magic: bytes = REQ
                         ) -> Tuple[bytes, bytes]:
    """Header and body separately, so a large payload is never copied into a new buffer.

    The body is ``args`` joined by NULs except that the last argument is left out:
    it is returned as ``bytes`` (a ``bytearray``/``memoryview`` is copied once, so
    the caller's object is never queued, grown or trimmed);
    the returned header counts it, and the caller sends it after the body.  The
    arguments are checked as :func:`validate_args` does (every packet sent passes
    here, so the common case costs one join and one count; a bad argument is
    then named by :func:`validate_args`).
    """
    count = len(args)
    if _ARGC_BY_CODE.get(command) != count:
        _reject(command, args)
    if count == 0:
        return HEADER.pack(magic, command, 0), b""
    last = args[-1]
    if type(last) is not bytes:
        if not isinstance(last, (bytearray, memoryview)):
            _reject(command, args)
        # Copy what the caller still owns (bytes are immutable: never copied).  A
        # queued bytearray would be appended to and trimmed in the caller's hands,
        # and a memoryview's len() counts items, not bytes.
        last = bytes(last)
    if count == 1:
        return HEADER.pack(magic, command, len(last)), last
    try:
        prefix = NULL.join(args[:-1])
    except TypeError:
        _reject(command, args)
        raise
    if prefix.count(NULL) != count - 2:  # a NUL inside an argument but the last
        _reject(command, args)
    return HEADER.pack(magic, command, len(prefix) + 1 + len(last)) + prefix + NULL, last


def _reject(command: Command, args: Tuple[bytes, ...]) -> None:
    """Raise the error :func:`validate_args` gives for ``args``."""
    validate_args(command, args)
    raise ValueError(f"{Command(command).name} arguments must be bytes-like, and all but "
                     f"the last without a NUL byte; got {[type(a).__name__ for a in args]}")


class TextLine:
    """One line of the text admin protocol, without its CR LF.

    ``crlf`` says whether it ended in CR LF: gearmand ends ``OK``/``ERR`` lines so
    and list lines with a bare LF, which tells an error from a list entry that
    merely starts with "ERR " (a function or unique of that name).
    """

    __slots__ = ("line", "crlf")

    def __init__(self, line: bytes, crlf: bool = False) -> None:
        self.line = line
        self.crlf = crlf

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextLine) and other.line == self.line

    def __hash__(self) -> int:
        return hash(self.line)

    def __repr__(self) -> str:
        return f"TextLine({self.line!r})"


Event = Union[Packet, TextLine]


class PacketParser:
    """Turn one peer's byte stream into :class:`Packet` and :class:`TextLine` events.

    Feed it any slicing of the stream; cost is linear in the bytes fed.  It
    does no I/O.  Memory is bounded: a packet body above ``max_packet_size``
    or a text line longer than that raises :class:`ProtocolError` before the
    bytes are buffered.
    """

    def __init__(self, *, expect_magic: bytes = RES,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
                 allow_text: bool = True) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first unparsed byte in _buf
        self._scanned = 0  # how far a text line end has been searched for
        self._expect_magic = expect_magic
        self.max_packet_size = max_packet_size
        self._allow_text = allow_text

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as events."""
        return len(self._buf) - self._pos

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Add received bytes; compacts the buffer once per call."""
        if self._pos:
            del self._buf[:self._pos]
            self._scanned -= self._pos
            self._pos = 0
        self._buf += data

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def next_event(self) -> Optional[Event]:
        """The next complete event, or ``None`` until more bytes arrive."""
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if not available:
            return None
        if buf[pos] != 0:
            return self._next_text_line()
        if available < HEADER_SIZE:
            if bytes(buf[pos:pos + 4]) != self._expect_magic[:available]:
                self._raise_bad_magic(bytes(buf[pos:pos + 4]))
            return None
        magic, code, size = HEADER.unpack_from(buf, pos)
        if magic != self._expect_magic:
            self._raise_bad_magic(magic, code)
        spec = _SPEC_BY_CODE.get(code)
        if spec is None:
            raise UnknownCommandError(f"unknown command number {code}", command=code)
        command, argc = spec
        if size > self.max_packet_size:
            raise ProtocolError(f"{size}-byte packet exceeds the {self.max_packet_size}-byte "
                                "maximum", command=command)
        start = pos + HEADER_SIZE
        end = start + size
        if len(buf) < end:
            return None
        self._pos = end
        if argc == 0:
            if size:
                raise ProtocolError(f"takes no arguments but carries {size} bytes",
                                    command=command)
            return Packet(command, (), magic)
        if size < _LARGE_BODY:
            args = tuple(bytes(buf[start:end]).split(NULL, argc - 1))
        else:
            args = self._split_large(buf, start, end, argc)
        if len(args) != argc:
            raise ProtocolError(f"expects {argc} arguments, found {len(args)} "
                                "(missing NUL separator)", command=command)
        return Packet(command, args, magic)

    @staticmethod
    def _split_large(buf: bytearray, start: int, end: int, argc: int) -> Tuple[bytes, ...]:
        """Split a big body copying each argument once (the payload is the last)."""
        parts: List[bytes] = []
        with memoryview(buf) as view:
            for _ in range(argc - 1):
                nul = buf.find(NULL, start, end)
                if nul < 0:
                    break
                parts.append(bytes(view[start:nul]))
                start = nul + 1
            parts.append(bytes(view[start:end]))
        return tuple(parts)

    def _raise_bad_magic(self, magic: bytes, code: Optional[int] = None) -> None:
        command = _COMMANDS_BY_CODE.get(code, code) if code is not None else None
        raise ProtocolError(f"bad magic {bytes(magic)!r}, expected {self._expect_magic!r}",
                            command=command)

    def _next_text_line(self) -> Optional[TextLine]:
        if not self._allow_text:
            raise ProtocolError(f"text data {bytes(self._buf[self._pos:self._pos + 16])!r} "
                                "where a binary packet was expected")
        buf, pos = self._buf, self._pos
        newline = buf.find(b"\n", max(pos, self._scanned))
        if newline < 0:
            self._scanned = len(buf)
            if len(buf) - pos > self.max_packet_size:
                raise ProtocolError(f"text line longer than {self.max_packet_size} bytes")
            return None
        line = bytes(buf[pos:newline])
        self._pos = self._scanned = newline + 1
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        return TextLine(line, crlf)


# The text admin protocol's helpers live in gearman.admin_text; their names stay here.
from gearman.admin_text import LIST_COMMANDS as LIST_COMMANDS  # noqa: E402
from gearman.admin_text import AdminReplyReader as AdminReplyReader  # noqa: E402
from gearman.admin_text import pack_text as pack_text  # noqa: E402
from gearman.admin_text import parse_err_line as parse_err_line  # noqa: E402


# python-gearman 2.0.2's module-level names (GEARMAN_COMMAND_*, pack_binary_command,
# ...) live in gearman.protocol_compat, loaded on first use of one of them here.
if TYPE_CHECKING:
    from gearman.protocol_compat import *  # noqa: F403
else:
    def __getattr__(name: str) -> Any:
        from gearman import protocol_compat
        if name in protocol_compat.__all__:
            return getattr(protocol_compat, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
