"""What client, worker and admin client keep about their servers, for both drivers.

:class:`ManagerCore` holds the settings, the :class:`~gearman.server_pool.ServerPool`
(one record per server: connection, handler, backoff, last failure) and what
happens when a session starts or a connection fails.  It does no I/O and never
waits: the blocking :class:`~gearman.connection_manager.GearmanConnectionManager`
(a ``selectors`` loop) and the asyncio
:class:`~gearman.aio.manager.AsyncConnectionManager` add connecting, polling and
closing.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Generic, Iterable, List, Optional, Type, TypeVar

from gearman import errors
from gearman.command_handler import GearmanCommandHandler
from gearman.connection_state import ConnectionState
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PACKET_SIZE
from gearman.encoders import DataEncoder, to_wire_bytes
from gearman.job import GearmanJob, GearmanJobRequest
from gearman.protocol import Event
from gearman.server_pool import ServerPool, ServerRecord
from gearman.shapes import HostItem, Payload
from gearman.util import Backoff, HostAddress, parse_host, parse_host_list

#: Failures of one connection: they cost that connection, never the process.
REMOTE_FAULTS = (errors.ConnectionError, errors.ProtocolError, errors.InvalidClientState,
                 errors.InvalidWorkerState, errors.InvalidAdminClientState)


#: The connection class of a driver (GearmanConnection, AsyncConnection).
C = TypeVar("C", bound=ConnectionState)


class ManagerCore(Generic[C]):
    """Settings, servers and their sessions and health; no I/O."""

    command_handler_class: Type[GearmanCommandHandler] = GearmanCommandHandler
    connection_class: Any  # each driver sets its connection class
    job_class: Type[GearmanJob] = GearmanJob
    job_request_class: Type[GearmanJobRequest] = GearmanJobRequest
    data_encoder: Type[DataEncoder] = DataEncoder
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
        self._closed = False
        for address in parse_host_list(host_list):
            self.add_connection(address)

    # -- connections ------------------------------------------------------------
    def add_connection(self, host: HostItem, port: Optional[int] = None,
                       **tls: Optional[str]) -> C:
        """Add one server (any ``host_list`` form) and return its connection object."""
        address = host if isinstance(host, HostAddress) else None
        if address is None:
            address = parse_host((host, port) if port is not None else host)
        connection: C = self.connection_class(
            address.host, address.port, tls.get("keyfile", address.keyfile),
            tls.get("certfile", address.certfile), tls.get("ca_certs", address.ca_certs),
            tls=address.tls or bool(tls), connect_timeout=self.connect_timeout,
            keepalive=self.keepalive, max_packet_size=self.max_packet_size, trace=self.trace)
        connection.allow_text = getattr(self.command_handler_class, "accepts_text", True)
        self.server_pool.add(connection)
        return connection

    def add_ssl_connection(self, host: str, port: int, keyfile: Optional[str],
                           certfile: Optional[str], ca_certs: Optional[str]) -> C:
        """2.x name: add a TLS server."""
        return self.add_connection(host, port, keyfile=keyfile, certfile=certfile,
                                   ca_certs=ca_certs)

    def connection_named(self, server: HostItem) -> C:
        """The connection for ``server`` (a connection, or any ``host_list`` form)."""
        if isinstance(server, ConnectionState) or hasattr(server, "gearman_host"):
            return server  # type: ignore[no-any-return]
        wanted = parse_host(server)
        for connection in self.connection_list:
            if (connection.gearman_host, connection.gearman_port) == (wanted.host, wanted.port):
                return connection
        raise ValueError(f"server {server!r} is not in this {type(self).__name__}'s host_list")

    @property
    def connection_list(self) -> List[C]:
        """2.x name: every server's connection, in host_list order."""
        return self.server_pool.connections

    @connection_list.setter
    def connection_list(self, connections: List[C]) -> None:
        self.server_pool.connections = connections

    @property
    def reconnect_backoff(self) -> Backoff:
        """How long a failed server waits before the next connect."""
        return self.server_pool.backoff

    @reconnect_backoff.setter
    def reconnect_backoff(self, backoff: Backoff) -> None:
        self.server_pool.backoff = backoff

    def handler_for(self, connection: C) -> Optional[GearmanCommandHandler]:
        """The command handler of ``connection``'s session, or None."""
        return self.server_pool.handler_for(connection)  # type: ignore[no-any-return]

    @property
    def connection_to_handler_map(self) -> Dict[C, GearmanCommandHandler]:
        """2.x name: live connection -> its command handler."""
        return self.server_pool.live()

    @property
    def handler_to_connection_map(self) -> Dict[GearmanCommandHandler, C]:
        """2.x name: command handler -> its connection."""
        return {handler: connection for connection, handler in self.server_pool.live().items()}

    def connection_is_due(self, connection: C) -> bool:
        """False while a failed server waits out its backoff."""
        return self.server_pool.is_due(connection)

    def next_retry_in(self) -> Optional[float]:
        """Seconds until the earliest down connection may be tried again, if any is down."""
        return self.server_pool.next_retry_in()

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

    def _note_failure(self, connection: C, exc: BaseException, backoff: bool = True) -> None:
        delay = self.server_pool.connection_failed(connection, exc, backoff)
        failures = self.server_pool.record(connection).failures
        if delay is None:
            self.log.warning("%s (try %d; may reconnect at once)", exc, failures)
        else:
            self.log.warning("%s (try %d; next in %.2fs)", exc, failures, delay)

    def drop_connection(self, connection: C, exc: BaseException) -> None:
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

    def handle_error(self, current_connection: C,
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

    def _detach(self, connection: C) -> Optional[GearmanCommandHandler]:
        """Close ``connection``, out of the poll loop, and return its former handler."""
        record = self.server_pool.record(connection)
        self._forget(record)
        connection.close()
        handler: Optional[GearmanCommandHandler] = self.server_pool.detach(connection)
        return handler

    def _check_open(self) -> None:
        if self._closed:
            raise self.closed_error(f"{type(self).__name__} is closed")

    def _attach(self, connection: C) -> bool:
        """Give a freshly connected ``connection`` its handler and send its opening
        packets; False (the connection dropped) if that already fails."""
        handler = self.command_handler_class(connection_manager=self, connection=connection)
        self.server_pool.attach(connection, handler)
        try:
            handler.initial_state(**self.handler_initial_state())
        except REMOTE_FAULTS as exc:
            self._drop(connection, exc)
            return False
        return True

    def _dispatch_events(self, record: ServerRecord,
                         read: Callable[[], Iterable[Event]]) -> None:
        """Hand the events ``read()`` parses to the server's handler.  A fault of the
        server (or a bug met on its bytes) costs that connection, never the caller."""
        handler, connection = record.handler, record.connection
        if handler is None:
            return
        try:
            dispatch = handler.dispatch
            for event in read():
                dispatch(event)
                if record.failures:  # the server answered sensibly: backoff starts over
                    record.failures = 0
        except REMOTE_FAULTS as exc:
            self._drop(connection, exc)
        except Exception as exc:  # a bug in our own code: loud, with its traceback
            self._internal_error(connection, exc)

    def _internal_error(self, connection: C, exc: Exception) -> None:
        """A bug met while handling ``connection``'s data: log it loudly and lose
        that connection, never the process."""
        self.log.error("internal error handling data from %s (a bug in gearman or in a "
                       "subclass, not a fault of the server); dropping the connection",
                       connection.address, exc_info=True)
        self._drop(connection, errors.ConnectionError(
            connection.gearman_host, connection.gearman_port,
            f"dropped after an internal error: {exc!r}"))

    def _forget(self, record: ServerRecord) -> None:
        """Stop watching the server's connection (the blocking driver unregisters it)."""

    def _close_all(self) -> None:
        """Close every connection, telling each handler."""
        for record in list(self.server_pool.records()):
            self._end_session(record)
