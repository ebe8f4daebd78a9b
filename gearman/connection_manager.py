"""The connection manager: owns the connections and the one ``selectors`` poll loop.

Client, worker and admin client derive from :class:`GearmanConnectionManager`.
A connection failure closes that connection, tells its command handler
(``on_io_error``) and is logged; it is never raised out of the poll loop.
"""
from __future__ import annotations

import logging
import selectors
import socket
from typing import Callable, Dict, Iterable, List, Optional, Type, TypeVar

from gearman import errors
from gearman.command_handler import GearmanCommandHandler
from gearman.connection import GearmanConnection
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE
from gearman.encoders import DataEncoder, to_wire_bytes
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.server_pool import ServerPool, ServerRecord
from gearman.shapes import HostItem, Payload
from gearman.util import Backoff, Deadline, HostAddress, parse_host, parse_host_list

_Manager = TypeVar("_Manager", bound="GearmanConnectionManager")

EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

#: Failures of one connection: they cost that connection, never the process.
REMOTE_FAULTS = (errors.ConnectionError, errors.ProtocolError, errors.InvalidClientState,
                 errors.InvalidWorkerState, errors.InvalidAdminClientState)


class GearmanConnectionManager:
    """Base of client, worker and admin client: host list, connections, poll loop."""

    command_handler_class: Type[GearmanCommandHandler] = GearmanCommandHandler
    connection_class: Type[GearmanConnection] = GearmanConnection
    job_class: Type[GearmanJob] = GearmanJob
    job_request_class: Type[GearmanJobRequest] = GearmanJobRequest
    data_encoder: Type[DataEncoder] = DataEncoder
    #: selector class for the poll loop; set ``selectors.SelectSelector`` for green threads.
    selector_class: Type[selectors.BaseSelector] = selectors.DefaultSelector
    #: what using a closed object raises (each role has its own 2.x error class)
    closed_error: Type[errors.GearmanError] = errors.InvalidClientState
    #: whether losing an established connection backs its server off like a refused
    #: connect (the client reconnects at once instead: see GearmanClient)
    backoff_after_drop = True

    def __init__(self, host_list: Optional[Iterable[HostItem]] = None, *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, keepalive: bool = False,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, trace: bool = False) -> None:
        self.log = logging.getLogger(f"gearman.{type(self).__name__}")
        if not isinstance(max_packet_size, int) or max_packet_size <= 0:
            raise ValueError(f"max_packet_size must be a positive int, got {max_packet_size!r}")
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_packet_size = max_packet_size
        self.trace = trace
        self.server_pool = ServerPool(Backoff(base=0.1, cap=5.0))
        self._selector = self.selector_class()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, EVENT_READ, None)
        self._closed = False
        for address in parse_host_list(host_list):
            self.add_connection(address)

    # -- connections ------------------------------------------------------------
    def add_connection(self, host: HostItem, port: Optional[int] = None,
                       **tls: Optional[str]) -> GearmanConnection:
        """Add one server (any ``host_list`` form) and return its connection object."""
        address = host if isinstance(host, HostAddress) else None
        if address is None:
            address = parse_host((host, port) if port is not None else host)
        connection = self.connection_class(
            address.host, address.port, tls.get("keyfile", address.keyfile),
            tls.get("certfile", address.certfile), tls.get("ca_certs", address.ca_certs),
            tls=address.tls or bool(tls), connect_timeout=self.connect_timeout,
            keepalive=self.keepalive, max_packet_size=self.max_packet_size, trace=self.trace)
        connection.allow_text = getattr(self.command_handler_class, "accepts_text", True)
        self.server_pool.add(connection)
        return connection

    def add_ssl_connection(self, host: str, port: int, keyfile: Optional[str],
                           certfile: Optional[str], ca_certs: Optional[str]
                           ) -> GearmanConnection:
        """2.x name: add a TLS server."""
        return self.add_connection(host, port, keyfile=keyfile, certfile=certfile,
                                   ca_certs=ca_certs)

    def connection_named(self, server: HostItem) -> GearmanConnection:
        """The connection for ``server`` (a connection, or any ``host_list`` form)."""
        if isinstance(server, GearmanConnection) or hasattr(server, "gearman_host"):
            return server  # type: ignore[no-any-return]
        wanted = parse_host(server)
        for connection in self.connection_list:
            if (connection.gearman_host, connection.gearman_port) == (wanted.host, wanted.port):
                return connection
        raise ValueError(f"server {server!r} is not in this {type(self).__name__}'s host_list")

    @property
    def connection_list(self) -> List[GearmanConnection]:
        """2.x name: every server's connection, in host_list order."""
        return self.server_pool.connections

    @connection_list.setter
    def connection_list(self, connections: List[GearmanConnection]) -> None:
        self.server_pool.connections = connections

    @property
    def reconnect_backoff(self) -> Backoff:
        """How long a failed server waits before the next connect."""
        return self.server_pool.backoff

    @reconnect_backoff.setter
    def reconnect_backoff(self, backoff: Backoff) -> None:
        self.server_pool.backoff = backoff

    def handler_for(self, connection: GearmanConnection) -> Optional[GearmanCommandHandler]:
        """The command handler of ``connection``'s session, or None."""
        return self.server_pool.handler_for(connection)  # type: ignore[no-any-return]

    @property
    def connection_to_handler_map(self) -> Dict[GearmanConnection, GearmanCommandHandler]:
        """2.x name: live connection -> its command handler."""
        return self.server_pool.live()

    @property
    def handler_to_connection_map(self) -> Dict[GearmanCommandHandler, GearmanConnection]:
        """2.x name: command handler -> its connection."""
        return {handler: connection for connection, handler in self.server_pool.live().items()}

    def connection_is_due(self, connection: GearmanConnection) -> bool:
        """False while a failed server waits out its backoff."""
        return self.server_pool.is_due(connection)

    def next_retry_in(self) -> Optional[float]:
        """Seconds until the earliest down connection may be tried again, if any is down."""
        return self.server_pool.next_retry_in()

    def establish_connection(self, connection: GearmanConnection,
                             timeout: Optional[float] = None) -> bool:
        """Connect ``connection`` if needed and set up its handler.  Never raises
        for a server that is down: it returns False and backs off that server."""
        record = self.server_pool.record(connection)
        if connection.connected and record.handler is not None:
            return True
        if self._closed:
            raise self.closed_error(f"{type(self).__name__} is closed")
        if record.handler is not None or record.registered_fd is not None:
            self._end_session(record)  # closed behind our back: end that session first
        try:
            connection.connect(timeout=timeout)
        except errors.ConnectionError as exc:
            self._note_failure(connection, exc)
            return False
        handler = self.command_handler_class(connection_manager=self, connection=connection)
        self.server_pool.attach(connection, handler)
        try:
            handler.initial_state(**self.handler_initial_state())
        except REMOTE_FAULTS as exc:
            self._drop(connection, exc)
            return False
        return True

    def encode_payload(self, data: Payload) -> bytes:
        """``data`` as the bytes to send, by :attr:`data_encoder` (``str`` as UTF-8)."""
        payload = self.data_encoder.encode(data)
        if type(payload) is not bytes:
            payload = to_wire_bytes(payload, getattr(self.data_encoder, "__name__",
                                                     "data_encoder"))
        if len(payload) > self.max_packet_size:
            raise ValueError(f"data is {len(payload)} bytes, above max_packet_size="
                             f"{self.max_packet_size}")
        return payload

    def handler_initial_state(self) -> Dict[str, object]:
        """Keyword arguments for each new handler's ``initial_state``."""
        return {}

    def _note_failure(self, connection: GearmanConnection, exc: BaseException,
                      backoff: bool = True) -> None:
        delay = self.server_pool.connection_failed(connection, exc, backoff)
        failures = self.server_pool.record(connection).failures
        if delay is None:
            self.log.warning("%s (try %d; may reconnect at once)", exc, failures)
        else:
            self.log.warning("%s (try %d; next in %.2fs)", exc, failures, delay)

    def drop_connection(self, connection: GearmanConnection, exc: BaseException) -> None:
        """This connection failed: close it and fail what depended on it, through
        :meth:`handle_error` (which subclasses may override with python-gearman
        2.x's one-argument signature)."""
        record = self.server_pool.record(connection)
        record.pending_error = exc
        try:
            self.handle_error(connection)
        finally:
            record.pending_error = None

    _drop = drop_connection

    def handle_error(self, current_connection: GearmanConnection,
                     exc: Optional[BaseException] = None) -> None:
        """Close a failed connection, log why, and tell its handler."""
        connection = current_connection
        record = self.server_pool.record(connection)
        exc = exc or record.pending_error
        record.pending_error = None
        handler = self._detach(connection)
        self._note_failure(connection, exc or errors.ConnectionError(
            connection.gearman_host, connection.gearman_port, "connection failed"),
            backoff=self.backoff_after_drop)
        if handler is not None:
            handler.on_io_error()

    def _end_session(self, record: ServerRecord) -> None:
        """End a session without counting a failure (a close by the user)."""
        handler = self._detach(record.connection)
        if handler is not None:
            handler.on_io_error()

    def _detach(self, connection: GearmanConnection) -> Optional[GearmanCommandHandler]:
        """Close ``connection``, out of the poll loop, and return its former handler."""
        record = self.server_pool.record(connection)
        self._forget(record)
        connection.close()
        return self.server_pool.detach(connection)  # type: ignore[no-any-return]

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
        try:
            if mask & EVENT_WRITE:
                conn.flush()
                if not conn.wants_write and record.interest != EVENT_READ:
                    # Drained: drop write interest now, or select() would report this
                    # socket writable again and again while others are polled (a spin).
                    self._set_interest(record, EVENT_READ)
            if mask & EVENT_READ:
                dispatch = handler.dispatch
                for event in conn.read():
                    dispatch(event)
                    if record.failures:  # the server answered sensibly: backoff starts over
                        record.failures = 0
        except REMOTE_FAULTS as exc:
            self._drop(conn, exc)
        except Exception as exc:  # a bug in our own code: loud, with its traceback
            self.log.error("internal error handling data from %s (a bug in gearman or in a "
                           "subclass, not a fault of the server); dropping the connection",
                           conn.address, exc_info=True)
            self._drop(conn, errors.ConnectionError(
                conn.gearman_host, conn.gearman_port, f"dropped after an internal error: {exc!r}"))

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
        for record in list(self.server_pool.records()):
            self._end_session(record)

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
