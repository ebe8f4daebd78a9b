"""The client's one-off round trips to one server: GET_STATUS by handle,
GET_STATUS_UNIQUE and ECHO_REQ (see :class:`gearman.client.GearmanClient`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from gearman import errors
from gearman.client_handler import StatusQuery
from gearman.connection import GearmanConnection
from gearman.shapes import HostItem
from gearman.util import Deadline

if TYPE_CHECKING:
    from gearman.client import GearmanClient


def server_for(client: GearmanClient, server: Optional[HostItem],
               unique: Optional[str] = None) -> Optional[GearmanConnection]:
    """The connection to ask: ``server``, else the first server for ``unique``, else the
    only server (a job handle means something only on the server that issued it)."""
    if server is None:
        if unique is not None:
            order: List[GearmanConnection] = client.server_pool.failover_order(unique)
            return order[0] if order else None
        if len(client.connection_list) == 1:
            return client.connection_list[0]
        raise ValueError("server is required: this client has several servers, and a "
                         "job handle is only meaningful on the server that issued it")
    return client.connection_named(server)


def ask(client: GearmanClient, connection: Optional[GearmanConnection], query: StatusQuery,
        send: str, deadline: Deadline) -> Dict[str, Any]:
    """Send ``query`` with the handler method ``send`` and wait for its answer."""
    if connection is None:
        raise errors.ServerUnavailable("GearmanClient has no servers in its host_list")
    if connection.connected:  # notice a close by a restarted server before sending
        client.poll_connections_once([connection], 0)
    if not connection.connected and not client.establish_connection(connection):
        raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                     "server is down")
    getattr(client.server_pool.handler_for(connection), send)(query)
    if client._wait_queries([query], deadline):
        raise errors.InvalidClientState(f"gearmand at {connection.address} did not answer "
                                        f"{send[5:].upper()} in time")
    if query.result is None:
        raise errors.ConnectionError(connection.gearman_host, connection.gearman_port,
                                     "connection lost while waiting for the answer")
    if "error" in query.result:
        raise query.result["error"]
    return query.result
