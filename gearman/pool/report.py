"""What a child tells the supervisor: one JSON object per line on a pipe of its own.

Events (``"event"`` names the kind):

- ``ready``: the target is imported and the worker built;
- ``connected`` with ``"up": bool``: whether the child holds a live server connection;
- ``jobs``: the child's job totals since it started, cumulative (so the last one
  sent is complete on its own): ``done`` {task: {outcome: count}}, ``durations``
  {task: [bucket counts..., sum]}, ``running`` {task: count};
- ``exit`` with ``reason`` (``max_jobs``, ``lifetime``, ``signal``, ``supervisor``)
  just before a clean exit; ``fatal`` with ``reason`` when the child cannot start.

A pipe per child rather than a shared file: the supervisor learns of a child's
death from the pipe too, nothing is left on disk, and each line is below
PIPE_BUF, so lines from one child's threads never interleave.
"""
from __future__ import annotations

import bisect
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

#: a line longer than this from a child is a bug: the pipe is dropped
MAX_LINE = 256 * 1024
#: the child sends its job totals at most this often (and once more before it exits)
REPORT_INTERVAL = 0.25


class Reporter:
    """The child's end: thread-safe, never raises (a gone supervisor is not the job's fault)."""

    def __init__(self, fd: int, buckets: Sequence[float] = ()) -> None:
        self._fd = fd
        self._buckets = list(buckets)  # the supervisor's histogram bounds (with --metrics)
        self._lock = threading.Lock()
        self._done: Dict[str, Dict[str, int]] = {}
        self._durations: Dict[str, List[float]] = {}
        self._running: Dict[str, int] = {}
        self._changed = False
        self._sent_at = 0.0
        self.broken = False

    def send(self, event: str, **fields: Any) -> None:
        line = (json.dumps(dict(fields, event=event), separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._write(line)

    def _write(self, line: bytes) -> None:
        if self.broken:
            return
        try:
            while line:
                line = line[os.write(self._fd, line):]
        except OSError:
            self.broken = True

    def job_started(self, task: str) -> None:
        with self._lock:
            self._running[task] = self._running.get(task, 0) + 1
            self._changed = True

    def job_ended(self, task: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._running[task] -= 1
            outcomes = self._done.setdefault(task, {})
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            histogram = self._durations.get(task)
            if histogram is None:
                histogram = self._durations[task] = [0.0] * (len(self._buckets) + 2)
            histogram[bisect.bisect_left(self._buckets, seconds)] += 1
            histogram[-1] += seconds
            self._changed = True

    def send_jobs(self, force: bool = False) -> None:
        """Send the totals if they changed and the last report is old enough (or ``force``)."""
        now = time.monotonic()
        if not self._changed or (not force and now - self._sent_at < REPORT_INTERVAL):
            return
        with self._lock:
            self._changed, self._sent_at = False, now
            line = json.dumps({"event": "jobs", "done": self._done, "durations": self._durations,
                               "running": self._running}, separators=(",", ":")) + "\n"
            self._write(line.encode())


class ReportReader:
    """The supervisor's end of one child's pipe: bytes in, events out."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read(self) -> Optional[List[Dict[str, Any]]]:
        """The complete events now readable; None at end of file (the child is gone)
        or when the child broke the protocol."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            return None
        if not chunk:
            return None
        self._buffer += chunk
        events = list(self._lines())
        if len(self._buffer) > MAX_LINE:
            return None
        return events

    def _lines(self) -> Iterator[Dict[str, Any]]:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                yield event
