"""The blocking client's one-off round trips to one server: GET_STATUS by handle,
GET_STATUS_UNIQUE and ECHO_REQ (see :class:`gearman.client.GearmanClient`).  Which
server, and what an answer (or its absence) means, are the client rules'
(:class:`gearman.client_rules.ClientRules`, shared with the asyncio client)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

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
    return client._server_connection(server, unique)


def ask(client: GearmanClient, connection: Optional[GearmanConnection], query: StatusQuery,
        send: str, deadline: Deadline) -> Dict[str, Any]:
    """Send ``query`` with the handler method ``send`` and wait for its answer."""
    target = client._query_target(connection)
    if target.connected:  # notice a close by a restarted server before sending
        client.poll_connections_once([target], 0)
    if not target.connected and not client.establish_connection(target):
        raise client._server_down(target)
    getattr(client.server_pool.handler_for(target), send)(query)
    unanswered = bool(client._wait_queries([query], deadline))
    return client._query_result(target, query, send, unanswered)
