"""The asyncio libraries in the benchmark: this library's ``gearman.aio``, aiogear
0.2.6, and the ``asyncio.to_thread`` workaround (the blocking client from 32
threads, a client each) -- what an asyncio application can use -- and
``aio-bare``, no library: the ceiling of any asyncio client on the machine.

Each adapter runs its calls on a private event loop, so ``cell.py`` drives it like
the blocking adapters.  Results are checked by ``cell.py`` against the request
each one belongs to (the echo worker returns the payload).
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from typing import Any, Callable, Deque, Dict, List

from bare import JOB_CREATED, SUBMIT_JOB, WORK_COMPLETE, submit, take_packets

#: Seconds any single wait in a cell may take (as cell.WAIT_LIMIT).
WAIT_LIMIT = 900.0
#: Threads of the to_thread workaround (the issue's measurement used 32).
TO_THREAD_THREADS = 32


class AsyncAdapter:
    """Runs an adapter's coroutines on its own loop."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, WAIT_LIMIT))

    def connect(self) -> None:
        self._run(self._connect())

    def gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        return self._run(self._gather(task, payloads))

    def wait_forever(self, task: str) -> None:
        self._run(self._wait_forever(task))

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        raise NotImplementedError

    async def _wait_forever(self, task: str) -> None:
        raise NotImplementedError


class OursAsync(AsyncAdapter):
    """gearman.aio: gather of submit_job, or one submit_multiple_jobs."""

    name = "gearman-aio"

    async def _connect(self) -> None:
        from gearman.aio import AsyncGearmanClient
        self.client = AsyncGearmanClient([self.address])
        await self.client.echo(b"warm-up", poll_timeout=10)

    async def _gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        submit = self.client.submit_job
        requests = await asyncio.gather(*(submit(task, data, poll_timeout=WAIT_LIMIT)
                                          for data in payloads))
        return [request.result for request in requests]

    def batch(self, task: str, payloads: List[bytes]) -> List[Any]:
        async def batch() -> List[Any]:
            jobs = [{"task": task, "data": data} for data in payloads]
            requests = await self.client.submit_multiple_jobs(jobs, poll_timeout=WAIT_LIMIT)
            return [request.result for request in requests]
        return self._run(batch())

    async def _wait_forever(self, task: str) -> None:
        await self.client.submit_job(task, b"never done", poll_timeout=3600)

    def work(self, task: str, ready: Callable[[], None], sleep_ms: int = 0,
             concurrency: int = 1) -> None:
        from gearman.aio import AsyncGearmanWorker

        async def job(job: Any) -> bytes:
            if sleep_ms:
                await asyncio.sleep(sleep_ms / 1000)
            return bytes(job.data)

        async def work() -> None:
            worker = AsyncGearmanWorker([self.address], concurrency=concurrency)
            for connection in worker.connection_list:
                await worker.establish_connection(connection)
            await self.loop.run_in_executor(None, ready)
            worker.register_task(task, job)
            await worker.work(poll_timeout=None)

        self.loop.run_until_complete(work())


class AioGear(AsyncAdapter):
    """aiogear 0.2.6: submit_job returns at JOB_CREATED; wait_job(handle) then gives
    the WORK_COMPLETE its reply table hands out (by type, oldest waiter first: not
    by handle, which the result check shows).  Results come back as str."""

    name = "aiogear"

    async def _connect(self) -> None:
        import aiogear
        _, self.client = await self.loop.create_connection(aiogear.Client, self.host,
                                                           self.port)

    async def _one(self, task: str, data: bytes) -> Any:
        created = await self.client.submit_job(task, data)
        done = await self.client.wait_job(created.handle)
        result = getattr(done, "result", None)
        return result.encode() if isinstance(result, str) else result

    async def _gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        return list(await asyncio.gather(*(self._one(task, data) for data in payloads)))

    async def _wait_forever(self, task: str) -> None:
        created = await self.client.submit_job(task, b"never done")
        await self.client.wait_job(created.handle)

    def work(self, task: str, ready: Callable[[], None], sleep_ms: int = 0,
             concurrency: int = 1) -> None:
        import aiogear

        async def job(info: Any) -> str:
            if sleep_ms:
                await asyncio.sleep(sleep_ms / 1000)
            return str(info.workload)

        ready()  # aiogear registers its functions as it connects
        self.loop.run_until_complete(self.loop.create_connection(
            lambda: aiogear.Worker((job, task)), self.host, self.port))
        self.loop.run_forever()


class ToThread(AsyncAdapter):
    """The workaround an asyncio application has today: the blocking GearmanClient
    called through asyncio.to_thread, from 32 threads with a client each."""

    name = "to_thread"

    async def _connect(self) -> None:
        import gearman
        self.gearman = gearman
        self.local = threading.local()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=TO_THREAD_THREADS))
        # Connect outside the timing: enough calls that every thread makes its client.
        await asyncio.gather(*(asyncio.to_thread(lambda: self._client().echo(b"warm-up"))
                               for _ in range(4 * TO_THREAD_THREADS)))

    def _client(self) -> Any:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = self.gearman.GearmanClient([self.address])
        return client

    def _submit(self, task: str, data: bytes) -> Any:
        return self._client().submit_job(task, data, poll_timeout=WAIT_LIMIT).result

    async def _gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        return list(await asyncio.gather(*(asyncio.to_thread(self._submit, task, data)
                                           for data in payloads)))

    async def _wait_forever(self, task: str) -> None:
        await asyncio.to_thread(self._submit, task, b"never done")


class _BareProtocol(asyncio.Protocol):
    """bare.py's protocol on an asyncio connection: SUBMIT_JOB packets leave in one
    write per turn of the loop; JOB_CREATED answers the oldest submission, then
    WORK_COMPLETE finds its future by handle."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray()
        self.out: List[bytes] = []
        self.created: Deque[asyncio.Future[bytes]] = collections.deque()
        self.by_handle: Dict[bytes, asyncio.Future[bytes]] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        for command, body in take_packets(self.buf):
            if command == JOB_CREATED:
                self.by_handle[body] = self.created.popleft()
            elif command == WORK_COMPLETE:
                handle, _, result = body.partition(b"\0")
                self.by_handle.pop(handle).set_result(result)

    def _write(self) -> None:
        out, self.out = self.out, []
        self.transport.writelines(out)

    async def submit(self, task: bytes, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        if not self.out:
            loop.call_soon(self._write)
        self.out.extend(submit(SUBMIT_JOB, task, data))
        future = loop.create_future()
        self.created.append(future)
        return await future


class BareAsync(AsyncAdapter):
    """No library: the protocol on one asyncio connection, a future per job (bare.py's
    packets; no checks, retries or job objects).  A gather of its ``submit`` is the
    least any asyncio client can spend on a task per job, so it is the ceiling of
    the async rows, as ``bare`` is of the blocking ones."""

    name = "aio-bare"

    async def _connect(self) -> None:
        _, self.protocol = await self.loop.create_connection(_BareProtocol, self.host,
                                                             self.port)

    async def _gather(self, task: str, payloads: List[bytes]) -> List[Any]:
        submit_one, name = self.protocol.submit, task.encode()
        return list(await asyncio.gather(*(submit_one(name, data) for data in payloads)))


ASYNC_LIBRARIES = (OursAsync, AioGear, ToThread, BareAsync)
