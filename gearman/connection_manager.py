"""The connection manager: owns the connections and the one ``selectors`` poll loop.

Client, worker and admin client derive from :class:`GearmanConnectionManager`.
A connection failure closes that connection, tells its command handler
(``on_io_error``) and is logged; it is never raised out of the poll loop.
"""
from __future__ import annotations

import selectors
import socket
from typing import Callable, Iterable, Optional, Type, TypeVar

from gearman import errors
from gearman.connection import GearmanConnection
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE
from gearman.manager_core import REMOTE_FAULTS, ManagerCore
from gearman.server_pool import ServerRecord
from gearman.shapes import HostItem
from gearman.util import Deadline

_Manager = TypeVar("_Manager", bound="GearmanConnectionManager")

EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

__all__ = ["GearmanConnectionManager", "REMOTE_FAULTS", "EVENT_READ", "EVENT_WRITE"]


class GearmanConnectionManager(ManagerCore[GearmanConnection]):
    """Base of client, worker and admin client: the servers (see
    :class:`~gearman.manager_core.ManagerCore`) and one ``selectors`` poll loop."""

    connection_class: Type[GearmanConnection] = GearmanConnection
    #: selector class for the poll loop; set ``selectors.SelectSelector`` for green threads.
    selector_class: Type[selectors.BaseSelector] = selectors.DefaultSelector

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        super().__init__(host_list, connect_timeout=connect_timeout, keepalive=keepalive,
                         max_packet_size=max_packet_size, trace=trace)
        self._selector = self.selector_class()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, EVENT_READ, None)

    def establish_connection(self, connection: GearmanConnection,
                             timeout: Optional[float] = None) -> bool:
        """Connect ``connection`` if needed and set up its handler.  Never raises
        for a server that is down: it returns False and backs off that server."""
        record = self.server_pool.record(connection)
        if connection.connected and record.handler is not None:
            return True
        self._check_open()
        if record.handler is not None or record.registered_fd is not None:
            self._end_session(record)  # closed behind our back: end that session first
        try:
            connection.connect(timeout=timeout)
        except errors.ConnectionError as exc:
            self._note_failure(connection, exc)
            return False
        return self._attach(connection)

    def _set_interest(self, record: ServerRecord, events: int) -> None:
        """Register the server's socket with the selector for ``events``, or change them.
        The selector is keyed by file descriptor, kept in the record: a connection
        closed behind our back is unregistered by it, never by a fileno() it lost."""
        fd = record.connection.fileno()
        if record.registered_fd == fd:
            self._selector.modify(fd, events, record)
        else:
            self._forget(record)
            stale = self._selector.get_map().get(fd)
            if stale is not None and isinstance(stale.data, ServerRecord):
                self._forget(stale.data)  # a closed socket's fd, now reused by this one
            self._selector.register(fd, events, record)
            record.registered_fd = fd
        record.interest = events

    def _forget(self, record: ServerRecord) -> None:
        fd, record.registered_fd, record.interest = record.registered_fd, None, 0
        if fd is not None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    # -- the poll loop ----------------------------------------------------------
    def wakeup(self) -> None:
        """Make a blocked poll return at once (safe from other threads and signal handlers)."""
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def poll_connections_once(self, connections: Iterable[GearmanConnection],
                              timeout: Optional[float] = None) -> bool:
        """One select() pass over the live ``connections``.  True if anything was ready."""
        if self._closed:  # the selector is gone; say so instead of ValueError from epoll
            raise self.closed_error(f"{type(self).__name__} is closed")
        record_of = self.server_pool.record
        buffered = False
        for conn in connections:
            record = record_of(conn)
            if not conn.connected:
                if record.handler is not None:  # closed behind our back (by the user)
                    self._end_session(record)
                continue
            wanted = EVENT_READ
            if conn.wants_write:  # write eagerly: most sends finish without waiting
                try:
                    conn.flush()
                except REMOTE_FAULTS as exc:
                    self._drop(conn, exc)
                    continue
                if conn.wants_write:
                    wanted = EVENT_READ | EVENT_WRITE
            if record.interest != wanted:
                self._set_interest(record, wanted)
            if not buffered:
                buffered = conn.has_buffered_input()
        ready = self._selector.select(0 if buffered else timeout)
        activity = False
        for key, mask in ready:
            record = key.data
            if record is None:
                self._drain_wakeups()
                continue
            activity = True
            self._service(record, mask)
        if buffered:
            for record in list(self.server_pool.records()):
                conn = record.connection
                if record.interest and conn.connected and conn.has_buffered_input():
                    activity = True
                    self._service(record, EVENT_READ)
        return activity

    def _service(self, record: ServerRecord, mask: int) -> None:
        handler, conn = record.handler, record.connection
        if handler is None:
            return
        if mask & EVENT_WRITE:
            try:
                conn.flush()
            except REMOTE_FAULTS as exc:
                self._drop(conn, exc)
                return
            if not conn.wants_write and record.interest != EVENT_READ:
                # Drained: drop write interest now, or select() would report this
                # socket writable again and again while others are polled (a spin).
                self._set_interest(record, EVENT_READ)
        if mask & EVENT_READ:
            self._dispatch_events(record, conn.read)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def poll_connections_until_stopped(self, connections: Iterable[GearmanConnection],
                                       callback_fxn: Callable[[bool], bool],
                                       timeout: Optional[float] = None) -> bool:
        """Poll until ``callback_fxn(any_activity)`` returns False or ``timeout`` passes.

        ``timeout=None`` polls for ever, ``0`` does exactly one pass.  Returns
        whether the last pass saw activity.
        """
        deadline = Deadline(timeout)
        connections = list(connections)
        while True:
            any_activity = self.poll_connections_once(connections, deadline.remaining())
            if not callback_fxn(any_activity) or deadline.expired():
                return any_activity

    def flush_connections(self, connections: Iterable[GearmanConnection],
                          timeout: Optional[float]) -> None:
        """Poll until everything queued on ``connections`` has been sent."""
        deadline = Deadline(timeout)
        pending = [c for c in connections if c.connected and c.wants_write]
        while pending:
            for conn in pending:
                try:
                    conn.flush()
                except REMOTE_FAULTS as exc:
                    self._drop(conn, exc)
            pending = [c for c in pending if c.connected and c.wants_write]
            if not pending or deadline.expired():
                return
            self.poll_connections_once(pending, deadline.remaining())

    # -- shutdown -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Close every connection.  The object can connect again afterwards."""
        self._close_all()

    def close(self) -> None:
        """Close every connection and release the poll loop for good."""
        if self._closed:
            return
        self.shutdown()
        self._closed = True
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self: _Manager) -> _Manager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._wake_r.close()
                self._wake_w.close()
        except Exception:
            pass
