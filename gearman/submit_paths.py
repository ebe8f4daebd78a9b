"""Which short paths a client class may take when it submits new requests.

``submit_job`` and ``submit_multiple_jobs`` once went through every 2.x layer
(``submit_multiple_jobs`` -> ``submit_multiple_requests`` -> ``send_job_request``
-> ``establish_request_connection``, then two waits), some 250 Python calls for
one job.  The client now takes shorter paths, but only where no override would be
skipped: a subclass that overrides one of those methods, or a request class with
its own ``reset``, is still called exactly as python-gearman 2.x called it, and
so is a method replaced on the client object itself (``client.send_job_request =
...``).  Decided once per (client class, request class), unless the object has
such a replacement.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Sequence, Tuple

from gearman.job import GearmanJobRequest

#: A connection that received bytes from its server less than this many seconds ago
#: is written to without first looking for a close: its server was alive a moment
#: ago, and the look's own blind spot (the FIN still on its way) is of that order.
RECENTLY_HEARD = 0.001


#: The client methods a short path may skip.
SKIPPABLE = ("submit_multiple_jobs", "submit_multiple_requests", "_create_request_from_dictionary",
             "send_job_request", "establish_request_connection", "_send_on",
             "_begin_submission", "wait_until_jobs_accepted", "wait_until_jobs_completed")


class ShortPaths:
    """The short paths open to one client class (see the module docstring)."""

    __slots__ = ("submit", "batch", "send", "one_wait", "no_reset")
    _by_class: Dict[Tuple[Any, Any], ShortPaths] = {}

    def __init__(self, client_class: Any, request_class: Any, base: Any,
                 replaced: Sequence[str] = ()) -> None:
        def own(cls: Any, names: Sequence[str], reference: Any) -> bool:
            return any(name in replaced or getattr(cls, name, None) is not getattr(reference, name)
                       for name in names)

        #: submit_job may skip the batch methods 2.x sent it through
        self.submit = not own(client_class, ("submit_multiple_jobs", "submit_multiple_requests",
                                             "_create_request_from_dictionary"), base)
        #: submit_multiple_jobs may skip submit_multiple_requests
        self.batch = not own(client_class, ("submit_multiple_requests",), base)
        #: a first send to the only server may go straight to its handler
        self.send = not own(client_class, ("send_job_request", "establish_request_connection",
                                           "_send_on"), base)
        #: one wait for completion instead of "accepted" then "completed"
        self.one_wait = not own(client_class, ("wait_until_jobs_accepted",
                                               "wait_until_jobs_completed"), base)
        #: a new request needs no reset() before its first send
        self.no_reset = not (own(request_class, ("reset",), GearmanJobRequest)
                             or own(client_class, ("_begin_submission",), base))

    @classmethod
    def of(cls, client: Any, base: Any) -> ShortPaths:
        """The paths for ``client``, whose class derives from ``base`` (GearmanClient)."""
        key = (type(client), client.job_request_class)
        attributes = getattr(client, "__dict__", {})
        if not attributes.keys().isdisjoint(SKIPPABLE):  # replaced on this object alone
            return cls(key[0], key[1], base, [name for name in SKIPPABLE if name in attributes])
        paths = cls._by_class.get(key)
        if paths is None:
            if len(cls._by_class) >= 64:  # classes made on the fly: stay bounded
                cls._by_class.clear()
            paths = cls._by_class[key] = cls(key[0], key[1], base)
        return paths


def send_new(client: Any, requests: Sequence[GearmanJobRequest], paths: ShortPaths) -> bool:
    """Send requests ``client`` has just built (a first send, so nothing to resubmit)
    straight to the only server's handler, when that server is up and no override
    would be skipped.  False, with nothing done, otherwise: then the caller sends
    them through its own (overridable, maybe awaited) ``send_job_request``."""
    connections = client.connection_list
    if not (paths.send and len(connections) == 1 and connections[0].connected):
        return False
    if not paths.no_reset:
        for request in requests:  # 2.x initialize_request: called before each send
            client._begin_submission(request)
    # What send_job_request (ClientRules._send_on) does for a first send to the
    # only server, the handler looked up once per batch.
    connection = connections[0]
    send = client.server_pool.handler_for(connection).send_job_request
    for request in requests:
        request.connection_attempts = 1
        request.job.connection = connection
        send(request)
    return True


def may_hold_unread_close(connections: Iterable[Any], now: float) -> bool:
    """Whether a close the server made while the client was idle (a restarted
    server) may be sitting unread: some connection is down, or was not heard from
    within :data:`RECENTLY_HEARD`.  Then the driver looks (the blocking one polls
    once without waiting, the asyncio one lets the loop run what is due) before
    a request is written into a dead connection and lost."""
    for connection in connections:
        if not connection.connected or now - connection.last_received >= RECENTLY_HEARD:
            return True
    return False
