"""What a waiting task is woken by: :class:`RequestWait` (a set of requests reaching
a state) and :class:`UpdateStream` (a request's WORK_DATA, WORK_WARNING and
WORK_STATUS as they arrive).  The client's handler notes each request it changes;
the client hands the note to the waits registered for that request only, so no
wait ever scans all requests."""
from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable, Deque, Dict, List, NamedTuple


class Update(NamedTuple):
    """One update of a running job: ``kind`` is ``'data'``, ``'warning'`` or
    ``'status'``; ``value`` the decoded payload or the status dict."""
    kind: str
    value: Any


class RequestWait:
    """A task waiting until ``done(request)`` holds for every request it registered."""

    __slots__ = ("done", "pending", "future")

    def __init__(self, done: Callable[[Any], bool]) -> None:
        self.done = done
        self.pending = 0
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def expire(self) -> None:
        """The wait's time is up: wake its task with what is pending."""
        if not self.future.done():
            self.future.set_result(None)

    def settled(self) -> None:
        """One registered request reached its state."""
        self.pending -= 1
        if self.pending <= 0 and not self.future.done():
            self.future.set_result(None)


class UpdateStream:
    """The updates of one request not yet handed to its ``async for``."""

    __slots__ = ("items", "seen_data", "seen_warnings", "last_status", "wakeup")

    def __init__(self) -> None:
        self.items: Deque[Update] = collections.deque()
        self.seen_data = 0
        self.seen_warnings = 0
        self.last_status: Any = None
        self.wakeup: asyncio.Event = asyncio.Event()

    def changed(self, request: Any) -> None:
        """Called on every note about ``request``: queue what is new since the last."""
        data, warnings = request.data_updates, request.warning_updates
        for index in range(self.seen_data, len(data)):
            self.items.append(Update("data", data[index]))
        for index in range(self.seen_warnings, len(warnings)):
            self.items.append(Update("warning", warnings[index]))
        self.seen_data, self.seen_warnings = len(data), len(warnings)
        status = request.status
        if status and status is not self.last_status:
            self.last_status = status
            self.items.append(Update("status", status))
        self.wakeup.set()


class WaitRegistry:
    """request -> the waits and update streams registered for it."""

    def __init__(self) -> None:
        #: request -> its RequestWait, or a list of them when several tasks wait for it
        self.waits: Dict[Any, Any] = {}
        #: request -> the update streams (``client.updates``) following it
        self.streams: Dict[Any, List[UpdateStream]] = {}

    def add(self, request: Any, wait: RequestWait) -> None:
        held = self.waits.get(request)
        if held is None:
            self.waits[request] = wait
        elif type(held) is list:
            held.append(wait)
        else:
            self.waits[request] = [held, wait]

    def remove(self, request: Any, wait: RequestWait) -> bool:
        """Unregister; False if ``wait`` was not (or no longer) registered for it."""
        held = self.waits.get(request)
        if held is wait:
            del self.waits[request]
            return True
        if type(held) is list and wait in held:
            held.remove(wait)
            if not held:
                del self.waits[request]
            return True
        return False

    def add_stream(self, request: Any, stream: UpdateStream) -> None:
        self.streams.setdefault(request, []).append(stream)

    def remove_stream(self, request: Any, stream: UpdateStream) -> None:
        streams = self.streams.get(request, [])
        if stream in streams:
            streams.remove(stream)
        if not streams:
            self.streams.pop(request, None)

    def streams_for(self, request: Any) -> List[UpdateStream]:
        return self.streams.get(request, [])
