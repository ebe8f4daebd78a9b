"""asyncio quick tour: an AsyncGearmanWorker running several jobs at once, an
AsyncGearmanClient with many tasks awaiting it, updates as they arrive, a
cancelled wait, and the admin client -- all on one event loop.

Uses the gearmand named by $GEARMAN_SERVERS (first entry) or localhost:4730.
"""
from __future__ import annotations

import asyncio

from _hosts import hosts

from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient, AsyncGearmanWorker


async def slow_upper(job):
    """An async callback: runs on the loop, several at once."""
    await asyncio.sleep(0.05)
    return job.data.upper()


def word_count(worker, job):
    """A plain callback: runs in a thread, so it may block; it reports progress."""
    words = job.data.split()
    for done, _ in enumerate(words, 1):
        worker.send_job_status(job, done, len(words))
    return str(len(words))


async def main() -> None:
    servers = hosts()
    worker = AsyncGearmanWorker(servers, concurrency=10)
    worker.set_client_id("asyncio-demo")
    worker.register_task("slow_upper", slow_upper)
    worker.register_task("word_count", word_count)
    working = asyncio.ensure_future(worker.work(poll_timeout=1.0))

    async with AsyncGearmanClient(servers) as client:
        # Twenty tasks await one client at once; each gets its own result.
        requests = await asyncio.gather(*(
            client.submit_job("slow_upper", f"job {n}", poll_timeout=30) for n in range(20)))
        print("results:", [request.result.decode() for request in requests[:3]], "...")
        assert all(r.result == f"JOB {n}".encode() for n, r in enumerate(requests))

        # Updates of one job as they arrive.
        request = await client.submit_job("word_count", "the quick brown fox",
                                          wait_until_complete=False)
        async for update in client.updates(request):
            print("update:", update.kind, update.value["numerator"], "of",
                  update.value["denominator"])
        print("word_count:", request.state, request.result)

        # A cancelled wait leaves the client usable.
        try:
            await asyncio.wait_for(client.submit_job("nobody_does_this", "x"), 0.2)
        except asyncio.TimeoutError:
            print("cancelled a wait for a job no worker takes")
        print("still usable:", (await client.submit_job("slow_upper", "ok")).result)

    async with AsyncGearmanAdminClient(servers) as admin:
        for line in await admin.get_status():
            if line["task"] in ("slow_upper", "word_count"):
                print("status:", line)

    worker.shutdown()
    await working
    await worker.close()


if __name__ == "__main__":
    asyncio.run(main())
