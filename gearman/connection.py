"""One connection to one gearmand: a non-blocking socket (optionally TLS),
its :class:`~gearman.protocol.PacketParser` and an outgoing buffer.

This is the only module that touches ``socket`` and ``ssl``; every ``OSError``
is turned into :class:`gearman.errors.ConnectionError` here.
"""
from __future__ import annotations

import collections
import logging
import socket
from typing import Deque, Iterator, Optional, Tuple, Type, Union

from gearman import errors
from gearman.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_GEARMAN_PORT, DEFAULT_MAX_PACKET_SIZE
from gearman.protocol import REQ, RES, Command, Event, PacketParser, pack_header_and_body
from gearman.util import format_address

log = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024
#: Bytes a packet may carry beside its payload (handle, task, unique...).
_FIELD_HEADROOM = 4096
#: Payloads at least this big are queued by reference, never copied.
_BY_REFERENCE = 32 * 1024
#: Small packets queued beyond this are handed to the kernel at once (see send_command).
_EARLY_FLUSH = 256 * 1024

Chunk = Union[bytes, bytearray, memoryview]

#: What a non-blocking send or recv raises when it has to wait.  TLS adds ssl's
#: want-read/want-write errors; ``ssl`` itself (about 6 MiB of resident memory
#: for libssl and libcrypto) is imported only by a connection that uses TLS.
_WOULD_BLOCK: Tuple[Type[BaseException], ...] = (BlockingIOError,)


