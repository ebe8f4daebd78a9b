"""AsyncGearmanWorker's hooks and job observers against a real gearmand: the
blocking worker's hook names (on_job_execute, on_job_complete, on_job_exception as
coroutines; after_job and after_poll plain or ``async def``), a hook that raises or
sends nothing still ends its job, and gearman.metrics.instrument_worker counts an
asyncio worker's jobs as it counts a blocking one's."""
from __future__ import annotations

import asyncio
import time
from typing import Any, List

import pytest

from gearman import JOB_COMPLETE, JOB_FAILED
from gearman.aio import AsyncGearmanAdminClient, AsyncGearmanClient, AsyncGearmanWorker
from gearman.metrics import Registry, instrument_worker

from aio_support import WAIT, async_worker, run
from test_worker_metrics import samples

pytestmark = pytest.mark.gearmand


async def outcome_job(worker: Any, job: Any) -> bytes:
    """``ok-*`` completes, ``fail-*`` sends WORK_FAIL, ``raise-*`` raises."""
    kind = job.data.split(b"-")[0]
    await asyncio.sleep(0)
    if kind == b"fail":
        await worker.send_job_failure(job)
        return b""
    if kind == b"raise":
        raise RuntimeError(f"asked to raise by {job.data!r}")
    return job.data


async def queued(admin: AsyncGearmanAdminClient, task: str) -> int:
    for line in await admin.get_status():
        if line["task"] == task:
            return int(line["queued"])
    return 0


def test_metrics_count_an_async_workers_jobs_by_outcome(gearmand):
    registry = Registry()
    completes, fails, raises = 30, 12, 9

    async def scenario() -> None:
        worker = AsyncGearmanWorker([gearmand.address], concurrency=4)
        worker.register_task("outcome", outcome_job)
        metrics = instrument_worker(worker, registry)
        assert instrument_worker(worker, registry) is metrics  # once per registry
        working = asyncio.ensure_future(worker.work(poll_timeout=0.5))
        jobs = ([{"task": "outcome", "data": f"ok-{i}"} for i in range(completes)]
                + [{"task": "outcome", "data": f"fail-{i}"} for i in range(fails)]
                + [{"task": "outcome", "data": f"raise-{i}"} for i in range(raises)])
        try:
            async with AsyncGearmanClient([gearmand.address]) as client:
                requests = await client.submit_multiple_jobs(jobs, poll_timeout=WAIT)
        finally:
            worker.shutdown()
            await asyncio.wait_for(working, WAIT)
        states = [request.state for request in requests]
        assert states.count(JOB_COMPLETE) == completes
        assert states.count(JOB_FAILED) == fails + raises

    run(scenario())
    # Counted before the final answer is sent: exact once the client has every result.
    found = samples(registry)

    def total(outcome: str) -> float:
        return found[("gearman_worker_jobs_total", (("outcome", outcome), ("task", "outcome")))]

    assert (total("complete"), total("fail"), total("exception")) == (completes, fails, raises)
    assert found[("gearman_worker_job_duration_seconds_count", (("task", "outcome"),))] == \
        completes + fails + raises
    assert found[("gearman_worker_jobs_in_progress", (("task", "outcome"),))] == 0


