"""The text admin protocol, sans IO: command lines out, reply lines assembled.

gearmand answers ``status``, ``workers``, ``version`` ... with text lines
(protocol.md §7); :class:`gearman.protocol.PacketParser` cuts them into
:class:`~gearman.protocol.TextLine` events and this module makes replies of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple, Union

if TYPE_CHECKING:
    from gearman.protocol import TextLine


def pack_text(command: str, *args: Union[str, bytes]) -> bytes:
    """One admin text command line, ended by CR LF as gearadmin sends it.

    Tokens may not contain whitespace: gearmand splits on spaces and drops a
    connection that sends more than five tokens (protocol.md §7.1).
    """
    tokens = [command.encode("ascii")]
    for arg in args:
        token = arg.encode("utf-8") if isinstance(arg, str) else bytes(arg)
        if not token or any(ch in token for ch in b" \t\r\n\0"):
            raise ValueError(f"admin command {command!r}: argument {arg!r} must be non-empty "
                             "and contain no whitespace or NUL")
        tokens.append(token)
    if len(tokens) > 5:
        raise ValueError(f"admin command {command!r} has {len(tokens)} tokens; gearmand "
                         "accepts at most 5")
    return b" ".join(tokens) + b"\r\n"


#: Admin commands whose reply is a list of lines closed by a lone ".".
LIST_COMMANDS = frozenset({"status", "workers", "show jobs", "show unique jobs",
                           "prioritystatus"})


class AdminReplyReader:
    """Assembles the text lines of one admin reply (protocol.md §7.2).

    Feed it :class:`TextLine` events; :meth:`add` returns the finished reply
    (a list of ``str`` lines for list commands, one ``str`` otherwise) or
    ``None`` while more lines are needed.  An ``ERR`` line ends any reply.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.is_list = command in LIST_COMMANDS
        self._lines: List[str] = []

    def add(self, line: TextLine) -> Optional[Union[str, List[str]]]:
        text = line.line.decode("utf-8", "replace")
        if not self.is_list:
            return text
        if line.crlf and (text.startswith("ERR ") or text == "ERR"):
            return text
        if text == ".":
            return self._lines
        self._lines.append(text)
        return None


def parse_err_line(text: str) -> Tuple[str, str]:
    """Split ``ERR CODE message+with+plus`` into (code, message with spaces)."""
    parts = text.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    message = parts[2].replace("+", " ") if len(parts) > 2 else ""
    return code, message
