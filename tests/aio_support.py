"""Helpers of the asyncio tests: running a coroutine with a bound, a ticker that
measures how long the event loop ever went without a turn, and blocking workers
in threads as the other side."""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, Optional

import gearman

#: bound for every wait on an event in these tests
WAIT = 20.0


def run(awaitable: Awaitable[Any], timeout: float = 60.0) -> Any:
    """Run a coroutine on a fresh event loop; fail (never hang) after ``timeout``."""
    async def bounded() -> Any:
        return await asyncio.wait_for(awaitable, timeout)
    return asyncio.run(bounded())


async def maybe_await(value: Any) -> Any:
    """A blocking class's return value, or an async class's awaited one."""
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


class Ticker:
    """A task that ticks every 10 ms and keeps the longest gap between two ticks:
    a call that blocked the loop shows up as a gap as long as the block."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0
        self._task: Optional[asyncio.Task[None]] = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()


@contextlib.contextmanager
def thread_worker(address: Any, tasks: Dict[str, Callable[..., Any]],
                  client_id: Optional[str] = None) -> Iterator[gearman.GearmanWorker]:
    """A blocking GearmanWorker with ``tasks`` working in a thread."""
    worker = gearman.GearmanWorker(address if isinstance(address, list) else [address])
    if client_id:
        worker.set_client_id(client_id)
    for name, callback in tasks.items():
        worker.register_task(name, callback)
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.2}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.shutdown()
        thread.join(10)
        assert not thread.is_alive(), "worker thread did not stop"


@contextlib.asynccontextmanager
async def async_worker(address: Any, tasks: Dict[str, Callable[..., Any]],
                       concurrency: int = 1, worker_class: Any = None, **options: Any) -> Any:
    """An AsyncGearmanWorker (or ``worker_class``) with ``tasks`` working on this loop;
    shut down after."""
    from gearman.aio import AsyncGearmanWorker

    worker = (worker_class or AsyncGearmanWorker)(
        address if isinstance(address, list) else [address], concurrency=concurrency, **options)
    for name, callback in tasks.items():
        worker.register_task(name, callback)
    working = asyncio.ensure_future(worker.work(poll_timeout=0.5))
    try:
        yield worker
    finally:
        worker.shutdown()
        await asyncio.wait_for(working, WAIT)
        await worker.close()


def gearman_tool() -> str:
    """The C ``gearman`` command-line tool (package gearman-tools)."""
    import shutil

    import pytest

    tool = shutil.which("gearman")
    if tool is None:
        pytest.fail("the C gearman tool is not installed (package gearman-tools)")
    return tool


def reverse(job: Any) -> bytes:
    return bytes(job.data[::-1])

