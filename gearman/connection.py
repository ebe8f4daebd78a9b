"""One connection to one gearmand over a non-blocking socket (optionally TLS).

The outgoing queue and the parser live in the sans-IO
:class:`~gearman.connection_state.ConnectionState` this class derives from;
here are only the socket, the TLS wrapping and moving bytes.  Every ``OSError``
is turned into :class:`gearman.errors.ConnectionError` here.
"""
from __future__ import annotations

import logging
import socket
from time import monotonic as _monotonic
from typing import Any, Iterator, Optional, Tuple, Type

from gearman.connection_state import EARLY_FLUSH, ConnectionState
from gearman.protocol import Event

log = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024

#: What a non-blocking send or recv raises when it has to wait.  TLS adds ssl's
#: want-read/want-write errors; ``ssl`` itself (about 6 MiB of resident memory
#: for libssl and libcrypto) is imported only by a connection that uses TLS.
_WOULD_BLOCK: Tuple[Type[BaseException], ...] = (BlockingIOError,)


def _tls_would_block() -> Tuple[Type[BaseException], ...]:
    import ssl
    return (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def make_tls_context(ca_certs: Optional[str], certfile: Optional[str],
                     keyfile: Optional[str]) -> Any:
    """The ``ssl.SSLContext`` of a TLS host entry, for both drivers: ``ca_certs``
    verifies the server (certificate and host name), ``certfile``/``keyfile`` give
    an optional client certificate."""
    import ssl
    context = ssl.create_default_context(cafile=ca_certs)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


class GearmanConnection(ConnectionState):
    """A connection to ``host:port``.  Connects with a timeout, then never blocks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._would_block = _WOULD_BLOCK
        self._sock: Optional[socket.socket] = None
        # recv_into one reused buffer: recv(256 KiB) would mmap, mremap and munmap
        # a fresh 256 KiB object on every read (three system calls per packet).
        self._inbuf = memoryview(bytearray(_RECV_SIZE))

    def fileno(self) -> int:
        if self._sock is None:
            raise self._error("not connected")
        return self._sock.fileno()

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
        self._start_session()

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        context = make_tls_context(self.ca_certs, self.certfile, self.keyfile)
        # The handshake runs under the connect timeout, still in blocking mode.
        return context.wrap_socket(sock, server_hostname=self.gearman_host)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the socket and drop anything buffered in either direction."""
        sock, self._sock = self._sock, None
        self.connected = False
        self._clear_outgoing()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- moving bytes -------------------------------------------------------
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
        self._flush_at = EARLY_FLUSH  # drained: the next batch flushes early again

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
            self.last_received = _monotonic()
            self._parser.feed(self._inbuf[:size])
            # select() cannot see bytes already decrypted inside the SSL object.
            if not (self.tls and sock.pending()):  # type: ignore[attr-defined]
                break
        return self._events()

    def has_buffered_input(self) -> bool:
        """True if a TLS socket holds decrypted bytes select() cannot see."""
        sock = self._sock
        return bool(self.tls and sock is not None and sock.pending())  # type: ignore[attr-defined]

