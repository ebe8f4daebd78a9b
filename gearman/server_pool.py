"""The server pool: one record per server, and the rules for choosing among them.

Each :class:`ServerRecord` holds everything known about one server: its
connection, the command handler of the live session, the failure count and
backoff, why it last failed, and the selector interest the driver registered
for it.  :class:`ServerPool` owns the records and answers the questions the
client, worker and admin client ask ("which live connection for this unique
id", "this connection failed", "is this server due for a reconnect").

Driver-free: no sockets, no selectors, no blocking calls.  The blocking
manager (connection_manager.py) and the asyncio front end both drive it.
"""
from __future__ import annotations

import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Set

from gearman.util import Backoff, to_bytes


class ServerRecord:
    """One server: its connection and everything the pool knows about it."""

    __slots__ = ("connection", "handler", "failures", "retry_at", "last_failure",
                 "interest", "registered_fd", "pending_error")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        #: the command handler of the current session; None while disconnected
        self.handler: Any = None
        #: failures since the server last answered sensibly (drives the backoff)
        self.failures = 0
        #: monotonic time before which no reconnect is tried (0.0: due now)
        self.retry_at = 0.0
        #: why the server last failed, for messages
        self.last_failure: Optional[BaseException] = None
        #: selector events the driver registered (0: not registered)
        self.interest = 0
        #: the file descriptor the selector holds for this server: a connection the
        #: user closed can no longer say its fileno(), so it is unregistered by this
        self.registered_fd: Optional[int] = None
        #: why the connection is being dropped, while handle_error() runs
        self.pending_error: Optional[BaseException] = None

    def __repr__(self) -> str:
        return (f"<ServerRecord {getattr(self.connection, 'address', '?')} "
                f"failures={self.failures} live={self.handler is not None}>")


class ServerPool:
    """The records of one client, worker or admin client, in host_list order."""

    def __init__(self, backoff: Optional[Backoff] = None) -> None:
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        #: the connections in host_list order: the manager's 2.x ``connection_list``
        self.connections: List[Any] = []
        self._records: Dict[Any, ServerRecord] = {}
        self._sessions = 0
        #: records with a retry_at set: the worker asks on every pass whether any is
        #: backed off, so that answer is a set's truth, not a scan
        self._backed_off: Set[ServerRecord] = set()

    # -- membership ---------------------------------------------------------------
    def add(self, connection: Any) -> ServerRecord:
        """Add a server (its connection object) at the end of the order."""
        self.connections.append(connection)
        return self.record(connection)

    def record(self, connection: Any) -> ServerRecord:
        """The record of ``connection``; made on first use, so a connection a 2.x
        subclass appended to ``connection_list`` by hand still gets one."""
        record = self._records.get(connection)
        if record is None:
            record = self._records[connection] = ServerRecord(connection)
        return record

    def records(self) -> Iterator[ServerRecord]:
        """Every record, in host_list order."""
        for connection in self.connections:
            yield self.record(connection)

    # -- sessions -----------------------------------------------------------------
    def handler_for(self, connection: Any) -> Any:
        """The command handler of ``connection``'s live session, or None."""
        record = self._records.get(connection)
        return None if record is None else record.handler

    def attach(self, connection: Any, handler: Any) -> None:
        """A session started: ``handler`` serves it; the server is due again.  The
        failure count stays until the server answers sensibly (see :meth:`answered`):
        one that accepts and then drops keeps backing off."""
        record = self.record(connection)
        if record.handler is None:
            self._sessions += 1
        record.handler = handler
        record.retry_at = 0.0
        self._backed_off.discard(record)

    def detach(self, connection: Any) -> Any:
        """The session ended; returns its former handler (None if there was none)."""
        record = self.record(connection)
        handler, record.handler = record.handler, None
        if handler is not None:
            self._sessions -= 1
        return handler

    def live(self) -> Dict[Any, Any]:
        """Connection -> handler for every session, live or not yet noticed dead."""
        return {record.connection: record.handler for record in self.records()
                if record.handler is not None}

    def live_handlers(self) -> List[Any]:
        """Handlers of the sessions whose connection is up, in host_list order."""
        return [record.handler for record in self.records()
                if record.handler is not None and record.connection.connected]

    def session_count(self) -> int:
        """How many sessions are open (a counter: the worker asks on every pass)."""
        return self._sessions

    # -- health -------------------------------------------------------------------
    def connection_failed(self, connection: Any, exc: BaseException,
                          backoff: bool = True) -> Optional[float]:
        """Count a failure of ``connection``; with ``backoff`` the server is not due
        for a while.  Returns the delay chosen, or None (due at once)."""
        record = self.record(connection)
        record.failures += 1
        record.last_failure = exc
        if not backoff:
            record.retry_at = 0.0
            self._backed_off.discard(record)
            return None
        delay = self.backoff.compute(record.failures)
        record.retry_at = time.monotonic() + delay
        self._backed_off.add(record)
        return delay

    def is_due(self, connection: Any) -> bool:
        """False while a failed server waits out its backoff."""
        record = self._records.get(connection)
        return record is None or time.monotonic() >= record.retry_at

    def any_backed_off(self) -> bool:
        """Whether a server failed and has not had a session since (its backoff may
        have run out already: then :meth:`next_retry_in` says 0)."""
        return bool(self._backed_off)

    def next_retry_in(self) -> Optional[float]:
        """Seconds until the earliest down server may be tried again, if any is down."""
        if not self._backed_off:
            return None
        pending = [record.retry_at for record in self._backed_off
                   if not record.connection.connected]
        if not pending:
            return None
        return max(0.0, min(pending) - time.monotonic())

    def forget_backoff(self) -> None:
        """Make every server due now (a fresh try each when all are down)."""
        for record in self._backed_off:
            record.retry_at = 0.0
        self._backed_off.clear()

    def last_failure(self, connection: Any) -> Optional[BaseException]:
        return self.record(connection).last_failure

    def clear_last_failure(self, connection: Any) -> None:
        self.record(connection).last_failure = None

    # -- choosing a server ------------------------------------------------------------
    def failover_order(self, unique: Optional[str], after: Any = None) -> List[Any]:
        """Servers for a unique id: a stable crc32 hash picks the first, the rest
        follow in host_list order with wrap-around.  With ``after`` (the server that
        last dropped the request) the order starts at the server after it, so a
        retry goes to the next server and the one that dropped it comes last."""
        connections = self.connections
        count = len(connections)
        if count < 2:
            return list(connections)
        start = zlib.crc32(to_bytes(unique or "", "unique")) % count
        if after is not None:
            try:
                start = connections.index(after) + 1
            except ValueError:
                pass
            start %= count
        return connections[start:] + connections[:start]

    def candidates(self, unique: Optional[str], after: Any = None) -> Iterator[Any]:
        """Connections worth trying for a request, in failover order: the live ones
        and the down ones due for a reconnect (the caller connects those)."""
        for connection in self.failover_order(unique, after):
            if connection.connected or self.is_due(connection):
                yield connection

    def live_connection_for(self, unique: Optional[str], after: Any = None) -> Any:
        """The first connected server in the failover order, or None."""
        for connection in self.failover_order(unique, after):
            if connection.connected and self.handler_for(connection) is not None:
                return connection
        return None
