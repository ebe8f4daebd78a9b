"""Per-connection protocol state shared by client, worker and admin handlers.

A handler sees :class:`~gearman.protocol.Packet` and ``TextLine`` events and
sends commands through its connection's ``send_command``; it never touches a
socket, so tests drive it with a fake connection that records what was sent.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from gearman.errors import ProtocolError, ServerError, UnknownCommandError
from gearman.protocol import Command, Packet, TextLine
from gearman.seams import Connection, HandlerOwner

log = logging.getLogger(__name__)


def _receiver_name(command: Command) -> str:
    return f"recv_{command.name.lower()}"


class GearmanCommandHandler:
    """Base handler: dispatches packets to ``recv_<command>`` methods.

    ``connection_manager`` is the client, worker or admin client that owns the
    connection; ``connection`` is used only to send (``send_command``) and to
    name the server in messages.
    """

    #: Whether the server may answer with admin text lines (only the admin protocol does).
    accepts_text = False

    connection_manager: HandlerOwner

    def __init__(self, connection_manager: HandlerOwner, connection: Connection) -> None:
        self.connection_manager = connection_manager
        self.connection = connection
        self.server = getattr(connection, "address", "?")
        cls = type(self)
        table = cls.__dict__.get("_receiver_table")
        if table is None:
            table = {command: _receiver_name(command) for command in Command
                     if hasattr(cls, _receiver_name(command))}
            cls._receiver_table = table  # type: ignore[attr-defined]
        self._receivers: Dict[Command, Callable[..., Any]] = {
            command: getattr(self, name) for command, name in table.items()}

    # -- lifecycle hooks ------------------------------------------------------
    def initial_state(self, **kwargs: Any) -> None:
        """Called once the connection is up, before any other traffic."""

    def on_io_error(self) -> None:
        """Called once when the connection has failed; mark what depended on it."""

    # -- encoding ------------------------------------------------------------------
    def encode_data(self, data: Any) -> Any:
        return self.connection_manager.data_encoder.encode(data)

    def decode_data(self, data: bytes) -> Any:
        return self.connection_manager.data_encoder.decode(data)

    # -- traffic -------------------------------------------------------------------
    def send_command(self, command: Command, *args: bytes) -> None:
        self.connection.send_command(command, args)

    def dispatch(self, event: Any) -> None:
        """Route one received event to its ``recv_*`` method."""
        if type(event) is TextLine:
            self.recv_text_line(event)
            return
        receiver = self._receivers.get(event.command)
        if receiver is None:
            raise UnknownCommandError(f"{type(self).__name__} does not expect this command",
                                      command=event.command, server=self.server)
        receiver(*event.args)

    def recv_command(self, packet: Packet) -> None:
        """2.x name for :meth:`dispatch`."""
        self.dispatch(packet)

    def recv_text_line(self, line: TextLine) -> None:
        raise ProtocolError(f"unexpected text line {line.line[:80]!r}", server=self.server)

    def recv_error(self, error_code: bytes, error_text: bytes) -> None:
        """An ERROR the subclass did not claim: log it; never stop processing."""
        log.warning("gearmand at %s sent ERROR %s: %s", self.server,
                    error_code.decode("utf-8", "replace"), error_text.decode("utf-8", "replace"))

    def server_error(self, error_code: bytes, error_text: bytes,
                     command: Optional[str] = None) -> ServerError:
        return ServerError(error_code.decode("utf-8", "replace"),
                           error_text.decode("utf-8", "replace"), self.server, command)
