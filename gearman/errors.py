"""The error tree.  Every error the library raises on purpose is a GearmanError.

Errors keep their context (server, command, job handle) as attributes, and
their ``args`` equal their constructor arguments so they survive pickling.
"""
from __future__ import annotations

from typing import Optional

from gearman.util import format_address


class GearmanError(Exception):
    """Base class for every error the library raises on purpose."""


class ConnectionError(GearmanError):
    """A socket-level failure talking to one server."""

    def __init__(self, host: str = "", port: int = 0, reason: str = "") -> None:
        super().__init__(host, port, reason)
        self.host, self.port, self.reason = host, port, reason

    def __str__(self) -> str:
        if not self.host:
            return self.reason
        return f"gearmand at {format_address(self.host, self.port)}: {self.reason}"


class ServerUnavailable(GearmanError):
    """No server in the host list could be reached."""


class ProtocolError(GearmanError):
    """Bytes that break the Gearman protocol, from either side."""

    def __init__(self, message: str = "", command: Optional[object] = None,
                 server: Optional[str] = None) -> None:
        super().__init__(message, command, server)
        self.message, self.command, self.server = message, command, server

    def __str__(self) -> str:
        parts = []
        if self.server:
            parts.append(f"gearmand at {self.server}")
        if self.command is not None:
            name = getattr(self.command, "name", self.command)
            parts.append(f"command {name}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class UnknownCommandError(ProtocolError):
    """A command number the protocol does not define, or one a role never expects."""


class ExceededConnectionAttempts(GearmanError):
    """A request used up all of its connection attempts."""


class InvalidClientState(GearmanError):
    """The client was asked to do something its state does not allow."""


class InvalidWorkerState(GearmanError):
    """The worker was asked to do something its state does not allow."""


class InvalidAdminClientState(GearmanError):
    """An admin command got no answer in time, or an answer out of step."""


class ServerError(GearmanError):
    """The server answered with an ERROR packet or an ``ERR`` admin line."""

    def __init__(self, code: str = "", text: str = "", server: Optional[str] = None,
                 command: Optional[str] = None) -> None:
        super().__init__(code, text, server, command)
        self.code, self.text, self.server, self.command = code, text, server, command

    def __str__(self) -> str:
        where = f"gearmand at {self.server}" if self.server else "gearmand"
        what = f" to {self.command!r}" if self.command else ""
        text = f": {self.text}" if self.text else ""
        return f"{where} answered{what} with {self.code}{text}"


class AdminCommandError(ServerError, InvalidAdminClientState):
    """An admin command was answered with ``ERR CODE text``."""
