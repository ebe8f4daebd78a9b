"""One connection to one gearmand driven by asyncio.

:class:`AsyncConnection` is the sans-IO
:class:`~gearman.connection_state.ConnectionState` (outgoing queue, parser) made
an ``asyncio.Protocol``: name lookup, connect (within ``connect_timeout``), the
TLS handshake (with the context the blocking connection builds), reads and
writes all go through the event loop.  Packets queued during one turn of the
loop leave in one write; while the transport is above its high-water mark they
wait in the queue, and :meth:`AsyncConnection.drain` waits for them.
"""
from __future__ import annotations

import array
import asyncio
import select
import socket
from time import monotonic as _monotonic
from typing import Any, Callable, List, Optional

from gearman.connection import make_tls_context
from gearman.connection_state import ConnectionState
from gearman.protocol import Event

try:  # how many bytes a socket holds (Linux, macOS, the BSDs)
    import fcntl
    import termios
    _FIONREAD: Optional[int] = termios.FIONREAD
except ImportError:  # pragma: no cover - Windows: a readable socket counts as a close
    _FIONREAD = None

#: What the owner is told: bytes arrived, and the connection ended.
DataCallback = Callable[["AsyncConnection", bytes], None]
LostCallback = Callable[["AsyncConnection", BaseException], None]


class AsyncConnection(ConnectionState, asyncio.Protocol):
    """A connection to ``host:port`` on the running event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transport: Optional[asyncio.Transport] = None
        self._socket: Any = None  # the transport's, to look for unread input
        self._write_scheduled = False
        self._paused = False
        self._drain_waiters: List[asyncio.Future[None]] = []
        #: set by the owner before connecting
        self.on_data: Optional[DataCallback] = None
        self.on_lost: Optional[LostCallback] = None

    # -- connect / close ------------------------------------------------
    async def connect(self) -> None:
        """Resolve, connect and (for TLS) handshake within ``connect_timeout``.

        Raises :class:`~gearman.errors.ConnectionError` naming the server."""
        if self.connected:
            return
        loop = asyncio.get_running_loop()
        ssl_context = None
        if self.tls:
            try:
                ssl_context = make_tls_context(self.ca_certs, self.certfile, self.keyfile)
            except (OSError, ValueError) as exc:
                raise self._error(f"TLS setup failed: {exc}") from exc
        opening = loop.create_connection(
            lambda: self, self.gearman_host, self.gearman_port, ssl=ssl_context,
            server_hostname=self.gearman_host if ssl_context is not None else None)
        try:
            await asyncio.wait_for(opening, self.connect_timeout)
        except asyncio.TimeoutError:
            raise self._error(f"connect failed: no answer within {self.connect_timeout}s") \
                from None
        except (OSError, ValueError, UnicodeError) as exc:  # ssl.SSLError is an OSError
            raise self._error(f"connect failed: {exc}") from exc

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = self._socket = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass
        self._paused = False
        self._start_session()

    def close(self) -> None:
        """Close the transport (what it already holds still goes out) and drop the
        queue; nothing is reported to the owner."""
        transport, self._transport = self._transport, None
        self.connected = False
        self._clear_outgoing()
        self._wake_drainers()
        if transport is not None:
            transport.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._transport is None:  # closed by us
            return
        self._transport = None
        self.connected = False
        self._clear_outgoing()
        self._wake_drainers()
        reason = f"connection lost: {exc}" if exc else "server closed the connection"
        if self.on_lost is not None:
            self.on_lost(self, self._error(reason))

    # -- sending ----------------------------------------------------------
    def _queue_started(self) -> None:
        if not self._write_scheduled:
            loop = asyncio.get_running_loop()  # (raises with no loop: nothing scheduled)
            self._write_scheduled = True
            loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand the queue to the transport unless it asked us to pause."""
        transport, out = self._transport, self._out
        if transport is None or self._paused or not out:
            return
        if len(out) == 1:
            transport.write(out[0])
        else:
            transport.writelines(list(out))
        self._clear_outgoing()

    @property
    def writing_paused(self) -> bool:
        """The transport is above its high-water mark: queued packets wait."""
        return self._paused and self.connected

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self.flush()
        self._wake_drainers()

    def _wake_drainers(self) -> None:
        if self._paused and self.connected:
            return
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the queue is handed to the transport and it is below its
        high-water mark (or the connection is gone)."""
        self.flush()
        if not (self._paused and self.connected):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    # -- receiving --------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_received = _monotonic()
        if self.on_data is not None and self.connected:
            self.on_data(self, data)

    def eof_received(self) -> Optional[bool]:
        return False  # close the transport: connection_lost reports it

    def has_buffered_input(self) -> bool:
        return False

    def may_hold_close(self) -> bool:
        """Whether the socket may hold a close (or an error) the loop has not
        delivered yet: it is readable with no bytes to read.  Bytes waiting mean the
        server is talking, so alive.  For TLS, whose records hide what they carry,
        any readable socket counts."""
        sock = self._socket
        if not self.connected or sock is None:
            return False
        try:
            if not select.select([sock], [], [], 0)[0]:
                return False
            if self.tls or _FIONREAD is None:
                return True
            waiting = array.array("i", [0])
            fcntl.ioctl(sock.fileno(), _FIONREAD, waiting)
            return waiting[0] == 0
        except (OSError, ValueError):  # closed meanwhile: the loop has news
            return True

    def read(self) -> List[Event]:
        """Nothing to read by hand: the event loop delivers the bytes."""
        return []
