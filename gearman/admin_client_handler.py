"""Admin protocol state for one connection: a FIFO of sent admin commands,
each assembling its text reply (protocol.md §7)."""
from __future__ import annotations

import collections
import logging
from typing import Any, Deque, NoReturn, Optional

from gearman.command_handler import GearmanCommandHandler
from gearman.errors import InvalidAdminClientState
from gearman.protocol import AdminReplyReader, Command, TextLine, pack_text
from gearman.seams import AdminOwner, Connection

log = logging.getLogger(__name__)


class AdminQuery:
    """One admin command in flight and, once answered, its raw reply."""

    __slots__ = ("command", "args", "reader", "result", "error", "done", "connection",
                 "server")

    def __init__(self, command: str, *args: Any) -> None:
        self.command, self.args = command, args
        self.reader = AdminReplyReader(command) if command != "echo" else None
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = False
        self.connection: Any = None  # the connection it was sent on
        self.server = "?"


class GearmanAdminClientCommandHandler(GearmanCommandHandler):
    """Sends admin commands on one connection and matches replies in order."""

    accepts_text = True

    connection_manager: AdminOwner

    def __init__(self, connection_manager: AdminOwner, connection: Connection) -> None:
        super().__init__(connection_manager, connection)
        self._queries: Deque[AdminQuery] = collections.deque()

    def send_query(self, query: AdminQuery) -> None:
        query.connection, query.server = self.connection, self.server
        if query.reader is None:
            self.send_command(Command.ECHO_REQ, query.args[0])
        else:
            words = query.command.split(" ")
            self.connection.send_text(pack_text(words[0], *(words[1:] + list(query.args))))
        self._queries.append(query)

    def _finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        query = self._queries.popleft()
        query.result, query.error, query.done = result, error, True
        self.connection_manager.note_status(query)

    def _front(self, what: str) -> AdminQuery:
        if not self._queries:
            raise InvalidAdminClientState(f"gearmand at {self.server} sent {what} nobody "
                                          "asked for")
        return self._queries[0]

    def _out_of_step(self, message: str) -> NoReturn:
        """Fail the query in front with ``message`` and raise, so the connection
        (whose later replies can no longer be matched) is dropped."""
        error = InvalidAdminClientState(f"gearmand at {self.server} {message}")
        self._finish(error=error)
        raise error

    def recv_text_line(self, line: TextLine) -> None:
        query = self._front(f"text line {line.line[:60]!r}")
        if query.reader is None:
            self._out_of_step(f"sent text {line.line[:60]!r} where ECHO_RES was expected")
        reply = query.reader.add(line)
        if reply is not None:
            self._finish(reply)

    def recv_echo_res(self, data: bytes) -> None:
        query = self._front("ECHO_RES")
        if query.reader is not None:
            self._out_of_step(f"sent ECHO_RES where the reply to {query.command!r} was "
                              "expected")
        self._finish(data)

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        self._front("ERROR")
        self._finish(error=self.server_error(error_code, error_text, "ECHO_REQ"))

    def on_io_error(self) -> None:
        while self._queries:
            self._finish(error=None)
