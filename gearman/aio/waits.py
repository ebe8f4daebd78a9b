"""What a waiting task is woken by: :class:`RequestWait` (a set of requests reaching
a state) and :class:`UpdateStream` (a request's WORK_DATA, WORK_WARNING and
WORK_STATUS as they arrive).  The client's handler notes each request it changes;
the client hands the note to the waits registered for that request only, so no
wait ever scans all requests."""
from __future__ import annotations

import asyncio
import collections
import math
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Set, Tuple

#: Deadlines this close together (seconds) share one loop timer (:class:`Expiries`).
#: A wait ends at most this much after its timeout, never before.
EXPIRY_GRAIN = 0.002


class Update(NamedTuple):
    """One update of a running job: ``kind`` is ``'data'``, ``'warning'`` or
    ``'status'``; ``value`` the decoded payload or the status dict."""
    kind: str
    value: Any


class RequestWait(asyncio.Future):  # type: ignore[type-arg]
    """The future a task awaits until ``reached(request)`` holds for every request
    it registered.  The future itself, not an object holding one: 20,000 tasks
    awaiting at once keep 20,000 fewer objects alive for the garbage collector to
    walk (its full passes were the largest cost of such a gather)."""

    __slots__ = ("reached", "pending", "slot", "timer")
    reached: Callable[[Any], bool]
    pending: int
    slot: Optional[int]  # its deadline's slot in Expiries, or
    timer: Optional[asyncio.TimerHandle]  # a timer of its own (a short timeout)

    def expire(self) -> None:
        """The wait's time is up: wake its task with what is pending."""
        if not self.done():
            self.set_result(None)

    def settled(self) -> None:
        """One registered request reached its state."""
        self.pending -= 1
        if self.pending <= 0 and not self.done():
            self.set_result(None)


def new_wait(reached: Callable[[Any], bool]) -> RequestWait:
    """A wait on the running loop, nothing registered yet."""
    wait = RequestWait(loop=asyncio.get_running_loop())
    wait.reached, wait.pending, wait.slot, wait.timer = reached, 0, None, None
    return wait


class Expiries:
    """Ends the waits whose time is up, with one loop timer per :data:`EXPIRY_GRAIN`
    of deadlines instead of one per wait: 20,000 tasks awaiting ``submit_job`` at
    once with the same ``poll_timeout`` cost a few dozen timers, not 20,000 (each
    a heap entry the loop sorts, then cancels).  A wait that ends first leaves its
    set; the timer goes with the last one."""

    def __init__(self) -> None:
        self._slots: Dict[int, Tuple[asyncio.TimerHandle, Set[RequestWait]]] = {}

    def add(self, wait: RequestWait, timeout: float) -> int:
        """Expire ``wait`` after ``timeout`` seconds; returns its slot for :meth:`discard`."""
        loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + timeout) / EXPIRY_GRAIN)
        held = self._slots.get(slot)
        if held is None:
            held = self._slots[slot] = (loop.call_at(slot * EXPIRY_GRAIN, self._expire, slot),
                                        set())
        held[1].add(wait)
        return slot

    def discard(self, wait: RequestWait, slot: int) -> None:
        held = self._slots.get(slot)
        if held is not None:
            held[1].discard(wait)
            if not held[1]:
                held[0].cancel()
                del self._slots[slot]

    def _expire(self, slot: int) -> None:
        _, waits = self._slots.pop(slot, (None, ()))
        for wait in waits:
            wait.expire()


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