class RecordingWorker(AsyncGearmanWorker):
    """Overrides every hook the way 2.x subclasses do, and records the calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[str] = []

    async def on_job_execute(self, current_job: Any) -> bool:
        self.calls.append(f"execute {current_job.data.decode()}")
        return await super().on_job_execute(current_job)

    async def on_job_complete(self, current_job: Any, job_result: Any) -> bool:
        self.calls.append("complete")
        return await super().on_job_complete(current_job, job_result.upper())

    async def on_job_exception(self, current_job: Any, exc_info: Any) -> bool:
        self.calls.append(f"exception {exc_info[0].__name__}")
        await self.send_job_failure(current_job)  # WORK_FAIL instead, as interop.rst shows
        return True

    async def after_job(self) -> bool:  # async def hooks are awaited
        self.calls.append("after_job")
        return True


def test_overridden_hooks_run_in_order_and_shape_the_answer(gearmand):
    async def echo(job: Any) -> bytes:
        if job.data == b"boom":
            raise ValueError("boom")
        return job.data

    async def scenario() -> None:
        async with async_worker(gearmand.address, {"echo": echo},
                                worker_class=RecordingWorker) as worker, \
                AsyncGearmanClient([gearmand.address]) as client:
            ok = await client.submit_job("echo", b"abc", poll_timeout=WAIT)
            bad = await client.submit_job("echo", b"boom", poll_timeout=WAIT)
        assert (ok.state, ok.result) == (JOB_COMPLETE, b"ABC")
        assert bad.state == JOB_FAILED and bad.exception is None  # WORK_FAIL, no text
        assert worker.calls == ["execute abc", "complete", "after_job",
                                "execute boom", "exception ValueError", "after_job"]

    run(scenario())


class BrokenHooks(AsyncGearmanWorker):
    async def on_job_execute(self, current_job: Any) -> bool:
        if current_job.data == b"raise":
            raise KeyError("hook bug")
        return True  # forgot to run the callback: no answer at all


def test_a_hook_that_raises_or_answers_nothing_still_ends_its_job(gearmand, caplog):
    async def scenario() -> None:
        async with async_worker(gearmand.address, {"t": lambda job: b"never called"},
                                worker_class=BrokenHooks), \
                AsyncGearmanClient([gearmand.address]) as client:
            raised = await client.submit_job("t", b"raise", poll_timeout=WAIT)
            silent = await client.submit_job("t", b"quiet", poll_timeout=WAIT)
        assert raised.state == JOB_FAILED and "KeyError" in str(raised.exception)
        assert silent.state == JOB_FAILED and silent.exception is None  # WORK_FAIL

    run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert any("on_job_execute raised KeyError" in m for m in messages)
    assert any("ended without a result; sending WORK_FAIL" in m for m in messages)


def test_after_poll_runs_every_poll_timeout_and_can_end_work(gearmand):
    class Polls(AsyncGearmanWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.passes: List[bool] = []

        async def after_poll(self, any_activity: bool) -> bool:
            self.passes.append(any_activity)
            return len(self.passes) < 3

    async def scenario() -> None:
        worker = Polls([gearmand.address])
        worker.register_task("idle", lambda job: b"")
        started = time.monotonic()
        await asyncio.wait_for(worker.work(poll_timeout=0.2), WAIT)
        elapsed = time.monotonic() - started
        assert len(worker.passes) == 3
        assert worker.passes[-1] is False  # nothing happened in the last pass
        assert 0.3 <= elapsed < 5.0

    run(scenario())


def test_an_after_job_that_raises_is_raised_by_work(gearmand):
    class Raises(AsyncGearmanWorker):
        def after_job(self) -> bool:
            raise RuntimeError("after_job bug")

    async def scenario() -> None:
        worker = Raises([gearmand.address])
        worker.register_task("r", lambda job: b"ok")
        working = asyncio.ensure_future(worker.work(poll_timeout=0.5))
        async with AsyncGearmanClient([gearmand.address]) as client:
            request = await client.submit_job("r", b"", poll_timeout=WAIT)
        assert request.state == JOB_COMPLETE  # the job itself was answered
        with pytest.raises(RuntimeError, match="after_job bug"):
            await asyncio.wait_for(working, WAIT)

    run(scenario())


def test_an_after_poll_that_raises_is_raised_once_running_jobs_are_answered(gearmand):
    started: List[bool] = []

    class PollBug(AsyncGearmanWorker):
        def after_poll(self, any_activity: bool) -> bool:
            if started:
                raise RuntimeError("after_poll bug")
            return True

    async def slow(job: Any) -> bytes:
        started.append(True)
        await asyncio.sleep(0.5)  # still running when after_poll raises
        return b"finished"

    async def scenario() -> None:
        worker = PollBug([gearmand.address])
        worker.register_task("slow", slow)
        working = asyncio.ensure_future(worker.work(poll_timeout=0.1))
        async with AsyncGearmanClient([gearmand.address]) as client:
            request = await client.submit_job("slow", b"", poll_timeout=WAIT)
            assert (request.state, request.result) == (JOB_COMPLETE, b"finished")
        with pytest.raises(RuntimeError, match="after_poll bug"):
            await asyncio.wait_for(working, WAIT)

    run(scenario())


class PlainHooks(AsyncGearmanWorker):
    """A 2.x subclass ported as is: plain ``def`` hooks that send without ``await``."""

    def on_job_complete(self, current_job: Any, job_result: Any) -> bool:  # type: ignore[override]
        self.send_job_complete(current_job, b"plain:" + job_result)
        return True

    def on_job_exception(self, current_job: Any, exc_info: Any) -> bool:  # type: ignore[override]
        self.send_job_failure(current_job)
        return True


def test_plain_def_hooks_and_sends_without_await_still_answer(gearmand, caplog):
    async def job(worker: Any, job: Any) -> bytes:
        if job.data == b"bad":
            raise ValueError("bad")
        worker.send_job_data(job, b"update")  # no await: queued at once all the same
        return job.data

    async def scenario() -> None:
        async with async_worker(gearmand.address, {"p": job}, worker_class=PlainHooks), \
                AsyncGearmanClient([gearmand.address]) as client:
            good = await client.submit_job("p", b"x", poll_timeout=WAIT)
            bad = await client.submit_job("p", b"bad", poll_timeout=WAIT)
        assert (good.state, good.result, list(good.data_updates)) == \
            (JOB_COMPLETE, b"plain:x", [b"update"])
        assert bad.state == JOB_FAILED and bad.exception is None

    run(scenario())
    # The hooks' plain return values were taken as they are, not awaited (which
    # would raise TypeError after the answer went out, and be logged).
    assert not [r for r in caplog.records if "on_job_execute raised" in r.getMessage()]


@pytest.mark.parametrize("slow_async_hook", [False, True], ids=["plain", "async"])
def test_after_job_false_ends_work_and_leaves_the_rest_queued(gearmand, slow_async_hook):
    """An ``async def after_job`` that takes its time holds the job's slot: the loop
    wakes meanwhile (poll_timeout 0.05) but grabs nothing."""
    ran: List[bytes] = []

    class ThreeJobs(AsyncGearmanWorker):
        def after_job(self) -> Any:
            if not slow_async_hook:
                return len(ran) < 3

            async def decide() -> bool:
                await asyncio.sleep(0.3)
                return len(ran) < 3
            return decide()

    async def scenario() -> None:
        async with AsyncGearmanClient([gearmand.address]) as client, \
                AsyncGearmanAdminClient([gearmand.address]) as admin:
            await client.submit_multiple_jobs(
                [{"task": "three", "data": b"%d" % i} for i in range(5)], background=True,
                wait_until_complete=False, poll_timeout=WAIT)
            worker = ThreeJobs([gearmand.address])  # concurrency 1: one job at a time
            worker.register_task("three", lambda job: ran.append(job.data) or b"")
            await asyncio.wait_for(worker.work(poll_timeout=0.05), WAIT)  # returns by itself
            assert len(ran) == 3  # no job run (or grabbed) past the hook's "stop"
            assert await queued(admin, "three") == 2

    run(scenario())


def test_after_poll_sees_activity_when_jobs_ran(gearmand):
    class Watch(AsyncGearmanWorker):
        passes: List[bool]

        def after_poll(self, any_activity: bool) -> bool:
            self.passes.append(any_activity)
            return True

    async def scenario() -> None:
        async with async_worker(gearmand.address, {"w": lambda job: b"ok"},
                                worker_class=Watch) as worker, \
                AsyncGearmanClient([gearmand.address]) as client:
            worker.passes = []
            await asyncio.sleep(0.7)  # an idle pass or more (poll_timeout 0.5)
            idle = len(worker.passes)
            await client.submit_job("w", b"", poll_timeout=WAIT)
            await asyncio.sleep(0.7)
        assert idle >= 1 and not any(worker.passes[:idle])
        assert True in worker.passes[idle:]

    run(scenario())


@pytest.mark.parametrize("how", ["close", "cancel work"])
def test_a_job_whose_own_code_is_cancelled_fails_and_abandoned_jobs_go_to_another_worker(
        gearmand, how):
    """A CancelledError from the job's own code fails that job.  close(), or the task
    running work() being cancelled, abandons the running job: never answered, off
    the in-progress gauge, and gearmand gives it to the next worker: nothing lost."""
    registry = Registry()

    async def job(job: Any) -> bytes:
        if job.data == b"cancel":
            other = asyncio.ensure_future(asyncio.sleep(10))
            other.cancel()
            await other  # raises CancelledError inside the job's own code
        await asyncio.sleep(3600)  # held until the worker abandons it
        return b"first"

    async def scenario() -> None:
        worker = AsyncGearmanWorker([gearmand.address], concurrency=2)
        worker.register_task("c", job)
        instrument_worker(worker, registry)
        working = asyncio.ensure_future(worker.work(poll_timeout=0.5))
        async with AsyncGearmanClient([gearmand.address]) as client:
            cancelled = await client.submit_job("c", b"cancel", poll_timeout=WAIT)
            assert cancelled.state == JOB_FAILED and "CancelledError" in str(cancelled.exception)
            held = await client.submit_job("c", b"hold", wait_until_complete=False,
                                           poll_timeout=WAIT)
            for _ in range(500):
                if worker.jobs_running:
                    break
                await asyncio.sleep(0.01)
            assert worker.jobs_running == 1
            if how == "close":
                await worker.close()
                await asyncio.wait_for(working, WAIT)
            else:
                working.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await working
            assert worker.jobs_running == 0 and not held.complete
            async with async_worker(gearmand.address, {"c": lambda job: b"second"}):
                await client.wait_until_jobs_completed([held], poll_timeout=WAIT)
            assert (held.state, held.result) == (JOB_COMPLETE, b"second")
            await worker.close()

    run(scenario())
    found = samples(registry)
    assert found[("gearman_worker_jobs_in_progress", (("task", "c"),))] == 0
    assert found[("gearman_worker_jobs_total", (("outcome", "exception"), ("task", "c")))] == 1
    assert found[("gearman_worker_jobs_total", (("outcome", "complete"), ("task", "c")))] == 0
