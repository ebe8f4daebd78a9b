"""The connection manager: owns the connections and the one ``selectors`` poll loop.

Client, worker and admin client derive from :class:`GearmanConnectionManager`.
A connection failure closes that connection, tells its command handler
(``on_io_error``) and is logged; it is never raised out of the poll loop.
"""
from __future__ import annotations

import logging
import selectors
import socket
from typing import Any, Callable, Dict, Iterable, Optional, TypeVar

from gearman import errors
from gearman.connection import GearmanConnection
from gearman.manager_core import REMOTE_FAULTS, ManagerCore
from gearman.util import Deadline

log = logging.getLogger(__name__)
_Manager = TypeVar("_Manager", bound="GearmanConnectionManager")

EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

__all__ = ["GearmanConnectionManager", "REMOTE_FAULTS", "EVENT_READ", "EVENT_WRITE"]


class GearmanConnectionManager(ManagerCore):
    """Base of client, worker and admin client: the servers (see
    :class:`~gearman.manager_core.ManagerCore`) and one ``selectors`` poll loop."""

    connection_class: Any = GearmanConnection
    #: selector class for the poll loop; set ``selectors.SelectSelector`` for green threads.
    selector_class: Any = selectors.DefaultSelector

    def __init__(self, host_list: Any = None, **options: Any) -> None:
        super().__init__(host_list, **options)
        self._interest: Dict[Any, int] = {}
        self._selector = self.selector_class()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, EVENT_READ, None)

    def establish_connection(self, connection: Any, timeout: Optional[float] = None) -> bool:
        """Connect ``connection`` if needed and set up its handler.  Never raises
        for a server that is down: it returns False and backs off that server."""
        if connection.connected:
            return True
        self._check_open()
        try:
            connection.connect(timeout=timeout)
        except errors.ConnectionError as exc:
            self._note_failure(connection, exc)
            return False
        return self._attach(connection)

    def _set_interest(self, connection: Any, events: int) -> None:
        """Register ``connection`` with the selector for ``events``, or change them."""
        if connection in self._interest:
            self._selector.modify(connection, events, connection)
        else:
            self._selector.register(connection, events, connection)
        self._interest[connection] = events

    def _forget(self, connection: Any) -> None:
        if self._interest.pop(connection, None) is not None:
            try:
                self._selector.unregister(connection)
            except (KeyError, ValueError, OSError):
                pass

    # -- the poll loop ----------------------------------------------------------
    def wakeup(self) -> None:
        """Make a blocked poll return at once (safe from other threads and signal handlers)."""
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def poll_connections_once(self, connections: Iterable[Any],
                              timeout: Optional[float] = None) -> bool:
        """One select() pass over the live ``connections``.  True if anything was ready."""
        self._check_open()  # the selector is gone: say so instead of ValueError from epoll
        selector, interest = self._selector, self._interest
        buffered = False
        for conn in connections:
            if not conn.connected:
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
            if interest.get(conn) != wanted:
                self._set_interest(conn, wanted)
            if not buffered:
                buffered = conn.has_buffered_input()
        ready = selector.select(0 if buffered else timeout)
        activity = False
        for key, mask in ready:
            conn = key.data
            if conn is None:
                self._drain_wakeups()
                continue
            activity = True
            self._service(conn, mask)
        if buffered:
            for conn in list(interest):
                if conn.connected and conn.has_buffered_input():
                    activity = True
                    self._service(conn, EVENT_READ)
        return activity

    def _service(self, conn: Any, mask: int) -> None:
        handler = self._handlers.get(conn)
        if handler is None:
            return
        try:
            if mask & EVENT_WRITE:
                conn.flush()
                if not conn.wants_write and self._interest.get(conn) != EVENT_READ:
                    # Drained: drop write interest now, or select() would report this
                    # socket writable again and again while others are polled (a spin).
                    self._set_interest(conn, EVENT_READ)
            if mask & EVENT_READ:
                dispatch = handler.dispatch
                for event in conn.read():
                    dispatch(event)
                    self._note_answered(conn)
        except REMOTE_FAULTS as exc:
            self._drop(conn, exc)
        except Exception as exc:  # a bug met on this connection's bytes: lose it, not us
            self.log.exception("unexpected error handling data from %s", conn.address)
            self._drop(conn, errors.ProtocolError(f"internal error: {exc!r}",
                                                  server=conn.address))

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def poll_connections_until_stopped(self, connections: Iterable[Any],
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

    def flush_connections(self, connections: Iterable[Any], timeout: Optional[float]) -> None:
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

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self._wake_r.close()
                self._wake_w.close()
        except Exception:
            pass