def _tls_would_block() -> Tuple[Type[BaseException], ...]:
    import ssl
    return (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class GearmanConnection:
    """A connection to ``host:port``.  Connects with a timeout, then never blocks."""

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
        self._would_block = _WOULD_BLOCK
        self._sock: Optional[socket.socket] = None
        self._out: Deque[Chunk] = collections.deque()
        self._out_size = 0
        self._flush_at = _EARLY_FLUSH
        # recv_into one reused buffer: recv(256 KiB) would mmap, mremap and munmap
        # a fresh 256 KiB object on every read (three system calls per packet).
        self._inbuf = memoryview(bytearray(_RECV_SIZE))

    # -- identity -------------------------------------------------------
    @property
    def address(self) -> str:
        return format_address(self.gearman_host, self.gearman_port)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<GearmanConnection {self.address} {state}{' tls' if self.tls else ''}>"

    def fileno(self) -> int:
        if self._sock is None:
            raise self._error("not connected")
        return self._sock.fileno()

    def _error(self, reason: str) -> errors.ConnectionError:
        return errors.ConnectionError(self.gearman_host, self.gearman_port, reason)

    # -- connect / close ------------------------------------------------
    def connect(self, timeout: Optional[float] = None) -> None:
        """Open the socket (resolving the host name again) within ``connect_timeout``.

        ``timeout`` is accepted for 2.x callers and ignored: a caller's short poll
        timeout must not make a server unreachable that merely needs a few ms.
        """
        if self.connected:
            return
        try:
            sock = socket.create_connection((self.gearman_host, self.gearman_port),
                                            timeout=self.connect_timeout)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            raise self._error(f"connect failed: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.tls:
                sock = self._wrap_tls(sock)
        except (OSError, ValueError) as exc:
            sock.close()
            raise self._error(f"TLS handshake failed: {exc}") from exc
        self.use_socket(sock)

    def use_socket(self, sock: socket.socket) -> None:
        """Adopt an already connected socket (a socketpair end in tests, a Unix socket)."""
        sock.setblocking(False)
        self._sock = sock
        if hasattr(sock, "pending"):  # an ssl.SSLSocket
            self.tls = True
        self._would_block = _tls_would_block() if self.tls else _WOULD_BLOCK
        # Headroom for the handle and other fields beside a maximal payload.
        self._parser = PacketParser(expect_magic=RES,
                                    max_packet_size=self.max_packet_size + _FIELD_HEADROOM,
                                    allow_text=self.allow_text)
        self._out.clear()
        self._out_size = 0
        self.connected = True
        log.debug("connected to %s", self.address)

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        import ssl
        context = ssl.create_default_context(cafile=self.ca_certs)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        # The handshake runs under the connect timeout, still in blocking mode.
        return context.wrap_socket(sock, server_hostname=self.gearman_host)

    def close(self) -> None:
        """Close the socket and drop anything buffered in either direction."""
        sock, self._sock = self._sock, None
        self.connected = False
        self._out.clear()
        self._out_size = 0
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

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
        if self._out_size >= self._flush_at and len(payload) < _BY_REFERENCE:
            self._flush_early()

    def _flush_early(self) -> None:
        """A batch of 100,000 small jobs would otherwise pile up here (6 MiB and
        more) before the first byte leaves; sending as we go keeps the buffer small
        and lets the server start.  At most one try per _EARLY_FLUSH bytes queued."""
        try:
            self.flush()
        except errors.ConnectionError:
            pass  # the poll loop's flush meets the error again and drops the connection
        self._flush_at = self._out_size + _EARLY_FLUSH

    def send_text(self, line: bytes) -> None:
        """Queue one admin text command line."""
        if not self.connected:
            raise self._error(f"cannot send {line!r}: not connected")
        self._queue(line if type(line) is bytes else bytes(line))

    def _queue(self, head: Chunk, payload: Chunk = b"") -> None:
        """Append to the outgoing buffer.  ``head`` (a packet header with the fields
        before the payload, or an admin line: always small) joins the last bytearray;
        a ``bytes`` payload of _BY_REFERENCE bytes or more is queued by reference, never
        copied; the connection never keeps a caller's mutable buffer."""
        out = self._out
        self._out_size += len(head) + len(payload)
        if out and type(out[-1]) is bytearray:
            tail = out[-1]
            tail += head
        else:
            tail = bytearray(head)
            out.append(tail)
        if len(payload) >= _BY_REFERENCE:
            # Only immutable bytes are kept by reference; anything else the caller
            # still owns (later headers would be appended to a queued bytearray,
            # and flush() trims it), so it is copied once here.
            out.append(payload if type(payload) is bytes else bytes(payload))
        elif payload:
            tail += payload

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    @property
    def pending_bytes(self) -> int:
        """Bytes queued but not yet accepted by the kernel."""
        return self._out_size

    def flush(self) -> None:
        """Send as much of the outgoing buffer as the socket takes now."""
        sock, out = self._sock, self._out
        if sock is None:
            if out:
                raise self._error("connection closed with data left to send")
            return
        while out:
            chunk = out[0]
            try:
                sent = sock.send(chunk)
            except self._would_block:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                raise self._error(f"send failed: {exc}") from exc
            self._out_size -= sent
            if sent == len(chunk):
                out.popleft()
            elif type(chunk) is bytearray:
                del chunk[:sent]
                return
            else:
                out[0] = memoryview(chunk)[sent:]
                return
        self._flush_at = _EARLY_FLUSH  # drained: the next batch flushes early again

    # -- receiving --------------------------------------------------------
    def read(self) -> Iterator[Event]:
        """Receive what the socket has and yield the complete events in it.

        Raises :class:`~gearman.errors.ConnectionError` on EOF or a socket error,
        :class:`~gearman.errors.ProtocolError` on bytes that break the protocol.
        """
        sock = self._sock
        if sock is None:
            raise self._error("not connected")
        while True:
            try:
                size = sock.recv_into(self._inbuf)
            except self._would_block:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                raise self._error(f"recv failed: {exc}") from exc
            if not size:
                raise self._error("server closed the connection")
            self._parser.feed(self._inbuf[:size])
            # select() cannot see bytes already decrypted inside the SSL object.
            if not (self.tls and sock.pending()):  # type: ignore[attr-defined]
                break
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

    def has_buffered_input(self) -> bool:
        """True if a TLS socket holds decrypted bytes select() cannot see."""
        sock = self._sock
        return bool(self.tls and sock is not None and sock.pending())  # type: ignore[attr-defined]

