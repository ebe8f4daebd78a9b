"""The asyncio driver of the servers kept by :class:`~gearman.manager_core.ManagerCore`.

Connects (one attempt at a time per server, shared by every task that needs it),
feeds the events each :class:`~gearman.aio.connection.AsyncConnection` parses to
that connection's command handler, and drops a connection that fails.  The
handlers and every rule about servers are the blocking driver's own.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterable, Optional, Type, TypeVar

from gearman import errors
from gearman.aio.connection import AsyncConnection
from gearman.command_handler import GearmanCommandHandler
from gearman.manager_core import ManagerCore
from gearman.shapes import HostItem

_Manager = TypeVar("_Manager", bound="AsyncConnectionManager")


class AsyncConnectionManager(ManagerCore[AsyncConnection]):
    """Base of the asyncio client, worker and admin client."""

    connection_class: Type[AsyncConnection] = AsyncConnection

    def __init__(self, host_list: Any = None, **options: Any) -> None:
        super().__init__(host_list, **options)
        self._connecting: Dict[Any, asyncio.Future[bool]] = {}

    def add_connection(self, host: HostItem, port: Optional[int] = None,
                       **tls: Optional[str]) -> AsyncConnection:
        connection = super().add_connection(host, port, **tls)
        connection.on_data = self._dispatch
        connection.on_lost = self._drop
        return connection

    async def establish_connection(self, connection: AsyncConnection) -> bool:
        """Connect ``connection`` if needed and set up its handler.  Tasks that ask
        at the same time share one attempt.  Never raises for a server that is
        down: returns False and backs that server off."""
        if connection.connected:
            return True
        self._check_open()
        attempt = self._connecting.get(connection)
        if attempt is None:
            attempt = asyncio.ensure_future(self._connect(connection))
            self._connecting[connection] = attempt
            attempt.add_done_callback(lambda _: self._connecting.pop(connection, None))
        # shield: one caller's cancellation must not abort the others' connect
        return await asyncio.shield(attempt)

    async def live_handler(self, connection: AsyncConnection
                           ) -> Optional[GearmanCommandHandler]:
        """The handler of ``connection``'s session, connecting first if needed; None
        if the server is down or the session ended already (checked after the await:
        TLS 1.3 reports a refused client certificate only after the handshake)."""
        if not connection.connected:
            await self.establish_connection(connection)
        if not connection.connected:
            return None
        handler: Optional[GearmanCommandHandler] = self.server_pool.handler_for(connection)
        return handler

    async def _connect(self, connection: Any) -> bool:
        try:
            await connection.connect()
        except errors.ConnectionError as exc:
            self._note_failure(connection, exc)
            return False
        if self._closed:
            connection.close()
            return False
        return self._attach(connection)

    def _dispatch(self, connection: Any, data: bytes) -> None:
        """Hand parsed events to the connection's handler; a fault costs the connection."""
        self._dispatch_events(self.server_pool.record(connection),
                              lambda: connection.received(data))

    async def flush_connections(self, connections: Iterable[AsyncConnection],
                                timeout: Optional[float]) -> None:
        """Wait until what is queued on ``connections`` is with their transports."""
        drains = [c.drain() for c in connections if c.connected]
        if drains:
            await asyncio.wait_for(asyncio.gather(*drains), timeout)

    async def close(self) -> None:
        """Close every connection for good."""
        if self._closed:
            return
        self._closed = True
        self._on_close()
        for attempt in list(self._connecting.values()):
            attempt.cancel()
        self._close_all()

    def _on_close(self) -> None:
        """What a role stops before its connections close."""

    async def __aenter__(self: _Manager) -> _Manager:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
