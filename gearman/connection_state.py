"""A connection's sans-IO half: who the server is, the packets queued for it and
the parser of what it sends.

The blocking :class:`~gearman.connection.GearmanConnection` (a non-blocking
socket) and the asyncio :class:`~gearman.aio.connection.AsyncConnection` (an
``asyncio.Protocol``) both derive from :class:`ConnectionState` and add only
their own way of moving bytes: :meth:`ConnectionState.flush` and feeding
:meth:`ConnectionState.received`.
"""
from __future__ import annotations

import collections
import logging
from typing import Deque, Iterator, Optional, Tuple, Union

from gearman import errors
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_GEARMAN_PORT, DEFAULT_MAX_PACKET_SIZE
from gearman.protocol import REQ, RES, Command, Event, PacketParser, pack_header_and_body
from gearman.util import format_address

log = logging.getLogger("gearman.connection")

#: Bytes a packet may carry beside its payload (handle, task, unique...).
FIELD_HEADROOM = 4096
#: Payloads at least this big are queued by reference, never copied.
BY_REFERENCE = 32 * 1024
#: Small packets queued beyond this are handed to the transport at once (see send_command).
EARLY_FLUSH = 256 * 1024

Chunk = Union[bytes, bytearray, memoryview]


class ConnectionState:
    """Identity, outgoing queue and parser of one connection to ``host:port``."""

    def __init__(self, host: str, port: int = DEFAULT_GEARMAN_PORT, keyfile: Optional[str] = None,
                 certfile: Optional[str] = None, ca_certs: Optional[str] = None, *,
                 tls: bool = False, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 keepalive: bool = False, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
                 trace: bool = False) -> None:
        self.gearman_host = host
        self.gearman_port = int(port)
        self.keyfile, self.certfile, self.ca_certs = keyfile, certfile, ca_certs
        self.tls = tls or bool(ca_certs or certfile or keyfile)
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_packet_size = max_packet_size
        self.trace = trace
        #: Admin text lines are legal only where admin commands are sent; elsewhere a
        #: stray non-NUL byte drops the connection at once instead of being buffered
        #: (up to max_packet_size) in search of a line end.  Set by the manager.
        self.allow_text = True
        self.connected = False
        #: ``time.monotonic()`` when bytes last came in: a connection that heard from
        #: its server a moment ago needs no look for a close before a write
        #: (:func:`gearman.submit_paths.may_hold_unread_close`)
        self.last_received = 0.0
        self._out: Deque[Chunk] = collections.deque()
        self._out_size = 0
        self._flush_at = EARLY_FLUSH
        self._parser = self._new_parser()

    # -- identity -------------------------------------------------------
    @property
    def address(self) -> str:
        return format_address(self.gearman_host, self.gearman_port)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<{type(self).__name__} {self.address} {state}{' tls' if self.tls else ''}>"

    def _error(self, reason: str) -> errors.ConnectionError:
        return errors.ConnectionError(self.gearman_host, self.gearman_port, reason)

    # -- session ----------------------------------------------------------
    def _new_parser(self) -> PacketParser:
        # Headroom for the handle and other fields beside a maximal payload.
        return PacketParser(expect_magic=RES, max_packet_size=self.max_packet_size +
                            FIELD_HEADROOM, allow_text=self.allow_text)

    def _start_session(self) -> None:
        """A fresh parser and an empty queue for a new connection."""
        self._parser = self._new_parser()
        self._clear_outgoing()
        self.connected = True
        self.last_received = 0.0  # a new connection has not heard from its server yet
        log.debug("connected to %s", self.address)

    def _clear_outgoing(self) -> None:
        self._out.clear()
        self._out_size = 0
        self._flush_at = EARLY_FLUSH

    # -- sending ----------------------------------------------------------
    def send_command(self, command: Command, args: Tuple[bytes, ...] = ()) -> None:
        """Queue one packet (its arguments checked first); it goes out on the next
        :meth:`flush`."""
        header, payload = pack_header_and_body(command, args, REQ)
        if not self.connected:
            raise self._error(f"cannot send {command.name}: not connected")
        if self.trace:
            log.debug("%s <- %s %r", self.address, command.name, args)
        self._queue(header, payload)
        if self._out_size >= self._flush_at and len(payload) < BY_REFERENCE:
            self._flush_early()

    def _flush_early(self) -> None:
        """A batch of 100,000 small jobs would otherwise pile up here (6 MiB and
        more) before the first byte leaves; sending as we go keeps the buffer small
        and lets the server start.  At most one try per EARLY_FLUSH bytes queued."""
        try:
            self.flush()
        except errors.ConnectionError:
            pass  # the driver's next flush meets the error again and drops the connection
        self._flush_at = self._out_size + EARLY_FLUSH

    def send_text(self, line: bytes) -> None:
        """Queue one admin text command line."""
        if not self.connected:
            raise self._error(f"cannot send {line!r}: not connected")
        self._queue(line if type(line) is bytes else bytes(line))

    def _queue(self, head: Chunk, payload: Chunk = b"") -> None:
        """Append to the outgoing buffer.  ``head`` (a packet header with the fields
        before the payload, or an admin line: always small) joins the last bytearray;
        a ``bytes`` payload of BY_REFERENCE bytes or more is queued by reference, never
        copied; the connection never keeps a caller's mutable buffer."""
        out = self._out
        if not out:
            self._queue_started()
        self._out_size += len(head) + len(payload)
        if out and type(out[-1]) is bytearray:
            tail = out[-1]
            tail += head
        else:
            tail = bytearray(head)
            out.append(tail)
        if len(payload) >= BY_REFERENCE:
            # Only immutable bytes are kept by reference; anything else the caller
            # still owns (later headers would be appended to a queued bytearray,
            # and flush() trims it), so it is copied once here.
            out.append(payload if type(payload) is bytes else bytes(payload))
        elif payload:
            tail += payload

    def _queue_started(self) -> None:
        """Bytes are about to join an empty queue (a driver may schedule its write)."""

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    @property
    def pending_bytes(self) -> int:
        """Bytes queued but not yet accepted by the transport."""
        return self._out_size

    def flush(self) -> None:
        """Hand queued bytes to the transport (each driver says how)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the transport and drop the queue (each driver says how)."""
        raise NotImplementedError

    # -- receiving --------------------------------------------------------
    def received(self, data: Chunk) -> Iterator[Event]:
        """Feed bytes from the server; yield the complete events they finish.

        Raises :class:`~gearman.errors.ProtocolError` on bytes that break the protocol.
        """
        self._parser.feed(data)
        return self._events()

    def _events(self) -> Iterator[Event]:
        parser = self._parser
        while True:
            try:
                event = parser.next_event()
            except errors.ProtocolError as exc:
                exc.server = self.address
                raise
            if event is None:
                return
            if self.trace:
                log.debug("%s -> %r", self.address, event)
            yield event
