"""The pool supervisor: keeps one child process per slot, replaces, recycles, drains.

A slot is "a worker for every task" (``--processes``) or "a worker for one task"
(``--dedicated TASK=N``).  The supervisor never imports TARGET: each child is
``python -m gearman.pool.child`` (see :mod:`gearman.pool`), told what to run by
one JSON argument, reporting back on a pipe of its own.  Children run in their
own session, so a terminal's Ctrl-C reaches the supervisor only, and the
supervisor signals each child by its PID.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Tuple

from gearman.pool.report import ReportReader

log = logging.getLogger("gearman.pool")

#: a child that exits before it was ready, or with an error (not a signal) within
#: this many seconds of its start, "died at start": restarted with a growing delay
START_WINDOW = 2.0
START_BACKOFF_BASE, START_BACKOFF_CAP = 0.5, 30.0
#: how often the supervisor looks at its children when nothing else wakes it
TICK = 0.1
#: how long the supervisor waits for a SIGKILLed child to be reaped
REAP_TIMEOUT = 5.0


@dataclass
class PoolConfig:
    """What ``gearman-py pool`` was asked to run (see :mod:`gearman.cli.pool`)."""

    target: str
    hosts: List[str]
    processes: int = 1
    dedicated: Dict[str, int] = field(default_factory=dict)
    concurrency: Optional[int] = None
    max_jobs: Optional[int] = None
    max_lifetime: Optional[float] = None
    lifetime_splay: float = 0.0
    graceful_timeout: float = 30.0
    metrics: Optional[str] = None
    child_log_level: int = logging.WARNING
    python: str = sys.executable


@dataclass(eq=False)
class Slot:
    """A place for one child: all tasks (``task`` None) or one dedicated task."""

    index: int
    task: Optional[str]
    child: Optional[Child] = None
    failures: int = 0  # deaths at start in a row
    start_at: float = 0.0


@dataclass(eq=False)
class Child:
    number: int
    slot: Slot
    process: subprocess.Popen[bytes]
    reader: ReportReader
    generation: int
    started_at: float = field(default_factory=time.monotonic)
    ready: bool = False
    connected: bool = False
    exit_reason: Optional[str] = None
    fatal: Optional[str] = None
    kill_at: Optional[float] = None  # retiring: SIGKILL at this time if still alive

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name(self) -> str:
        task = "all tasks" if self.slot.task is None else f"task {self.slot.task}"
        return f"child {self.number} (pid {self.pid}, {task})"


class Supervisor:
    """``Supervisor(config).run()`` -> exit code; see docs/pool.rst for the behaviour."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.slots = [Slot(i, None) for i in range(config.processes)]
        for task, count in config.dedicated.items():
            self.slots.extend(Slot(len(self.slots), task) for _ in range(count))
        self.children: Dict[int, Child] = {}  # pid -> child (current and retiring)
        self.host_name = socket.gethostname().split()[0] if socket.gethostname() else "host"
        self.generation = 0
        self.stopping = False
        self.forced = False
        self._numbers = 0
        self._signals: Deque[int] = collections.deque()
        self._rolling: Optional[Slot] = None  # the slot a SIGHUP is replacing now
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self.metrics: Any = None
        if config.metrics is not None:
            from gearman.pool.pool_metrics import PoolMetrics  # http.server: only when asked
            self.metrics = PoolMetrics(self)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT (0 once drained, 1 after a second signal)."""
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        if self.metrics is not None:
            self.metrics.start(self.config.metrics)
        log.info("pool %d: %d children for %s", os.getpid(), len(self.slots), self.config.target)
        try:
            while not (self.stopping and not self.children):
                self._handle_signals()
                if not self.stopping:
                    self._roll()
                    self._start_due()
                self._read_reports(self._timeout())
                self._reap()
                self._kill_overdue()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
            if self.metrics is not None:
                self.metrics.close()
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        log.info("pool %d: stopped", os.getpid())
        return 1 if self.forced else 0

    def _timeout(self) -> float:
        waits = [TICK]
        now = time.monotonic()
        for slot in self.slots:
            if slot.child is None and not self.stopping:
                waits.append(max(0.0, slot.start_at - now))
        return min(waits)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum == signal.SIGHUP:
                if not self.stopping:
                    self.generation += 1
                    log.info("SIGHUP: rolling restart with freshly imported code")
            elif self.stopping:
                log.warning("second signal: stopping now")
                self.forced = True
                self._kill_all()
            else:
                log.info("%s: children stop grabbing and finish their jobs (at most %gs)",
                         signal.Signals(signum).name, self.config.graceful_timeout)
                self.stopping = True
                for child in list(self.children.values()):
                    self._retire(child)

    # -- children -----------------------------------------------------------------------
    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.child is None and now >= slot.start_at:
                self._start(slot)

    def _start(self, slot: Slot) -> None:
        self._numbers += 1
        number = self._numbers
        config = self.config
        lifetime = None
        if config.max_lifetime is not None:
            lifetime = config.max_lifetime + random.uniform(0.0, config.lifetime_splay)
        read_fd, write_fd = os.pipe()
        child_config = {
            "target": config.target, "hosts": config.hosts, "task": slot.task,
            "concurrency": config.concurrency, "max_jobs": config.max_jobs,
            "lifetime": lifetime, "client_id": f"{self.host_name}-{os.getpid()}-{number}",
            "report_fd": write_fd, "report_jobs": self.metrics is not None,
            "buckets": None if self.metrics is None else list(self.metrics.buckets),
            "log_level": config.child_log_level}
        try:
            process = subprocess.Popen(
                [config.python, "-m", "gearman.pool.child", json.dumps(child_config)],
                stdin=subprocess.PIPE, pass_fds=(write_fd,), start_new_session=True)
        except OSError as exc:
            os.close(read_fd)
            log.error("cannot start a child: %s", exc)
            self._back_off(slot, f"cannot start: {exc}")
            return
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = Child(number, slot, process, ReportReader(read_fd), self.generation)
        slot.child = child
        self.children[child.pid] = child
        self._selector.register(read_fd, selectors.EVENT_READ, child)
        log.info("started %s%s", child.name,
                 "" if lifetime is None else f", lifetime {lifetime:.1f}s")

    def _retire(self, child: Child) -> None:
        """Ask ``child`` to finish its jobs and exit; SIGKILL after the graceful timeout."""
        if child.kill_at is None:
            child.kill_at = time.monotonic() + self.config.graceful_timeout
            self._signal(child, signal.SIGTERM)
        if child.slot.child is child:
            child.slot.child = None

    def _signal(self, child: Child, signum: int) -> None:
        if child.process.returncode is None:
            try:
                child.process.send_signal(signum)  # by PID: Popen knows its child's pid
            except ProcessLookupError:
                pass

    def _roll(self) -> None:
        """SIGHUP: replace the children of older generations one at a time, each
        once the last replacement is ready (a broken deploy leaves the rest serving)."""
        if self._rolling is not None:
            child = self._rolling.child
            if child is None or not child.ready:
                return
            self._rolling = None
        for slot in self.slots:
            child = slot.child
            if child is not None and child.generation < self.generation:
                self._retire(child)
                self._count_restart("reload")
                slot.start_at = 0.0
                slot.failures = 0
                self._rolling = slot
                return

    def _read_reports(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            child = key.data
            if child is None:
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except OSError:
                    pass
                continue
            events = child.reader.read()
            if events is None:  # end of file: the child is gone (or broke the protocol)
                self._selector.unregister(child.reader.fd)
                continue
            for event in events:
                self._on_event(child, event)

    def _on_event(self, child: Child, event: Dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "ready":
            child.ready = True
        elif kind == "connected":
            child.connected = bool(event.get("up"))
        elif kind in ("exit", "fatal"):
            child.exit_reason = str(event.get("reason", ""))
            child.fatal = child.exit_reason if kind == "fatal" else None
        if self.metrics is not None:
            self.metrics.child_event(child, event)

    def _reap(self) -> None:
        for child in list(self.children.values()):
            code = child.process.poll()
            if code is not None:
                self._gone(child, code)

    def _gone(self, child: Child, code: int) -> None:
        del self.children[child.pid]
        try:
            for event in child.reader.read() or ():  # what it said last
                self._on_event(child, event)
            self._selector.unregister(child.reader.fd)
        except (KeyError, ValueError):
            pass
        os.close(child.reader.fd)
        if child.process.stdin is not None:
            child.process.stdin.close()
        if self.metrics is not None:
            self.metrics.child_gone(child)
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        slot = child.slot
        if slot.child is not child:  # retired: drained, reloaded or stopping
            log.info("%s ended (%s)", child.name, how)
            return
        slot.child = None
        lived = time.monotonic() - child.started_at
        if code == 0 and child.exit_reason in ("max_jobs", "lifetime"):
            log.info("%s exited after its %s; replacing it", child.name,
                     "jobs" if child.exit_reason == "max_jobs" else "lifetime")
            slot.failures = 0
            slot.start_at = 0.0
            self._count_restart(child.exit_reason)
        elif not child.ready or (code > 0 and lived < START_WINDOW):
            self._back_off(slot, f"{child.name} died at start ({how})"
                           + (f": {child.fatal}" if child.fatal else ""))
            self._count_restart("start_failed")
        else:
            log.warning("%s died (%s) after %.1fs; replacing it", child.name, how, lived)
            slot.failures = 0
            slot.start_at = 0.0
            self._count_restart("died")

    def _back_off(self, slot: Slot, why: str) -> None:
        slot.failures += 1
        delay = min(START_BACKOFF_CAP, START_BACKOFF_BASE * 2 ** (slot.failures - 1))
        slot.start_at = time.monotonic() + delay
        log.error("%s; next try in %.1fs (failure %d in a row)", why, delay, slot.failures)

    def _count_restart(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.restarts.labels(reason=reason).inc()

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.kill_at is not None and now >= child.kill_at and \
                    child.process.returncode is None:
                log.warning("%s still running after %gs: SIGKILL (gearmand hands its jobs "
                            "to other workers)", child.name, self.config.graceful_timeout)
                self._signal(child, signal.SIGKILL)
                child.kill_at = float("inf")

    def _kill_all(self) -> None:
        """SIGKILL every child still running (by PID) and reap it (bounded)."""
        for child in list(self.children.values()):
            self._signal(child, signal.SIGKILL)
        deadline = time.monotonic() + REAP_TIMEOUT
        for child in list(self.children.values()):
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not die after SIGKILL", child.name)
                continue
            self._gone(child, code)

    # -- health ---------------------------------------------------------------------------
    def health(self) -> Tuple[bool, str]:
        """(every slot has a ready, connected child; a line saying so)."""
        good = sum(1 for slot in self.slots if slot.child is not None and slot.child.ready
                   and slot.child.connected)
        ok = good == len(self.slots) and not self.stopping
        return ok, f"{good}/{len(self.slots)} children up and connected" + (
            "" if not self.stopping else "; stopping")

